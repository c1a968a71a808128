"""A Ctrl-C in the driver before any answer came: the plain interrupt (exit 130), not an internal error."""

from __future__ import annotations

import pytest

import mmcli
from mmcli.core.driver import TextOnly, drive
from mmcli.tasks.specs import TASKS, AskOptions
from tests.support import media


class CtrlCAsTheRequestGoes(TextOnly):
    """The moment a Ctrl-C lands as the first request is prepared (its photo being encoded): it cannot be timed
    from outside, so it is raised here, where the driver's own code would be running."""

    def begin(self, job, planned):
        raise KeyboardInterrupt


def test_ctrl_c_before_the_first_answer_is_the_interrupt_itself(server, clean_environ, tmp_path):
    photo = media.make_small_png(tmp_path)
    client = mmcli.Client(base_url=server.base_url)
    parsed = client._options("ask", {}, False)
    with pytest.raises(KeyboardInterrupt):  # ask's finish of no answer at all raised IndexError
        drive(TASKS["ask"], [photo], "what is it?", AskOptions(sampling=parsed.sampling), parsed.common,
              CtrlCAsTheRequestGoes())
    assert server.chat_requests() == []
