"""Ray's own lines kept aside while it starts, on their own (no Ray needed): odd machines, Ctrl-C."""

from __future__ import annotations

import os
import tempfile

import pytest

from mmcli.batch.ray_start import ray_lines_kept


def test_without_a_writable_temporary_folder_ray_starts_with_its_lines_dropped(capfd, monkeypatch, tmp_path):
    """No temporary folder to keep Ray's lines in (TMPDIR and /tmp unwritable): Ray's lines still stay off the
    terminal, and fd 2 is the terminal's again after (it was an internal FileNotFoundError)."""
    monkeypatch.delenv("RAY_BACKEND_LOG_LEVEL", raising=False)
    said: list[str] = []
    found, tempfile.tempdir = tempfile.tempdir, str(tmp_path / "missing")  # what gettempdir found: nowhere
    try:  # only around the start: pytest's own capture needs a temporary folder
        with ray_lines_kept(said):
            os.write(2, b"a line of Ray's\n")
    finally:
        tempfile.tempdir = found
    os.write(2, b"after\n")
    assert said == [] and capfd.readouterr().err == "after\n"
    assert "RAY_BACKEND_LOG_LEVEL" not in os.environ


def test_a_ctrl_c_while_ray_starts_gives_the_terminal_and_the_environment_back(capfd, monkeypatch):
    monkeypatch.delenv("RAY_BACKEND_LOG_LEVEL", raising=False)
    said: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        with ray_lines_kept(said):
            os.write(2, b"starting\n")
            raise KeyboardInterrupt
    os.write(2, b"mmcli: interrupted\n")
    assert said == ["starting"] and capfd.readouterr().err == "mmcli: interrupted\n"
    assert "RAY_BACKEND_LOG_LEVEL" not in os.environ
