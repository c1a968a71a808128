"""Leaving a Client.each / Client.batch loop stops the run as leaving a generator's loop would: no new job is
sent, the jobs in flight finish and their lines are written (and given by the next loop over the same Jobs);
`with` closes the run; what the run itself raises reaches the caller."""

from __future__ import annotations

import threading
import time

import pytest
from PIL import Image

import mmcli
from tests.support.scripted_server import Reply
from tests.test_api_each import _chats, _open_files
from tests.test_batch_each import lines

pytestmark = pytest.mark.usefixtures("clean_environ")


@pytest.fixture
def album(tmp_path):
    folder = tmp_path / "album"
    folder.mkdir()
    for n in range(6):
        Image.new("RGB", (96, 64), (n * 40, 0, 0)).save(folder / f"p{n}.png")
    return folder


@pytest.fixture
def client(server):
    server.default = Reply("a square")
    return mmcli.Client(base_url=server.base_url, model="tiny", family="qwen2-vl", log=False)


def _settle(server, out, written: int) -> None:
    """Wait until `written` lines are in the file, then give a run that did not stop the time to send more."""
    deadline = time.monotonic() + 30
    while len(lines(out)) < written and time.monotonic() < deadline:
        time.sleep(0.05)
    deadline = time.monotonic() + 1.5
    while _chats(server) <= written and time.monotonic() < deadline:
        time.sleep(0.05)


def test_break_sends_no_new_job_and_keeps_the_jobs_in_flight(client, server, album, tmp_path):
    out = tmp_path / "results.jsonl"
    jobs = client.each(album, "caption", output=out, concurrency=1)
    for first in jobs:
        break  # `jobs` is still referenced: no garbage collection closes anything
    _settle(server, out, 2)
    assert _chats(server) == 2  # the one read and the one in flight when the loop was left; never the other 4
    kept = lines(out)
    assert kept[0] == first and len(kept) == 2  # the job in flight finished and its line is written
    rest = list(jobs)  # the next loop goes on where the first one left off
    assert rest[0] == kept[1] and len(rest) == 5
    assert len(lines(out)) == 6 and len({line["id"] for line in lines(out)}) == 6
    assert jobs.tally.done == 6
    assert str(out) not in _open_files()


def test_break_with_several_at_once_runs_at_most_that_many_more(client, server, album, tmp_path):
    out = tmp_path / "results.jsonl"
    jobs = client.batch([{"command": "ask", "inputs": [str(path)], "prompt": "caption"}
                         for path in sorted(album.iterdir())], output=out, concurrency=2)
    for _ in jobs:
        break
    _settle(server, out, 3)
    assert _chats(server) == 3 and len(lines(out)) == 3
    jobs.close()
    assert str(out) not in _open_files()


def test_with_block_closes_the_run_and_its_file(client, server, album, tmp_path):
    out = tmp_path / "results.jsonl"
    with client.each(album, "caption", output=out, concurrency=1) as jobs:
        for first in jobs:
            break
    assert str(out) not in _open_files()  # closed (and unlocked) at the end of the block
    sent = _chats(server)
    time.sleep(0.5)
    assert _chats(server) == sent <= 2 and first in lines(out)
    assert list(jobs) == []  # a closed run gives nothing more
    again = client.each(album, "caption", output=out, concurrency=1)
    rest = list(again)
    assert again.tally.already_done == 6 - len(rest) and len(lines(out)) == 6


class _NoThreads:
    """threading as it is when the system refuses new threads: the one thing faked here (it cannot be made to
    happen reliably on a shared machine); everything else is the real run against the real scripted server."""

    def __getattr__(self, name):
        return getattr(threading, name)

    class Thread(threading.Thread):
        def start(self):
            raise RuntimeError("can't start new thread")


def test_a_run_that_cannot_start_its_workers_raises_to_the_caller(client, server, album, monkeypatch):
    import mmcli.batch.engine as engine_module

    monkeypatch.setattr(engine_module, "threading", _NoThreads())
    jobs = client.each(album, "caption", concurrency=2)
    with pytest.raises(RuntimeError, match="can't start new thread"):
        list(jobs)
    assert _chats(server) == 0


def test_a_results_file_removed_during_the_run_says_the_lines_were_given_to_the_loop(client, album, tmp_path):
    out = tmp_path / "results.jsonl"
    jobs = client.each(album, "caption", output=out, concurrency=1)
    items = []
    with pytest.raises(mmcli.OutputNotWritten) as lost:
        for item in jobs:
            items.append(item)
            if out.exists():
                out.unlink()  # the file (and the lines in it) gone while the run goes on
    assert len(items) == 6  # every line reached the loop
    assert lost.value.exit_code == 9 and "removed" in lost.value.message()
    assert "loop" in lost.value.hint and "standard output" not in lost.value.hint and "-o" not in lost.value.hint
    assert "output=" in lost.value.hint


def test_a_results_file_another_run_holds_is_refused_in_the_api_s_words(client, album, tmp_path):
    out = tmp_path / "results.jsonl"
    first = client.each(album, "caption", output=out, concurrency=1)
    next(first)  # the first run holds the file
    with pytest.raises(mmcli.UsageError) as refused:
        list(client.each(album, "caption", output=out, concurrency=1))
    assert "another run" in refused.value.message() and "output=" in refused.value.hint
    assert "-o" not in refused.value.hint
    first.close()
