"""A task of a many-job run is checked by the same rules whether it is a line of a tasks file (`mmcli batch`) or
an item of `Client.batch`'s list: each rule is tried on both surfaces, and nothing is sent for a bad task."""

from __future__ import annotations

import json

import pytest

from mmcli import Client, UsageError
from tests.support.scripted_server import Reply

RULES = [
    ([1, 2], "not an object"),
    ({"inputs": ["a.png"], "prompt": "x"}, "'command' must be one of ask, video, docqa, detect"),
    ({"command": "paint", "inputs": ["a.png"], "prompt": "x"}, "'command' must be one of"),
    ({"command": "ask", "inputs": [1], "prompt": "x"}, "'inputs' must be a list of paths or URLs"),
    ({"command": "ask", "inputs": [""], "prompt": "x"}, "'inputs' must be a list of paths or URLs"),
    ({"command": "ask", "inputs": {"a": 1}, "prompt": "x"}, "'inputs' must be a list of paths or URLs"),
    ({"command": "ask", "inputs": ["-"], "prompt": "x"}, "cannot read standard input"),
    ({"command": "docqa", "inputs": "-", "prompt": "x"}, "cannot read standard input"),
    ({"command": "video", "inputs": ["a.mp4", "b.mp4"], "prompt": "x"}, "exactly one input"),
    ({"command": "video", "inputs": []}, "exactly one input"),
    ({"command": "ask", "inputs": ["a.png"], "prompt": "x", "id": ""}, "'id' must be a non-empty string"),
    ({"command": "ask", "inputs": ["a.png"], "prompt": "x", "id": 5}, "'id' must be a non-empty string"),
    ({"command": "ask", "inputs": ["a.png"]}, "the task has no prompt"),
    ({"command": "ask", "inputs": ["a.png"], "prompt": 5}, "'prompt' must be a string"),
    ({"command": "detect", "inputs": ["a.png"], "prompt": "  "}, "the prompt is empty"),
]


@pytest.mark.parametrize("task, fragment", RULES)
def test_a_bad_tasks_file_line_is_named_and_left_out(mmcli, server, tmp_path, task, fragment):
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(json.dumps(task) + "\n")
    run = mmcli("batch", tasks, "--base-url", server.base_url)
    assert run.code == 2 and "no job to run" in run.stderr, run.stderr
    [warning] = [line for line in run.stderr.splitlines() if "tasks.jsonl, line 1: " in line]
    assert fragment in warning and warning.endswith("the line is left out"), warning
    assert not server.chat_requests()


@pytest.mark.usefixtures("clean_environ")
@pytest.mark.parametrize("task, fragment", RULES)
def test_a_bad_client_batch_task_is_one_usage_error(server, task, fragment):
    client = Client(base_url=server.base_url, model="tiny", family="qwen2-vl", log=False)
    good = {"command": "ask", "inputs": [], "prompt": "hello"}
    with pytest.raises(UsageError) as refused:
        client.batch([good, task])
    assert refused.value.message().startswith("task 2: ") and fragment in refused.value.message()
    assert refused.value.hint
    assert not server.requests  # nothing asked, not even the good task


def test_the_same_id_twice_is_refused_on_both_surfaces(mmcli, server, tmp_path, clean_environ):
    task = {"id": "x", "command": "ask", "inputs": [], "prompt": "hi"}
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(json.dumps(task) + "\n" + json.dumps(task) + "\n")
    run = mmcli("batch", tasks, "--base-url", server.base_url)
    assert run.code == 8 and "line 2: id 'x' is also on line 1" in run.stderr
    client = Client(base_url=server.base_url, model="tiny", family="qwen2-vl", log=False)
    with pytest.raises(UsageError, match="task 2: id 'x' is also task 1"):
        client.batch([task, task])


@pytest.mark.usefixtures("clean_environ")
def test_what_both_surfaces_take(mmcli, server, tmp_path):
    """A video task without a prompt (the default question), one input as a string or a path, no inputs for a
    text question: accepted the same way by both."""
    from tests.test_video_fixtures import write_clip

    server.default = Reply("fine")
    clip = tmp_path / "c.mp4"
    write_clip(clip, frames=20, fps=10, size=(64, 48))
    good = [{"command": "video", "inputs": str(clip), "frames": 4}, {"command": "ask", "prompt": "hello"}]
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text("".join(json.dumps(t) + "\n" for t in good))
    run = mmcli("batch", tasks, "-o", tmp_path / "file.jsonl", "--base-url", server.base_url)
    assert run.code == 0, run.stderr
    client = Client(base_url=server.base_url, model="tiny", family="qwen2-vl", log=False)
    items = list(client.batch([{**good[0], "inputs": clip}, good[1]], output=tmp_path / "api.jsonl"))
    assert sorted(i["command"] for i in items) == ["ask", "video"] and all(i.get("answer") == "fine" for i in items)
    from tests.test_batch_each import lines

    by_file = {line["command"]: line["prompt"] for line in lines(tmp_path / "file.jsonl")}
    assert by_file == {i["command"]: i["prompt"] for i in items}  # the same default video question
