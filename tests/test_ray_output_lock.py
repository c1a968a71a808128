"""The Parquet output folder's lock, on its own (no Ray needed): refused runs leave the folder as it was."""

from __future__ import annotations

import fcntl
import os

import pytest

from mmcli.batch import ray_output
from mmcli.errors import OutputError, UsageError


def test_a_run_refused_by_the_lock_leaves_the_folder_the_other_run_made(tmp_path, monkeypatch):
    """Two runs start at once into a missing folder: the other run makes and locks it between this run's look and
    its lock. This run is refused and must not remove the folder the other run is about to write into."""
    location = str(tmp_path / "out")
    real_makedirs = os.makedirs
    held = []

    def other_run_wins(path, *args, **kwargs):
        # the interleaving two processes can have, made certain here: the other run's makedirs and flock
        real_makedirs(path, *args, **kwargs)
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.append(fd)

    monkeypatch.setattr(ray_output.os, "makedirs", other_run_wins)
    with pytest.raises(OutputError, match="another run is writing"):
        with ray_output.folder_locked(location):
            pass
    monkeypatch.undo()
    assert os.path.isdir(location)
    os.close(held[0])


def test_an_empty_folder_made_by_a_run_is_removed_and_one_there_before_is_kept(tmp_path):
    made, there = tmp_path / "made", tmp_path / "there"
    there.mkdir()
    for location in (made, there):
        with ray_output.folder_locked(str(location)):
            assert location.is_dir()
    assert not made.exists() and there.is_dir()


def test_odd_output_paths_are_clean_errors(tmp_path):
    """A file, a dangling symlink: one clear error each; a symlink to a folder
    is that folder."""
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="must be a folder"):
        with ray_output.folder_locked(str(tmp_path / "file")):
            pass
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(OutputError, match="cannot make the Parquet folder"):
        with ray_output.folder_locked(str(tmp_path / "dangling")):
            pass
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with ray_output.folder_locked(str(tmp_path / "link")):
        (tmp_path / "real" / "part.parquet").write_text("x")
    assert (tmp_path / "real" / "part.parquet").exists()
