"""Audio in many-file runs: audio inputs go through --each, mmcli batch and the Python API as `mmcli ask`
takes them, and a video's sound track (--audio) is sent or its absence said, never dropped in silence."""

from __future__ import annotations

import json

from tests.support import sound
from tests.test_audio_video import video_with_sound
from tests.test_batch_each import lines

OMNI = "qwen2.5-omni-7b"


def kinds(request) -> list[str]:
    return [p["type"] for p in request.json["messages"][-1]["content"]]


def clips(folder):
    folder.mkdir()
    talk, _ = video_with_sound(folder / "talk.mp4")
    silent = sound.silent_video(folder / "silent.mp4")
    return talk, silent


def test_video_each_audio_sends_every_sound_track_and_names_a_silent_video(mmcli, server, tmp_path):
    clips(tmp_path / "clips")
    results = tmp_path / "r.jsonl"
    run = mmcli("video", "--each", tmp_path / "clips", "what is said?", "--audio", "--frames", "4",
                "-o", results, "--base-url", server.base_url, "-m", OMNI)
    assert run.code == 8, run.stderr
    found = {r["sources"][0].rsplit("/", 1)[-1]: r for r in lines(results)}
    assert "no sound track" in found["silent.mp4"]["error"]["message"]
    assert [i["kind"] for i in found["talk.mp4"]["plan"]["items"]] == ["video", "audio"]
    [request] = server.chat_requests()  # the silent video was never sent
    assert kinds(request) == ["video_url", "input_audio", "text"]


def test_with_and_without_audio_are_different_jobs(mmcli, server, tmp_path):
    clips(tmp_path / "clips")
    (tmp_path / "clips" / "silent.mp4").unlink()
    results = tmp_path / "r.jsonl"
    common = ("--frames", "4", "-o", results, "--base-url", server.base_url, "-m", OMNI)
    assert mmcli("video", "--each", tmp_path / "clips", "q", *common).code == 0
    run = mmcli("video", "--each", tmp_path / "clips", "q", "--audio", *common)
    assert run.code == 0, run.stderr
    assert "1 done" in run.stderr  # not "already done": the sound track makes it another request
    assert [kinds(r) for r in server.chat_requests()] == [["video_url", "text"],
                                                         ["video_url", "input_audio", "text"]]


def test_a_tasks_line_with_audio_true_sends_the_sound_track(mmcli, server, tmp_path):
    talk, silent = clips(tmp_path / "clips")
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(json.dumps({"command": "video", "inputs": [str(talk)], "prompt": "q", "audio": True,
                                 "frames": 4, "sample-rate": 8000}) + "\n"
                     + json.dumps({"command": "video", "inputs": [str(silent)], "prompt": "q", "audio": True,
                                   "frames": 4}) + "\n")
    results = tmp_path / "r.jsonl"
    run = mmcli("batch", tasks, "-o", results, "--base-url", server.base_url, "-m", OMNI)
    assert run.code == 8, run.stderr
    found = {r["line"]: r for r in lines(results)}
    assert "no sound track" in found[2]["error"]["message"]
    [request] = server.chat_requests()
    assert kinds(request) == ["video_url", "input_audio", "text"]
    _, rate, _ = sound.decode_sent(sound.part_bytes(request.json["messages"][-1]["content"][1]))
    assert rate == 8000  # the line's own audio option


def test_an_export_keeps_the_sound_track(mmcli, server, tmp_path):
    clips(tmp_path / "clips")
    export = tmp_path / "requests.jsonl"
    run = mmcli("video", "--each", tmp_path / "clips", "q", "--audio", "--frames", "4", "--export", "openai-batch",
                export, "--base-url", server.base_url, "-m", OMNI, "--family", "qwen2.5-vl")
    assert run.code == 8, run.stderr  # the silent video could not be exported, and says why
    assert "no sound track" in run.stderr
    [line] = [json.loads(x) for x in export.read_text().splitlines()]
    assert [p["type"] for p in line["body"]["messages"][-1]["content"]] == ["video_url", "input_audio", "text"]


def test_ask_each_and_batch_take_audio_inputs(mmcli, server, tmp_path):
    folder = tmp_path / "sounds"
    folder.mkdir()
    sound.write_audio(folder / "a.wav", sound.tone(1.0, 16000), 16000, "wav")
    sound.write_audio(folder / "b.flac", sound.tone(1.5, 22050, freq=660), 22050, "flac")
    run = mmcli("ask", "--each", folder, "what do you hear?", "--sample-rate", "8000",
                "--base-url", server.base_url, "-m", "qwen2-audio-7b-instruct-test")
    assert run.code == 0, run.stderr
    assert len(run.stdout.splitlines()) == 2
    for request in server.chat_requests():
        assert kinds(request) == ["input_audio", "text"]
        _, rate, _ = sound.decode_sent(sound.part_bytes(request.json["messages"][-1]["content"][0]))
        assert rate == 8000
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(json.dumps({"command": "ask", "inputs": [str(folder / "a.wav")], "prompt": "q",
                                 "start": "0.5"}) + "\n")
    run = mmcli("batch", tasks, "--base-url", server.base_url, "-m", "qwen2-audio-7b-instruct-test")
    assert run.code == 0, run.stderr
    samples, _, _ = sound.decode_sent(sound.part_bytes(server.chat_requests()[-1].json["messages"][-1]["content"][0]))
    assert abs(len(samples) / 16000 - 0.5) <= 0.010  # cut by the line's --start


def test_the_python_api_takes_audio(server, tmp_path):
    from mmcli import Client

    clip = sound.write_audio(tmp_path / "a.wav", sound.tone(1.0, 16000), 16000, "wav")
    answer = Client(base_url=server.base_url, model="qwen2-audio-7b-instruct-test").ask(clip, "what note?")
    assert answer.plan.items[0].kind == "audio"
    assert kinds(server.chat_requests()[-1]) == ["input_audio", "text"]


def test_broken_sound_files_in_a_folder_are_failed_lines(mmcli, server, tmp_path):
    from pathlib import Path

    from tests.conftest import assert_clean_error

    folder = tmp_path / "sounds"
    folder.mkdir()
    sound.write_audio(folder / "a.wav", sound.tone(1.0, 16000), 16000, "wav")
    (folder / "broken.mp3").write_text("this is text, not a song")
    (folder / "empty.wav").write_bytes(b"")
    (folder / "notes.M4A").write_bytes(b"\x00" * 64)
    (folder / "readme.txt").write_text("not media, not named like it")
    results = tmp_path / "results.jsonl"
    run = mmcli("ask", "--each", folder, "what do you hear?", "-o", results, "--base-url", server.base_url,
                "-m", "qwen2-audio-7b-instruct-test")
    assert_clean_error(run, 8, "3 of 4 job(s) failed")
    bad = {Path(r["sources"][0]).name: r["error"]["exit_code"] for r in lines(results) if "error" in r}
    assert bad == {"broken.mp3": 3, "empty.wav": 3, "notes.M4A": 3}
    assert len(server.chat_requests()) == 1
    video = mmcli("video", "--each", folder, "q", "--base-url", server.base_url)  # not its inputs: left out
    assert_clean_error(video, 2, "no inputs to run")
