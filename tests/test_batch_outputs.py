"""Where a many-job run writes: never an input, never a device, one run per results file, and
nothing received lost when the disk fills or the folder goes away."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import assert_clean_error
from tests.support.scripted_server import Reply
from tests.test_batch_each import _start, _wait_for_lines, lines, make_images
from tests.test_batch_tasks import write_tasks

MODEL = ["--model", "tiny", "--family", "qwen2-vl"]


@pytest.fixture
def small_disk(tmp_path):
    """A real 96 KiB filesystem (tmpfs), so writes fail with ENOSPC as on a full disk."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(mount: Path, leave: int) -> None:
    """Fill `mount` until about `leave` bytes are free."""
    stats = os.statvfs(mount)
    free = stats.f_bavail * stats.f_frsize
    (mount / "filler").write_bytes(b"\0" * max(0, free - leave))


def test_output_naming_an_input_is_refused_before_anything_is_sent(mmcli, server, tmp_path):
    photos = make_images(tmp_path / "album", 2)
    before = photos[1].read_bytes()
    link = tmp_path / "other-name.png"
    os.link(photos[1], link)  # the same file under another name
    for target in (photos[1], link):
        run = mmcli("ask", "--each", tmp_path / "album", "caption", "-o", target, "--base-url", server.base_url)
        assert_clean_error(run, 2, "an input")
    assert photos[1].read_bytes() == before and server.requests == []


@pytest.mark.parametrize("content", [b"\x89PNG\r\n\x1a\n" + bytes(range(256)), b"my notes\n",
                                     b'{"a": 1}\n{"b": 2}\n', b'{"theme": "dark"}\n', b'{"theme": "dark"}',
                                     b'{"id": "row-1", "text": "a data set"}\n{"id": "row-2", "text": "more"}\n'])
def test_results_are_appended_only_to_a_results_file(mmcli, server, tmp_path, content):
    (photo,) = make_images(tmp_path / "album", 1)
    other = tmp_path / "other.png"
    other.write_bytes(content)
    run = mmcli("ask", "--each", photo, "caption", "-o", other, "--base-url", server.base_url)
    assert_clean_error(run, 2, "not a results file")
    assert other.read_bytes() == content and server.requests == []


def test_a_results_file_torn_on_its_first_line_is_resumed(mmcli, server, tmp_path):
    (photo,) = make_images(tmp_path / "album", 1)
    results = tmp_path / "results.jsonl"
    results.write_bytes(b'{"id": "abc", "sta')  # a crash in the middle of the first line
    server.script(Reply("a caption"))
    run = mmcli("ask", "--each", photo, "caption", "-o", results, "--base-url", server.base_url)
    assert run.code == 0, run.stderr
    assert json.loads(results.read_bytes().splitlines()[-1])["answer"] == "a caption"


def test_output_naming_the_tasks_file_is_refused(mmcli, server, tmp_path):
    (photo,) = make_images(tmp_path / "img", 1)
    tasks = write_tasks(tmp_path / "tasks.jsonl", {"command": "ask", "inputs": [str(photo)], "prompt": "caption"})
    before = tasks.read_bytes()
    run = mmcli("batch", tasks, "-o", tasks, "--base-url", server.base_url)
    assert_clean_error(run, 2, "tasks file")
    assert tasks.read_bytes() == before and server.requests == []


def _exported(mmcli, server, tmp_path) -> tuple[Path, Path]:
    make_images(tmp_path / "album", 2)
    export = tmp_path / "requests.jsonl"
    run = mmcli("ask", "--each", tmp_path / "album", "caption", "--export", "openai-batch", export,
                "--base-url", server.base_url, *MODEL)
    assert run.code == 0, run.stderr
    output = tmp_path / "output.jsonl"
    from tests.test_batch_export import run_batch_file

    run_batch_file(server, export, output)
    return export, output


def test_collect_refuses_to_write_into_its_own_inputs(mmcli, server, tmp_path):
    export, output = _exported(mmcli, server, tmp_path)
    manifest = tmp_path / "requests.manifest.json"
    saved = {p: p.read_bytes() for p in (export, output, manifest)}
    for target in (export, output, manifest):
        run = mmcli("batch", "collect", export, output, "-o", target)
        assert_clean_error(run, 2)
        assert "refusing" in run.stderr
    assert {p: p.read_bytes() for p in saved} == saved
    assert mmcli("batch", "collect", export, output, "-o", tmp_path / "fine.jsonl").code == 0


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/full", "/dev/stdout", "/dev/null"])
def test_devices_are_not_results_files(mmcli, server, tmp_path, device):
    make_images(tmp_path / "album", 1)
    run = mmcli("ask", "--each", tmp_path / "album", "caption", "-o", device, "--base-url", server.base_url,
                timeout=30)
    assert_clean_error(run, 2, "not a regular file")
    assert server.requests == []


