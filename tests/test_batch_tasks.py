"""mmcli batch TASKS.jsonl and several servers, against real local HTTP servers."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from tests.conftest import assert_clean_error
from tests.support.scripted_server import Reply, ScriptedServer
from tests.test_batch_each import lines, make_images


def write_tasks(path: Path, *tasks) -> Path:
    path.write_text("".join((t if isinstance(t, str) else json.dumps(t)) + "\n" for t in tasks))
    return path


def test_mixed_tasks_run_and_bad_lines_are_named(mmcli, server, tmp_path):
    a, b, c = make_images(tmp_path / "img", 3)
    server.default = Reply('[{"bbox_2d": [1, 2, 30, 40], "label": "cat"}]')
    tasks = write_tasks(
        tmp_path / "tasks.jsonl",
        {"id": "first", "command": "ask", "inputs": [str(a)], "prompt": "caption", "max-tokens": 20},
        {"command": "detect", "inputs": [str(b)], "prompt": "the cat", "coords": "abs"},
        "this is not json",
        {"command": "ask", "inputs": [str(c)], "prompt": "x", "max-pixels": "lots"},
        {"command": "docqa", "inputs": [str(c)], "prompt": "what?", "model": "other"},
        {"command": "docqa", "inputs": [str(c)], "prompt": "what is written?", "pages-per-request": 2},
    )
    results = tmp_path / "results.jsonl"
    run = mmcli("batch", tasks, "-o", results, "--base-url", server.base_url, "--max-tokens", "5")
    assert_clean_error(run, 8, "3 line(s) of the tasks file could not run")
    for number in (3, 4, 5):
        assert f"tasks.jsonl, line {number}:" in run.stderr
    assert "'--max-pixels'" in run.stderr and "'model' is set for the whole run" in run.stderr
    found = {r["line"]: r for r in lines(results)}
    assert sorted(found) == [1, 2, 6]
    assert found[1]["id"] == "first" and found[1]["command"] == "ask"
    box = found[2]["inputs"][0]["detections"][0]
    assert box["model_coords"] == [1, 2, 30, 40] and box["label"] == "cat"
    assert box["bbox"] != box["model_coords"]  # mapped from the sent size to the original pixels
    assert found[6]["command"] == "docqa" and found[6]["answer"].startswith("[{")
    bodies = {r.json["messages"][-1]["content"][-1]["text"]: r.json for r in server.chat_requests()}
    assert bodies["caption"]["max_tokens"] == 20  # the line's own option
    assert all(b["max_tokens"] == 5 for t, b in bodies.items() if t != "caption")  # the run's
    again = mmcli("batch", tasks, "-o", results, "--base-url", server.base_url, "--max-tokens", "5")
    assert again.code == 8 and "0 done, 0 failed, 3 already done" in again.stderr
    assert len(server.chat_requests()) == 3


def test_tasks_file_problems(mmcli, server, tmp_path):
    run = mmcli("batch", tmp_path / "missing.jsonl", "--base-url", server.base_url)
    assert_clean_error(run, 2, "cannot read the tasks file")
    tasks = write_tasks(tmp_path / "t.jsonl", {"command": "ask"}, {"id": "x", "command": "nope"})
    run = mmcli("batch", tasks, "--base-url", server.base_url)
    assert_clean_error(run, 2, "no job to run")
    assert "line 1: the task has no prompt" in run.stderr and "line 2:" in run.stderr
    ids = write_tasks(tmp_path / "ids.jsonl", {"id": "x", "command": "ask", "prompt": "a"},
                      {"id": "x", "command": "ask", "prompt": "b"})
    run = mmcli("batch", ids, "--base-url", server.base_url)
    assert run.code == 8 and "id 'x' is also on line 1" in run.stderr
    assert server.requests and len(server.chat_requests()) == 1


def test_two_servers_share_the_jobs_and_one_dying_does_not_stop_the_run(mmcli, tmp_path):
    make_images(tmp_path / "album", 24)
    results = tmp_path / "results.jsonl"
    with ScriptedServer(default=Reply("from one", chunk_delay=0.02)) as one, \
            ScriptedServer(default=Reply("from two", chunk_delay=0.02)) as two:
        def kill_two() -> None:
            deadline = time.monotonic() + 60  # a run that never reaches server two must fail, not hang
            while len(two.chat_requests()) < 3 and time.monotonic() < deadline:
                time.sleep(0.01)
            two.close()

        killer = threading.Thread(target=kill_two)
        killer.start()
        run = mmcli("ask", "--each", tmp_path / "album", "caption", "-o", results, "-j", "4",
                    "--base-url", one.base_url, "--base-url", two.base_url)
        killer.join()
        assert run.code == 0, run.stderr
        assert len(two.chat_requests()) >= 3, "server two never took its share before it died"
        found = lines(results)
        assert len(found) == 24 and not any("error" in r for r in found)
        served = {r["server"] for r in found}
        assert served == {one.base_url, two.base_url}  # both took jobs
        assert sum(r["answer"] == "from two" for r in found) >= 1
        assert len(one.chat_requests()) >= 24 - len(two.chat_requests())


def test_profile_base_urls(mmcli, tmp_path, clean_env):
    make_images(tmp_path / "album", 6)
    with ScriptedServer(default=Reply("a", chunk_delay=0.05)) as one, \
            ScriptedServer(default=Reply("b", chunk_delay=0.05)) as two:
        config = Path(clean_env["XDG_CONFIG_HOME"]) / "mmcli" / "config.toml"
        config.parent.mkdir(parents=True)
        config.write_text(f'[profiles.farm]\nbase_urls = ["{one.base_url}", "{two.base_url}"]\n')
        run = mmcli("ask", "--each", tmp_path / "album", "caption", "--profile", "farm", "-j", "2")
        assert run.code == 0, run.stderr
        assert len(one.chat_requests()) >= 2 and len(two.chat_requests()) >= 2


def test_video_each_over_a_directory(mmcli, server, tmp_path):
    from tests.test_video_fixtures import write_clip

    clips = tmp_path / "clips"
    clips.mkdir()
    write_clip(clips / "a.mp4", frames=50, fps=25, size=(320, 240))
    write_clip(clips / "b.mp4", frames=30, fps=25, size=(320, 240))
    (clips / "notes.txt").write_text("not a video")
    results = tmp_path / "r.jsonl"
    run = mmcli("video", "--each", clips, "what happens?", "--frames", "4", "-o", results,
                "--base-url", server.base_url)
    assert run.code == 0, run.stderr
    found = lines(results)
    assert sorted(Path(r["sources"][0]).name for r in found) == ["a.mp4", "b.mp4"]
    assert all(r["plan"]["items"][0]["kind"] == "video" for r in found)
    assert all(r.json["messages"][-1]["content"][0]["type"] == "video_url" for r in server.chat_requests())


def test_a_torn_last_line_is_left_alone_and_its_job_runs_again(mmcli, server, tmp_path):
    make_images(tmp_path / "album", 2)
    results = tmp_path / "r.jsonl"
    assert mmcli("ask", "--each", tmp_path / "album", "q", "-o", results, "--base-url", server.base_url).code == 0
    whole = results.read_bytes().splitlines(keepends=True)
    results.write_bytes(whole[0] + whole[1][:40])  # as if the machine died while writing the second line
    run = mmcli("ask", "--each", tmp_path / "album", "q", "-o", results, "--base-url", server.base_url)
    assert run.code == 0 and "1 done, 0 failed, 1 already done" in run.stderr
    kept = results.read_bytes().splitlines()
    assert kept[1] == whole[1][:40] and len(kept) == 3 and json.loads(kept[2])["answer"] == "ok"


def test_progress_bar_on_a_terminal(server, clean_env, tmp_path):
    import os
    import pty
    import subprocess
    import sys

    make_images(tmp_path / "album", 4)
    results = tmp_path / "r.jsonl"
    controller, terminal = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "mmcli", "ask", "--each", str(tmp_path / "album"), "q", "-o",
                             str(results), "--base-url", server.base_url], cwd=Path(__file__).parent.parent,
                            env=clean_env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=terminal)
    os.close(terminal)
    shown = b""
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    assert proc.wait(timeout=60) == 0
    os.close(controller)
    text = shown.decode("utf-8", "replace")
    assert "] done: " not in text  # no per-job lines: a bar instead
    assert "4 done, 0 failed, 0 already done" in text
    assert len(lines(results)) == 4


def test_first_server_down_at_the_start(mmcli, server, tmp_path):
    from tests.support.scripted_server import free_port

    make_images(tmp_path / "album", 3)
    dead = f"http://127.0.0.1:{free_port()}/v1"
    run = mmcli("ask", "--each", tmp_path / "album", "q", "--base-url", dead, "--base-url", server.base_url)
    assert run.code == 0, run.stderr
    assert "trying the next server" in run.stderr
    assert len(server.chat_requests()) == 3
    assert all(json.loads(line)["server"] == server.base_url for line in run.stdout.splitlines())


def test_several_base_urls_on_a_single_run_warn_that_only_the_first_is_used(mmcli, tmp_path):
    with ScriptedServer(default=Reply("from one")) as one, ScriptedServer(default=Reply("from two")) as two:
        second = two.base_url.replace("http://", "http://user:pw-SECRET@")
        run = mmcli("ask", "hi", "--base-url", one.base_url, "--base-url", second)
        assert run.code == 0, run.stderr
        assert "from one" in run.stdout and two.requests == []
        assert "--base-url is given 2 times: this run sends only to the first" in run.stderr
        assert "--each and mmcli batch" in run.stderr and "pw-SECRET" not in run.output
        make_images(tmp_path / "album", 2)
        run = mmcli("ask", "--each", tmp_path / "album", "caption", "-o", tmp_path / "r.jsonl",
                    "--base-url", one.base_url, "--base-url", two.base_url)
        assert run.code == 0, run.stderr
        assert "given 2 times" not in run.stderr


def test_a_line_setting_any_run_option_is_left_out_naming_it(mmcli, server, tmp_path):
    """Every many-job option (--engine, --ray-address, --backend, ...: the Typer table's) is the whole run's:
    a line that sets one is refused, not run with the option silently dropped."""
    from mmcli.cli.batch_options import PARAMETERS, RESULTS

    (photo,) = make_images(tmp_path / "img", 1)
    names = [name.replace("_", "-") for name in [*PARAMETERS, RESULTS[0]]]  # each the option's long name
    assert {"engine", "ray-address", "backend", "device", "engine-arg"} <= set(names)
    values = {"engine": "ray", "backend": "vllm", "device": "cpu", "engine-arg": ["a=1"]}
    tasks = write_tasks(tmp_path / "tasks.jsonl",
                        *[{"command": "ask", "inputs": [str(photo)], "prompt": "hi", name: values.get(name, "1")}
                          for name in names])
    run = mmcli("batch", tasks, "--base-url", server.base_url)
    assert_clean_error(run, 2, "no job to run")
    for name in names:
        assert f"'{name}' is set for the whole run" in run.stderr, name
    assert server.chat_requests() == []


def test_a_line_setting_log_verify_or_a_conversation_is_left_out_naming_it(mmcli, server, tmp_path):
    (photo,) = make_images(tmp_path / "img", 1)
    given = {"log": False, "no-log": True, "verify": True, "continue": True, "cid": "abc"}
    tasks = write_tasks(tmp_path / "tasks.jsonl", *[{"command": "ask", "inputs": [str(photo)], "prompt": "hi",
                                                     name: value} for name, value in given.items()])
    run = mmcli("batch", tasks, "--base-url", server.base_url)
    assert_clean_error(run, 2, "no job to run")
    for name in ("log", "no-log", "verify"):
        assert f"'{name}' is set for the whole run" in run.stderr, name
    assert "'continue': a line is a job of its own" in run.stderr and "'cid': a line is a job" in run.stderr
    assert server.chat_requests() == []
