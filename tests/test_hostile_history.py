"""History and chat against hostile input: undecodable bytes, odd files, failing writes."""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import assert_clean_error
from tests.support import media
from tests.support.scripted_server import Reply, Status


def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "mmcli" / "history.db"


def test_a_file_name_with_undecodable_bytes_is_logged_escaped(mmcli, server, tmp_path):
    photo = media.make_small_png(tmp_path / "in")
    odd = photo.with_name(os.fsdecode(b"n\xffame.png"))
    shutil.copy(photo, odd)
    server.script(Reply("a red square"))
    run = mmcli("ask", str(odd), "what?", "--base-url", server.base_url)
    assert run.code == 0 and "a red square" in run.stdout and "history" not in run.stderr, run.stderr
    item = sqlite3.connect(db_path(tmp_path)).execute("SELECT item FROM turn_media").fetchone()[0]
    assert "n\\\\xffame.png" in item  # the byte kept as a readable escape


def test_a_question_with_undecodable_bytes_is_a_usage_error_sending_nothing(mmcli, server, tmp_path):
    run = mmcli("ask", os.fsdecode(b"bad \xff question"), "--base-url", server.base_url)
    assert_clean_error(run, 2, "not valid UTF-8")
    assert server.chat_requests() == []


def test_chat_shows_an_undecodable_line_as_an_error_and_goes_on(mmcli, server, tmp_path):
    server.script(Reply("one"), Reply("two"))
    run = mmcli("chat", "--base-url", server.base_url, stdin=b"first\nbad \xff\nthird\n")
    assert run.code == 0, run.stderr
    assert "not valid UTF-8" in run.stderr and run.stdout.split() == ["one", "two"]
    assert len(server.chat_requests()) == 2


def test_chat_dry_run_shows_each_plan_and_sends_nothing(mmcli, server, tmp_path):
    photo = media.make_small_png(tmp_path / "in")
    run = mmcli("chat", "--dry-run", "--json", "--base-url", server.base_url,
                stdin=f"first\n/attach {photo}\nsecond\n".encode())
    assert run.code == 0, run.stderr
    assert server.chat_requests() == [] and not db_path(tmp_path).exists()
    assert run.stdout.count('"messages"') == 2 and "image_url" in run.stdout
    assert run.stderr.count("nothing was sent") == 2


def test_chat_refuses_json_without_dry_run(mmcli, server):
    assert_clean_error(mmcli("chat", "--json", "--base-url", server.base_url, stdin=b"hi\n"), 2, "--json")
    assert server.chat_requests() == []


def test_history_removed_mid_chat_warns_once_and_undo_still_forgets(clean_env, server, tmp_path):
    import subprocess
    import sys

    from tests.conftest import ROOT

    server.script(Reply("one"), Reply("two"), Reply("three"), Reply("four"))
    proc = subprocess.Popen([sys.executable, "-m", "mmcli", "chat", "--base-url", server.base_url],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=clean_env, cwd=ROOT)
    proc.stdin.write(b"first\n")
    proc.stdin.flush()
    assert proc.stdout.readline() == b"one\n"  # the first turn is answered and logged
    history = db_path(tmp_path)
    history.rename(history.with_name("moved.db"))
    out, err = proc.communicate(b"second\nthird\n/undo\nfourth\n", timeout=60)
    assert proc.returncode == 0, err
    assert err.decode().count("moved or deleted") == 1 and b"forgot: third" in err
    assert b"no history" not in err
    fourth = server.chat_requests()[-1].json["messages"]
    assert [m["content"] for m in fourth[1::2]] == ["one", "two"]  # the undone turn is not sent again
    assert not history.exists()  # nothing written behind the user's back


