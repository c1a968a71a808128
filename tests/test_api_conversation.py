"""client.conversation(): follow-ups from Python, logged like the CLI's unless log=False."""

from __future__ import annotations

import json
import sqlite3

import pytest

import mmcli
from tests.support import media
from tests.support.scripted_server import Reply


pytestmark = pytest.mark.usefixtures("clean_environ")


def test_a_conversation_resends_its_turns_and_continues_from_the_history(server, tmp_path):
    photo = media.make_small_png(tmp_path / "in")
    server.script(Reply("one"), Reply("two"), Reply("three"))
    client = mmcli.Client(base_url=server.base_url)
    talk = client.conversation(system="Be brief.")
    talk.attach(photo)
    assert talk.ask("what is it?").text == "one"
    photo.unlink()
    assert talk.ask("and the colour?").text == "two"
    again = client.conversation(cid=talk.cid)  # from the history, the file gone
    assert [e.prompt for e in again.history] == ["what is it?", "and the colour?"]
    assert again.ask("sure?").text == "three"
    first, second, third = (r.json["messages"] for r in server.chat_requests())
    assert first[0] == {"role": "system", "content": "Be brief."}
    assert json.dumps(second[:2]) == json.dumps(first)
    assert json.dumps(third[:4]) == json.dumps(second) and third[4]["content"] == "two"
    con = sqlite3.connect(tmp_path / "state" / "mmcli" / "history.db")
    assert con.execute("SELECT COUNT(DISTINCT cid), COUNT(*) FROM turns").fetchone() == (1, 3)


def test_log_false_keeps_nothing(server, tmp_path):
    server.script(Reply("quiet"), Reply("quieter"))
    talk = mmcli.Client(base_url=server.base_url).conversation(log=False)
    talk.ask("one?")
    talk.ask("two?")
    assert len(server.chat_requests()[1].json["messages"]) == 3
    assert not (tmp_path / "state" / "mmcli" / "history.db").exists()
    mmcli.Client(base_url=server.base_url, log=False)  # the client takes it too
    with pytest.raises(mmcli.UsageError):
        mmcli.Client(base_url=server.base_url).conversation(cid="nope")
