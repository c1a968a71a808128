"""`python -m mmcli`."""

from .cli.app import run

run()
