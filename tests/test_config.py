"""Settings precedence: flags > MMCLI_* > OPENAI_* > config file > defaults."""

from __future__ import annotations

import pytest

from mmcli.settings import EndpointFlags, resolve_settings
from mmcli.urls import is_loopback
from mmcli.errors import UsageError


def settings(tmp_path, flags=EndpointFlags(), config: str = "", **env):
    path = tmp_path / "config.toml"
    path.write_text(config)
    return resolve_settings(flags, {"MMCLI_CONFIG": str(path), **env})


def test_defaults_to_local_vllm_with_placeholder_key(tmp_path):
    s = settings(tmp_path)
    assert s.endpoint.base_url == "http://127.0.0.1:8000/v1"
    assert s.endpoint.api_key == "EMPTY"


def test_flag_beats_openai_env_beats_config(tmp_path):
    config = '[profiles.local]\nbase_url = "http://127.0.0.1:9000/v1"\n'
    assert settings(tmp_path, config=config).endpoint.base_url == "http://127.0.0.1:9000/v1"
    env = {"OPENAI_BASE_URL": "http://127.0.0.1:7000/v1"}
    assert settings(tmp_path, config=config, **env).endpoint.base_url == "http://127.0.0.1:7000/v1"
    flags = EndpointFlags(base_url="http://127.0.0.1:6000/v1/")
    assert settings(tmp_path, flags, config=config, **env).endpoint.base_url == "http://127.0.0.1:6000/v1"


def test_named_profile_from_config(tmp_path):
    config = ('profile = "box"\n[profiles.box]\nbase_url = "https://gpu.example/v1"\n'
              'api_key_env = "BOX_KEY"\nmodel = "Qwen/Qwen2.5-VL-7B-Instruct"\n')
    s = settings(tmp_path, config=config, BOX_KEY="k1", OPENAI_BASE_URL="http://elsewhere/v1")
    assert s.endpoint.base_url == "https://gpu.example/v1"  # a chosen profile beats OPENAI_BASE_URL
    assert s.endpoint.api_key == "k1" and s.model == "Qwen/Qwen2.5-VL-7B-Instruct"


def test_key_precedence_and_openai_key_not_leaked(tmp_path):
    s = settings(tmp_path, EndpointFlags(base_url="https://other.example/v1"), OPENAI_API_KEY="sk-openai")
    assert s.endpoint.api_key is None  # OPENAI_API_KEY is not sent to an unrelated host
    with pytest.raises(UsageError):
        s.endpoint.require_key()
    s = settings(tmp_path, EndpointFlags(profile="openai"), OPENAI_API_KEY="sk-openai")
    assert s.endpoint.api_key == "sk-openai"
    s = settings(tmp_path, EndpointFlags(profile="parasail", api_key_env="MINE"), MINE="m",
                 MMCLI_API_KEY="x", PARASAIL_API_KEY="p")
    assert s.endpoint.api_key == "m"
    s = settings(tmp_path, EndpointFlags(profile="parasail"), MMCLI_API_KEY="sk-generic-key", PARASAIL_API_KEY="p")
    assert s.endpoint.api_key == "sk-generic-key"
    assert "sk-generic-key" not in repr(s.endpoint)


@pytest.mark.parametrize("config, fragment", [
    ("profiles = 3", "must be a table"),
    ("[profiles.box]\nmodel = 'm'\n", "needs a base_url"),
    ("[profiles.local]\nbase_urll = 'x'\n", "unknown key"),
    ("not toml [", "invalid config"),
])
def test_bad_config_is_a_usage_error(tmp_path, config, fragment):
    with pytest.raises(UsageError) as info:
        settings(tmp_path, config=config)
    assert fragment in info.value.message()


def test_unknown_profile_and_bad_url(tmp_path):
    with pytest.raises(UsageError, match="unknown profile"):
        settings(tmp_path, EndpointFlags(profile="nope"))
    with pytest.raises(UsageError, match="invalid base URL"):
        settings(tmp_path, EndpointFlags(base_url="ftp://x"))
    with pytest.raises(UsageError, match="not set"):
        settings(tmp_path, EndpointFlags(api_key_env="MISSING_VAR"))


def test_loopback_detection():
    assert is_loopback("http://localhost:8000/v1") and is_loopback("http://127.0.0.2/v1")
    assert is_loopback("http://[::1]:8000/v1") and not is_loopback("http://10.0.0.1/v1")


def test_family_from_model_names():
    from mmcli.families import family_for_model

    assert family_for_model("Qwen/Qwen2.5-VL-7B-Instruct").name == "qwen2.5-vl"
    assert family_for_model("Qwen/Qwen2-VL-2B-Instruct").name == "qwen2-vl"
    assert family_for_model("Qwen/Qwen3-VL-30B-A3B-Instruct").name == "qwen3-vl"
    assert family_for_model("qwen2-vl-tiny").name == "qwen2-vl"
    assert family_for_model("gpt-4o-mini").name == "generic"
