"""The tier itself: the real vLLM server answers text, image and video requests as expected.

These talk to the server with the openai SDK directly, independent of mmcli.
The weights are random, so answers are noise: only shapes, counts and errors are checked.
"""

from __future__ import annotations

import json
import urllib.request

import pytest
import tier_media

openai = pytest.importorskip("openai")

PROMPT = "What is in this picture?"


@pytest.fixture(scope="module")
def client(vllm_server):
    """An openai client for the tier server, without retries."""
    return openai.OpenAI(base_url=vllm_server.base_url, api_key="unused", max_retries=0,
                         timeout=180)


def chat(client, model, parts=None, text=PROMPT, max_tokens=2):
    """One greedy chat completion with the given content parts before the text."""
    content = [*(parts or []), {"type": "text", "text": text}]
    return client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": content}],
        max_tokens=max_tokens, temperature=0)


def image_part(image, fmt="PNG"):
    """An image_url content part carrying the image as a data URL."""
    return {"type": "image_url", "image_url": {"url": tier_media.data_url(image, fmt)}}


def test_models_lists_the_served_name(vllm_server):
    with urllib.request.urlopen(f"{vllm_server.base_url}/models", timeout=30) as response:
        models = json.load(response)
    assert [m["id"] for m in models["data"]] == [vllm_server.model]


def test_text_request(client, vllm_server):
    reply = chat(client, vllm_server.model, max_tokens=4)
    assert reply.model == vllm_server.model
    assert reply.usage.prompt_tokens > 0
    assert 1 <= reply.usage.completion_tokens <= 4
    assert reply.choices[0].finish_reason in ("length", "stop")


def test_streaming_text_request(client, vllm_server):
    stream = client.chat.completions.create(
        model=vllm_server.model, messages=[{"role": "user", "content": PROMPT}],
        max_tokens=4, temperature=0, stream=True)
    finish = [c.choices[0].finish_reason for c in stream if c.choices and c.choices[0].finish_reason]
    assert finish and finish[-1] in ("length", "stop")


@pytest.mark.parametrize(("width", "height", "fmt"), [(640, 480, "PNG"), (300, 1200, "JPEG")])
def test_image_costs_its_grid_plus_two_markers(client, vllm_server, width, height, fmt):
    text_only = chat(client, vllm_server.model).usage.prompt_tokens
    image = tier_media.photo(width, height, "coffee")
    with_image = chat(client, vllm_server.model, [image_part(image, fmt)]).usage.prompt_tokens
    assert with_image - text_only == tier_media.image_tokens(width, height) + 2


def test_video_as_jpeg_frame_list(client, vllm_server):
    frames = [tier_media.photo(448, 336, name) for name in ("astronaut", "chelsea", "coffee", "chelsea")]
    video = {"type": "video_url", "video_url": {"url": tier_media.video_frames_url(frames)}}
    text_only = chat(client, vllm_server.model).usage.prompt_tokens
    reply = chat(client, vllm_server.model, [video])
    # 4 frames -> 2 temporal patches of (336/28) x (448/28) = 12 x 16 tokens each
    assert reply.usage.prompt_tokens - text_only == 2 * 12 * 16 + 2


def test_four_images_are_accepted(client, vllm_server):
    parts = [image_part(tier_media.photo(112, 112, "chelsea")) for _ in range(4)]
    reply = chat(client, vllm_server.model, parts)
    assert reply.usage.prompt_tokens > 4 * (16 + 2)


def test_five_images_exceed_the_limit(client, vllm_server):
    parts = [image_part(tier_media.photo(112, 112, "chelsea")) for _ in range(5)]
    with pytest.raises(openai.BadRequestError) as excinfo:
        chat(client, vllm_server.model, parts)
    assert excinfo.value.status_code == 400
    assert "At most 4 image(s) may be provided in one prompt." in str(excinfo.value)


def test_unknown_model_is_404(client):
    with pytest.raises(openai.NotFoundError) as excinfo:
        chat(client, "no-such-model")
    assert excinfo.value.status_code == 404
