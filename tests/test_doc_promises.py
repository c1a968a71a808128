"""What the help, man pages and docs promise is what the program does: the examples run, sources are
named right, dead ends point to the way out."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.conftest import assert_clean_error
from tests.support.media import make_small_png

REPO = Path(__file__).resolve().parents[1]


def test_mmcli_family_from_the_environment_is_reported_as_env(mmcli):
    run = mmcli("ask", "hi", "--dry-run", "--json", env={"MMCLI_FAMILY": "qwen2-vl"})
    assert run.code == 0, run.stderr
    assert json.loads(run.stdout)["family_source"] == "env"
    flag = mmcli("ask", "hi", "--dry-run", "--json", "--family", "qwen2-vl")
    assert json.loads(flag.stdout)["family_source"] == "flag"


def test_a_folder_given_to_ask_points_to_each(mmcli, tmp_path):
    (tmp_path / "photos").mkdir()
    run = mmcli("ask", str(tmp_path / "photos"), "what's here")
    assert_clean_error(run, 3, "it is a directory")
    assert "add --each" in run.stderr


def test_the_batch_help_export_example_runs(mmcli, tmp_path):
    epilog = mmcli("batch", "--help").stdout
    example = next(line.strip() for line in epilog.splitlines() if "--export openai-batch" in line)
    make_small_png(tmp_path, "a.png")
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(json.dumps({"command": "ask", "inputs": [str(tmp_path / "a.png")], "prompt": "caption"}) + "\n")
    args = example.split()[1:]
    args[args.index("tasks.jsonl")] = str(tasks)
    args[args.index("requests.jsonl")] = str(tmp_path / "requests.jsonl")
    run = mmcli(*args)
    assert run.code == 0, run.stderr
    assert (tmp_path / "requests.jsonl").exists()


def test_export_with_a_model_that_names_no_family_says_so(mmcli, tmp_path):
    make_small_png(tmp_path, "a.png")
    run = mmcli("ask", "--each", str(tmp_path / "a.png"), "caption", "--export", "openai-batch",
                str(tmp_path / "req.jsonl"), "--model", "my-model")
    assert run.code == 0, run.stderr
    assert "warning: exporting for family generic" in run.stderr and "--family" in run.stderr
    named = mmcli("ask", "--each", str(tmp_path / "a.png"), "caption", "--export", "openai-batch",
                  str(tmp_path / "req2.jsonl"), "--model", "my-model", "--family", "qwen2.5-vl")
    assert named.code == 0 and "warning" not in named.stderr


def test_batch_run_help_does_not_talk_of_each(mmcli):
    run = mmcli("batch", "run", "--help")
    many = run.stdout[run.stdout.index("--concurrency"):run.stdout.index("--batch-max-mb")]
    assert "--each" not in many


def test_man_pages_state_each_default_once():
    for page in (REPO / "man").glob("*.1"):
        for line in page.read_text().splitlines():
            assert not ("[default:" in line and "Default:" in line), (page.name, line)


def test_the_dse_embedding_model_is_judged_qwen2_vl(mmcli):
    run = mmcli("serve", "MrLight/dse-qwen2-2b-mrl-v1", "--embed", "--dry-run", env={"PATH": "/nonexistent"})
    assert run.code == 0, run.stderr
    assert "(family qwen2-vl)" in run.stderr


def test_install_hints_install_from_the_checkout():
    """No hint or page installs `mmcli` by name from the package index (another project has that name)."""
    by_name = re.compile(r"pip install [^\n`]*(?<![\w.-])['\"]?mmcli(\[|['\"\s`]|$)")
    files = [*REPO.joinpath("mmcli").rglob("*.py"), REPO / "README.md", *REPO.joinpath("docs").glob("*.md")]
    for path in files:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            assert not by_name.search(line), f"{path.relative_to(REPO)}:{number}: {line.strip()}"


def test_the_batch_help_says_where_run_options_are_and_they_are_there(mmcli):
    group = " ".join(mmcli("batch", "--help").stdout.split())
    assert "`mmcli batch TASKS.jsonl ...` alone means `mmcli batch run TASKS.jsonl ...`" in group
    assert "`mmcli batch run --help` lists its options" in group
    run_help = mmcli("batch", "run", "--help").stdout
    for flag in ("-o", "--engine", "--retry-failed", "--export"):  # the ones the group's help names
        assert flag in group.replace("--retry- failed", "--retry-failed") and f"{flag} " in run_help
