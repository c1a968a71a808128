"""Grounding for `mmcli detect`: prompts per family, tolerant parsing, exact coordinate mapping, drawing."""
