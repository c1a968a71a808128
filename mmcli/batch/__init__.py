"""Many jobs in one run: --each, mmcli batch, several servers, OpenAI batch files."""