@pytest.mark.real_process  # the test holds SQLite locks itself: POSIX locks are per process
def test_a_locked_history_says_locked_and_never_suggests_moving_it_away(mmcli, server, tmp_path):
    server.script(Reply("first"))
    assert mmcli("ask", "q", "--base-url", server.base_url).code == 0
    holder = sqlite3.connect(db_path(tmp_path), isolation_level=None)
    holder.execute("PRAGMA locking_mode = EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("SELECT * FROM turns").fetchall()
    try:
        runs = [mmcli("logs"), mmcli("logs", "rm", "1"), mmcli("ask", "-c", "more?", "--base-url", server.base_url)]
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    for run in runs:
        assert_clean_error(run, 2, "the history is locked", "another mmcli")
        assert "move it away" not in run.stderr
    assert len(server.chat_requests()) == 1
    assert "first" in mmcli("logs").stdout  # the file was fine all along


def test_a_damaged_history_is_the_only_one_worth_moving_away(mmcli, tmp_path):
    db_path(tmp_path).parent.mkdir(parents=True)
    db_path(tmp_path).write_bytes(b"this is not a database" * 100)
    damaged = mmcli("logs")
    assert_clean_error(damaged, 2, "cannot read the history", "not a database")
    assert "damaged: move it away" in damaged.stderr
    db_path(tmp_path).unlink()
    db_path(tmp_path).mkdir()  # cannot be opened at all: about permissions, not damage
    run = mmcli("logs", "show", "1")
    assert run.code == 2 and "move it away" not in run.stderr, run.stderr


def test_a_history_opened_read_only_reads_and_changes_nothing(mmcli, server, tmp_path):
    from mmcli.core.history.store import History

    server.script(Reply("kept"))
    assert mmcli("ask", "q", "--base-url", server.base_url).code == 0
    before = db_path(tmp_path).read_bytes()
    history = History(db_path(tmp_path), create=False, read_only=True)
    try:
        assert [t.answer for t in history.turns()] == ["kept"]
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            history.forget_turn(1)
    finally:
        history.close()
    assert db_path(tmp_path).read_bytes() == before


def test_turns_say_which_command_asked(mmcli, server, tmp_path):
    photo = media.make_small_png(tmp_path / "in")
    server.script(Reply("one"), Reply("two"), Reply('[{"bbox_2d": [1, 2, 3, 4], "label": "x"}]'))
    assert mmcli("ask", photo, "q", "--base-url", server.base_url).code == 0
    assert mmcli("ask", "-c", "more?", "--base-url", server.base_url).code == 0
    assert mmcli("detect", photo, "x", "--base-url", server.base_url).code == 0
    commands = [row[0] for row in sqlite3.connect(db_path(tmp_path)).execute("SELECT command FROM turns ORDER BY id")]
    assert commands == ["ask", "ask", "detect"]


def test_a_follow_up_of_a_conversation_with_no_answer_says_it_goes_without_context(mmcli, server):
    server.script(Status(400, {"error": {"message": "no"}}), Reply("alone"))
    assert mmcli("ask", "q", "--base-url", server.base_url).code == 4
    run = mmcli("ask", "-c", "and?", "--base-url", server.base_url)
    assert run.code == 0 and "no answered turn" in run.stderr and "without its context" in run.stderr
    assert server.chat_requests()[-1].json["messages"] == [{"role": "user", "content": "and?"}]


def test_a_chat_whose_reader_went_away_logs_the_turns_answered(clean_env, server, tmp_path):
    import subprocess
    import sys

    from tests.conftest import ROOT

    server.script(Reply("one"), Reply("two"))
    proc = subprocess.Popen([sys.executable, "-m", "mmcli", "chat", "--base-url", server.base_url],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            env=clean_env, cwd=ROOT)
    proc.stdin.write(b"first\n")
    proc.stdin.flush()
    assert proc.stdout.readline() == b"one\n"
    proc.stdout.close()  # as `| head -1` does
    proc.stdin.write(b"second\nthird\n")
    proc.stdin.close()
    assert proc.wait(timeout=60) == 141
    answers = [row[0] for row in sqlite3.connect(db_path(tmp_path)).execute("SELECT answer FROM turns ORDER BY id")]
    assert answers == ["one", "two"]  # the second was answered, then could not be shown: it is logged


@pytest.mark.parametrize("key", ["timeout", "log_media_mb"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e308", '"ten"', "true"])
def test_numbers_in_the_config_file_are_checked_like_flags(mmcli, server, tmp_path, key, value):
    config = tmp_path / "config" / "mmcli" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(f"{key} = {value}\n")
    assert_clean_error(mmcli("ask", "q", "--base-url", server.base_url), 2, f"invalid {key}", str(config))
    assert server.chat_requests() == []


def test_the_config_timeout_is_used_and_the_flag_wins(mmcli, server, tmp_path):
    from mmcli.settings import EndpointFlags, settings_from

    config = {"timeout": 12}
    assert settings_from(EndpointFlags(), {}, config, tmp_path).endpoint.timeout == 12
    assert settings_from(EndpointFlags(timeout=3), {}, config, tmp_path).endpoint.timeout == 3


def test_huge_counts_are_usage_errors(mmcli):
    assert_clean_error(mmcli("logs", "-n", "99999999999999999999"), 2, "--limit")
