"""The history database and follow-ups, against a scripted endpoint: what is kept, what is sent again."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import SECRET_KEY, assert_clean_error
from tests.support import media
from tests.support.scripted_server import Reply, ScriptedServer, Status


def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "mmcli" / "history.db"


def wire(message: dict) -> str:
    return json.dumps(message, separators=(",", ":"))


@pytest.fixture
def photo(tmp_path):
    return media.make_small_png(tmp_path / "in")


def test_follow_up_resends_the_first_turn_byte_for_byte_after_the_file_is_gone(mmcli, server, photo, tmp_path):
    server.script(Reply("A red square on the left."), Reply("It is red."), Reply("Yes."))
    first = mmcli("ask", photo, "what is here?", "--base-url", server.base_url)
    assert first.code == 0, first.stderr
    photo.unlink()  # the follow-up needs only the history
    second = mmcli("ask", "-c", "what colour?", "--base-url", server.base_url)
    assert second.code == 0 and "It is red." in second.stdout, second.stderr
    third = mmcli("ask", "--continue", "sure?", "--base-url", server.base_url)
    assert third.code == 0, third.stderr
    one, two, three = (r.json["messages"] for r in server.chat_requests())
    assert [m["role"] for m in two] == ["user", "assistant", "user"]
    assert wire(two[0]) == wire(one[0])  # the image's data URL, the text, the order: identical
    assert two[1] == {"role": "assistant", "content": "A red square on the left."}
    assert two[2]["content"] == "what colour?"
    assert [wire(m) for m in three[:3]] == [wire(m) for m in two]  # every earlier turn unchanged
    assert three[3:] == [{"role": "assistant", "content": "It is red."}, {"role": "user", "content": "sure?"}]


def test_a_follow_up_may_add_media_and_cid_picks_the_conversation(mmcli, server, photo, tmp_path):
    other = media.make_real_photo(tmp_path / "in", "other.jpg")
    server.script(Reply("first"), Reply("unrelated"), Reply("compared"))
    assert mmcli("ask", photo, "describe", "--base-url", server.base_url).code == 0
    con = sqlite3.connect(db_path(tmp_path))
    cid = con.execute("SELECT cid FROM turns").fetchone()[0]
    assert mmcli("ask", "unrelated question", "--base-url", server.base_url).code == 0
    run = mmcli("ask", "--cid", cid, other, "and this one?", "--base-url", server.base_url)
    assert run.code == 0, run.stderr
    first, _, follow = (r.json["messages"] for r in server.chat_requests())
    assert wire(follow[0]) == wire(first[0])
    parts = follow[2]["content"]
    assert [p["type"] for p in parts] == ["image_url", "text"] and parts[1]["text"] == "and this one?"
    assert con.execute("SELECT COUNT(*) FROM turns WHERE cid = ?", (cid,)).fetchone()[0] == 2


def test_follow_up_errors_are_clean_and_send_nothing(mmcli, server, photo):
    assert_clean_error(mmcli("ask", "-c", "and?", "--base-url", server.base_url), 2, "no history")
    server.script(Reply("ok"))
    assert mmcli("ask", photo, "q", "--base-url", server.base_url).code == 0
    assert_clean_error(mmcli("ask", "--cid", "nope123", "and?", "--base-url", server.base_url), 2, "nope123")
    assert_clean_error(mmcli("ask", "-c", photo, "q", "--each", "--base-url", server.base_url), 2, "--each")
    assert len(server.chat_requests()) == 1


def test_logs_finds_a_word_of_an_answer_and_shows_the_conversation(mmcli, server, photo, tmp_path):
    server.script(Reply("The zebra stands still."), Reply("Nothing else."))
    mmcli("ask", photo, "what animal?", "--base-url", server.base_url)
    mmcli("ask", "-c", "anything else?", "--base-url", server.base_url)
    found = mmcli("logs", "-q", "zebra")
    assert found.code == 0 and "zebra" in found.stdout and "anything else" not in found.stdout
    assert mmcli("logs", "-q", "giraffe").stdout == ""
    assert mmcli("logs", "-q", 'zebra" OR (').code == 0  # the user's words are words, never query syntax
    listing = json.loads(mmcli("logs", "--json", "-n", "1").stdout)
    assert [t["prompt"] for t in listing] == ["anything else?"]
    cid = listing[0]["cid"]
    shown = mmcli("logs", "show", cid, "--media", tmp_path / "out")
    assert shown.code == 0 and "The zebra stands still." in shown.stdout and "Nothing else." in shown.stdout
    written = list((tmp_path / "out").iterdir())
    assert [p.suffix for p in written] == [".jpg"] and written[0].read_bytes()[:2] == b"\xff\xd8"
    again = mmcli("logs", "show", "1", "--media", tmp_path / "out")
    assert_clean_error(again, 2, "exists")


def test_export_carries_the_media_as_data_urls_and_rm_forgets(mmcli, server, photo, tmp_path):
    server.script(Reply("one"), Reply("two"))
    mmcli("ask", photo, "q1", "--base-url", server.base_url)
    mmcli("ask", "q2", "--base-url", server.base_url)
    lines = [json.loads(line) for line in mmcli("logs", "export").stdout.splitlines()]
    assert [t["answer"] for t in lines] == ["one", "two"]
    sent = server.chat_requests()[0].json["messages"][0]["content"][0]["image_url"]["url"]
    assert lines[0]["media"][0]["data_urls"] == [sent]
    removed = mmcli("logs", "rm", lines[0]["cid"])
    assert removed.code == 0 and "removed 1 turn" in removed.stderr
    con = sqlite3.connect(db_path(tmp_path))
    assert con.execute("SELECT COUNT(*) FROM media").fetchone()[0] == 0  # no turn holds it any more
    assert [t["answer"] for t in json.loads(mmcli("logs", "--json").stdout)] == ["two"]
    assert_clean_error(mmcli("logs", "rm", "999"), 2, "999")


@pytest.mark.parametrize("how", ["flag", "env", "config"])
def test_logging_can_be_turned_off(mmcli, server, photo, tmp_path, how):
    server.script(Reply("unlogged"))
    args, env = ["ask", photo, "q", "--base-url", server.base_url], {}
    if how == "flag":
        args.append("--no-log")
    elif how == "env":
        env["MMCLI_LOG"] = "0"
    else:
        (tmp_path / "config" / "mmcli").mkdir(parents=True)
        (tmp_path / "config" / "mmcli" / "config.toml").write_text("log = false\n")
    run = mmcli(*args, env=env)
    assert run.code == 0 and "unlogged" in run.stdout
    assert not db_path(tmp_path).exists()
    assert mmcli("logs").stdout == ""


def test_the_database_holds_no_key_and_is_sound(mmcli, photo, tmp_path):
    with ScriptedServer(api_key=SECRET_KEY) as keyed:
        keyed.script(Reply("fine"), Status(400, {"error": {"message": "no such thing"}}))
        run = mmcli("ask", photo, "q", "--base-url", keyed.base_url, env={"MMCLI_API_KEY": SECRET_KEY})
        assert run.code == 0, run.stderr
        failed = mmcli("ask", photo, "q", "--base-url", keyed.base_url, env={"MMCLI_API_KEY": SECRET_KEY})
        assert failed.code == 4  # a refused request is logged too, with its error
    con = sqlite3.connect(db_path(tmp_path))
    assert [row[0] for row in con.execute("SELECT status FROM turns ORDER BY id")] == ["ok", "error"]
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert con.execute("PRAGMA user_version").fetchone()[0] >= 1
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    for path in db_path(tmp_path).parent.iterdir():
        data = path.read_bytes()
        assert SECRET_KEY.encode() not in data, path
    assert oct(db_path(tmp_path).stat().st_mode & 0o777) == "0o600"


@pytest.mark.real_process  # the test holds SQLite locks itself: POSIX locks are per process, so mmcli runs in its own
def test_a_locked_or_broken_database_is_a_warning_not_a_failure(mmcli, server, photo, tmp_path):
    server.script(Reply("first"), Reply("still answered"), Reply("and again"))
    assert mmcli("ask", photo, "q", "--base-url", server.base_url).code == 0
    holder = sqlite3.connect(db_path(tmp_path), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the database
    try:
        run = mmcli("ask", "q2", "--base-url", server.base_url)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert run.code == 0 and "still answered" in run.stdout
    assert "warning: the history was not written" in run.stderr and "locked" in run.stderr
    db_path(tmp_path).write_bytes(b"this is not a database" * 100)
    for extra in db_path(tmp_path).parent.glob("history.db-*"):
        extra.unlink()
    run = mmcli("ask", "q3", "--base-url", server.base_url)
    assert run.code == 0 and "and again" in run.stdout and "history was not written" in run.stderr
    assert_clean_error(mmcli("logs"), 2, "cannot read the history")


def test_media_over_the_cap_are_kept_by_name_and_a_follow_up_says_so(mmcli, server, photo, tmp_path):
    (tmp_path / "config" / "mmcli").mkdir(parents=True)
    (tmp_path / "config" / "mmcli" / "config.toml").write_text("log_media_mb = 0.001\n")
    server.script(Reply("big"))
    run = mmcli("ask", photo, "q", "--base-url", server.base_url)
    assert run.code == 0 and "keeps only the name" in run.stderr
    assert_clean_error(mmcli("ask", "-c", "more?", "--base-url", server.base_url), 2, "does not hold")
    assert len(server.chat_requests()) == 1


def test_uuids_go_only_to_endpoints_that_take_them_even_in_follow_ups(mmcli, server, photo, tmp_path):
    (tmp_path / "config" / "mmcli").mkdir(parents=True)
    (tmp_path / "config" / "mmcli" / "config.toml").write_text(
        f'[profiles.vl]\nbase_url = "{server.base_url}"\nmedia_uuid = true\n')
    server.script(Reply("one"), Reply("two"), Reply("three"))
    assert mmcli("ask", photo, "q", "--profile", "vl").code == 0
    assert mmcli("ask", "-c", "again?", "--profile", "vl").code == 0
    assert mmcli("ask", "-c", "elsewhere?", "--base-url", server.base_url).code == 0
    first, second, third = (r.json["messages"] for r in server.chat_requests())
    image = first[0]["content"][0]
    sent = image["image_url"]["url"].split(",", 1)[1]
    import base64
    import hashlib

    assert image["uuid"] == hashlib.sha256(base64.b64decode(sent)).hexdigest()
    assert wire(second[0]) == wire(first[0])
    assert "uuid" not in third[0]["content"][0] and third[0]["content"][0]["image_url"] == image["image_url"]


def test_odd_ids_and_searches_are_clean(mmcli, server, photo):
    server.script(Reply("an answer"))
    assert mmcli("ask", photo, "q", "--base-url", server.base_url).code == 0
    assert_clean_error(mmcli("logs", "show", "9" * 30), 2, "no turn")
    assert mmcli("logs", "-q", "").code == 0
    assert mmcli("logs", "-q", "*").code == 0
    assert_clean_error(mmcli("logs", "--cid", "zz"), 2, "zz")


def test_answers_kept_in_python_hold_no_history_database_open(server, clean_environ, tmp_path):
    """Each run closes the history when it ends: a program keeping many answers keeps no database open."""
    import os

    import mmcli

    def open_history_files() -> int:
        found = 0
        for fd in os.listdir("/proc/self/fd"):
            try:
                found += os.readlink(f"/proc/self/fd/{fd}").startswith(str(tmp_path / "state"))
            except OSError:
                pass
        return found

    client = mmcli.Client(base_url=server.base_url, model="tiny", family="qwen2-vl")
    answers = [client.ask([], f"question {n}") for n in range(5)]
    assert [a.text for a in answers] and (tmp_path / "state" / "mmcli" / "history.db").is_file()
    assert open_history_files() == 0
