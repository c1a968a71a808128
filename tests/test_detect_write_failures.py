"""detect's files after the answers are in: a full disk keeps the results and exits 9; -o DIR is made only
when a file goes into it; --force removes what an earlier run left for the same image."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import TWO_BOXES, Run, assert_clean_error
from tests.support.scripted_server import Reply, Status

ONE_BOX = '[{"bbox_2d": [100, 200, 300, 400], "label": "dog"}]'
ROOT = Path(__file__).parent.parent


@dataclass
class FullDisk:
    """A directory whose files cannot grow: a full tmpfs, or any directory under RLIMIT_FSIZE 0."""

    directory: Path
    launcher: list[str]  # how to start Python for mmcli
    reason: str  # what the failed write reports


def _fill(directory: Path) -> None:
    # Write until the filesystem refuses: afterwards an empty file can still be created, data cannot.
    with open(directory / "filler", "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC


# The kernel refuses to grow a regular file past RLIMIT_FSIZE (EFBIG; Python ignores SIGXFSZ). Set in the
# child itself, before mmcli runs, rather than in a preexec_fn, which is unsafe next to the server's threads.
NO_FILE_GROWTH = [sys.executable, "-c", "import resource, runpy; resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0)); "
                  "runpy.run_module('mmcli', run_name='__main__', alter_sys=True)"]


@pytest.fixture(params=["tmpfs", "rlimit"])
def full_disk(request, tmp_path):
    """A really full disk (a 64 kB tmpfs, when mounting is allowed here) or a real EFBIG limit."""
    directory = tmp_path / "disk"
    directory.mkdir()
    if request.param == "rlimit":
        yield FullDisk(directory, NO_FILE_GROWTH, "File too large")
        return
    mounted = os.geteuid() == 0 and shutil.which("mount") and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(directory)], capture_output=True).returncode == 0
    if not mounted:
        pytest.skip("a tmpfs cannot be mounted here; the rlimit case covers the failure")
    try:
        _fill(directory)
        yield FullDisk(directory, [sys.executable, "-m", "mmcli"], "No space left on device")
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=False)


def detect_on(disk: FullDisk, server, clean_env, *args: str) -> Run:
    """Run detect with the disk's limits (a file-size limit applies to the mmcli process only)."""
    argv = [*disk.launcher, "detect", *map(str, args), "--base-url", server.base_url, "--max-pixels", "940800"]
    proc = subprocess.run(argv, capture_output=True, text=True, env=clean_env, timeout=60, cwd=ROOT, check=False)
    return Run(proc.returncode, proc.stdout, proc.stderr)


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name != "filler")


def test_full_disk_keeps_the_json_results_and_exits_9(server, clean_env, scene, full_disk):
    server.script(Reply(TWO_BOXES))
    run = detect_on(full_disk, server, clean_env, scene, "things", "--draw", "--crop", "-o", full_disk.directory,
                    "--json")
    assert_clean_error(run, 9, "could not write output file", "scene.boxes.png", "2 more", full_disk.reason)
    assert "the results above are complete" in run.stderr
    document = json.loads(run.stdout)
    [entry] = document["inputs"]
    assert [d["label"] for d in entry["detections"]] == ["dog", "cat"]
    failed = entry["files"]["not_written"]
    assert [Path(f["file"]).name for f in failed] == ["scene.boxes.png", "scene.crop-01-dog.png",
                                                      "scene.crop-02-cat.png"]
    assert {f["error"] for f in failed} == {full_disk.reason}
    assert "annotated" not in entry["files"] and entry["files"]["crops"] == []
    assert "could not write 3 output file(s)" in document["error"]
    assert run.stderr.count("mmcli: warning: could not write") == 3
    assert _leftovers(full_disk.directory) == []  # no temporary files, no half-written PNGs
    assert len(server.chat_requests()) == 1


def test_full_disk_keeps_the_tsv_lines_and_the_coco_file_failure_is_noted(server, clean_env, scene, full_disk):
    server.script(Reply(TWO_BOXES))
    run = detect_on(full_disk, server, clean_env, scene, "things", "--format", "coco", "-o", full_disk.directory)
    assert_clean_error(run, 9, "could not write output file", "coco.json", full_disk.reason)
    assert run.stdout.splitlines() == [f"{scene}\tdog\t200\t400\t600\t800", f"{scene}\tcat\t1000\t200\t1400\t1000"]
    assert f"could not write {full_disk.directory / 'coco.json'}" in run.stderr
    assert _leftovers(full_disk.directory) == []


