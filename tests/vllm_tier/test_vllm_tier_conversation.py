"""A three-turn conversation against the real vLLM: every turn's server count equals the plan (the
earlier turns' images included), and with media uuids the resent image is served from vLLM's
processor cache (its mm_cache_hits counter rises)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import tier_media

pytest.importorskip("mmcli")


def run_mmcli(home: Path, *args: str) -> subprocess.CompletedProcess:
    """``python -m mmcli ARGS`` with `home` as HOME, config and state: the history lasts between runs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MMCLI_", "OPENAI_", "XDG_"))}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / "config"), XDG_STATE_HOME=str(home / "state"),
               COLUMNS="200", MMCLI_AUTOSTART="0")
    return subprocess.run([sys.executable, "-m", "mmcli", *args], capture_output=True, timeout=300, env=env,
                          check=False)


def cache_hits(root_url: str) -> float:
    """vLLM's multimodal processor cache hits so far (Prometheus /metrics)."""
    with urllib.request.urlopen(f"{root_url}/metrics", timeout=30) as reply:
        text = reply.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(("vllm:mm_cache_hits_total", "vllm:mm_cache_hits{")))


def test_three_turns_counted_as_planned_and_the_image_cached(vllm_server, tmp_path):
    home = tmp_path / "home"
    config = home / "config" / "mmcli"
    config.mkdir(parents=True)
    # The tier's server is a vLLM at an address of its own: a profile says so, so media carry uuids.
    config.joinpath("config.toml").write_text(
        f'profile = "tier"\n[profiles.tier]\nbase_url = "{vllm_server.base_url}"\nmedia_uuid = true\n')
    photo = tier_media.save_jpeg(tier_media.photo(640, 480), tmp_path / "photo.jpg")
    other = tier_media.save_jpeg(tier_media.photo(448, 336, "coffee"), tmp_path / "other.jpg")
    common = ("--model", vllm_server.model, "--max-tokens", "2", "--temperature", "0", "--json", "--verify")
    turns = [("ask", str(photo), "Describe this."), ("ask", "-c", "And the colours?"),
             ("ask", "-c", str(other), "Compare the two.")]
    results, hits = [], [cache_hits(vllm_server.root_url)]
    for turn in turns:
        proc = run_mmcli(home, *turn, *common)
        assert proc.returncode == 0, proc.stderr.decode(errors="replace")
        results.append(json.loads(proc.stdout))
        hits.append(cache_hits(vllm_server.root_url))
    for n, result in enumerate(results, 1):
        print(f"turn {n}: planned {result['planned_visual_tokens']}, server {result.get('server_visual_tokens')}, "
              f"prompt {result['prompt_tokens']}; mm cache hits {hits[n - 1]} -> {hits[n]}")
        assert result["verified"] is True
        assert result["server_visual_tokens"] == result["planned_visual_tokens"]
    first, second, third = (r["planned_visual_tokens"] for r in results)
    assert second == first and third > first  # the first image is counted on every turn
    assert hits[2] > hits[1]  # turn 2 resent the image with its uuid: served from the processor cache
    requests = [r["plan"]["request"] for r in results]
    assert requests[1]["messages"][0] == requests[0]["messages"][0]
    assert "uuid" in requests[0]["messages"][0]["content"][0]


def post_chat(base_url: str, body: dict) -> tuple[int, dict]:
    """POST /chat/completions as JSON; (status, parsed reply)."""
    import urllib.error

    request = urllib.request.Request(f"{base_url}/chat/completions", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def test_media_sent_by_uuid_alone(vllm_server, tmp_path):
    """What vLLM does with `null` media and a uuid: served from its cache when it knows the uuid; an
    unknown uuid is an HTTP error with a JSON body (so a client could resend the bytes)."""
    import base64
    import hashlib

    data = tier_media.encode(tier_media.photo(336, 252, "chelsea"))
    uuid = hashlib.sha256(data).hexdigest()
    url = "data:image/jpeg;base64," + base64.b64encode(data).decode()

    def body(image_url) -> dict:
        return {"model": vllm_server.model, "max_tokens": 1, "temperature": 0, "messages": [{"role": "user",
                "content": [{"type": "image_url", "image_url": image_url, "uuid": uuid},
                            {"type": "text", "text": "Describe this."}]}]}

    status, full = post_chat(vllm_server.base_url, body({"url": url}))
    assert status == 200, full
    status, by_uuid = post_chat(vllm_server.base_url, body(None))
    print(f"null media, known uuid: HTTP {status}, usage {by_uuid.get('usage')} (with bytes: {full['usage']})")
    assert status == 200 and by_uuid["usage"]["prompt_tokens"] == full["usage"]["prompt_tokens"]
    uuid = "0" * 64
    status, unknown = post_chat(vllm_server.base_url, body(None))
    print(f"null media, unknown uuid: HTTP {status}: {str(unknown)[:300]}")
    assert 400 <= status < 600 and unknown
