"""Every answer checked against the plan (and exactly with --verify), requests that cannot fit refused
before sending, and the probe cache: against a scripted endpoint on 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmcli.core import probe as probes
from mmcli.errors import UsageError
from mmcli.media.item import MediaItem
from mmcli.core.plan import Plan
from mmcli.core.verify import check_fits, text_only
from tests.conftest import SECRET_KEY, assert_clean_error
from tests.support import media
from tests.support.scripted_server import Reply, ScriptedServer

KEY_ENV = {"MMCLI_API_KEY": SECRET_KEY}
TEXT_TOKENS = 31  # what the scripted /tokenize says the text-only prompt costs


@pytest.fixture
def photo(tmp_path):
    return media.make_small_png(tmp_path)


def planned_tokens(mmcli, server, photo) -> int:
    run = mmcli("ask", photo, "what is here?", "--base-url", server.base_url, "--dry-run", "--json",
                "--family", "qwen2.5-vl", env=KEY_ENV)
    assert run.code == 0, run.stderr
    return json.loads(run.stdout)["totals"]["visual_tokens"]


def ask(mmcli, server, photo, *extra):
    return mmcli("ask", photo, "what is here?", "--base-url", server.base_url, "--json", *extra, env=KEY_ENV)


def usage(prompt: int) -> dict:
    return {"prompt_tokens": prompt, "completion_tokens": 2, "total_tokens": prompt + 2}


def test_prompt_smaller_than_planned_warns_and_is_not_verified(mmcli, server, photo):
    planned = planned_tokens(mmcli, server, photo)
    server.script(Reply("a cat", usage=usage(planned // 2)))
    run = ask(mmcli, server, photo)
    assert run.code == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["verified"] is False and result["planned_visual_tokens"] == planned
    assert result["prompt_tokens"] == planned // 2
    assert "mmcli: warning: the server counted" in run.stderr and "--max-pixels" in run.stderr


def test_verify_compares_the_visual_tokens_exactly(mmcli, server, photo):
    planned = planned_tokens(mmcli, server, photo)
    server.tokenize_count = TEXT_TOKENS
    server.script(Reply("a cat", usage=usage(TEXT_TOKENS + 2 + planned)))
    run = ask(mmcli, server, photo, "--verify")
    result = json.loads(run.stdout)
    assert result["verified"] is True and result["server_visual_tokens"] == planned, run.stderr
    assert "warning" not in run.stderr
    [counted] = [r for r in server.requests if r.path == "/tokenize"]
    # the same conversation, media left out: only the question's text is counted
    assert counted.json["messages"][-1]["content"] == [{"type": "text", "text": "what is here?"}]
    assert counted.json["model"] == server.chat_requests()[0].json["model"]


def test_verify_catches_a_count_the_prompt_size_check_would_pass(mmcli, server, photo):
    planned = planned_tokens(mmcli, server, photo)
    server.tokenize_count = TEXT_TOKENS
    # larger than the visual tokens alone (the plain check passes), yet 40 tokens short of the plan
    server.script(Reply("a cat", usage=usage(TEXT_TOKENS + 2 + planned - 40)))
    run = ask(mmcli, server, photo, "--verify")
    result = json.loads(run.stdout)
    assert result["verified"] is False and result["server_visual_tokens"] == planned - 40
    assert f"counted {planned - 40:,} visual tokens, fewer than the {planned:,} planned (--verify)" in run.stderr


def test_verify_without_tokenize_says_so_and_keeps_the_plain_check(mmcli, server, photo):
    planned = planned_tokens(mmcli, server, photo)
    server.script(Reply("a cat", usage=usage(planned + 40)))
    run = ask(mmcli, server, photo, "--verify")
    assert run.code == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["verified"] is True and "server_visual_tokens" not in result
    assert "--verify" in run.stderr and "/tokenize" in run.stderr


def test_request_that_cannot_fit_is_refused_before_sending(mmcli, photo):
    with ScriptedServer() as server:
        server.max_model_len = 4096
        run = mmcli("ask", photo, "what is here?", "--base-url", server.base_url, "--max-tokens", "4000",
                    env=KEY_ENV)
        assert_clean_error(run, 2, "does not fit", "max_model_len 4,096", "4,000 --max-tokens")
        assert "--max-tokens-per-image" in run.stderr
        assert server.chat_requests() == []  # nothing uploaded


def test_a_dry_run_says_the_live_run_would_not_fit(mmcli, photo):
    with ScriptedServer() as server:
        server.max_model_len = 4096
        assert mmcli("ask", photo, "what?", "--base-url", server.base_url, env=KEY_ENV).code == 0  # learns the limit
        run = mmcli("ask", photo, "what is here?", "--base-url", server.base_url, "--max-tokens", "4000",
                    "--dry-run", "--json", env=KEY_ENV)
        assert_clean_error(run, 2, "does not fit", "max_model_len 4,096")
        assert json.loads(run.stdout)["totals"]["visual_tokens"]  # the plan is still shown
        assert len(server.chat_requests()) == 1  # the dry run sent nothing


def test_the_budget_named_in_the_refusal_fits(mmcli, photo, tmp_path):
    big = media.make_real_photo(tmp_path, size=(4032, 2268))
    with ScriptedServer() as server:
        server.max_model_len = 4096
        run = mmcli("ask", big, big, big, "what changed?", "--base-url", server.base_url, "--max-tokens", "500",
                    env=KEY_ENV)
        assert run.code == 2 and server.chat_requests() == []
        per_image = int(run.stderr.split("--max-tokens-per-image ")[1].split()[0])
        retry = mmcli("ask", big, big, big, "what changed?", "--base-url", server.base_url, "--max-tokens", "500",
                      "--max-tokens-per-image", str(per_image), "--json", env=KEY_ENV)
        assert retry.code == 0, retry.stderr
        assert json.loads(retry.stdout)["planned_visual_tokens"] <= 3 * per_image


def test_probe_is_cached_per_endpoint_without_the_key(mmcli, server, photo, clean_env):
    for _ in range(2):
        assert ask(mmcli, server, photo).code == 0
    assert len([r for r in server.requests if r.path == "/v1/models"]) == 1  # the second run used the cache
    [cache] = list((Path(clean_env["XDG_STATE_HOME"]) / "mmcli").glob("probe-*.json"))
    text = cache.read_text()
    assert SECRET_KEY not in text and json.loads(text)["models"][0]["max_model_len"] == 32768


def test_probe_cache_expires_and_ignores_damage(tmp_path):
    environ = {"XDG_STATE_HOME": str(tmp_path)}
    url = "http://user:pw@127.0.0.1:9/v1"
    probes.save(probes.Probe(probes.masked_url(url), [{"id": "m", "root": None, "max_model_len": 8}]), environ)
    kept = probes.cached(url, environ)
    assert kept is not None and kept.entry(None)["max_model_len"] == 8
    assert "pw" not in probes.cache_path(url, environ).read_text()
    assert probes.cached(url, environ, now=kept.fetched_at + probes.PROBE_TTL + 1) is None
    probes.cache_path(url, environ).write_text("{not json")
    assert probes.cached(url, environ) is None


def _plan(tokens: int, count: int = 1) -> Plan:
    items = [MediaItem(source=f"p{i}.png", kind="image", mime="image/png", sent_width=28, sent_height=28,
                       visual_tokens=tokens) for i in range(count)]
    request = {"model": "m", "messages": [{"role": "user", "content": [
        *({"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}} for _ in items),
        {"type": "text", "text": "x" * 400}]}]}
    return Plan("m", "qwen2.5-vl", "http://127.0.0.1:8000/v1", items, request)


def test_check_fits_counts_visual_text_and_answer():
    check_fits(_plan(3000), 4096, 900)  # 3000 + 102 + 900 = 4002: fits
    with pytest.raises(UsageError) as refused:
        check_fits(_plan(3000), 4096, 1000)
    assert "4,102" in refused.value.why and "--max-tokens-per-image 2994" in refused.value.hint
    with pytest.raises(UsageError) as two:
        check_fits(_plan(2000, count=2), 4096, None)  # 16 kept for the answer
    assert "--max-tokens-per-image 1988 (--max-pixels 1558592)" in two.value.hint
    check_fits(_plan(10**6), None, None)  # unknown context: nothing to check


def test_text_only_keeps_text_and_system():
    request = _plan(10).request
    request["messages"].insert(0, {"role": "system", "content": "be brief"})
    stripped = text_only(request)
    assert stripped["messages"][0] == {"role": "system", "content": "be brief"}
    assert stripped["messages"][1]["content"] == [{"type": "text", "text": "x" * 400}]
    assert request["messages"][1]["content"][0]["type"] == "image_url"  # the original is untouched



def test_the_warning_names_the_cause_the_request_could_have():
    from mmcli.media.item import MediaItem
    from mmcli.tasks.common import likely_cause

    audio = MediaItem("talk.wav", "audio", "audio/wav")
    frames = MediaItem("clip.mp4", "video", "video/jpeg", transport="frames")
    as_images = MediaItem("clip.mp4", "video", "image/jpeg", transport="images")
    picture = MediaItem("photo.jpg", "image", "image/jpeg")
    assert "audio" in likely_cause([audio]) and "images" not in likely_cause([audio])
    assert "frame list" not in likely_cause([as_images]) and "max_pixels" in likely_cause([as_images])
    assert "frame list" in likely_cause([frames]) and "max_pixels" not in likely_cause([frames])
    assert "frame list" in likely_cause([frames, picture]) and "max_pixels" in likely_cause([frames, picture])


class SlowTokenize(ScriptedServer):
    """A scripted endpoint whose POST /tokenize waits (until `release`) before it answers."""

    def __init__(self) -> None:
        import threading

        self.tokenize_asked, self.release = threading.Event(), threading.Event()
        super().__init__()

    def _serve(self, handler, name: str = "slow-tokenize") -> None:
        owner = self

        class Handler(handler):
            def do_POST(self) -> None:
                if self.path.split("?")[0] != "/tokenize":
                    return super().do_POST()
                self._read_body()
                owner.tokenize_asked.set()
                owner.release.wait(30)
                self._send_json(200, {"count": TEXT_TOKENS, "tokens": []})

        super()._serve(Handler, name)


def test_ctrl_c_while_verify_counts_keeps_the_answer_that_came(photo, clean_env, tmp_path):
    import signal
    import sqlite3
    import subprocess
    import sys

    from tests.conftest import ROOT

    with SlowTokenize() as server:
        server.script(Reply("a cat", usage=usage(500)))
        proc = subprocess.Popen([sys.executable, "-m", "mmcli", "ask", str(photo), "what is here?", "--json",
                                 "--verify", "--base-url", server.base_url], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=dict(clean_env, **KEY_ENV),
                                cwd=ROOT, text=True)
        try:
            assert server.tokenize_asked.wait(30), "the count was never asked"
            proc.send_signal(signal.SIGINT)  # the answer is here; only --verify's count is awaited
            out, err = proc.communicate(timeout=30)
        finally:
            server.release.set()
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert json.loads(out)["answer"] == "a cat"
    rows = sqlite3.connect(tmp_path / "state" / "mmcli" / "history.db").execute("SELECT answer FROM turns").fetchall()
    assert rows == [("a cat",)]
