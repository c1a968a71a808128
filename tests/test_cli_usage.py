"""Usage errors, settings from the environment and config file, and a light start-up."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import assert_clean_error
from tests.support import media


def test_help_does_not_import_heavy_libraries():
    code = ("import sys, mmcli.cli.app; heavy = [m for m in ('openai', 'cv2', 'PIL', 'numpy', 'httpx2') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_help_and_version(mmcli):
    run = mmcli("--help")
    assert run.code == 0 and "ask" in run.stdout
    assert mmcli("--version").stdout.startswith("mmcli ")
    assert "--max-pixels" in mmcli("ask", "--help").stdout


def test_missing_prompt_is_usage_error(mmcli):
    assert mmcli("ask").code == 2


def test_stdin_twice_is_refused(mmcli, server, tmp_path):
    run = mmcli("ask", "-", "-", "q", "--base-url", server.base_url, stdin=b"x")
    assert_clean_error(run, 2, "only once")


def test_unknown_family_and_impossible_budgets(mmcli, server, tmp_path):
    photo = media.make_small_png(tmp_path)
    assert_clean_error(mmcli("ask", photo, "q", "--base-url", server.base_url, "--family", "nope"), 2, "family")
    assert_clean_error(mmcli("ask", photo, "q", "--base-url", server.base_url, "-m", "x",
                             "--max-tokens-per-image", "10"), 2, "grid")
    assert_clean_error(mmcli("ask", photo, "q", "--base-url", server.base_url, "--family", "qwen2-vl",
                             "--min-pixels", "900000", "--max-pixels", "10000"), 2, "min-pixels")
    assert server.chat_requests() == []


def test_budget_flags_change_the_plan(mmcli, tmp_path):
    photo = media.make_real_photo(tmp_path)
    run = mmcli("ask", photo, "q", "--dry-run", "--json", "--family", "qwen2.5-vl", "--max-tokens-per-image", "256")
    item = json.loads(run.stdout)["items"][0]
    assert item["visual_tokens"] <= 256 and item["sent_width"] % 28 == 0
    run = mmcli("ask", photo, "q", "--dry-run", "--json", "--family", "generic")
    item = json.loads(run.stdout)["items"][0]
    assert max(item["sent_width"], item["sent_height"]) == 2048 and item["visual_tokens"] is None


def test_environment_and_config_file_choose_the_endpoint(mmcli, server, clean_env, tmp_path):
    photo = media.make_small_png(tmp_path)
    run = mmcli("ask", photo, "q", env={"MMCLI_BASE_URL": server.base_url, "MMCLI_MODEL": "from-env"})
    assert run.code == 0 and server.chat_requests()[-1].json["model"] == "from-env"
    config_dir = tmp_path / "config" / "mmcli"
    config_dir.mkdir(parents=True)
    (config_dir / "config.toml").write_text(
        f'profile = "mine"\n[profiles.mine]\nbase_url = "{server.base_url}"\nmodel = "from-config"\n')
    run = mmcli("ask", photo, "q")
    assert run.code == 0 and server.chat_requests()[-1].json["model"] == "from-config"


def test_remote_endpoint_without_key_is_refused_before_sending(mmcli, tmp_path):
    photo = media.make_small_png(tmp_path)
    run = mmcli("ask", photo, "q", "--profile", "parasail", "-m", "Qwen/Qwen2.5-VL-72B-Instruct")
    assert_clean_error(run, 2, "no API key")
    assert "PARASAIL_API_KEY" in run.stderr


def test_a_lone_input_is_not_taken_for_the_question(mmcli, server, tmp_path):
    photo = media.make_small_png(tmp_path)
    assert_clean_error(mmcli("ask", photo, "--base-url", server.base_url), 2, "no question")
    assert_clean_error(mmcli("ask", photo, "   ", "--base-url", server.base_url), 2, "empty")
    assert server.requests == []


def test_config_values_of_the_wrong_type_are_usage_errors(mmcli, tmp_path):
    config_dir = tmp_path / "config" / "mmcli"
    config_dir.mkdir(parents=True)
    for table in ("base_url = 5", 'base_url = "http://127.0.0.1:1/v1"\npages_per_request = 0'):
        (config_dir / "config.toml").write_text(f"[profiles.local]\n{table}\n")
        assert_clean_error(mmcli("ask", "hello", "--dry-run"), 2, "invalid config")


def test_small_max_pixels_lowers_the_default_minimum(mmcli, tmp_path):
    photo = media.make_small_png(tmp_path)
    run = mmcli("ask", photo, "q", "--dry-run", "--json", "--family", "qwen2-vl", "--max-pixels", "2000")
    assert run.code == 0, run.stderr
    item = json.loads(run.stdout)["items"][0]
    assert item["sent_width"] * item["sent_height"] <= 2000 and item["visual_tokens"] >= 1


def test_missing_v1_in_the_base_url_gets_a_hint(mmcli, server):
    run = mmcli("ask", "hello", "--base-url", server.root_url)
    assert_clean_error(run, 4, "404")
    assert f"--base-url {server.root_url}/v1" in run.stderr


def test_closed_stdout_is_not_reported_as_a_bug(server, tmp_path, clean_env):
    from tests.support.scripted_server import Reply

    server.script(Reply("word " * 20000))
    script = (f"{sys.executable} -m mmcli ask hello --base-url {server.base_url} | head -c 10 >/dev/null; "
              "echo ${PIPESTATUS[0]}")
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=clean_env)
    assert out.stdout.strip() == "141", out
    assert "Traceback" not in out.stderr


def test_the_provider_batch_commands_describe_their_own_json(mmcli, tmp_path):
    status = mmcli("batch", "status", "--help")
    assert status.code == 0 and '{"batches": [...]}' in status.stdout
    assert "answer, model, finish reason" not in status.stdout
    for command in ("submit", "fetch"):  # they print status lines and results lines, JSON already
        run = mmcli("batch", command, tmp_path / "x.jsonl", "--json")
        assert_clean_error(run, 2, "no such option: --json")
