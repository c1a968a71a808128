"""`mmcli serve`: the vLLM command builder (pure), model resolution, and the command line around them."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from mmcli.errors import UsageError
from mmcli.families import FAMILIES, SERVE_ALIASES
from mmcli.server.command_line import (NO_REMOTE_MEDIA, RESERVED_FLAGS, Launcher, ServeOptions, build_command,
                                        check_options, child_env, choose_model, client_host, grid_size,
                                        is_loopback_host, mm_limits, shell_text, vllm_option_name)
from tests.conftest import assert_clean_error

SCRIPT = Launcher.script("/opt/bin/vllm")
MODULE = Launcher.module("/venv/bin/python")


def command(model: str = "qwen2.5-vl", launcher: Launcher = SCRIPT, **options):
    opts = ServeOptions(model=model, **options)
    check_options(opts)
    choice = choose_model(model, local_dir=None, model_type=None, name=opts.name, family=opts.family)
    return build_command(opts, choice, launcher)


def flag(argv: list[str], name: str) -> str:
    assert argv.count(name) == 1, (name, argv)
    return argv[argv.index(name) + 1]


# ------------------------------------------------------------------ the argv


def test_defaults_for_an_alias():
    cmd = command()
    argv = cmd.argv
    assert argv[:3] == ["/opt/bin/vllm", "serve", "Qwen/Qwen2.5-VL-7B-Instruct"]
    assert flag(argv, "--served-model-name") == "qwen2.5-vl"
    assert flag(argv, "--host") == "127.0.0.1" and flag(argv, "--port") == "8000"
    assert flag(argv, "--max-model-len") == "32768"
    assert "--no-enable-log-requests" in argv and "--disable-uvicorn-access-log" in argv
    assert flag(argv, "--allowed-media-domains") == NO_REMOTE_MEDIA
    assert "--allowed-local-media-path" not in argv
    assert "--enforce-eager" not in argv and "--gpu-memory-utilization" not in argv
    assert cmd.env["VLLM_MEDIA_URL_ALLOW_REDIRECTS"] == "0"
    assert not cmd.needs_key
    assert cmd.base_url == "http://127.0.0.1:8000/v1"


def test_limits_are_json_with_dummy_sizes_on_the_client_grid():
    limits = json.loads(flag(command(max_images=5, max_videos=2).argv, "--limit-mm-per-prompt"))
    image, video = limits["image"], limits["video"]
    assert image["count"] == 5 and video["count"] == 2
    # 1280 tokens of 28x28: the biggest image the client sends under its default budget
    assert (image["width"] // 28) * (image["height"] // 28) == 1280
    assert image["width"] % 28 == 0 and image["height"] % 28 == 0
    assert (video["width"] // 28) * (video["height"] // 28) == 768  # the per-frame video budget


def test_processor_max_pixels_matches_the_client_default_per_family():
    assert json.loads(flag(command("qwen2-vl-2b").argv, "--mm-processor-kwargs")) == {"max_pixels": 1280 * 28 * 28}
    assert json.loads(flag(command().argv, "--mm-processor-kwargs")) == {
        "max_pixels": FAMILIES["qwen2.5-vl"].max_pixels}
    # Qwen3-VL: 32 px grid, and scoped to images (a flat value would cap whole videos)
    assert json.loads(flag(command("qwen3-vl-4b").argv, "--mm-processor-kwargs")) == {
        "images_kwargs": {"max_pixels": 1280 * 32 * 32}}
    limits = json.loads(flag(command("qwen3-vl-4b").argv, "--limit-mm-per-prompt"))
    assert limits["image"]["width"] % 32 == 0


def test_max_pixels_flag_sets_processor_and_dummy_size():
    argv = command("qwen2.5-vl-3b", max_pixels=401408).argv
    assert json.loads(flag(argv, "--mm-processor-kwargs")) == {"max_pixels": 401408}
    image = json.loads(flag(argv, "--limit-mm-per-prompt"))["image"]
    assert image["width"] * image["height"] == 401408


def test_generic_models_get_plain_counts_and_no_processor_kwargs():
    argv = command("gemma-3-4b").argv
    assert json.loads(flag(argv, "--limit-mm-per-prompt")) == {"image": 8, "video": 1}
    assert "--mm-processor-kwargs" not in argv


def test_every_hardware_and_safety_flag():
    cmd = command(host="127.0.0.1", port=9001, name="vis", max_model_len=8192, gpu_memory_utilization=0.85,
                  tensor_parallel_size=2, allowed_local_media_path="/srv/media",
                  allow_media_domains=("upload.wikimedia.org", "example.org"))
    argv = cmd.argv
    assert flag(argv, "--port") == "9001" and flag(argv, "--served-model-name") == "vis"
    assert flag(argv, "--max-model-len") == "8192"
    assert flag(argv, "--gpu-memory-utilization") == "0.85"
    assert flag(argv, "--tensor-parallel-size") == "2"
    assert flag(argv, "--allowed-local-media-path") == "/srv/media"
    i = argv.index("--allowed-media-domains")
    assert argv[i + 1:i + 3] == ["upload.wikimedia.org", "example.org"]
    assert NO_REMOTE_MEDIA not in argv


def test_cpu_device():
    cmd = command(device="cpu", cpu_kv_cache_gib=2)
    assert "--enforce-eager" in cmd.argv
    assert "--device" not in cmd.argv  # current vLLM picks the platform from its build
    assert cmd.env["VLLM_CPU_KVCACHE_SPACE"] == "2"


@pytest.mark.parametrize("options, fragment", [
    ({"device": "cpu", "gpu_memory_utilization": 0.5}, "--gpu-memory-utilization"),
    ({"cpu_kv_cache_gib": 1}, "--cpu-kv-cache-gib"),
    ({"device": "tpu"}, "unknown device"),
    ({"gpu_memory_utilization": 1.5}, "--gpu-memory-utilization"),
    ({"allow_media_domains": ("http://x.org/",)}, "--allow-media-domain"),
])
def test_impossible_combinations_are_refused(options, fragment):
    with pytest.raises(UsageError) as excinfo:
        check_options(ServeOptions(model="qwen2.5-vl", **options))
    assert fragment in excinfo.value.message()


def test_module_form_passes_the_model_as_a_flag():
    argv = command(launcher=MODULE).argv
    assert argv[:3] == ["/venv/bin/python", "-m", "vllm.entrypoints.openai.api_server"]
    assert flag(argv, "--model") == "Qwen/Qwen2.5-VL-7B-Instruct"


def test_guided_answers_come_without_padding_unless_the_user_configures_them():
    import json

    assert json.loads(flag(command().argv, "--structured-outputs-config")) == \
        {"backend": "xgrammar", "disable_any_whitespace": True}
    for own in (("--structured-outputs-config", '{"backend": "guidance"}'),
                ("--structured_outputs_config.backend", "guidance"), ("--structured-outputs-config={}",)):
        argv = command(extra_args=own).argv
        assert argv[-len(own):] == list(own) and argv.count("--structured-outputs-config") == own.count(
            "--structured-outputs-config")


def test_passthrough_goes_last_and_safety_flags_cannot_be_overridden():
    argv = command(extra_args=("--quantization", "fp8")).argv
    assert argv[-2:] == ["--quantization", "fp8"]
    for bad in (("--host", "0.0.0.0"), ("--api-key=abc",), ("--port", "1"), ("--allowed-local-media-path", "/")):
        with pytest.raises(UsageError) as excinfo:
            command(extra_args=bad)
        assert bad[0].split("=")[0] in excinfo.value.message()


@pytest.mark.parametrize("args, reserved", [
    (("--allowed_local_media_path", "/"), "--allowed-local-media-path"),  # vLLM reads _ as -
    (("--api_key", "sk-x"), "--api-key"),
    (("--api_key=sk-x",), "--api-key"),
    (("--served_model_name=other",), "--served-model-name"),
    (("--host=0.0.0.0",), "--host"),
    (("--hos", "0.0.0.0"), "--host"),  # argparse takes a unique prefix (allow_abbrev)
    (("--ho=0.0.0.0",), "--host"),
    (("--api", "sk-x"), "--api-key"),
    (("--allowed-local", "/"), "--allowed-local-media-path"),
    (("--allowed_local_m=/",), "--allowed-local-media-path"),
    (("--api-key.0", "sk-x"), "--api-key"),  # a dotted JSON field of the same option
    (("--media-io-kwargs.video.num_frames", "32"), "--media-io-kwargs"),
    (("--media_io_kwargs", '{"video": {"num_frames": 8}}'), "--media-io-kwargs"),
    (("--no-trust-request-mm-kwargs",), "--no-trust-request-mm-kwargs"),
    (("--trust_request_mm_kwargs",), "--trust-request-mm-kwargs"),
    (("--config", "vllm.yaml"), "--config"),  # a YAML file could set any of them
    (("--quantization", "fp8", "--port", "1"), "--port"),
])
def test_passthrough_is_read_the_way_vllm_reads_it(args, reserved):
    with pytest.raises(UsageError) as excinfo:
        command(extra_args=args)
    message = excinfo.value.message()
    assert reserved in message and "refusing a vLLM flag after --" in message
    assert excinfo.value.hint == RESERVED_FLAGS[reserved]


@pytest.mark.parametrize("arg, name", [
    ("--api_key", "--api-key"), ("--api_key=a_b", "--api-key"), ("--limit_mm_per_prompt.image_x", "--limit-mm-per-prompt"),
    ("--foo=a.b", "--foo"), ("fp8", None), ("--", None), ("-q", None),
])
def test_vllm_option_name(arg, name):
    assert vllm_option_name(arg) == name


def test_passthrough_that_only_looks_similar_is_kept():
    # longer than a reserved flag (so not an abbreviation of one), or a dotted field of another option
    extra = ("--max-model-len", "4096", "--hf-overrides", '{"a": 1}', "--limit-mm-per-prompt.image", "2",
             "--model-impl", "vllm", "--enable_prefix_caching", "--hostname-x", "--config-format", "auto")
    assert command(extra_args=extra).argv[-len(extra):] == list(extra)


def test_frame_lists_are_kept_whole_and_request_kwargs_only_on_loopback():
    cmd = command()
    assert json.loads(flag(cmd.argv, "--media-io-kwargs")) == {"video": {"num_frames": -1}}
    assert "--trust-request-mm-kwargs" in cmd.argv
    assert cmd.frame_limit is None and cmd.request_mm_kwargs
    shared = command(host="0.0.0.0")
    assert json.loads(flag(shared.argv, "--media-io-kwargs")) == {"video": {"num_frames": -1}}
    assert "--trust-request-mm-kwargs" not in shared.argv
    assert shared.frame_limit is None and not shared.request_mm_kwargs
    with_key = command(require_key=True)  # still this machine only
    assert "--trust-request-mm-kwargs" in with_key.argv and with_key.request_mm_kwargs


# ------------------------------------------------------------------ host and key


@pytest.mark.parametrize("host, loopback, client", [
    ("127.0.0.1", True, "127.0.0.1"), ("localhost", True, "localhost"), ("::1", True, "[::1]"),
    ("0.0.0.0", False, "127.0.0.1"), ("::", False, "[::1]"), ("192.168.1.20", False, "192.168.1.20"),
])
def test_hosts(host, loopback, client):
    assert is_loopback_host(host) is loopback
    assert client_host(host) == client
    assert command(host=host).needs_key is not loopback


def test_the_key_goes_through_the_environment_only():
    cmd = command(host="0.0.0.0")
    key = "mmcli-secret-0123456789"
    assert cmd.needs_key and flag(cmd.argv, "--host") == "0.0.0.0"
    env = child_env(cmd, {"PATH": "/bin", "VLLM_API_KEY": "stale", "PYTHONHOME": "/x"}, key)
    assert env["VLLM_API_KEY"] == key and "PYTHONHOME" not in env and env["PATH"] == "/bin"
    assert not any(key in arg for arg in cmd.argv) and "--api-key" not in cmd.argv
    text = shell_text(cmd, {}, "/state/mmcli/api-key")
    assert key not in text and 'VLLM_API_KEY="$(cat /state/mmcli/api-key)"' in text


def test_require_key_on_loopback_and_a_stray_key_is_not_inherited():
    assert command(require_key=True).needs_key
    env = child_env(command(), {"VLLM_API_KEY": "from-the-shell"}, None)
    assert "VLLM_API_KEY" not in env


def test_environment_defaults_yield_to_the_user():
    cmd = build_command(ServeOptions(model="/models/x"), choose_model(
        "/models/x", local_dir="/models/x", model_type="qwen2_5_vl"), SCRIPT)
    assert child_env(cmd, {}, None)["HF_HUB_OFFLINE"] == "1"  # a local folder needs nothing from the hub
    assert child_env(cmd, {"HF_HUB_OFFLINE": "0"}, None)["HF_HUB_OFFLINE"] == "0"
    # safety settings do not yield
    assert child_env(cmd, {"VLLM_MEDIA_URL_ALLOW_REDIRECTS": "1"}, None)["VLLM_MEDIA_URL_ALLOW_REDIRECTS"] == "0"


# ------------------------------------------------------------------ models


def test_aliases():
    assert {"qwen2-vl", "qwen2-vl-2b", "qwen2-vl-72b", "qwen2.5-vl-3b", "qwen2.5-vl-32b", "qwen2.5-vl-72b",
            "qwen3-vl", "qwen3-vl-2b", "qwen3-vl-32b"} <= set(SERVE_ALIASES)
    assert SERVE_ALIASES["qwen2.5-vl"].hf_id == SERVE_ALIASES["qwen2.5-vl-7b"].hf_id == "Qwen/Qwen2.5-VL-7B-Instruct"
    assert choose_model("Qwen2.5-VL-3B", local_dir=None, model_type=None).source == "Qwen/Qwen2.5-VL-3B-Instruct"
    assert sum(a.family == "generic" for a in SERVE_ALIASES.values()) >= 3


def test_hub_ids_and_local_folders():
    hub = choose_model("Qwen/Qwen2-VL-2B-Instruct", local_dir=None, model_type=None)
    assert (hub.source, hub.served_name, hub.family.name) == ("Qwen/Qwen2-VL-2B-Instruct",) * 2 + ("qwen2-vl",)
    local = choose_model("./ft", local_dir="/work/ft", model_type="qwen2_5_vl")
    assert (local.source, local.served_name, local.family.name, local.local) == ("/work/ft", "ft", "qwen2.5-vl", True)
    named = choose_model("./ft", local_dir="/work/ft", model_type=None, name="mine", family="qwen3-vl")
    assert (named.served_name, named.family.name) == ("mine", "qwen3-vl")


@pytest.mark.parametrize("spec, fragment", [("qwen2.5-vll", "did you mean qwen2.5-vl"),
                                            ("./missing-dir", "model directory not found")])
def test_unknown_models(spec, fragment):
    with pytest.raises(UsageError) as excinfo:
        choose_model(spec, local_dir=None, model_type=None)
    assert fragment in excinfo.value.message() + " " + excinfo.value.hint


def test_grid_size_is_on_grid_and_nearly_square():
    assert grid_size(1280, 28) == (40 * 28, 32 * 28)
    assert grid_size(768, 32) == (32 * 32, 24 * 32)
    width, height = grid_size(1283, 28)  # prime: falls back to the next count with a sane aspect ratio
    assert width / height <= 200 and (width // 28) * (height // 28) <= 1283
    assert mm_limits(ServeOptions(model="x", max_images=0), FAMILIES["qwen2-vl"])["image"]["count"] == 0


# ------------------------------------------------------------------ the command line


def test_dry_run_prints_command_and_environment(mmcli, tmp_path):
    run = mmcli("serve", "qwen2.5-vl-3b", "--max-images", "8", "--max-pixels", "1003520", "--host", "0.0.0.0",
                "--dry-run", "--", "--quantization", "fp8", env={"PATH": str(tmp_path)})
    assert run.code == 0, run.stderr
    assert "serve Qwen/Qwen2.5-VL-3B-Instruct" in run.stdout
    assert '--limit-mm-per-prompt \'{"image": {"count": 8' in run.stdout
    assert "VLLM_MEDIA_URL_ALLOW_REDIRECTS=0" in run.stdout
    assert "VLLM_API_KEY=\"$(cat " in run.stdout and "--quantization fp8" in run.stdout
    assert "vLLM is not installed" in run.stderr  # and yet the command is shown
    assert not (tmp_path / "state").exists()  # nothing started, no key generated


def test_a_missing_media_folder_is_a_usage_error_with_a_hint(mmcli, tmp_path):
    run = mmcli("serve", "qwen2.5-vl-3b", "--allowed-local-media-path", tmp_path / "nonexistent", "--dry-run")
    assert_clean_error(run, 2, "--allowed-local-media-path must be an existing directory")
    assert "hint: give the folder the server may read media files from" in run.stderr


def test_list(mmcli):
    run = mmcli("serve", "--list")
    assert run.code == 0
    assert "qwen2.5-vl-72b" in run.stdout and "Qwen/Qwen2.5-VL-72B-Instruct" in run.stdout
    rows = json.loads(mmcli("serve", "--list", "--json").stdout)
    assert {r["alias"] for r in rows} == set(SERVE_ALIASES)


def test_status_and_stop_are_words_not_models(mmcli):
    status = mmcli("serve", "status")
    assert status.code == 5 and "no server started by mmcli is running" in status.stdout
    assert json.loads(mmcli("serve", "status", "--json").stdout) == {"running": False}
    stop = mmcli("serve", "stop")
    assert stop.code == 0 and "no server started by mmcli is running" in stop.stderr
    assert_clean_error(mmcli("serve", "status", "--port", "9000"), 2, "does not take --port")
    assert_clean_error(mmcli("serve", "stop", "--", "--x"), 2, "does not take --x")


def test_usage_errors(mmcli, tmp_path):
    assert_clean_error(mmcli("serve", "nonsense-model", "--dry-run"), 2, "unknown model")
    assert_clean_error(mmcli("serve", "qwen2.5-vl", "--dry-run", "--", "--api-key", "k"), 2, "--api-key")
    assert_clean_error(mmcli("serve", "qwen2.5-vl", "--dry-run", "--", "--api_key", "k"), 2, "--api-key")
    assert_clean_error(mmcli("serve", "qwen2.5-vl", "--dry-run", "--", "--hos", "0.0.0.0"), 2,
                       "vLLM would read --hos as --host")
    assert_clean_error(mmcli("serve", "qwen2.5-vl", "--allowed-local-media-path", "/", "--dry-run"), 2,
                       "refusing --allowed-local-media-path")
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    assert_clean_error(mmcli("serve", "qwen2.5-vl", "--allowed-local-media-path", str(home), "--dry-run"), 2,
                       "refusing --allowed-local-media-path")
    media = home / "media"
    media.mkdir()
    run = mmcli("serve", "qwen2.5-vl", "--allowed-local-media-path", str(media), "--dry-run")
    assert run.code == 0 and f"--allowed-local-media-path {media}" in run.stdout


def test_local_folder_family_from_config_json(mmcli, tmp_path):
    folder = tmp_path / "my-finetune"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "qwen2_5_vl"}))
    run = mmcli("serve", str(folder), "--dry-run")
    assert run.code == 0, run.stderr
    assert f"serve {folder}" in run.stdout and "--served-model-name my-finetune" in run.stdout
    assert "HF_HUB_OFFLINE=1" in run.stdout and "family qwen2.5-vl" in run.stderr
    assert "--max-model-len" not in run.stdout  # the model's own unless asked


def test_vllm_python_without_vllm_is_refused(mmcli):
    run = mmcli("serve", "qwen2.5-vl", "--vllm-python", os.path.realpath(sys.executable))
    assert_clean_error(run, 5, "vLLM is not installed in that Python")
    assert "pip install -e '.[serve]'" in run.stderr


def test_missing_vllm_gives_the_install_hint(mmcli, tmp_path):
    run = mmcli("serve", "qwen2.5-vl", env={"PATH": str(tmp_path)})
    assert_clean_error(run, 5, "vLLM is not installed")
    assert "hint: in the mmcli checkout: pip install -e '.[serve]'" in run.stderr
    assert not Path(tmp_path / "state" / "mmcli" / "server.json").exists()
