"""One task of a many-job run as a dict, a line of a tasks file or an item of `Client.batch`'s list: its command,
inputs, prompt, id and options, checked by the same rules wherever it comes from. Each surface then checks the
options with its own parser (a tasks file's as command-line options, the Python API's as keywords)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

from .work import COMMANDS

EXAMPLE = '{"command": "ask", "inputs": ["a.jpg"], "prompt": "caption"}'


class TaskError(Exception):
    """What is wrong with one task (said the same way on every surface)."""


@dataclass
class Task:
    """A task's parts; `options` is the rest of the dict, keys as given."""

    command: str
    inputs: list[str]
    prompt: str
    given_id: Optional[str]
    options: dict


def split_task(task: object) -> Task:
    """The task's command, inputs, prompt and id checked, and its other keys as options; TaskError says why not."""
    from ..tasks import DEFAULT_VIDEO_PROMPT

    if not isinstance(task, dict):
        raise TaskError(f"not an object like {EXAMPLE}: got {type(task).__name__}")
    options = dict(task)
    command = options.pop("command", None)
    if not isinstance(command, str) or command not in COMMANDS:
        raise TaskError(f"'command' must be one of {', '.join(COMMANDS)}, not {command!r}")
    inputs = _inputs(options.pop("inputs", []))
    if command == "video" and len(inputs) != 1:
        raise TaskError(f"a video task takes exactly one input, not {len(inputs)}")
    given_id = options.pop("id", None)
    if given_id is not None and (not isinstance(given_id, str) or not given_id):
        raise TaskError("'id' must be a non-empty string")
    prompt = options.pop("prompt", None)
    if prompt is None and command == "video":
        prompt = DEFAULT_VIDEO_PROMPT
    if prompt is None:
        raise TaskError('the task has no prompt; give one as "prompt"')
    if not isinstance(prompt, str):
        raise TaskError(f"'prompt' must be a string, not {type(prompt).__name__}")
    if not prompt.strip():
        raise TaskError("the prompt is empty; give the words to ask")
    return Task(command, inputs, prompt, given_id, options)


def _inputs(value: object) -> list[str]:
    """Paths and URLs (one, or a list), never standard input: a task runs on a worker, not at the terminal."""
    listed = [value] if isinstance(value, (str, os.PathLike)) else value
    if not isinstance(listed, (list, tuple)) or not all(isinstance(i, (str, os.PathLike)) and os.fspath(i)
                                                        for i in listed):
        raise TaskError("'inputs' must be a list of paths or URLs")
    inputs = [os.fspath(i) for i in listed]
    if "-" in inputs:
        raise TaskError("a task cannot read standard input; name the file")
    return inputs
