"""Structured output on a real vLLM (xgrammar, `disable_any_whitespace`): the random-weight models answer
schema-valid JSON, and detect's guided boxes parse and lie inside the original image for every family."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import tier_media

pytest.importorskip("mmcli")
pytest.importorskip("jsonschema")

BOUNDED = {"type": "object", "additionalProperties": False, "required": ["label", "count", "ok"],
           "properties": {"label": {"type": "string", "maxLength": 12},
                          "count": {"type": "integer", "minimum": 0, "maximum": 99},
                          "ok": {"type": "boolean"}}}


def run_mmcli(*args: str) -> subprocess.CompletedProcess:
    """``python -m mmcli ARGS`` with no endpoint variables and an empty config home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MMCLI_", "OPENAI_"))}
    with tempfile.TemporaryDirectory(prefix="mmcli-home-") as home:
        env.update(HOME=home, XDG_CONFIG_HOME=str(Path(home) / "config"), COLUMNS="200", MMCLI_AUTOSTART="0")
        return subprocess.run([sys.executable, "-m", "mmcli", *args], capture_output=True, text=True,
                              timeout=600, env=env, check=False)


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    """A 1000x750 photo: big enough to be resized on the way out, so boxes must be mapped back."""
    return tier_media.save_jpeg(tier_media.photo(1000, 750, "coffee"),
                                tmp_path_factory.mktemp("schema") / "coffee.jpg")


def test_ask_with_a_schema_gives_a_valid_object(vllm_server, photo):
    from jsonschema import validate

    proc = run_mmcli("ask", str(photo), "Describe it.", "--schema", json.dumps(BOUNDED),
                     "--base-url", vllm_server.base_url, "--model", vllm_server.model,
                     "--max-tokens", "200", "--temperature", "0")
    assert proc.returncode == 0, proc.stderr
    value = json.loads(proc.stdout)
    validate(value, BOUNDED)


def test_ask_with_the_short_form_and_json_output(vllm_server, photo):
    proc = run_mmcli("ask", str(photo), "Is it a cup?", "--schema", "ok bool, sure bool",
                     "--base-url", vllm_server.base_url, "--model", vllm_server.model,
                     "--max-tokens", "50", "--temperature", "0", "--json")
    assert proc.returncode == 0, proc.stderr
    answer = json.loads(proc.stdout)["answer"]
    assert set(answer) == {"ok", "sure"} and all(isinstance(v, bool) for v in answer.values())


def check_box_form(raw: str, entry: dict) -> None:
    """A random Qwen2-VL held to its box form: what it wrote, up to the last whole box when the token limit
    cut it, is that form (this tokenizer keeps the special tokens in the reply); every box is read (none
    skipped). Its boxes may be empty (x1 == x2): those are dropped with a warning, which is right."""
    from mmcli.schema import QWEN2_VL_BOXES

    whole = raw[:raw.rfind("<|box_end|>") + len("<|box_end|>")] if entry["finish_reason"] == "length" else raw
    assert re.fullmatch(QWEN2_VL_BOXES, whole), raw
    assert not entry["skipped"], entry


def test_detect_guided_boxes_parse_and_lie_inside_the_image(family_server, photo):
    """Guided (named: with --model and --family given, the endpoint is not asked whether it is vLLM): JSON
    families under their bounded schema, Qwen2-VL held to its own box form by a regular expression (a random
    model's answer can only match it if the server applied it); either way the answer parses with no
    warning and every box lies inside the photo."""
    proc = run_mmcli("detect", str(photo), "the cup", "--json", "--guided", "--base-url", family_server.base_url,
                     "--model", family_server.model, "--family", family_server.family,
                     "--max-tokens", "1500", "--temperature", "0")
    assert proc.returncode == 0, proc.stderr
    entry = json.loads(proc.stdout)["inputs"][0]
    raw = entry["raw"]
    if family_server.family == "qwen2-vl":
        check_box_form(raw, entry)
    else:
        assert isinstance(json.loads(raw), list), raw  # the whole answer is JSON: nothing to repair or guess
        assert entry["warnings"] == [], (raw, entry["warnings"])
        assert "warning" not in proc.stderr, proc.stderr
    for found in entry["detections"]:  # a random model may well find nothing: see the next test
        x1, y1, x2, y2 = found["bbox"]
        assert 0 <= x1 < x2 <= 1000 and 0 <= y1 < y2 <= 750, found


def test_guided_schema_keeps_every_box_inside_the_image(family_server, photo):
    """The family's detect schema, made to require boxes (a random model otherwise often answers []):
    every coordinate the server lets through maps inside the original image."""
    import mmcli
    from mmcli.tasks.detect.coords import space_for, to_original, xy_order
    from mmcli.tasks.detect.parse import parse_answer
    from mmcli.families import FAMILIES
    from mmcli.schema import detect_schema

    client = mmcli.Client(base_url=family_server.base_url, model=family_server.model,
                          family=family_server.family, autostart=False)
    item = client.plan(photo, "x").items[0]
    sent = (item.sent_width, item.sent_height)
    space = FAMILIES[family_server.family].box_convention
    schema = detect_schema(space, sent, min_items=3, max_items=3)
    answer = client.ask(photo, "Locate every cup, output its bbox coordinates using JSON format.",
                        schema=schema, max_tokens=400, temperature=0)
    assert len(answer.data) == 3  # checked against the schema by mmcli as well
    parsed = parse_answer(answer.text)
    assert parsed.form == "json" and len(parsed.items) == 3 and not parsed.skipped, answer.text
    for raw in parsed.items:
        x1, y1, x2, y2 = to_original(xy_order(raw.values, raw.order), space_for(space, *sent), 1000, 750)
        assert 0 <= min(x1, x2) and max(x1, x2) <= 1000 and 0 <= min(y1, y2) and max(y1, y2) <= 750, raw
