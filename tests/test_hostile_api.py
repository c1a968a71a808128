"""The Python API with odd arguments: clean mmcli errors, never a raw TypeError or ValueError."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support import media
from tests.support.scripted_server import Reply


@pytest.fixture
def client(server, clean_environ):
    import mmcli

    return mmcli.Client(base_url=server.base_url)


@pytest.mark.parametrize("call, says", [
    (lambda c: c.ask(np.zeros((0, 0, 3), np.uint8), "q"), "empty picture"),
    (lambda c: c.ask(123, "q"), "type int"),
    (lambda c: c.ask({"a": 1}, "q"), "type dict"),
    (lambda c: c.video(None), "type NoneType"),
    (lambda c: c.transcribe("x.wav", bogus=1), "bogus"),
    (lambda c: c.embed(texts=["a"], batch_size="x"), "batch_size"),
])
def test_odd_arguments_are_usage_errors(client, server, call, says):
    import mmcli

    with pytest.raises(mmcli.UsageError) as raised:
        call(client)
    assert says in raised.value.message()
    assert server.chat_requests() == []


def test_attach_checks_at_once_and_attachments_can_be_dropped(client, server, tmp_path):
    import mmcli

    photo = media.make_small_png(tmp_path / "in")
    talk = client.conversation(log=False)
    with pytest.raises(mmcli.MediaError) as raised:
        talk.attach(str(tmp_path / "missing.png"))
    assert "no such file" in raised.value.message()
    assert talk.attached == []
    talk.attach(photo, photo)
    talk.drop(2)
    assert talk.attached == [photo]
    with pytest.raises(mmcli.UsageError, match="no such attachment"):
        talk.drop(5)
    talk.drop()
    server.script(Reply("no media"))
    assert talk.ask("q").text == "no media"
    assert server.chat_requests()[0].json["messages"] == [{"role": "user", "content": "q"}]
