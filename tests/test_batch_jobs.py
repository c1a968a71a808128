"""Which jobs a many-job run does: one id per job, resume that notices what changed, tasks lines
that say exactly what they set, every file of a folder accounted for."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.conftest import assert_clean_error
from tests.support import media, pdfs
from tests.support.scripted_server import Reply, ScriptedServer, Status, vllm_error
from tests.test_batch_each import lines, make_images
from tests.test_batch_tasks import write_tasks

MODEL = ["--model", "tiny", "--family", "qwen2-vl"]


def test_copies_with_the_same_bytes_are_jobs_of_their_own(mmcli, server, tmp_path):
    album = tmp_path / "album"
    (photo,) = make_images(album, 1)
    shutil.copy(photo, album / "copy.png")
    results = tmp_path / "results.jsonl"
    server.script(Status(400, vllm_error(400, "bad luck")), Reply("fine"))
    run = mmcli("ask", "--each", album, photo, "caption", "-o", results, "--base-url", server.base_url, "-j", "1")
    assert run.code == 8, run.stderr  # one of the three failed; the others are not masked by it
    found = lines(results)
    assert len(found) == 3 and len({r["id"] for r in found}) == 3
    assert sum("error" in r for r in found) == 1
    again = mmcli("ask", "--each", album, photo, "caption", "-o", results, "--base-url", server.base_url)
    assert "0 done, 0 failed, 2 already done, 1 failed before" in again.stderr  # the ids still resume

    export = tmp_path / "requests.jsonl"
    run = mmcli("ask", "--each", album, "caption", "--export", "openai-batch", export, *MODEL)
    assert run.code == 0, run.stderr
    custom = [json.loads(line)["custom_id"] for line in export.read_text().splitlines()]
    assert len(custom) == 2 and len(set(custom)) == 2
    manifest = json.loads((tmp_path / "requests.manifest.json").read_text())
    assert sorted(Path(j["sources"][0]).name for j in manifest["jobs"].values()) == ["copy.png", "img000.png"]


def test_another_model_is_another_job(mmcli, tmp_path):
    make_images(tmp_path / "album", 2)
    results = tmp_path / "results.jsonl"
    with ScriptedServer(models=["model-a"]) as a, ScriptedServer(models=["model-b"]) as b:
        assert mmcli("ask", "--each", tmp_path / "album", "q", "-o", results, "--base-url", a.base_url).code == 0
        run = mmcli("ask", "--each", tmp_path / "album", "q", "-o", results, "--base-url", b.base_url)
        assert run.code == 0 and "2 done, 0 failed, 0 already done" in run.stderr
        assert len(b.chat_requests()) == 2


def test_a_line_with_its_own_id_runs_again_when_it_changed(mmcli, server, tmp_path):
    a, b = make_images(tmp_path / "img", 2)
    tasks = tmp_path / "tasks.jsonl"
    results = tmp_path / "results.jsonl"
    line = {"id": "p1", "command": "ask", "inputs": [str(a)], "prompt": "caption"}
    for changed in ({}, {"prompt": "describe"}, {"inputs": [str(b)]}, {"command": "docqa"}, {}):
        write_tasks(tasks, dict(line, **changed))
        assert mmcli("batch", tasks, "-o", results, "--base-url", server.base_url).code == 0
        line.update(changed)
    assert len(server.chat_requests()) == 4  # the last run changed nothing
    assert [r["prompt"] for r in lines(results)] == ["caption", "describe", "describe", "describe"]
    assert all(r["id"] == "p1" for r in lines(results))


def test_tasks_line_keys_say_what_they_mean(mmcli, server, tmp_path):
    (photo,) = make_images(tmp_path / "img", 1)
    tasks = write_tasks(
        tmp_path / "tasks.jsonl",
        {"command": "ask", "inputs": [str(photo)], "prompt": "a", "help": True},
        {"command": "ask", "inputs": [str(photo)], "prompt": "b", "m": "other"},
        {"command": "ask", "inputs": [str(photo)], "prompt": "c", "frobnicate": False},
        {"command": "ask", "inputs": [str(photo)], "prompt": "d", "max-tokens": False},
        {"command": "ask", "inputs": [str(photo)], "prompt": "e", "stream": False},
        {"command": "ask", "inputs": [str(photo)], "prompt": "f"},
    )
    run = mmcli("batch", tasks, "--base-url", server.base_url, "--stream")
    assert_clean_error(run, 8, "4 line(s)")
    assert "Usage:" not in run.output
    for number, why in ((1, "'help'"), (2, "'m'"), (3, "--frobnicate"), (4, "--max-tokens takes a value")):
        assert any(f"line {number}:" in l and why in l for l in run.stderr.splitlines()), (number, run.stderr)
    sent = {r.json["messages"][-1]["content"][-1]["text"]: r.json.get("stream") for r in server.chat_requests()}
    assert sent == {"e": False, "f": True}  # false turns the run's --stream off for its own line


def test_false_turns_a_run_flag_off_for_one_line(mmcli, server, tmp_path):
    (photo,) = make_images(tmp_path / "img", 1)
    tasks = write_tasks(tmp_path / "tasks.jsonl",
                        {"command": "ask", "inputs": [str(photo)], "prompt": "off", "lossless": False},
                        {"command": "ask", "inputs": [str(photo)], "prompt": "on"})
    run = mmcli("batch", tasks, "--base-url", server.base_url, "--lossless")
    assert run.code == 0, run.stderr
    urls = {r.json["messages"][-1]["content"][-1]["text"]: r.json["messages"][-1]["content"][0]["image_url"]["url"]
            for r in server.chat_requests()}
    assert urls["off"].startswith("data:image/jpeg") and urls["on"].startswith("data:image/png")


def test_broken_files_named_like_media_are_failed_lines(mmcli, server, tmp_path):
    album = tmp_path / "album"
    make_images(album, 2)
    (album / "notes.jpg").write_text("this is text, not a photo")
    media.make_zero_byte(album, "empty.png")
    (album / "readme.txt").write_text("not media, not named like it")
    results = tmp_path / "results.jsonl"
    run = mmcli("ask", "--each", album, "caption", "-o", results, "--base-url", server.base_url)
    assert_clean_error(run, 8, "2 of 4 job(s) failed")
    bad = {Path(r["sources"][0]).name: r["error"]["exit_code"] for r in lines(results) if "error" in r}
    assert bad == {"notes.jpg": 3, "empty.png": 3}
    assert len(server.chat_requests()) == 2


def test_pages_apply_to_the_pdfs_of_a_mixed_folder(mmcli, server, tmp_path):
    folder = tmp_path / "docs"
    make_images(folder, 2)
    pdfs.text_pdf(folder / "report.pdf", 4)
    results = tmp_path / "results.jsonl"
    run = mmcli("docqa", "--each", folder, "what is written?", "--pages", "2-3", "-o", results,
                "--base-url", server.base_url)
    assert run.code == 0, run.stderr
    by_name = {Path(r["sources"][0]).name: r for r in lines(results)}
    assert by_name["report.pdf"]["pages"] == [2, 3]
    assert "error" not in by_name["img000.png"] and "error" not in by_name["img001.png"]


def _profile(clean_env, text: str) -> None:
    config = Path(clean_env["XDG_CONFIG_HOME"]) / "mmcli" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(text)


def test_one_base_url_overrides_the_profiles_servers(mmcli, tmp_path, clean_env):
    make_images(tmp_path / "album", 4)
    with ScriptedServer() as one, ScriptedServer() as two, ScriptedServer() as mine:
        _profile(clean_env, f'[profiles.farm]\nbase_urls = ["{one.base_url}", "{two.base_url}"]\n')
        run = mmcli("ask", "--each", tmp_path / "album", "caption", "--profile", "farm", "--base-url", mine.base_url)
        assert run.code == 0, run.stderr
        assert len(mine.chat_requests()) == 4 and one.requests == [] and two.requests == []


def test_a_remote_server_without_a_key_is_refused_once_up_front(mmcli, server, tmp_path, clean_env):
    make_images(tmp_path / "album", 4)
    _profile(clean_env, f'[profiles.farm]\nbase_urls = ["{server.base_url}", "http://192.0.2.1:8000/v1"]\n')
    run = mmcli("ask", "--each", tmp_path / "album", "caption", "--profile", "farm")
    assert_clean_error(run, 2, "no API key", "192.0.2.1")
    assert server.chat_requests() == []


def test_a_huge_tasks_line_is_refused_without_being_read_whole(tmp_path, clean_env, server):
    """A 1.5 GB line through a pipe, with the process's data limited to 1 GB: only its first MiB is kept."""
    import os
    import resource
    import subprocess
    import sys
    import threading

    (photo,) = make_images(tmp_path / "img", 1)
    tasks = tmp_path / "tasks.jsonl"
    os.mkfifo(tasks)

    def feed() -> None:
        with open(tasks, "wb") as pipe:
            pipe.write(b'{"command": "ask", "prompt": "' + b"x" * (1 << 20))
            block = b"y" * (1 << 22)
            for _ in range(384):
                pipe.write(block)
            pipe.write(b'"}\n' + json.dumps({"command": "ask", "inputs": [str(photo)], "prompt": "q"}).encode() + b"\n")

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_DATA, (1 << 30, 1 << 30))

    proc = subprocess.run([sys.executable, "-m", "mmcli", "batch", str(tasks), "--base-url", server.base_url],
                          cwd=Path(__file__).parent.parent, env=clean_env, capture_output=True, timeout=300,
                          preexec_fn=limit)
    stderr = proc.stderr.decode()
    assert proc.returncode == 8, stderr
    assert "line 1: the line is longer than 1 MiB" in stderr and "Traceback" not in stderr
    assert len(server.chat_requests()) == 1  # the next line still ran
