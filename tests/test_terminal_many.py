"""Many-file runs and search on a terminal: file names, server messages and index rows never drive it."""

from __future__ import annotations

import json

from PIL import Image

from tests.support.embed_server import EmbeddingServer
from tests.support.scripted_server import Status, vllm_error
from tests.test_terminal_output import _assert_harmless, _run_on_terminals

HOSTILE_NAME = "cat\x1b]0;PWNED\x07 [bold]x\x1b[2J.png"
HOSTILE_ERROR = "bad \x1b]0;PWNED TITLE\x07request\x1b[2J\x1b[1;1H \u009b2J [red]here"


def hostile_album(folder):
    folder.mkdir()
    for name in (HOSTILE_NAME, "plain.png"):
        Image.new("RGB", (64, 48), (200, 30, 30)).save(folder / name, format="PNG")
    return folder


def test_each_progress_on_a_terminal_cleans_file_names_and_server_errors(server, clean_env, tmp_path):
    album = hostile_album(tmp_path / "album")
    server.default = Status(400, vllm_error(400, HOSTILE_ERROR))
    code, _, shown = _run_on_terminals(["ask", "--each", str(album), "q", "--base-url", server.base_url],
                                       dict(clean_env, TERM="xterm-256color"))
    assert code == 8
    _assert_harmless(shown)
    text = shown.decode("utf-8", "replace")
    assert "[bold]x" in text and "[red]here" in text  # shown as written, never read as markup


def test_batch_progress_on_a_terminal_cleans_file_names_and_server_errors(server, clean_env, tmp_path):
    album = hostile_album(tmp_path / "album")
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text("".join(json.dumps({"command": "ask", "inputs": [str(p)], "prompt": "q"}) + "\n"
                             for p in sorted(album.iterdir())))
    server.default = Status(400, vllm_error(400, HOSTILE_ERROR))
    code, _, shown = _run_on_terminals(["batch", str(tasks), "--base-url", server.base_url],
                                       dict(clean_env, TERM="xterm-256color"))
    assert code == 8
    _assert_harmless(shown)
    assert "[red]here" in shown.decode("utf-8", "replace")


def test_the_search_table_on_a_terminal_shows_file_names_as_plain_text(mmcli, clean_env, tmp_path):
    album = hostile_album(tmp_path / "album")
    index = tmp_path / "idx"
    with EmbeddingServer(models=["emb-model"]) as embed:
        assert mmcli("embed", album, "--index", index, "--base-url", embed.base_url).code == 0
        code, shown, err = _run_on_terminals(["search", "red", "--index", str(index), "--base-url", embed.base_url],
                                             dict(clean_env, TERM="xterm-256color", COLUMNS="300"))
    assert code == 0, err
    _assert_harmless(shown)
    assert "[bold]x" in shown.decode("utf-8", "replace")
