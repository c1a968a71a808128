"""The rows of `--engine ray --backend vllm` around Ray's vLLM stage, without Ray or vLLM: what mmcli hands the
engine (built from the prepared job: the same image bytes an HTTP run sends), and how the stage's output rows
become results lines through the task's finish. The engine itself runs in the vLLM tier
(tests/vllm_tier/test_vllm_tier_ray_engine.py)."""

from __future__ import annotations

import base64
import io
import json
import pickle

import pytest
from PIL import Image

from mmcli.batch.ray_vllm_rows import PLACEHOLDER, STATE, EngineRows, finished_row
from mmcli.batch.work import Work, job_id
from mmcli.settings import GenerationOptions, MediaOptions

MODEL = "Qwen/Qwen2-VL-2B-Instruct"


@pytest.fixture
def target(clean_environ):
    from mmcli.core.endpoint import connect, without_media_uuids
    from mmcli.events import Events
    from mmcli.settings import EndpointFlags, resolve_settings

    settings = resolve_settings(EndpointFlags(model=MODEL, base_url="http://127.0.0.1:9/v1"))
    return without_media_uuids(connect(settings, Events(), dry_run=True))


def photo(path, size=(1000, 700)):
    Image.new("RGB", size, (200, 40, 40)).save(path)
    return path


def detect_work(path, **generation) -> Work:
    from mmcli.tasks.detect.jobs import DetectOptions

    return Work("detect", (str(path),), "the box", MediaOptions(), GenerationOptions(**generation),
                task=DetectOptions(target="the box"))


def engine_output(row: dict, text: str, prompt_tokens: int = 120, error: str = "") -> dict:
    """`row` as Ray's vLLM stage hands it on: the input columns kept, plus vLLMOutputData's fields and the
    stage's own (ray/llm/_internal/batch/stages/vllm_engine_stage.py, 2.60: vLLMOutputData.model_dump() and
    _generate_with_error_handling's request_id, batch_uuid, time_taken_llm, params, __inference_error__)."""
    tokens = list(range(len(text.split()))) if not error else []
    return {**row, "prompt": "<|im_start|>...", "prompt_token_ids": list(range(prompt_tokens)) if not error else None,
            "num_input_tokens": prompt_tokens if not error else 0, "generated_tokens": tokens,
            "generated_text": text, "num_generated_tokens": len(tokens), "embeddings": None, "metrics": None,
            "logprobs": None, "prompt_logprobs": None, "request_id": -1 if error else 0, "batch_uuid": "ab" * 16,
            "time_taken_llm": -1 if error else 0.5, "params": "" if error else "SamplingParams(...)",
            "__inference_error__": error}


def test_the_engine_gets_the_prepared_image_and_the_request_as_messages(target, tmp_path):
    from mmcli.batch.export import prepared_jobs
    from mmcli.core.runner import Runner
    from mmcli.events import Events
    from mmcli.tasks.common import Context

    work = detect_work(photo(tmp_path / "a.png"), max_tokens=64, temperature=0.0)
    row = EngineRows(target, {}, False)({"work": pickle.dumps(work)})
    [job], _ = prepared_jobs(work, Context(target, work.media, work.generation, Events()))
    request = Runner(target).plan(job, stream=False).request  # what the HTTP mode sends
    [message] = [m for m in request["messages"] if m["role"] == "user"]
    [sent] = [part["image_url"]["url"] for part in message["content"] if part["type"] == "image_url"]
    sent_image = Image.open(io.BytesIO(base64.b64decode(sent.partition(",")[2]))).convert("RGB")
    [image] = row["multimodal_data"]["image"]
    assert image.size == sent_image.size != (1000, 700)  # the model's grid, as a local run sends it
    assert image.tobytes() == sent_image.tobytes()
    text = [part["text"] for part in message["content"] if part["type"] == "text"]
    assert row["messages"][-1] == {"role": "user", "content": [{"type": "image"}, *({"type": "text", "text": t}
                                                                                  for t in text)]}
    assert row["sampling_params"]["max_tokens"] == 64 and row["sampling_params"]["temperature"] == 0.0
    state = json.loads(row[STATE])
    assert state["head"]["id"] == job_id(work, "qwen2-vl", MODEL) and state["done"] is None


