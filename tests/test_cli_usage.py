"""Usage errors, settings from the environment and config file, and a light start-up."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import assert_clean_error
from tests.support import media


def test_help_does_not_import_heavy_libraries():
    code = ("import sys, mmcli.app; heavy = [m for m in ('openai', 'cv2', 'PIL', 'numpy', 'httpx2') "
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