def test_a_second_run_on_the_same_results_file_is_refused(server, clean_env, tmp_path, mmcli):
    make_images(tmp_path / "album", 6)
    results = tmp_path / "results.jsonl"
    server.default = Reply("slow " * 10, chunk_delay=0.05)
    first = _start(["ask", "--each", tmp_path / "album", "caption", "-o", results, "-j", "1",
                    "--base-url", server.base_url], clean_env)
    try:
        _wait_for_lines(results, 1)
        second = mmcli("ask", "--each", tmp_path / "album", "caption", "-o", results, "--base-url", server.base_url)
        assert_clean_error(second, 2, "another run")
    finally:
        _, stderr = first.communicate(timeout=60)
    assert first.returncode == 0, stderr
    assert len(server.chat_requests()) == 6 and len(lines(results)) == 6


def test_full_disk_while_writing_results_exit_9_answers_shown_whole_lines(mmcli, server, tmp_path, small_disk):
    make_images(tmp_path / "album", 6)
    results = small_disk / "results.jsonl"
    fill(small_disk, 0)
    server.default = Reply("an answer that needs room " * 20)
    run = mmcli("ask", "--each", tmp_path / "album", "caption", "-o", results, "-j", "2",
                "--base-url", server.base_url)
    assert_clean_error(run, 9, "results file")
    written = lines(results) if results.exists() else []
    shown = [json.loads(line) for line in run.stdout.splitlines()]
    assert len(written) + len(shown) == 6
    assert all(r["answer"].startswith("an answer") for r in written + shown)


def test_results_folder_removed_during_the_run(server, clean_env, tmp_path):
    make_images(tmp_path / "album", 5)
    folder = tmp_path / "out"
    folder.mkdir()
    results = folder / "results.jsonl"
    server.default = Reply("slow " * 10, chunk_delay=0.05)
    proc = _start(["ask", "--each", tmp_path / "album", "caption", "-o", results, "-j", "1",
                   "--base-url", server.base_url], clean_env)
    _wait_for_lines(results, 2)
    results.unlink()
    folder.rmdir()
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 9, stderr
    assert b"mmcli: error:" in stderr and b"results in" not in stderr
    assert b"printed on standard output" in stderr  # where the CLI put them (the Python API says its loop)
    shown = [json.loads(line) for line in stdout.splitlines()]
    assert len(shown) == 5 and all(r["answer"] == "slow " * 10 for r in shown)


def test_full_disk_during_export_removes_the_half_export(mmcli, tmp_path, small_disk):
    make_images(tmp_path / "album", 8)
    export = small_disk / "requests.jsonl"
    fill(small_disk, 20_000)
    run = mmcli("ask", "--each", tmp_path / "album", "caption", "--export", "openai-batch", export, *MODEL)
    assert_clean_error(run, 9, "export")
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]


def test_export_beside_existing_files_is_refused_up_front(mmcli, tmp_path):
    make_images(tmp_path / "album", 3)
    export = tmp_path / "requests.jsonl"
    second = tmp_path / "requests-2.jsonl"
    second.write_text("mine\n")
    run = mmcli("ask", "--each", tmp_path / "album", "caption", "--export", "openai-batch", export,
                "--batch-max-mb", "1", *MODEL)
    assert_clean_error(run, 2, "requests-2.jsonl")
    assert second.read_text() == "mine\n" and not export.exists()
    second.unlink()

    export.write_text("mine too\n")
    run = mmcli("ask", "--each", tmp_path / "album", "caption", "--export", "openai-batch", export, *MODEL)
    assert_clean_error(run, 2, "requests.jsonl")
    assert not (tmp_path / "requests.manifest.json").exists()  # nothing blocks the retry
    export.unlink()
    run = mmcli("ask", "--each", tmp_path / "album", "caption", "--export", "openai-batch", export, *MODEL)
    assert run.code == 0, run.stderr

    missing = tmp_path / "nowhere" / "requests.jsonl"
    run = mmcli("ask", "--each", tmp_path / "album", "caption", "--export", "openai-batch", missing, *MODEL)
    assert_clean_error(run, 2, "nowhere")


def test_export_naming_an_input_is_refused(mmcli, tmp_path):
    photos = make_images(tmp_path / "album", 2)
    before = photos[0].read_bytes()
    run = mmcli("ask", "--each", tmp_path / "album", "caption", "--export", "openai-batch", photos[0], *MODEL)
    assert_clean_error(run, 2)
    assert photos[0].read_bytes() == before


@pytest.fixture(scope="module")
def big_album(tmp_path_factory) -> Path:
    """Eight 4500x3000 noise JPEGs, slow to decode; made once for the module (the runs only read them)."""
    import numpy as np
    from PIL import Image

    album = tmp_path_factory.mktemp("big")
    noise = (np.random.default_rng(1).random((3000, 4500, 3)) * 255).astype("uint8")
    for n in range(8):
        Image.fromarray(np.roll(noise, n, axis=1)).save(album / f"p{n}.jpg", quality=90)
    return album


