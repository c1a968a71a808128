"""`mmcli ask` against a real local HTTP server: the exact pixels sent, and bad input refused before sending."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from mmcli.media.resize import smart_resize
from tests.conftest import assert_clean_error
from tests.support import media
from tests.support.scripted_server import decode_images

QWEN_BUDGET = 1280 * 28 * 28


def ask_json(mmcli, server, *inputs, extra=()):
    run = mmcli("ask", *inputs, "what is here?", "--base-url", server.base_url, "--json", *extra)
    assert run.code == 0, run.stderr
    return run, json.loads(run.stdout)


def test_real_photo_is_sent_at_exactly_the_planned_grid_size(mmcli, server, tmp_path):
    photo = media.make_real_photo(tmp_path)
    run, result = ask_json(mmcli, server, photo)
    item = result["plan"]["items"][0]
    assert (item["original_width"], item["original_height"]) == (4032, 3024)
    expected_h, expected_w = smart_resize(3024, 4032, 28, 4 * 784, QWEN_BUDGET)
    assert (item["sent_width"], item["sent_height"]) == (expected_w, expected_h)
    assert item["visual_tokens"] == (expected_h // 28) * (expected_w // 28)
    [sent] = decode_images(server.chat_requests()[0].json)
    assert sent.size == (expected_w, expected_h)
    assert item["bytes"] * 5 < photo.stat().st_size * 4 / 3  # at least 5x smaller than raw base64
    assert result["answer"] == "ok" and result["model"] == "qwen2.5-vl-test"
    assert result["usage"]["prompt_tokens"] > 0


def test_exif_orientation_6_is_sent_upright(mmcli, server, tmp_path):
    portrait = media.make_exif_rotated_portrait(tmp_path)
    _, result = ask_json(mmcli, server, portrait)
    item = result["plan"]["items"][0]
    assert item["original_height"] > item["original_width"]  # displayed as portrait
    [sent] = decode_images(server.chat_requests()[0].json)
    assert sent.height > sent.width
    reference = Image.open(portrait)
    from PIL import ImageOps

    upright = ImageOps.exif_transpose(reference).convert("RGB").resize(sent.size)
    diff = np.abs(np.asarray(upright, np.int16) - np.asarray(sent.convert("RGB"), np.int16)).mean()
    assert diff < 12, diff  # the same picture, same way up


def test_several_images_keep_their_order(mmcli, server, tmp_path):
    small = media.make_small_png(tmp_path)
    photo = media.make_real_photo(tmp_path)
    _, result = ask_json(mmcli, server, small, photo)
    sent = decode_images(server.chat_requests()[0].json)
    assert [im.size for im in sent] == [(i["sent_width"], i["sent_height"]) for i in result["plan"]["items"]]
    assert sent[0].size != sent[1].size
    content = server.chat_requests()[0].json["messages"][-1]["content"]
    assert content[-1] == {"type": "text", "text": "what is here?"}


def test_rgba_is_flattened_onto_white(mmcli, server, tmp_path):
    path = media.make_rgba_png(tmp_path)
    ask_json(mmcli, server, path, extra=("--lossless",))
    [sent] = decode_images(server.chat_requests()[0].json)
    pixels = np.asarray(sent.convert("RGB"))
    w = pixels.shape[1]
    assert (pixels[:, w - 5] > 250).all()  # transparent half -> white
    left = pixels[:, 3]
    assert (left[:, 0] > 200).all() and (left[:, 1] < 60).all()  # opaque half stays red


def test_palette_with_transparency_16bit_and_cmyk_are_converted(mmcli, server, tmp_path):
    palette = media.make_palette_png_transparent(tmp_path)
    gray16 = media.make_png_16bit(tmp_path)
    cmyk = media.make_cmyk_jpeg(tmp_path)
    _, result = ask_json(mmcli, server, palette, gray16, cmyk, extra=("--lossless",))
    sent = decode_images(server.chat_requests()[0].json)
    assert len(sent) == 3 and all(im.mode == "RGB" for im in sent)
    gray = np.asarray(sent[1].convert("L"), dtype=np.int32)
    assert gray.max() - gray.min() > 150  # the 16-bit gradient survives as a full 8-bit range
    assert gray.max() < 256
    cmyk_rgb = np.asarray(sent[2]).reshape(-1, 3).mean(axis=0)
    expected = np.asarray(Image.open(cmyk).convert("RGB")).reshape(-1, 3).mean(axis=0)
    assert np.abs(cmyk_rgb - expected).max() < 12


def test_animated_gif_sends_first_frame_with_a_warning(mmcli, server, tmp_path):
    gif = media.make_animated_gif(tmp_path)
    run, _ = ask_json(mmcli, server, gif, extra=("--lossless",))
    assert "only the first is sent" in run.stderr
    [sent] = decode_images(server.chat_requests()[0].json)
    first = Image.open(gif).convert("RGB")
    assert np.abs(np.asarray(sent.convert("RGB").resize(first.size), np.int16)
                  - np.asarray(first, np.int16)).mean() < 10


def test_stdin_input(mmcli, server, tmp_path):
    photo = media.make_small_png(tmp_path)
    run = mmcli("ask", "-", "describe", "--base-url", server.base_url, "--json", stdin=photo.read_bytes())
    assert run.code == 0, run.stderr
    assert json.loads(run.stdout)["plan"]["items"][0]["source"] == "stdin"
    assert len(decode_images(server.chat_requests()[0].json)) == 1


BAD_INPUTS = [
    ("zero_byte", "empty"),
    ("random_bytes_jpg", "not"),
    ("truncated_jpeg", "truncated"),
    ("png_bomb_header", "too large"),
    ("heic_named_png", "HEIC"),
    ("fifo", "FIFO"),
    ("directory", "directory"),
    ("thin_image", "aspect ratio"),
]


@pytest.mark.parametrize("name, why", BAD_INPUTS)
def test_bad_input_is_refused_before_any_request(mmcli, server, tmp_path, name, why):
    path = getattr(media, f"make_{name}")(tmp_path)
    run = mmcli("ask", path, "what is here?", "--base-url", server.base_url)
    assert_clean_error(run, 3, why, path.name)
    assert server.requests == []


def test_missing_path_and_text_file(mmcli, server, tmp_path):
    run = mmcli("ask", tmp_path / "nope.jpg", "q", "--base-url", server.base_url)
    assert_clean_error(run, 3, "no such file", "nope.jpg")
    text = tmp_path / "notes.jpg"
    text.write_text("hello, this is not a picture\n")
    run = mmcli("ask", text, "q", "--base-url", server.base_url)
    assert_clean_error(run, 3, "text", "notes.jpg")
    assert server.requests == []


def test_one_bad_file_among_good_ones_sends_nothing(mmcli, server, tmp_path):
    good = media.make_small_png(tmp_path)
    bad = media.make_truncated_jpeg(tmp_path)
    run = mmcli("ask", good, bad, "q", "--base-url", server.base_url)
    assert_clean_error(run, 3, bad.name)
    assert server.requests == []


def test_url_that_does_not_answer(mmcli, server):
    from tests.support.scripted_server import free_port

    url = f"http://127.0.0.1:{free_port()}/photo.jpg"
    run = mmcli("ask", url, "q", "--base-url", server.base_url)
    assert_clean_error(run, 3, "download", url)
    assert server.requests == []


def test_url_is_downloaded_and_resized(mmcli, server, tmp_path):
    photo = media.make_real_photo(tmp_path)
    server.files = {"/photo.jpg": photo.read_bytes()}
    with ServedFile(photo.read_bytes()) as url:
        _, result = ask_json(mmcli, server, url)
    assert result["plan"]["items"][0]["original_width"] == 4032
    [sent] = decode_images(server.chat_requests()[0].json)
    assert sent.size == (result["plan"]["items"][0]["sent_width"], result["plan"]["items"][0]["sent_height"])


def test_pass_url_sends_it_unchanged(mmcli, server):
    url = "https://example.invalid/cat.jpg"
    _, result = ask_json(mmcli, server, url, extra=("--pass-url",))
    content = server.chat_requests()[0].json["messages"][-1]["content"]
    assert content[0] == {"type": "image_url", "image_url": {"url": url}}
    assert result["plan"]["items"][0]["sent_width"] is None


class ServedFile:
    """Serve bytes once over HTTP on 127.0.0.1, behind one redirect."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __enter__(self) -> str:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        data = self.data

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path == "/start":
                    self.send_response(302)
                    self.send_header("Location", "/photo.jpg")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/start"

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_a_media_url_that_answers_404_says_what_to_do(mmcli, server):
    url = server.base_url.rsplit("/v1", 1)[0] + "/nothere.jpg"
    run = mmcli("ask", url, "q", "--base-url", server.base_url)
    assert_clean_error(run, 3, "cannot download media", "HTTP 404", url)
    assert "hint: check the URL" in run.stderr
    assert server.chat_requests() == []
