"""One key rule, applied to every server of a run: a key goes to the servers it is meant for, each of them."""

from __future__ import annotations

from pathlib import Path

from mmcli.batch.servers import targets_for
from mmcli.settings import EndpointFlags, resolve_settings
from mmcli.core.endpoint import Target
from mmcli.families import FAMILIES
from tests.support.scripted_server import Reply, ScriptedServer
from tests.test_batch_each import make_images

OPENAI_KEY = "sk-openai-0123456789abcdef"
FARM_KEY = "farm-key-0123456789"


def write_config(clean_env, text: str) -> Path:
    path = Path(clean_env["XDG_CONFIG_HOME"]) / "mmcli" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def keys_sent(server: ScriptedServer) -> set[str]:
    return {r.headers.get("authorization", "") for r in server.chat_requests()}


def server_keys(tmp_path, config: str, flags: EndpointFlags, **env) -> dict[str, object]:
    """{server URL: the key its jobs would carry} for a run over the profile's servers."""
    path = tmp_path / "config.toml"
    path.write_text(config)
    environ = {"MMCLI_CONFIG": str(path), "XDG_STATE_HOME": str(tmp_path / "state"), **env}
    settings = resolve_settings(flags, environ)
    first = Target(settings, "m", FAMILIES["qwen2.5-vl"], "flag")
    return {t.base_url: t.settings.endpoint.api_key for t in targets_for(first, flags, environ)}


def test_a_profile_key_goes_to_each_of_its_servers_even_a_second_loopback_one(mmcli, clean_env, tmp_path):
    make_images(tmp_path / "album", 6)
    with ScriptedServer(api_key=FARM_KEY, default=Reply("a", chunk_delay=0.05)) as one, \
            ScriptedServer(api_key=FARM_KEY, default=Reply("b", chunk_delay=0.05)) as two:
        write_config(clean_env, f'[profiles.farm]\nbase_urls = ["{one.base_url}", "{two.base_url}"]\n'
                                'api_key_env = "FARM_KEY"\n')
        run = mmcli("ask", "--each", tmp_path / "album", "caption", "--profile", "farm", "-j", "2",
                    env={"FARM_KEY": FARM_KEY})
        assert run.code == 0, run.stderr
        assert one.chat_requests() and two.chat_requests()
        assert keys_sent(one) == keys_sent(two) == {f"Bearer {FARM_KEY}"}


def test_the_openai_key_does_not_follow_the_first_server_to_the_others(tmp_path):
    config = ('[profiles.farm]\nbase_urls = ["https://proxy.example/v1", "https://farm2.example/v1", '
              '"http://127.0.0.1:9/v1"]\n')
    keys = server_keys(tmp_path, config, EndpointFlags(profile="farm"),
                       OPENAI_API_KEY=OPENAI_KEY, OPENAI_BASE_URL="https://proxy.example/v1")
    assert keys == {"https://proxy.example/v1": OPENAI_KEY, "https://farm2.example/v1": None,
                    "http://127.0.0.1:9/v1": "EMPTY"}


def test_a_builtin_key_goes_only_to_its_own_host_among_a_profiles_servers(tmp_path):
    # The config lists servers for the built-in parasail profile but does not name its key for them.
    config = '[profiles.parasail]\nbase_urls = ["https://api.parasail.io/v1", "https://other.example/v1"]\n'
    keys = server_keys(tmp_path, config, EndpointFlags(profile="parasail"), PARASAIL_API_KEY="ps-key")
    assert keys == {"https://api.parasail.io/v1": "ps-key", "https://other.example/v1": None}


def test_a_profile_key_goes_to_every_server_it_lists_but_not_to_urls_given_on_the_command_line(tmp_path):
    config = ('[profiles.farm]\nbase_urls = ["https://a.example/v1", "https://b.example/v1"]\n'
              'api_key_env = "FARM_KEY"\n')
    keys = server_keys(tmp_path, config, EndpointFlags(profile="farm"), FARM_KEY=FARM_KEY)
    assert keys == {"https://a.example/v1": FARM_KEY, "https://b.example/v1": FARM_KEY}
    given = EndpointFlags(profile="farm", base_url="https://a.example/v1",
                          base_urls=("https://a.example/v1", "https://c.example/v1"))
    keys = server_keys(tmp_path, config, given, FARM_KEY=FARM_KEY)
    assert keys == {"https://a.example/v1": FARM_KEY, "https://c.example/v1": None}


