"""Sizes in messages about the request-size limit: one unit, and enough precision that different sizes differ."""

from __future__ import annotations

import re

import pytest

from mmcli.media.videoplan import size_pair
from tests.conftest import assert_clean_error
from tests.test_video_fixtures import write_clip


@pytest.mark.parametrize("first, second, shown", [
    (12_345, 10_000, ("12.3 kB", "10.0 kB")),
    (1_040_000, 1_010_000, ("1.04 MB", "1.01 MB")),
    (1_000_400, 1_000_000, ("1.0004 MB", "1.0000 MB")),
    (20_000_000, 5_300_000, ("20.0 MB", "5.3 MB")),
    (9_940, 9_910, ("9.94 kB", "9.91 kB")),
    (4_000, 4_000, ("4.0 kB", "4.0 kB")),
])
def test_size_pair(first, second, shown):
    assert size_pair(first, second) == shown


def test_a_tiny_request_limit_names_two_different_sizes(mmcli, server, tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", frames=50)
    run = mmcli("video", clip, "--max-request-mb", "0.01", "--base-url", server.base_url, "-m", "m")
    assert_clean_error(run, 2, "does not fit")
    taken, left = re.search(r"take ([\d.]+ [kM]B); ([\d.]+ [kM]B) are left", run.stderr).groups()
    assert taken != left and "0.0 MB" not in run.stderr
    assert server.chat_requests() == []
