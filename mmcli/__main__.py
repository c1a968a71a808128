"""`python -m mmcli`."""

from .app import run

run()
