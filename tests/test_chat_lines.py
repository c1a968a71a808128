"""`mmcli chat` reading questions from a pipe: its slash commands, pruning, and what it sends."""

from __future__ import annotations

import json
import sqlite3

from tests.support import media
from tests.support.scripted_server import Reply, Status


def wire(message: dict) -> str:
    return json.dumps(message, separators=(",", ":"))


def test_commands_attach_retry_undo_save(mmcli, server, tmp_path):
    photo = media.make_small_png(tmp_path / "in")
    other = media.make_real_photo(tmp_path / "in", "other.jpg")
    server.script(Reply("first"), Status(500, None), Status(500, None), Status(500, None), Reply("second"),
                  Reply("again"))
    lines = ["hello", f"/attach {other} {tmp_path / 'missing.jpg'}", f"/attach {other}", "/drop 2", "/media",
             "fails?", '"""', "two", "lines", '"""', "/retry", "/undo", "/context", "/system Be brief.",
             "/model other-model", "/bogus", f"/save {tmp_path / 'talk.md'}", f"/save {tmp_path / 'talk.md'}",
             "/exit", "never sent"]
    run = mmcli("chat", photo, "--base-url", server.base_url, stdin="\n".join(lines).encode() + b"\n")
    assert run.code == 0, run.stderr
    assert "Traceback" not in run.output
    assert "first" in run.stdout and "second" in run.stdout and "again" in run.stdout
    err = run.stderr
    assert "mmcli: error:" in err and "missing.jpg" in err  # a bad attachment is refused, the chat goes on
    assert "dropped" in err and "turn 1: image" in err
    assert "HTTP 500" in err or "500" in err  # a server error is shown and the chat goes on
    assert "unknown command (/bogus)" in err and "output file exists" in err
    requests = [r.json for r in server.chat_requests()]
    assert [len(r["messages"]) for r in requests] == [1, 3, 3, 3, 3, 3]
    # the failed question is not part of the conversation; its attachment goes with the next one
    assert [p.get("text") for p in requests[4]["messages"][-1]["content"]] == [None, "two\nlines"]
    assert wire(requests[5]["messages"]) == wire(requests[4]["messages"])  # /retry sends it again as it was
    transcript = (tmp_path / "talk.md").read_text()
    assert "> hello" in transcript and "second" not in transcript and "again" not in transcript  # undone
    assert sorted(p.name for p in (tmp_path / "talk-media").iterdir()) == ["turn1-1.jpg"]
    con = sqlite3.connect(tmp_path / "state" / "mmcli" / "history.db")
    rows = con.execute("SELECT answer, in_context, command FROM turns ORDER BY id").fetchall()
    assert ("again", 0, "chat") in rows and ("second", 0, "chat") in rows


def test_pruning_leaves_out_the_oldest_media_and_keeps_later_turns_byte_for_byte(mmcli, server, tmp_path):
    a, b, c = (media.make_small_png(tmp_path / "in", f"{name}.png") for name in "abc")
    server.max_model_len = 1100  # each image costs 391 tokens: a third one does not fit
    server.script(Reply("one"), Reply("two"), Reply("three"), Reply("four"))
    lines = ["first?", "second?", f"/attach {b}", "third?", f"/attach {c}", "fourth?", "/media"]
    run = mmcli("chat", a, "--base-url", server.base_url, stdin="\n".join(lines).encode() + b"\n")
    assert run.code == 0, run.stderr
    assert "left out the media of older turns: " in run.stderr and "a.png" in run.stderr
    assert "(left out)" in run.stderr
    third, fourth = (r.json["messages"] for r in server.chat_requests()[2:])
    pruned = fourth[0]["content"]
    assert [p["type"] for p in pruned] == ["text", "text"] and "a.png left out" in pruned[0]["text"]
    assert pruned[1] == third[0]["content"][1]  # the question itself stays
    assert [wire(m) for m in fourth[1:5]] == [wire(m) for m in third[1:5]]  # later turns unchanged
    assert [p["type"] for p in fourth[-1]["content"]] == ["image_url", "text"]


def test_a_failed_retry_keeps_the_turn_it_was_to_replace(mmcli, server, tmp_path):
    from tests.support.scripted_server import vllm_error

    server.script(Reply("FIRST ANSWER"), Status(400, vllm_error(400, "bad request")), Reply("third"),
                  Reply("fourth"), Reply("fifth"), Reply("sixth"))
    run = mmcli("chat", "--base-url", server.base_url, stdin=b"hello\n/retry\nand now?\n")
    assert run.code == 0, run.stderr
    assert "bad request" in run.stderr and "the earlier answer is kept" in run.stderr
    asked = [[(m["role"], m["content"]) for m in r.json["messages"]] for r in server.chat_requests()]
    assert asked[1] == [("user", "hello")]  # the retry: the question again, without its answer
    assert asked[2] == [("user", "hello"), ("assistant", "FIRST ANSWER"), ("user", "and now?")]
    follow = mmcli("ask", "-c", "more?", "--base-url", server.base_url)  # the history holds it too
    assert follow.code == 0, follow.stderr
    assert [m["content"] for m in server.chat_requests()[-1].json["messages"]] == [
        "hello", "FIRST ANSWER", "and now?", "third", "more?"]
    # a retry that is answered still takes the old turn's place, in the chat and in the history
    run = mmcli("chat", "--base-url", server.base_url, stdin=b"hi\n/retry\nnext?\n")
    assert run.code == 0, run.stderr
    assert [m["content"] for m in server.chat_requests()[-1].json["messages"]] == ["hi", "sixth", "next?"]


def test_a_retry_stopped_before_any_word_keeps_the_turn_it_was_to_replace(server, clean_env, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import ROOT
    from tests.support.scripted_server import Hang

    server.script(Reply("FIRST ANSWER"), Hang(30), Reply("third"))
    proc = subprocess.Popen([sys.executable, "-m", "mmcli", "chat", "--base-url", server.base_url],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env,
                            cwd=ROOT)
    proc.stdin.write(b"hello\n/retry\n")
    proc.stdin.flush()
    deadline = time.monotonic() + 30
    while len(server.chat_requests()) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert len(server.chat_requests()) == 2, "the retry never arrived"
    proc.send_signal(signal.SIGINT)  # Ctrl-C before the retry's answer began
    _, err = proc.communicate(b"and now?\n", timeout=30)
    assert proc.returncode == 0 and b"Traceback" not in err, err
    asked = [[(m["role"], m["content"]) for m in r.json["messages"]] for r in server.chat_requests()]
    assert asked[2] == [("user", "hello"), ("assistant", "FIRST ANSWER"), ("user", "and now?")]
    rows = sqlite3.connect(tmp_path / "state" / "mmcli" / "history.db").execute(
        "SELECT answer, in_context FROM turns ORDER BY id").fetchall()
    assert ("FIRST ANSWER", 1) in rows and ("", 1) not in rows  # the empty retry is not part of the talk
    assert b"the earlier answer is kept" in err


def test_sigterm_ends_a_chat_even_during_an_answer(server, clean_env):
    """In a chat Ctrl-C stops one answer and the chat goes on; SIGTERM (`kill`) ends the chat itself."""
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import ROOT
    from tests.support.scripted_server import Hang

    server.script(Hang(30))
    proc = subprocess.Popen([sys.executable, "-m", "mmcli", "chat", "--base-url", server.base_url],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env,
                            cwd=ROOT)
    proc.stdin.write(b"hello\n")
    proc.stdin.flush()  # stdin left open: a chat that shrugs the signal off waits for more, and times out below
    deadline = time.monotonic() + 30
    while not server.chat_requests() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGTERM
