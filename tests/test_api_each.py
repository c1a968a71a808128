"""Client.each and Client.batch against the scripted endpoint: a results line per job as it finishes, a bad
file that fails alone, an abandoned or interrupted run that keeps what was written and closes its file, resume,
and bad arguments refused before anything is sent."""

from __future__ import annotations

import _thread
import gc
import os
import threading

import pytest
from PIL import Image

import mmcli
from tests.support.scripted_server import Hang, Reply
from tests.test_batch_each import lines

pytestmark = pytest.mark.usefixtures("clean_environ")


@pytest.fixture
def album(tmp_path):
    folder = tmp_path / "album"
    folder.mkdir()
    for n, colour in enumerate(((200, 0, 0), (0, 200, 0), (0, 0, 200))):
        Image.new("RGB", (96, 64), colour).save(folder / f"p{n}.png")
    return folder


@pytest.fixture
def client(server):
    server.default = Reply("a square")
    return mmcli.Client(base_url=server.base_url, model="tiny", family="qwen2-vl")


def _open_files() -> set[str]:
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            found.add(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            pass
    return found


def _chats(server) -> int:
    return sum(1 for r in server.requests if r.method == "POST" and r.path.endswith("/chat/completions"))


def test_each_yields_one_results_line_per_file_and_writes_them(client, album, tmp_path):
    out = tmp_path / "results.jsonl"
    jobs = client.each(album, "caption", output=out, concurrency=2)
    items = list(jobs)
    assert sorted(os.path.basename(i["sources"][0]) for i in items) == ["p0.png", "p1.png", "p2.png"]
    assert all(i["answer"] == "a square" and i["command"] == "ask" and "error" not in i for i in items)
    assert sorted(map(str, lines(out)), key=str) == sorted(map(str, items), key=str)  # the same lines, as written
    assert jobs.tally.done == 3 and jobs.failed == 0
    jobs.check()  # nothing failed: no error


def test_a_failing_file_in_the_middle_fails_alone(client, server, album):
    (album / "p1.png").write_bytes(b"not an image at all")
    jobs = client.each(album, "caption", concurrency=1)
    items = {os.path.basename(i["sources"][0]): i for i in jobs}
    assert items["p0.png"]["answer"] == items["p2.png"]["answer"] == "a square"
    error = items["p1.png"]["error"]
    assert error["exit_code"] == 3 and error["message"] and "answer" not in items["p1.png"]
    assert _chats(server) == 2  # the bad file was never sent
    assert jobs.failed == 1
    with pytest.raises(mmcli.JobsFailed) as failed:
        jobs.check()
    assert failed.value.exit_code == 8 and failed.value.hint


def test_an_abandoned_iterator_keeps_its_lines_closes_its_file_and_resumes(client, server, album, tmp_path):
    out = tmp_path / "results.jsonl"
    jobs = client.each(album, "caption", output=out, concurrency=1)
    for first in jobs:
        break
    del jobs
    gc.collect()
    assert str(out) not in _open_files()  # closed (and unlocked: the next run may open it)
    kept = lines(out)
    assert first in kept and 1 <= len(kept) < 3
    again = client.each(album, "caption", output=out, concurrency=1)
    rest = list(again)
    assert len(rest) == 3 - len(kept) and again.tally.already_done == len(kept)
    assert sorted(line["id"] for line in lines(out)) == sorted({line["id"] for line in lines(out)})
    assert len(lines(out)) == 3


def test_ctrl_c_while_waiting_keeps_what_was_written(client, server, album, tmp_path):
    out = tmp_path / "results.jsonl"
    server.script(Reply("first"), Hang(30), Hang(30))
    jobs = client.each(album, "caption", output=out, concurrency=1)
    assert threading.current_thread() is threading.main_thread()  # where Ctrl-C lands
    with pytest.raises(KeyboardInterrupt):
        for item in jobs:
            assert item["answer"] == "first"
            threading.Timer(0.3, _thread.interrupt_main).start()  # Ctrl-C while the next job hangs
    assert str(out) not in _open_files()
    [kept] = lines(out)
    assert kept["answer"] == "first"
    # The server answers again: the Hang no job took is dropped (left queued, it held the rerun's first request
    # for its 30 s until a retry), and the rerun does only the two jobs left.
    assert len(server.drop_script()) == 1
    server.default = Reply("later")
    rest = list(client.each(album, "caption", output=out, concurrency=1))
    assert [r["answer"] for r in rest] == ["later", "later"]
    assert len(lines(out)) == 3


def test_batch_runs_tasks_of_several_commands_with_their_ids(client, server, album):
    server.default = Reply('<|object_ref_start|>sq<|object_ref_end|><|box_start|>(100,200),(500,700)<|box_end|>')
    tasks = [{"id": "cap", "command": "ask", "inputs": [str(album / "p0.png")], "prompt": "caption", "max-tokens": 20},
             {"id": "box", "command": "detect", "inputs": str(album / "p1.png"), "prompt": "the square"}]
    jobs = client.batch(tasks, concurrency=1)
    items = {i["id"]: i for i in jobs}
    assert items["cap"]["command"] == "ask" and items["cap"]["answer"]
    assert items["box"]["inputs"][0]["detections"][0]["bbox"] == [10, 13, 48, 45]  # 0..1000 of 96x64, whole pixels
    sent = [r.json for r in server.requests if r.method == "POST"]
    assert any(body.get("max_tokens") == 20 for body in sent)


@pytest.mark.parametrize("call, fragment", [
    (lambda c, a, t: c.each(a, "caption", bogus=1), "unknown option"),
    (lambda c, a, t: c.each(a, "caption", task="summarise"), "invalid value for task"),
    (lambda c, a, t: c.each(a, "  "), "question is empty"),
    (lambda c, a, t: c.each(a, "caption", concurrency=0), "concurrency"),
    (lambda c, a, t: c.each(a, "caption", output=t), "directory"),
    (lambda c, a, t: c.each(a, "caption", output=a / "p0.png"), "refusing to write into an input"),
    (lambda c, a, t: c.each([Image.new("RGB", (8, 8))], "caption"), "paths and URLs"),
    (lambda c, a, t: c.each(t / "none-here", "caption"), "no inputs"),
    (lambda c, a, t: c.batch("tasks.jsonl"), "list of dicts"),
    (lambda c, a, t: c.batch([]), "no task"),
    (lambda c, a, t: c.batch([{"command": "ask", "inputs": [], "prompt": "hi"}, "no"]), "task 2: not an object"),
    (lambda c, a, t: c.batch([{"command": "paint", "prompt": "x"}]), "task 1: 'command' must be one of"),
    (lambda c, a, t: c.batch([{"command": "ask", "inputs": ["a.png"]}]), "task 1: the task has no prompt"),
    (lambda c, a, t: c.batch([{"command": "ask", "prompt": "x", "temperature": -1}]), "task 1: invalid value"),
    (lambda c, a, t: c.batch([{"id": "a", "command": "ask", "prompt": "x"}] * 2), "task 2: id 'a'"),
    (lambda c, a, t: c.batch([{"command": "ask", "prompt": "x", 5: 1}]), "task 1: unknown option"),
])
def test_bad_arguments_are_one_usage_error_and_nothing_is_sent(client, server, album, tmp_path, call, fragment):
    (tmp_path / "none-here").mkdir(exist_ok=True)  # a folder with no media in it
    before = set(os.listdir(tmp_path))
    with pytest.raises(mmcli.UsageError) as refused:
        call(client, album, tmp_path)
    assert fragment in refused.value.message() and refused.value.exit_code == 2 and refused.value.hint
    assert _chats(server) == 0 and set(os.listdir(tmp_path)) == before


@pytest.mark.parametrize(("keywords", "fragment"), [
    ({"engine": "spark"}, "invalid value for engine"),
    ({"ray_address": "head:6379"}, 'ray_address works with engine="ray"'),
    ({"engine": "ray", "ray_address": ""}, "invalid value for ray_address"),
    ({"engine": "ray", "output": "r.parquet"}, "writes JSON lines, not Parquet")])
def test_a_bad_engine_choice_is_refused_before_anything_is_sent(client, album, server, keywords, fragment):
    with pytest.raises(mmcli.UsageError, match=fragment) as caught:
        client.each(album, "caption", **keywords)
    assert caught.value.hint and _chats(server) == 0
    with pytest.raises(mmcli.UsageError, match=fragment):
        client.batch([{"command": "ask", "inputs": [str(album / "p0.png")], "prompt": "caption"}], **keywords)


def test_output_naming_another_programs_json_is_refused_in_the_apis_words(client, server, album, tmp_path):
    settings = tmp_path / "settings.json"
    settings.write_bytes(b'{"theme": "dark"}\n')
    with pytest.raises(mmcli.UsageError, match="not a results file") as refused:
        list(client.each(album, "caption", output=settings))
    assert "output=" in refused.value.hint and "-o" not in refused.value.hint
    assert settings.read_bytes() == b'{"theme": "dark"}\n' and _chats(server) == 0


def test_each_and_batch_sample_an_asked_video_as_ask_does(client, server, tmp_path):
    from tests.test_video_fixtures import write_clip

    clip = write_clip(tmp_path / "clip.mp4", frames=100, fps=25)
    client.ask(clip, "what?", frames=6)
    list(client.each([clip], "what?", frames=6))
    list(client.batch([{"command": "ask", "inputs": [str(clip)], "prompt": "what?", "frames": 6}]))
    sent = [r.json["messages"][-1]["content"][0] for r in server.chat_requests()]
    assert len(sent) == 3 and sent[1] == sent[0] and sent[2] == sent[0]  # the same six frames, not the default