def test_a_key_named_for_no_host_goes_to_every_server(tmp_path):
    config = '[profiles.farm]\nbase_urls = ["https://a.example/v1", "http://127.0.0.1:9/v1"]\n'
    keys = server_keys(tmp_path, config, EndpointFlags(profile="farm", api_key_env="MY_KEY"), MY_KEY="mine")
    assert keys == {"https://a.example/v1": "mine", "http://127.0.0.1:9/v1": "mine"}


def test_the_openai_key_goes_only_to_its_own_server_when_requests_are_sent(mmcli, clean_env, tmp_path):
    # Through the sender itself: OPENAI_BASE_URL names the first server; the second gets the placeholder.
    make_images(tmp_path / "album", 6)
    with ScriptedServer(default=Reply("a", chunk_delay=0.05)) as one, \
            ScriptedServer(default=Reply("b", chunk_delay=0.05)) as two:
        write_config(clean_env, f'[profiles.farm]\nbase_urls = ["{one.base_url}", "{two.base_url}"]\n')
        run = mmcli("ask", "--each", tmp_path / "album", "caption", "--profile", "farm", "-j", "2",
                    env={"OPENAI_API_KEY": OPENAI_KEY, "OPENAI_BASE_URL": one.base_url})
        assert run.code == 0, run.stderr
        assert one.chat_requests() and two.chat_requests()
        assert keys_sent(one) == {f"Bearer {OPENAI_KEY}"} and keys_sent(two) == {"Bearer EMPTY"}
        assert OPENAI_KEY not in run.output


def test_a_redirect_to_another_server_does_not_carry_the_key(mmcli, clean_env, tmp_path):
    from tests.support.scripted_server import Status

    image = make_images(tmp_path / "album", 1)[0]
    with ScriptedServer(default=Reply("elsewhere")) as other, ScriptedServer(api_key=FARM_KEY) as home:
        home.script(Status(307, body={}, headers={"Location": other.base_url + "/chat/completions"}))
        run = mmcli("ask", image, "caption", "--base-url", home.base_url,
                    "--api-key-env", "FARM_KEY", "--model", "m", "--family", "qwen2-vl", env={"FARM_KEY": FARM_KEY})
        assert run.code == 0, run.stderr
        assert "elsewhere" in run.stdout
        assert keys_sent(home) == {f"Bearer {FARM_KEY}"}
        assert [r.headers.get("authorization") for r in other.chat_requests()] == [None]


def test_provider_batches_take_the_key_the_rule_gives_their_server(mmcli, clean_env, tmp_path):
    # mmcli batch submit/status go through the SDK: the same rule, for the one server they talk to.
    from tests.support.batch_api import BatchAPI
    from tests.test_provider_batches import export

    with ScriptedServer(default=Reply("x")) as chat, BatchAPI(chat.root_url) as api:
        path = export(mmcli, tmp_path, 1, "--base-url", chat.base_url)
        write_config(clean_env, f'[profiles.farm]\nbase_urls = ["{api.base_url}", "https://b.example/v1"]\n'
                                'api_key_env = "FARM_KEY"\n')
        run = mmcli("batch", "submit", path, "--profile", "farm",
                    env={"FARM_KEY": FARM_KEY, "OPENAI_API_KEY": OPENAI_KEY, "OPENAI_BASE_URL": "https://b.example/v1"})
        assert run.code == 0, run.stderr
        assert api.requests and {h.get("authorization") for _, _, h in api.requests} == {f"Bearer {FARM_KEY}"}
        submitted = len(api.requests)
        status = mmcli("batch", "status", path, "--base-url", api.base_url,
                       env={"OPENAI_API_KEY": OPENAI_KEY, "OPENAI_BASE_URL": "https://b.example/v1"})
        assert status.code == 0, status.stderr
        # --base-url on loopback: OPENAI_API_KEY is for b.example only, so the placeholder goes.
        assert {h.get("authorization") for _, _, h in api.requests[submitted:]} == {"Bearer EMPTY"}
