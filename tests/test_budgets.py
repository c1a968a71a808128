"""Budgets have ceilings and cannot contradict each other: refused before anything is read at full size or sent."""

from __future__ import annotations

import json

import pytest

from tests.conftest import assert_clean_error
from tests.support import media


@pytest.fixture
def photo(tmp_path):
    return media.make_small_png(tmp_path)


@pytest.mark.parametrize(("args", "fragment"), [
    (("--max-pixels", "999999999", "--min-pixels", "999999999"), "above the most a qwen2.5-vl model takes"),
    (("--max-tokens-per-image", "20000"), "--max-tokens-per-image is above the most"),
    (("--max-pixels", "1003520", "--max-tokens-per-image", "100"), "set the same budget"),
    (("--family", "generic", "--max-pixels", "20000000"), "above the most a generic model takes"),
], ids=["min-and-max", "tokens", "both-budgets", "generic"])
def test_budgets_over_the_ceiling_or_in_conflict_are_refused(mmcli, photo, args, fragment):
    run = mmcli("ask", photo, "q", "--dry-run", *(args if "--family" in args else ("--family", "qwen2.5-vl", *args)))
    assert_clean_error(run, 2, fragment)


def test_the_ceiling_itself_is_allowed(mmcli, photo):
    run = mmcli("ask", photo, "q", "--dry-run", "--json", "--family", "qwen2.5-vl", "--max-tokens-per-image", "16384")
    assert run.code == 0, run.stderr
    assert json.loads(run.stdout)["items"][0]["visual_tokens"] <= 16384
