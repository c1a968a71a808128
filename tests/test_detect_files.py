"""Output files: atomic, never clobbered without force, never an input; bad output directories refused."""

from __future__ import annotations

import os
import stat

import pytest

from mmcli.errors import ExitCode
from mmcli.errors import OutputError
from mmcli.files import check_output_dir, check_target, make_output_dir, write_atomic


def _leftovers(directory):
    return [p.name for p in directory.iterdir() if p.name.endswith(".tmp")]


def test_write_atomic_creates_the_file_with_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        path = write_atomic(tmp_path / "a.png", b"data")
    finally:
        os.umask(old)
    assert path.read_bytes() == b"data"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert _leftovers(tmp_path) == []


def test_existing_file_is_kept_without_force_and_replaced_with_it(tmp_path):
    path = tmp_path / "a.png"
    path.write_bytes(b"old")
    with pytest.raises(OutputError) as info:
        write_atomic(path, b"new")
    assert "exists" in info.value.message() and "--force" in info.value.hint
    assert info.value.exit_code == ExitCode.USAGE
    assert path.read_bytes() == b"old"
    assert _leftovers(tmp_path) == []
    write_atomic(path, b"new", force=True)
    assert path.read_bytes() == b"new"
    assert _leftovers(tmp_path) == []


def test_check_target_refuses_inputs_even_with_force(tmp_path):
    source = tmp_path / "photo.png"
    source.write_bytes(b"input")
    with pytest.raises(OutputError, match="input"):
        check_target(tmp_path / "." / "photo.png", force=True, inputs=[source])
    with pytest.raises(OutputError, match="exists"):
        check_target(source, force=False)
    check_target(tmp_path / "new.png", force=False, inputs=[source])  # a fresh name is fine


def test_check_target_refuses_a_directory(tmp_path):
    (tmp_path / "x.png").mkdir()
    with pytest.raises(OutputError, match="directory"):
        check_target(tmp_path / "x.png", force=True)


def test_output_dir_that_is_a_file(tmp_path):
    blocker = tmp_path / "out"
    blocker.write_text("not a directory")
    with pytest.raises(OutputError) as info:
        check_output_dir(blocker)
    assert info.value.message() == f"output directory is a file ({blocker})"
    with pytest.raises(OutputError) as info:
        check_output_dir(blocker / "deeper" / "still")
    assert "a part of the path is a file" in info.value.message()
    assert blocker.read_text() == "not a directory"


def test_output_dir_is_checked_without_being_created_then_made_on_demand(tmp_path):
    target = tmp_path / "a" / "b"
    check_output_dir(target)
    assert list(tmp_path.iterdir()) == []  # nothing created, and the write probe leaves nothing behind
    assert make_output_dir(target).is_dir()
    check_output_dir(target)
    assert list(target.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere; tests/test_detect_outputs.py covers it")
def test_read_only_output_dir(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        with pytest.raises(OutputError, match="not writable"):
            check_output_dir(locked)
        with pytest.raises(OutputError, match=f"cannot create output directory.*{locked} is not writable"):
            check_output_dir(locked / "new" / "deeper")
    finally:
        locked.chmod(0o755)
