"""Error messages and hints that name only what the command has; exit statuses of scripted chats."""

from __future__ import annotations

from tests.conftest import assert_clean_error
from tests.support import media
from tests.support.scripted_server import Reply, Status


def test_logs_media_hints_name_logs_options(mmcli, server, tmp_path):
    photo = media.make_small_png(tmp_path / "in")
    server.script(Reply("kept"))
    assert mmcli("ask", photo, "q", "--base-url", server.base_url).code == 0
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    run = mmcli("logs", "show", "1", "--media", a_file)
    assert_clean_error(run, 2, "output directory is a file")
    assert "--media" in run.stderr.split("hint:")[1] and "-o" not in run.stderr.split("hint:")[1]
    assert mmcli("logs", "show", "1", "--media", tmp_path / "out").code == 0
    again = mmcli("logs", "show", "1", "--media", tmp_path / "out")
    assert_clean_error(again, 2, "output file exists")
    hint = again.stderr.split("hint:")[1]
    assert "--force" in hint and "--media DIR" in hint and "-o" not in hint
    assert mmcli("logs", "show", "1", "--media", tmp_path / "out", "--force").code == 0


def test_chat_save_over_a_file_hints_another_name(mmcli, server, tmp_path):
    server.script(Reply("one"))
    existing = tmp_path / "talk.md"
    existing.write_text("mine")
    run = mmcli("chat", "--base-url", server.base_url, stdin=f"hi\n/save {existing}\n".encode())
    assert run.code == 0 and "output file exists" in run.stderr
    assert "choose another name" in run.stderr and "--force" not in run.stderr and "-o DIR" not in run.stderr
    assert existing.read_text() == "mine"


def test_an_empty_search_of_a_full_history_finds_nothing_rather_than_emptiness(mmcli, server):
    server.script(Reply("kept"))
    assert mmcli("ask", "q", "--base-url", server.base_url).code == 0
    run = mmcli("logs", "-q", "")
    assert run.code == 0 and "no turns found" in run.stderr and "empty" not in run.stderr


def test_chat_with_a_folder_does_not_hint_each(mmcli, server, tmp_path):
    folder = tmp_path / "pics"
    folder.mkdir()
    run = mmcli("chat", folder, "--base-url", server.base_url)
    assert_clean_error(run, 3, "it is a directory")
    assert "--each" not in run.stderr and "pics/*.jpg" in run.stderr
    chat = mmcli("chat", "--base-url", server.base_url, stdin=f"/attach {folder}\n".encode())
    assert chat.code == 0 and "--each" not in chat.stderr and "pics/*.jpg" in chat.stderr


def test_a_follow_up_too_big_says_the_earlier_turns_cannot_shrink(mmcli, server, tmp_path):
    first, second = (media.make_small_png(tmp_path / "in", f"{n}.png") for n in "ab")
    server.max_model_len = 600  # one image (391 tokens) fits, two do not
    server.script(Reply("one"))
    assert mmcli("ask", first, "q", "--max-tokens", "10", "--base-url", server.base_url).code == 0
    run = mmcli("ask", "-c", second, "and this?", "--max-tokens", "10", "--base-url", server.base_url)
    assert_clean_error(run, 2, "does not fit")
    hint = run.stderr.split("hint:")[1]
    assert "earlier turns resend 391 visual tokens" in hint and "new conversation" in hint
    assert "--max-tokens-per-image" in hint  # the new image's budget is the one that can change
    assert len(server.chat_requests()) == 1


def test_video_follow_up_with_only_a_question_is_refused_clearly(mmcli, server):
    server.script(Reply("one"))
    assert mmcli("ask", "q", "--base-url", server.base_url).code == 0
    run = mmcli("video", "-c", "what happens next?", "--base-url", server.base_url)
    assert_clean_error(run, 2, "no video given")
    assert "mmcli ask -c" in run.stderr and len(server.chat_requests()) == 1


def test_a_scripted_chat_whose_every_question_fails_exits_with_the_failure(mmcli, server):
    bad = {"error": {"message": "no", "type": "BadRequestError"}}
    server.script(Status(400, bad), Status(400, bad))
    run = mmcli("chat", "--base-url", server.base_url, stdin=b"a\nb\n")
    assert run.code == 4 and run.stderr.count("mmcli: error:") == 2
    server.script(Status(400, bad), Reply("fine"))
    assert mmcli("chat", "--base-url", server.base_url, stdin=b"a\nb\n").code == 0  # one answered: a chat that worked
