"""Keys go only where they are meant to, and neither keys nor URL passwords show in output."""

from __future__ import annotations

import json

import pytest

from mmcli.settings import EndpointFlags, resolve_settings
from mmcli.urls import masked_url
from mmcli.errors import UsageError
from tests.conftest import SECRET_KEY, assert_clean_error
from tests.support import media
from tests.support.scripted_server import Events, Raw, Reply, ScriptedServer, Status, chunk, free_port, vllm_error

OPENAI_KEY = "sk-openai-0123456789abcdef"
PARASAIL_KEY = "ps-parasail-0123456789"


@pytest.fixture
def photo(tmp_path):
    return media.make_small_png(tmp_path)


def sent_key(server: ScriptedServer) -> str:
    """The Authorization header of the one chat request the server received."""
    (request,) = server.chat_requests()
    return request.headers.get("authorization", "")


def write_config(clean_env, text: str) -> None:
    from pathlib import Path

    path = Path(clean_env["XDG_CONFIG_HOME"]) / "mmcli" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


# ---------------------------------------------------------------- who receives which key


@pytest.mark.parametrize("args, env", [
    (["--profile", "openai", "--base-url", "{url}"], {"OPENAI_API_KEY": OPENAI_KEY}),
    ([], {"OPENAI_API_KEY": OPENAI_KEY, "MMCLI_PROFILE": "openai", "MMCLI_BASE_URL": "{url}"}),
    (["--profile", "parasail", "--base-url", "{url}"], {"PARASAIL_API_KEY": PARASAIL_KEY}),
    (["--base-url", "{url}"], {"OPENAI_API_KEY": OPENAI_KEY}),
    # OPENAI_BASE_URL names another host; --base-url sends elsewhere.
    (["--base-url", "{url}"], {"OPENAI_API_KEY": OPENAI_KEY, "OPENAI_BASE_URL": "https://proxy.example/v1"}),
], ids=["profile-flag", "profile-env", "parasail", "openai-key-alone", "openai-base-url-elsewhere"])
def test_a_builtin_profile_key_never_goes_to_a_url_the_user_gave(mmcli, server, photo, args, env):
    server.script(Reply("ok"))
    args = [a.replace("{url}", server.base_url) for a in args]
    env = {k: v.replace("{url}", server.base_url) for k, v in env.items()}
    run = mmcli("ask", photo, "q", *args, "-m", "m", env=env)
    assert run.code == 0, run.stderr
    assert sent_key(server) == "Bearer EMPTY"  # a loopback server without a key of its own
    assert OPENAI_KEY not in run.output and PARASAIL_KEY not in run.output


def test_api_key_env_names_a_key_for_the_url(mmcli, server, photo):
    server.script(Reply("ok"))
    run = mmcli("ask", photo, "q", "--profile", "openai", "--base-url", server.base_url, "--api-key-env",
                "OPENAI_API_KEY", "-m", "m", env={"OPENAI_API_KEY": OPENAI_KEY})
    assert run.code == 0, run.stderr
    assert sent_key(server) == f"Bearer {OPENAI_KEY}"


def test_openai_base_url_receives_openai_key(mmcli, server, photo):
    server.script(Reply("ok"))
    run = mmcli("ask", photo, "q", "-m", "m", env={"OPENAI_API_KEY": OPENAI_KEY, "OPENAI_BASE_URL": server.base_url})
    assert run.code == 0, run.stderr
    assert sent_key(server) == f"Bearer {OPENAI_KEY}"


def test_mmcli_api_key_goes_to_the_endpoint_in_use(mmcli, server, photo):
    # The user's own generic key variable: sent wherever the user sends requests.
    server.script(Reply("ok"))
    run = mmcli("ask", photo, "q", "--profile", "openai", "--base-url", server.base_url, "-m", "m",
                env={"MMCLI_API_KEY": SECRET_KEY, "OPENAI_API_KEY": OPENAI_KEY})
    assert run.code == 0, run.stderr
    assert sent_key(server) == f"Bearer {SECRET_KEY}"


def test_config_profile_naming_url_and_key_sends_it(mmcli, clean_env, server, photo):
    write_config(clean_env, f'[profiles.box]\nbase_url = "{server.base_url}"\napi_key_env = "BOX_KEY"\n')
    server.script(Reply("ok"))
    run = mmcli("ask", photo, "q", "--profile", "box", "-m", "m", env={"BOX_KEY": SECRET_KEY})
    assert run.code == 0, run.stderr
    assert sent_key(server) == f"Bearer {SECRET_KEY}"


def test_config_moving_a_builtin_profile_does_not_move_its_key(mmcli, clean_env, server, photo):
    write_config(clean_env, f'[profiles.openai]\nbase_url = "{server.base_url}"\n')
    server.script(Reply("ok"))
    run = mmcli("ask", photo, "q", "--profile", "openai", env={"OPENAI_API_KEY": OPENAI_KEY})
    assert run.code == 0, run.stderr
    assert sent_key(server) == "Bearer EMPTY"


def test_config_profile_key_not_sent_to_another_base_url(mmcli, clean_env, server, photo):
    write_config(clean_env, 'profile = "box"\n[profiles.box]\nbase_url = "https://box.example/v1"\n'
                            'api_key_env = "BOX_KEY"\n')
    server.script(Reply("ok"))
    run = mmcli("ask", photo, "q", "--base-url", server.base_url, "-m", "m", env={"BOX_KEY": SECRET_KEY})
    assert run.code == 0, run.stderr
    assert sent_key(server) == "Bearer EMPTY"