def test_output_dir_is_not_created_when_the_run_fails_before_writing(mmcli, server, scene, tmp_path):
    target = tmp_path / "new" / "out"
    server.script(Status(400))
    run = mmcli("detect", scene, "things", "--base-url", server.base_url, "--draw", "-o", target)
    assert run.code == 4, run.stderr
    assert not (tmp_path / "new").exists()
    # Nothing found: nothing written, so still no directory.
    server.script(Reply("I see no such things."))
    run = mmcli("detect", scene, "things", "--base-url", server.base_url, "--draw", "-o", target)
    assert run.code == 0, run.stderr
    assert not (tmp_path / "new").exists()
    # The first file makes it (and its parents).
    server.script(Reply(ONE_BOX))
    run = mmcli("detect", scene, "things", "--base-url", server.base_url, "--draw", "-o", target)
    assert run.code == 0, run.stderr
    assert sorted(p.name for p in target.iterdir()) == ["scene.boxes.png"]


def test_an_output_dir_that_cannot_be_made_is_refused_without_creating_anything(mmcli, server, scene, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    run = mmcli("detect", scene, "things", "--base-url", server.base_url, "--crop", "-o", blocker / "a" / "b")
    assert_clean_error(run, 2, "cannot create output directory", "a part of the path is a file")
    assert server.requests == [] and blocker.read_text() == "a file"


def test_read_only_parent_is_refused_before_sending(server, scene, tmp_path, clean_env):
    setpriv = shutil.which("setpriv")
    if os.geteuid() == 0 and setpriv is None:
        pytest.skip("running as root without setpriv: a read-only directory cannot be simulated")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    argv = [sys.executable, "-m", "mmcli", "detect", str(scene), "things", "--base-url", server.base_url,
            "--draw", "-o", str(locked / "new" / "out")]
    if os.geteuid() == 0:  # root ignores permission bits unless it gives up CAP_DAC_OVERRIDE
        argv = [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--", *argv]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, env=clean_env, timeout=60, cwd=ROOT)
    finally:
        locked.chmod(0o755)
    assert_clean_error(Run(proc.returncode, proc.stdout, proc.stderr), 2, "cannot create output directory",
                       f"{locked} is not writable")
    assert list(locked.iterdir()) == []
    assert server.requests == []


def test_force_removes_this_images_files_from_an_earlier_run(mmcli, server, scene, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    other = out / "scene.crop-05-old.png"  # an input named like a crop of scene, where its crops go
    shutil.copy(scene, other)

    def run(answer: str, *args: str) -> Run:
        server.script(Reply(answer), Reply(TWO_BOXES))
        done = mmcli("detect", scene, other, "things", "--base-url", server.base_url, "--max-pixels", "940800",
                     "-o", out, *args)
        assert done.code == 0, done.stderr
        return done

    run(TWO_BOXES, "--draw", "--crop")
    mine = ["scene.boxes.png", "scene.crop-01-dog.png", "scene.crop-02-cat.png"]
    theirs = ["scene.crop-05-old.boxes.png", "scene.crop-05-old.crop-01-dog.png", "scene.crop-05-old.crop-02-cat.png"]
    assert sorted(p.name for p in out.iterdir()) == sorted(mine + theirs + [other.name])
    unrelated = out / "scene.crop-notes.png"  # not a crop name mmcli writes: never touched
    unrelated.write_bytes(b"mine")
    second = run(ONE_BOX, "--draw", "--crop", "--force")
    assert "removed 1 file(s) from an earlier run" in second.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(mine[:2] + theirs + [other.name, unrelated.name])
    third = run("nothing there", "--draw", "--crop", "--force")
    assert "removed 2 file(s) from an earlier run" in third.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(theirs + [other.name, unrelated.name])
    assert unrelated.read_bytes() == b"mine" and other.exists()


def test_force_without_crop_keeps_crops_of_an_earlier_run(mmcli, server, scene, tmp_path):
    out = tmp_path / "out"
    server.script(Reply(TWO_BOXES), Reply(ONE_BOX))
    args = ["things", "--base-url", server.base_url, "-o", out]
    assert mmcli("detect", scene, *args, "--crop").code == 0
    run = mmcli("detect", scene, *args, "--draw", "--force")
    assert run.code == 0, run.stderr
    assert sorted(p.name for p in out.iterdir()) == ["scene.boxes.png", "scene.crop-01-dog.png",
                                                     "scene.crop-02-cat.png"]