def test_an_engine_output_row_is_finished_into_the_line_with_boxes_on_the_original(target, tmp_path):
    work = detect_work(photo(tmp_path / "a.png"), max_tokens=64)
    row = EngineRows(target, {}, False)({"work": pickle.dumps(work)})
    answer = "<|object_ref_start|>the box<|object_ref_end|><|box_start|>(100,200),(500,600)<|box_end|>"
    out = finished_row(engine_output(row, answer, prompt_tokens=1000))
    assert out["status"] == "done" and out["id"] == json.loads(row[STATE])["head"]["id"]
    line = json.loads(out["line"])
    assert line["command"] == "detect" and line["sources"] == [str(tmp_path / "a.png")]
    [found] = line["inputs"][0]["detections"]
    assert found["bbox"] == [100, 140, 500, 420]  # Qwen2-VL's 0-1000 space on the 1000x700 original
    assert found["model_coords"] == [100, 200, 500, 600]
    assert line["usage"] == {"prompt_tokens": 1000, "completion_tokens": 2, "total_tokens": 1002}
    assert line["verified"] is True and line["inputs"][0]["finish_reason"] == "stop"
    assert line["usage"]["prompt_tokens"] == 1000 and line["model"] == MODEL and "error" not in line


def test_a_failed_engine_row_is_a_failed_line(target, tmp_path):
    work = detect_work(photo(tmp_path / "a.png"))
    row = EngineRows(target, {}, False)({"work": pickle.dumps(work)})
    out = finished_row(engine_output(row, "", error="ValueError: the prompt is longer than max_model_len"))
    line = json.loads(out["line"])
    assert out["status"] == "failed" and line["error"]["exit_code"] == 4
    assert "max_model_len" in line["error"]["message"] and "inputs" not in line


def test_a_bad_photo_is_a_failed_line_and_never_reaches_the_engine(target, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    row = EngineRows(target, {}, False)({"work": pickle.dumps(detect_work(bad))})
    assert row["messages"] == PLACEHOLDER and row["multimodal_data"] is None
    assert row["sampling_params"]["max_tokens"] == 1
    line = json.loads(finished_row(engine_output(row, "x"))["line"])
    assert line["error"]["exit_code"] == 3 and "inputs" not in line


def test_a_job_already_done_is_counted_not_answered(target, tmp_path):
    work = detect_work(photo(tmp_path / "a.png"))
    jid = job_id(work, "qwen2-vl", MODEL)
    for previous, status in (({jid: {"error": None}}, "skipped"), ({jid: {"error": True}}, "failed-before")):
        row = EngineRows(target, previous, False)({"work": pickle.dumps(work)})
        assert row["messages"] == PLACEHOLDER
        assert finished_row(engine_output(row, "x"))["status"] == status
    again = EngineRows(target, {jid: {"error": True}}, True)({"work": pickle.dumps(work)})  # --retry-failed
    assert again["multimodal_data"] is not None


def test_a_video_part_is_a_failed_line_that_says_to_use_http(target, tmp_path):
    from mmcli.batch.ray_vllm_rows import engine_messages
    from mmcli.errors import UsageError

    with pytest.raises(UsageError, match="images and text, and this job has a video_url part"):
        engine_messages([{"role": "user", "content": [{"type": "video_url", "video_url": {"url": "data:x"}}]}])


def test_a_system_prompt_stays_a_string_and_text_stays_in_order():
    from mmcli.batch.ray_vllm_rows import engine_messages

    image = Image.new("RGB", (28, 28), (1, 2, 3))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    messages, images = engine_messages([
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": [{"type": "text", "text": "first"}, {"type": "image_url", "image_url": {"url": url},
                                      "uuid": "abc"}, {"type": "text", "text": "then"}]}])
    assert messages == [{"role": "system", "content": "Answer briefly."},
                        {"role": "user", "content": [{"type": "text", "text": "first"}, {"type": "image"},
                                                     {"type": "text", "text": "then"}]}]
    assert [i.tobytes() for i in images] == [image.tobytes()]
