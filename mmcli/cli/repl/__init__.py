"""`mmcli chat`: an interactive conversation on a terminal."""
