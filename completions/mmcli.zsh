#compdef mmcli

_mmcli_completion() {
  eval $(env _TYPER_COMPLETE_ARGS="${words[1,$CURRENT]}" _MMCLI_COMPLETE=complete_zsh mmcli)
}

compdef _mmcli_completion mmcli
