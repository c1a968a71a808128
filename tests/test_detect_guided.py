"""detect's guided boxes against a real local HTTP server: the schema each family gets, and when none is sent."""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import assert_clean_error
from tests.test_schema_cli import write_profile
from tests.support.scripted_server import Reply, decode_images

MAX_PIXELS = "940800"  # the 2240x1680 scene goes out at exactly 1120x840


def detect(mmcli, server, scene, *args):
    return mmcli("detect", scene, "the dog", "--base-url", server.base_url, "--max-pixels", MAX_PIXELS, *args)


def sent_schema(server, n: int = 0):
    request = server.chat_requests()[n].json
    return request.get("response_format", {}).get("json_schema", {}).get("schema")


def bounds(schema) -> list[tuple[int, int]]:
    coords = schema["items"]["properties"].get("bbox_2d") or schema["items"]["properties"]["point_2d"]
    return [(axis["minimum"], axis["maximum"]) for axis in coords["prefixItems"]]


@pytest.mark.parametrize("family, expected", [
    ("qwen2.5-vl", [(0, 1120), (0, 840)] * 2),  # absolute pixels of the image as sent
    ("qwen3-vl", [(0, 1000)] * 4),
])
def test_each_json_family_gets_boxes_bounded_by_its_coordinate_range(mmcli, server, scene, family, expected):
    usage = {"prompt_tokens": 5000, "completion_tokens": 20, "total_tokens": 5020}
    server.script(Reply('[{"bbox_2d": [10, 20, 300, 400], "label": "dog"}]', usage=usage))
    run = detect(mmcli, server, scene, "--family", family, "--json")
    assert run.code == 0, run.stderr
    schema = sent_schema(server)
    assert bounds(schema) == expected
    if family == "qwen2.5-vl":
        assert decode_images(server.chat_requests()[0].json)[0].size == (1120, 840)
    assert schema["items"]["required"] == ["bbox_2d", "label"]
    assert json.loads(run.stdout)["inputs"][0]["detections"]  # the answer is read by the same parser
    assert "warning" not in run.stderr


QWEN2_ANSWER = "<|object_ref_start|>the dog<|object_ref_end|><|box_start|>(10,20),(300,400)<|box_end|>"


def sent_regex(server, n: int = 0):
    return server.chat_requests()[n].json.get("structured_outputs", {}).get("regex")


def test_qwen2_vl_keeps_its_own_prompt_and_is_held_to_its_own_box_form(mmcli, server, scene):
    server.script(Reply(QWEN2_ANSWER, usage={"prompt_tokens": 5000, "completion_tokens": 20, "total_tokens": 5020}))
    run = detect(mmcli, server, scene, "--family", "qwen2-vl", "--json")
    assert run.code == 0, run.stderr
    request = server.chat_requests()[0].json
    assert "<|object_ref_start|>the dog<|object_ref_end|>" in request["messages"][-1]["content"][-1]["text"]
    assert "response_format" not in request
    pattern = re.compile(sent_regex(server))
    assert pattern.fullmatch(QWEN2_ANSWER) and pattern.fullmatch("")
    assert pattern.fullmatch("<|box_start|>(0,0),(1000,1000)<|box_end|>" * 2)  # the label is optional
    for outside in ("(1001,0)", "(-1,0)", "(01,0)", "(1.5,0)"):
        assert not pattern.fullmatch(f"<|box_start|>{outside},(1,1)<|box_end|>"), outside
    assert not pattern.fullmatch('[{"bbox_2d": [1, 2, 3, 4], "label": "dog"}]')
    assert not pattern.fullmatch(QWEN2_ANSWER.replace("the dog", "dog (1,2),(3,4)"))
    [found] = json.loads(run.stdout)["inputs"][0]["detections"]
    assert found["bbox"] == [22, 34, 672, 672]  # 0..1000 of the 2240x1680 scene
    assert "warning" not in run.stderr


def test_qwen2_vl_is_guided_by_default_only_on_vllm(mmcli, server, scene):
    server.max_model_len = None  # a server that does not say it is vLLM
    server.script(Reply(QWEN2_ANSWER), Reply(QWEN2_ANSWER))
    assert detect(mmcli, server, scene, "--family", "qwen2-vl").code == 0
    assert detect(mmcli, server, scene, "--family", "qwen2-vl", "--guided").code == 0
    assert sent_regex(server, 0) is None and "response_format" not in server.chat_requests()[0].json
    assert sent_regex(server, 1) is not None


def test_qwen2_vl_is_guided_on_a_server_known_as_vllm_without_asking(mmcli, server, scene, tmp_path):
    server.max_model_len = None
    config = tmp_path / "config" / "mmcli" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(f'[profiles.local]\nbase_url = "{server.base_url}"\nmedia_uuid = true\n')  # as mmcli serve's
    server.script(Reply(QWEN2_ANSWER))
    assert mmcli("detect", scene, "the dog", "--profile", "local", "--family", "qwen2-vl").code == 0
    assert sent_regex(server) is not None


def test_qwen2_vl_points_and_other_spaces(mmcli, server, scene):
    server.script(Reply("[]"), Reply(QWEN2_ANSWER))
    detect(mmcli, server, scene, "--family", "qwen2-vl", "--points")  # the generic JSON prompt: JSON guided
    assert bounds(sent_schema(server, 0)) == [(0, 1000)] * 2
    assert "point_2d" in server.chat_requests()[0].json["messages"][-1]["content"][-1]["text"]
    detect(mmcli, server, scene, "--family", "qwen2-vl", "--coords", "abs")  # box tokens in pixels: free text
    assert sent_regex(server, 1) is None and sent_schema(server, 1) is None


def test_points_and_coords_change_the_schema(mmcli, server, scene):
    server.script(Reply("[]"), Reply("[]"))
    detect(mmcli, server, scene, "--family", "qwen2.5-vl", "--points")
    assert bounds(sent_schema(server, 0)) == [(0, 1120), (0, 840)]
    detect(mmcli, server, scene, "--family", "qwen2.5-vl", "--coords", "norm1")
    axis = sent_schema(server, 1)["items"]["properties"]["bbox_2d"]["prefixItems"][0]
    assert axis == {"type": "number", "minimum": 0, "maximum": 1.0}


def test_no_guided_and_other_families_send_no_schema(mmcli, server, scene):
    server.script(Reply("[]"), Reply("[]"), Reply("[]"))
    detect(mmcli, server, scene, "--family", "qwen2.5-vl", "--no-guided")
    detect(mmcli, server, scene, "--family", "generic")
    detect(mmcli, server, scene, "--family", "generic", "--guided")
    assert sent_schema(server, 0) is None and sent_schema(server, 1) is None
    assert bounds(sent_schema(server, 2)) == [(0, 1000)] * 4


def test_a_profile_without_structured_output_sends_free_text_and_refuses_guided(mmcli, server, scene, tmp_path):
    write_profile(tmp_path, server, "plain", "none")
    server.script(Reply("[]"))
    run = mmcli("detect", scene, "the dog", "--profile", "plain", "--family", "qwen2.5-vl")
    assert run.code == 0, run.stderr
    assert "response_format" not in server.chat_requests()[0].json
    run = mmcli("detect", scene, "the dog", "--profile", "plain", "--family", "qwen2.5-vl", "--guided")
    assert_clean_error(run, 2, "--guided needs structured output")
    assert len(server.chat_requests()) == 1
