"""Audio in `mmcli ask` against a real local HTTP server: the sound sent, decoded back from the request."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.support import media, sound

MODEL = "qwen2-audio-7b-instruct-test"  # judged a Qwen2-Audio family model from its id


def ask(mmcli, server, *args, model=MODEL, expect=0):
    run = mmcli("ask", *args, "--base-url", server.base_url, "-m", model, "--json")
    assert run.code == expect, run.stderr
    return json.loads(run.stdout) if expect == 0 else run


def sent(server) -> list[tuple[np.ndarray, int, int]]:
    """(samples, rate, channels) of every audio part of the last request."""
    request = server.chat_requests()[-1].json
    return [sound.decode_sent(sound.part_bytes(p)) for p in sound.audio_parts(request)]


@pytest.mark.parametrize("kind", list(sound.CONTAINERS))
def test_every_container_is_sent_as_16k_mono_close_to_a_reference_resample(mmcli, server, tmp_path, kind):
    rate = sound.CONTAINERS[kind][3]
    left, right = sound.chirp(4.0, rate), sound.speechlike(4.0, rate, seed=1)
    path = sound.write_audio(tmp_path / f"clip.{kind}", left, rate, kind, right)
    result = ask(mmcli, server, path, "what do you hear?")
    [(samples, got_rate, channels)] = sent(server)
    assert (got_rate, channels) == (16000, 1)
    assert abs(len(samples) / 16000 - 4.0) <= 0.010
    ref = sound.reference((left + right) / 2, rate)
    if kind in sound.LOSSLESS:
        n = min(len(ref), len(samples))
        diff = (ref[:n] - samples[:n])[320:-320]  # the filters' edges (20 ms) differ by design
        assert np.sqrt(np.mean(diff ** 2)) < 0.003 and np.abs(diff).max() < 0.02
    else:  # lossy codecs: line up (at most 10 ms of codec delay), then the sound must be the same
        lag = sound.best_lag(ref, samples)
        assert abs(lag) <= 160
        a, b = ref[2000:-2000], samples[2000 + lag:len(ref) - 2000 + lag]
        assert np.corrcoef(a, b)[0, 1] > 0.9
    [item] = result["plan"]["items"]
    assert item["kind"] == "audio" and item["mime"] == "audio/wav"
    assert item["details"]["source_sample_rate"] == rate and item["details"]["source_channels"] == 2
    assert item["details"]["audio_tokens"] == 100  # 4 s: 400 frames -> 200 -> 100 tokens


def test_the_part_is_input_audio_wav_before_the_question(mmcli, server, tmp_path):
    path = sound.write_audio(tmp_path / "a.wav", sound.tone(1.0, 16000), 16000, "wav")
    ask(mmcli, server, path, "what note is it?")
    content = server.chat_requests()[-1].json["messages"][-1]["content"]
    assert [p["type"] for p in content] == ["input_audio", "text"]
    assert content[0]["input_audio"]["format"] == "wav" and content[1]["text"] == "what note is it?"


def test_long_audio_is_split_into_labelled_30_second_parts(mmcli, server, tmp_path):
    signal = sound.chirp(45.0, 16000)
    path = sound.write_audio(tmp_path / "long.flac", signal, 16000, "flac")
    result = ask(mmcli, server, path, "summarise")
    content = server.chat_requests()[-1].json["messages"][-1]["content"]
    assert [p["type"] for p in content] == ["text", "input_audio", "text", "input_audio", "text"]
    assert [content[0]["text"], content[2]["text"]] == ["Audio 0:00-0:30", "Audio 0:30-0:45"]
    (first, *_), (second, *_) = sent(server)
    assert len(first) == 30 * 16000 and len(second) == 15 * 16000
    joined = np.concatenate([first, second])
    assert np.abs(joined - signal).max() < 2e-4  # already 16 kHz mono: only 16-bit rounding
    tokens = [item["details"]["audio_tokens"] for item in result["plan"]["items"]]
    assert tokens == [750, 375] and result["plan"]["totals"]["visual_tokens"] == 1125


def test_start_and_end_cut_the_audio_to_the_sample(mmcli, server, tmp_path):
    signal = sound.chirp(10.0, 16000)
    path = sound.write_audio(tmp_path / "sweep.wav", signal, 16000, "wav")
    result = ask(mmcli, server, path, "q", "--start", "2.5", "--end", "0:06")
    [(samples, _, _)] = sent(server)
    assert len(samples) == 3.5 * 16000
    assert np.abs(samples - signal[40000:96000]).max() < 2e-4
    details = result["plan"]["items"][0]["details"]
    assert (details["start"], details["end"]) == (2.5, 6.0)


def test_start_and_end_cut_a_compressed_file_at_the_right_time(mmcli, server, tmp_path):
    signal = sound.chirp(12.0, 44100)
    path = sound.write_audio(tmp_path / "sweep.mp3", signal, 44100, "mp3")
    ask(mmcli, server, path, "q", "--start", "7", "--end", "9")
    [(samples, _, _)] = sent(server)
    assert abs(len(samples) - 2 * 16000) <= 1
    ref = sound.reference(signal, 44100)[7 * 16000:9 * 16000]
    assert abs(sound.best_lag(ref, samples, max_lag=400)) <= 160  # within 10 ms of where it should be


def test_flac_and_another_sample_rate_on_request(mmcli, server, tmp_path):
    path = sound.write_audio(tmp_path / "a.wav", sound.tone(2.0, 44100), 44100, "wav")
    result = ask(mmcli, server, path, "q", "--audio-format", "flac", "--sample-rate", "24000")
    part = sound.audio_parts(server.chat_requests()[-1].json)[0]
    assert part["input_audio"]["format"] == "flac" and sound.part_bytes(part)[:4] == b"fLaC"
    [(samples, rate, channels)] = sent(server)
    assert (rate, channels, len(samples)) == (24000, 1, 48000)
    assert result["plan"]["items"][0]["details"]["audio_tokens"] is None  # only counted at 16 kHz


def test_audio_and_images_in_one_question_keep_their_order(mmcli, server, tmp_path):
    photo = media.make_small_png(tmp_path)
    clip = sound.write_audio(tmp_path / "a.ogg", sound.tone(1.0, 48000), 48000, "ogg")
    ask(mmcli, server, photo, clip, "does the sound fit the picture?", model="qwen2.5-vl-test")
    content = server.chat_requests()[-1].json["messages"][-1]["content"]
    assert [p["type"] for p in content] == ["image_url", "input_audio", "text"]


def test_xinference_profile_sends_its_own_audio_shape_byte_for_byte(mmcli, server, tmp_path):
    path = sound.write_audio(tmp_path / "a.wav", sound.tone(0.5, 16000), 16000, "wav")
    run = mmcli("ask", path, "What's that sound?", "--profile", "xinference", "--base-url", server.base_url,
                "-m", MODEL)
    assert run.code == 0, run.stderr
    request = server.chat_requests()[-1]
    part = request.json["messages"][-1]["content"][0]
    assert list(part) == ["type", "audio_url"] and part["type"] == "audio"
    assert isinstance(part["audio_url"], str) and part["audio_url"].startswith("data:audio/wav;base64,")
    # The shape Xinference's docs show, serialised the way this client sends JSON.
    expected = json.dumps({"type": "audio", "audio_url": part["audio_url"]}, separators=(",", ":"))
    assert expected.encode() in request.body.replace(b", ", b",").replace(b": ", b":")


def test_audio_url_shape_from_the_config_file(mmcli, server, tmp_path, clean_env):
    config = tmp_path / "config" / "mmcli" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(f'[profiles.omni]\nbase_url = "{server.base_url}"\naudio_part = "audio_url"\n')
    path = sound.write_audio(tmp_path / "a.wav", sound.tone(0.5, 16000), 16000, "wav")
    run = mmcli("ask", path, "q", "--profile", "omni", "-m", MODEL)
    assert run.code == 0, run.stderr
    [part] = sound.audio_parts(server.chat_requests()[-1].json)
    assert part["type"] == "audio_url" and part["audio_url"]["url"].startswith("data:audio/wav;base64,")
    assert len(sound.decode_sent(sound.part_bytes(part))[0]) == 8000


def test_bad_audio_part_in_the_config_file_is_a_usage_error(mmcli, tmp_path):
    config = tmp_path / "config" / "mmcli" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('[profiles.x]\nbase_url = "http://127.0.0.1:9/v1"\naudio_part = "mp3"\n')
    run = mmcli("ask", "q", "--profile", "x", "--dry-run")
    assert run.code == 2 and "audio_part must be one of" in run.stderr


def test_dry_run_plan_shows_duration_rate_channels_bytes_and_tokens(mmcli, tmp_path):
    path = sound.write_audio(tmp_path / "a.wav", sound.tone(5.0, 44100), 44100, "wav",
                             sound.tone(5.0, 44100, 660))
    run = mmcli("ask", path, "q", "--dry-run", "-m", MODEL)
    assert run.code == 0, run.stderr
    assert "audio" in run.stdout and "125" in run.stdout and "5.00 s" in run.stdout
    assert "44.1 kHz stereo" in run.stdout and "160,044" in run.stdout
    assert "...(" in run.stdout  # the base64 payload is shortened


@pytest.mark.parametrize("kind, said, unsaid", [
    ("audio", "does not accept audio", "--max-images"),
    ("video", "mmcli serve --max-videos N", "--max-images"),
    ("image", "mmcli serve --max-images N", "--max-videos"),
    ("image0", "serve a vision model", "send at most 0"),
])
def test_a_server_that_takes_none_of_a_kind_says_which_model_to_use(mmcli, server, tmp_path, kind, said, unsaid):
    from tests.support.scripted_server import Status, vllm_error

    limit = 2 if kind == "image" else 0
    kind = kind.rstrip("0")
    path = sound.write_audio(tmp_path / "interview.wav", sound.speechlike(1.0, 16000), 16000, "wav")
    server.script(Status(400, vllm_error(400, f"At most {limit} {kind}(s) may be provided in one prompt.")))
    run = ask(mmcli, server, path, "what is said?", model="qwen2.5-vl-test", expect=4)
    hint = [line for line in run.stderr.splitlines() if line.startswith("hint:")]
    assert hint and said in hint[0] and unsaid not in hint[0], run.stderr
    if kind == "audio":
        assert "docs/audio.md" in hint[0] and "--limit-mm-per-prompt" not in hint[0]
