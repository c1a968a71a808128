"""The Python API: `mmcli.Client` and its keyword arguments, through the same driver."""
