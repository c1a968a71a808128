"""One photo through every surface (the CLI's --json, an --each line, the Python API and its Client.each, an
export collected):
the same task finish gives the same answer, usage, planned visual tokens, verified flag, model and
finish reason; and detect's boxes are the same everywhere."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from tests.support.scripted_server import Reply
from tests.test_batch_each import lines
from tests.test_batch_export import MODEL, run_batch_file

SAME = ("answer", "usage", "planned_visual_tokens", "verified", "model", "finish_reason")
USAGE = {"prompt_tokens": 900, "completion_tokens": 4, "total_tokens": 904}


@pytest.fixture
def photo(tmp_path):
    folder = tmp_path / "album"
    folder.mkdir()
    path = folder / "photo.png"
    Image.new("RGB", (640, 480), (200, 40, 40)).save(path)
    return path


def _collected(mmcli, server, tmp_path, command: str, photo, prompt: str) -> dict:
    export = tmp_path / f"{command}.jsonl"
    run = mmcli(command, "--each", photo.parent, prompt, "--export", "openai-batch", export, *MODEL)
    assert run.code == 0, run.stderr
    output = tmp_path / f"{command}.out.jsonl"
    run_batch_file(server, export, output)
    collected = tmp_path / f"{command}.collected.jsonl"
    run = mmcli("batch", "collect", export, output, "-o", collected)
    assert run.code == 0, run.stderr
    [line] = lines(collected)
    return line


def test_ask_gives_the_same_fields_on_every_surface(mmcli, server, tmp_path, photo, clean_environ):
    import mmcli as api

    server.default = Reply("a red square", usage=USAGE)
    run = mmcli("ask", photo, "caption", "--json", "--no-stream", "--base-url", server.base_url, *MODEL)
    assert run.code == 0, run.stderr
    single = json.loads(run.stdout)

    live = tmp_path / "live.jsonl"
    run = mmcli("ask", "--each", photo.parent, "caption", "-o", live, "--no-stream", "--base-url", server.base_url,
                *MODEL)
    assert run.code == 0, run.stderr
    [line] = lines(live)

    client = api.Client(base_url=server.base_url, model="tiny", family="qwen2-vl")
    answer = client.ask(photo, "caption", stream=False)
    from mmcli.tasks.ask import answer_fields

    from_api = answer_fields(answer)
    [from_each] = client.each(photo.parent, "caption", stream=False)
    collected = _collected(mmcli, server, tmp_path, "ask", photo, "caption")

    assert single["planned_visual_tokens"] and single["verified"] is True and single["usage"] == USAGE
    for key in SAME:
        assert single[key] == line[key] == from_api[key] == from_each[key] == collected[key], key
    assert single["plan"]["totals"] == line["plan"]["totals"] == from_each["plan"]["totals"] \
        == collected["plan"]["totals"]
    # Client.each's item is the results line itself: the same keys and the same job id, so either resumes the other.
    assert set(from_each) == set(line) and from_each["id"] == line["id"]
    assert list(client.each(photo.parent, "caption", stream=False, output=live)) == []  # already done


def test_detect_gives_the_same_boxes_on_every_surface(mmcli, server, tmp_path, photo, clean_environ):
    import mmcli as api

    server.default = Reply('<|object_ref_start|>cat<|object_ref_end|><|box_start|>(100,200),(500,700)<|box_end|>',
                           usage=USAGE)
    run = mmcli("detect", photo, "the cat", "--json", "--base-url", server.base_url, *MODEL)
    assert run.code == 0, run.stderr
    single = json.loads(run.stdout)

    live = tmp_path / "live"
    run = mmcli("detect", "--each", photo.parent, "the cat", "-o", live, "--base-url", server.base_url, *MODEL)
    assert run.code == 0, run.stderr
    [line] = lines(live / "results.jsonl")

    from mmcli.tasks.detect.jobs import detections_fields

    client = api.Client(base_url=server.base_url, model="tiny", family="qwen2-vl")
    from_api = detections_fields(client.detect(photo, "the cat"))
    [from_each] = client.each(photo.parent, "the cat", task="detect")
    collected = _collected(mmcli, server, tmp_path, "detect", photo, "the cat")

    boxes = [[d["bbox"] for d in entry["detections"]] for entry in single["inputs"]]
    assert boxes == [[[64.0, 96.0, 320.0, 336.0]]]  # 0..1000 of the 640x480 original
    assert from_each["id"] == line["id"]
    for other in (line, from_api, from_each, collected):
        assert [[d["bbox"] for d in entry["detections"]] for entry in other["inputs"]] == boxes
        for key in ("usage", "planned_visual_tokens", "verified", "model"):
            assert other[key] == single[key], key