@pytest.mark.parametrize("mode", ["export", "each"])
def test_ctrl_c_twice_over_large_photos_is_exit_130(clean_env, tmp_path, server, mode, big_album):
    """Workers inside the JPEG decoder when the process leaves must not abort it (SIGABRT)."""
    album = big_album
    before = {path.name: path.stat().st_mtime_ns for path in album.iterdir()}
    for attempt in range(3):
        export = tmp_path / f"e{attempt}.jsonl"
        errors = tmp_path / f"err{attempt}.txt"
        where = (["--export", "openai-batch", str(export), *MODEL] if mode == "export"
                 else ["-o", str(export), "--base-url", server.base_url])
        with open(errors, "wb") as err:
            proc = subprocess.Popen([sys.executable, "-m", "mmcli", "ask", "--each", str(album), "caption",
                                     *where, "-j", "2"],
                                    cwd=Path(__file__).parent.parent, env=clean_env, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=err)
            deadline = time.monotonic() + 120
            while b"] done:" not in errors.read_bytes() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(0.1 * attempt)  # the next photos are being decoded now
            proc.send_signal(2)
            time.sleep(0.2)
            if proc.poll() is None:
                proc.send_signal(2)
            proc.wait(timeout=60)
        assert proc.returncode == 130, errors.read_text()
        assert "terminate called" not in errors.read_text()
        if mode == "export":
            assert not export.exists()  # a half export is removed
        else:
            assert all(r["answer"] == "ok" for r in lines(export))  # whole lines only
    assert {path.name: path.stat().st_mtime_ns for path in album.iterdir()} == before  # the shared album is as made


def test_collect_with_malformed_output_lines_or_manifest(mmcli, server, tmp_path):
    export, output = _exported(mmcli, server, tmp_path)
    good = output.read_text().splitlines()
    bad_outputs = ['{"custom_id": "x", "response": "200 OK"}',
                   '{"custom_id": "x", "response": {"status_code": 500, "body": "oops"}}',
                   '{"custom_id": "x", "response": {"status_code": 200, "body": ["not", "a", "reply"]}}',
                   '{"custom_id": "x", "error": "gone", "response": null}']
    for bad in bad_outputs:
        broken = tmp_path / "broken.jsonl"
        broken.write_text("\n".join(good + [bad.replace('"x"', json.dumps(json.loads(good[0])["custom_id"]))]) + "\n")
        run = mmcli("batch", "collect", export, broken)
        assert run.code in (0, 5, 8), (bad, run.stderr)  # a line that is no answer: exit 5, the rest collected
        assert "Traceback" not in run.output and "internal error" not in run.output, (bad, run.stderr)
    manifest_file = tmp_path / "requests.manifest.json"
    manifest = json.loads(manifest_file.read_text())
    jid = next(iter(manifest["jobs"]))
    job = manifest["jobs"][jid]
    for damage in ([], {"jobs": []}, dict(manifest, jobs={jid: "x"}), dict(manifest, model=None),
                   dict(manifest, jobs={jid: dict(job, requests=[])}),
                   dict(manifest, jobs={jid: dict(job, requests={k: {"label": "x"} for k in job["requests"]})})):
        manifest_file.write_text(json.dumps(damage))
        run = mmcli("batch", "collect", export, output)
        assert_clean_error(run, 2, "manifest")


def test_standard_output_on_a_full_disk_is_exit_9(tmp_path, clean_env, server):
    make_images(tmp_path / "album", 3)
    with open("/dev/full", "wb") as full:
        proc = subprocess.run([sys.executable, "-m", "mmcli", "ask", "--each", str(tmp_path / "album"), "caption",
                               "--base-url", server.base_url], cwd=Path(__file__).parent.parent, env=clean_env,
                              stdout=full, stderr=subprocess.PIPE, timeout=60)
    stderr = proc.stderr.decode()
    assert proc.returncode == 9, stderr
    assert "3 done" in stderr and "3 line(s) could be written nowhere" in stderr and "Traceback" not in stderr


def _latin1_album(tmp_path: Path) -> Path:
    album = tmp_path / "album"
    album.mkdir()
    Image.new("RGB", (80, 60), (1, 90, 160)).save(os.fsdecode(bytes(album) + b"/caf\xe9.png"))  # not UTF-8
    return album


@pytest.mark.real_process
def test_a_file_name_that_is_not_utf8_is_a_line_on_standard_output(mmcli, server, tmp_path):
    # Standard output as a C or POSIX locale opens it (surrogateescape): the name's own bytes can be written.
    run = mmcli("ask", "--each", _latin1_album(tmp_path), "caption", "--base-url", server.base_url,
                env={"PYTHONIOENCODING": "utf-8:surrogateescape"})
    assert run.code == 0, run.stderr
    assert json.loads(run.stdout)["answer"] == "ok"


def test_a_file_name_that_is_not_utf8_is_resumed_from_the_results_file(mmcli, server, tmp_path):
    album, results = _latin1_album(tmp_path), tmp_path / "results.jsonl"
    first = mmcli("ask", "--each", album, "caption", "-o", results, "--base-url", server.base_url)
    again = mmcli("ask", "--each", album, "caption", "-o", results, "--base-url", server.base_url)
    assert first.code == 0 and again.code == 0, again.stderr
    assert "0 done, 0 failed, 1 already done" in again.stderr and len(server.chat_requests()) == 1
    assert b"caf\xe9.png" in results.read_bytes()  # the name's own bytes, as the folder holds it