def test_withheld_key_on_a_remote_url_is_a_usage_error(mmcli, photo):
    run = mmcli("ask", photo, "q", "--profile", "openai", "--base-url", "https://other.invalid/v1",
                env={"OPENAI_API_KEY": OPENAI_KEY})
    assert_clean_error(run, 2, "no API key", "OPENAI_API_KEY is only sent to its own host")
    assert "--api-key-env OPENAI_API_KEY" in run.stderr
    assert OPENAI_KEY not in run.output


def settings(tmp_path, flags=EndpointFlags(), config="", **env):
    path = tmp_path / "config.toml"
    path.write_text(config)
    return resolve_settings(flags, {"MMCLI_CONFIG": str(path), **env})


@pytest.mark.parametrize("url, expected", [
    ("https://api.openai.com/v1", OPENAI_KEY),
    ("https://api.openai.com:443/v1/", OPENAI_KEY),
    ("https://API.OPENAI.COM/v1", OPENAI_KEY),
    ("http://api.openai.com/v1", None),  # not over plain HTTP
    ("https://api.openai.com:8443/v1", None),
    ("https://api.openai.com.evil.example/v1", None),
    ("https://evil.example/api.openai.com/v1", None),
])
def test_openai_key_host_match(tmp_path, url, expected):
    s = settings(tmp_path, EndpointFlags(profile="openai", base_url=url), OPENAI_API_KEY=OPENAI_KEY)
    assert s.endpoint.api_key == expected


def test_withheld_key_message(tmp_path):
    s = settings(tmp_path, EndpointFlags(profile="parasail", base_url="https://x.example/v1"),
                 PARASAIL_API_KEY=PARASAIL_KEY)
    assert s.endpoint.api_key is None and s.endpoint.withheld_key == "PARASAIL_API_KEY"
    with pytest.raises(UsageError) as info:
        s.endpoint.require_key()
    assert "--api-key-env PARASAIL_API_KEY" in info.value.hint


# ---------------------------------------------------------------- passwords in URLs


@pytest.mark.parametrize("url, expected", [
    ("http://user:secret@host/v1", "http://user:***@host/v1"),
    ("https://user:p%40ss@host:8443/v1?x=1", "https://user:***@host:8443/v1?x=1"),
    ("http://:secret@host/v1", "http://:***@host/v1"),
    ("http://user@host/v1", "http://user@host/v1"),
    ("http://host:8000/v1", "http://host:8000/v1"),
    ("http://user:@host/v1", "http://user:***@host/v1"),
    ("http://u:pw@[::1/v1", "http://u:***@[::1/v1"),  # malformed: still masked
    ("http://a:b@c:d@host/v1?next=x@y", "http://a:***@host/v1?next=x@y"),
    ("not a url", "not a url"),
])
def test_masked_url(url, expected):
    assert masked_url(url) == expected


def test_url_password_not_in_dry_run_json(mmcli, photo):
    run = mmcli("ask", photo, "q", "--base-url", "http://bob:hunter2pw@127.0.0.1:9/v1", "-m", "m",
                "--dry-run", "--json")
    assert run.code == 0, run.stderr
    assert json.loads(run.stdout)["base_url"] == "http://bob:***@127.0.0.1:9/v1"
    assert "hunter2pw" not in run.output


@pytest.mark.parametrize("action", [
    Status(500, vllm_error(500, "boom")),
    Status(200, "<html><title>oops</title></html>", content_type="text/html"),
    Raw('{"cut'),
])
def test_url_password_not_in_error_lines(mmcli, photo, action):
    with ScriptedServer(default=action) as server:
        url = server.base_url.replace("http://", "http://bob:hunter2pw@")
        run = mmcli("ask", photo, "q", "--base-url", url, "-m", "m", "--no-stream")
    assert_clean_error(run, 5, "bob:***@127.0.0.1")
    assert "hunter2pw" not in run.output


@pytest.mark.parametrize("url", ["http://bob:hunter2pw@[::1/v1", "http://bob:hunter2pw@host:99999/v1",
                                 "http://bob:hunter2pw@host:port/v1", "ftp://bob:hunter2pw@host/v1"])
def test_invalid_base_url_is_a_usage_error_without_the_password(mmcli, url):
    run = mmcli("ask", "q", "--base-url", url, "-m", "m")
    assert_clean_error(run, 2, "invalid base URL", "bob:***@")
    assert "hunter2pw" not in run.output


def test_unreachable_url_password_masked(mmcli, photo):
    url = f"http://bob:hunter2pw@127.0.0.1:{free_port()}/v1"
    run = mmcli("ask", photo, "q", "--base-url", url, "-m", "m")
    assert_clean_error(run, 5, "cannot reach", "bob:***@")
    assert "hunter2pw" not in run.output


# ---------------------------------------------------------------- the key never in error text


@pytest.mark.parametrize("action, stream", [
    (Status(200, f"<html><title>bad key {SECRET_KEY}</title></html>", content_type="text/html"), False),
    (Status(200, {"error": {"message": f"key {SECRET_KEY} is revoked"}}), False),
    (Raw(f'{{"echo": "{SECRET_KEY}", "cut'), False),
    (Events([chunk("partial "), f"{{not json {SECRET_KEY}"]), True),
    (Events([chunk("partial "), {"error": {"message": f"bad key {SECRET_KEY}"}}]), True),
    (Status(503, vllm_error(503, f"overloaded for {SECRET_KEY}")), False),
])
def test_key_echoed_by_a_bad_server_is_redacted(mmcli, photo, action, stream):
    with ScriptedServer(default=action) as server:
        run = mmcli("ask", photo, "q", "--base-url", server.base_url, "-m", "m",
                    *([] if stream else ["--no-stream"]), "--json", env={"MMCLI_API_KEY": SECRET_KEY})
    assert run.code == 5, run.stderr
    assert SECRET_KEY not in run.output
    assert "***" in run.output
