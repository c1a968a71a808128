"""Each path imports only what it needs: read from `python -X importtime` of the real program, so a module
that starts loading where it should not fails here (the time each takes is for bench/overhead.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import media
from tests.support.scripted_server import Reply, decode_images
from tests.test_terminal_output import Terminal

ROOT = Path(__file__).parent.parent
IMAGE_LIBRARIES = {"PIL", "cv2", "numpy"}
SENDING_NEEDS_NONE_OF = {"openai", "jiter"}  # the SDK and what only it brings
VALIDATOR = {"pydantic", "pydantic_core"}  # Typer's, needed only for a value that must be converted
MEDIA_READERS = {"av", "pdf2image", "pypdf"}


def imported(stderr: str) -> set[str]:
    """Every module named in an `-X importtime` report."""
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip())
    return names


def run_traced(args: list, env: dict, stdout=subprocess.PIPE) -> tuple[int, set[str]]:
    """Run `python -X importtime -m mmcli ARGS`; (exit code, the modules it imported)."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "mmcli", *map(str, args)], env=env, cwd=ROOT,
                          stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.PIPE, timeout=120)
    return proc.returncode, imported(proc.stderr.decode("utf-8", "replace"))


def tops(modules: set[str]) -> set[str]:
    """The top-level packages of `modules`."""
    return {name.split(".")[0] for name in modules}


def test_a_piped_text_question_loads_no_image_library_no_rich_and_no_sdk(server, clean_env):
    server.script(Reply("plain answer"))
    code, modules = run_traced(["ask", "hi", "--base-url", server.base_url, "-m", "m"], clean_env)
    assert code == 0
    assert "mmcli.net.transport" in modules and "httpx2" in modules  # the trace did see the send path
    assert tops(modules) & (IMAGE_LIBRARIES | SENDING_NEEDS_NONE_OF | MEDIA_READERS | VALIDATOR | {"rich"}) == set()
    assert not {"mmcli.media.videodecode", "mmcli.media.pdf"} & modules


def test_a_value_that_must_be_converted_still_goes_through_typers_validator(server, clean_env):
    server.script(Reply("plain answer"))
    code, modules = run_traced(["ask", "hi", "--base-url", server.base_url, "-m", "m", "--max-tokens", "7"], clean_env)
    assert code == 0 and server.chat_requests()[0].json["max_tokens"] == 7
    assert "pydantic" in tops(modules)


def test_a_jpeg_photo_question_loads_pillow_alone(server, clean_env, tmp_path):
    photo = media.make_real_photo(tmp_path, size=(1600, 1200))
    code, modules = run_traced(["ask", photo, "q", "--base-url", server.base_url, "-m", "m"], clean_env)
    assert code == 0 and len(decode_images(server.chat_requests()[0].json)) == 1
    assert "PIL" in tops(modules) and "mmcli.media.scaled_jpeg" in modules
    assert tops(modules) & ({"cv2", "numpy"} | MEDIA_READERS | SENDING_NEEDS_NONE_OF | VALIDATOR | {"rich"}) == set()
    assert not {"mmcli.media.videodecode", "mmcli.media.pdf"} & modules


def test_a_png_question_loads_opencv_but_no_video_or_pdf_reader(server, clean_env, tmp_path):
    photo = media.make_small_png(tmp_path)
    code, modules = run_traced(["ask", photo, "q", "--base-url", server.base_url, "-m", "m"], clean_env)
    assert code == 0
    assert {"cv2", "PIL"} <= tops(modules)
    assert tops(modules) & (MEDIA_READERS | SENDING_NEEDS_NONE_OF | {"rich"}) == set()
    assert not {"mmcli.media.videodecode", "mmcli.media.pdf"} & modules


@pytest.mark.parametrize("answer, markdown", [("a plain answer, 3 * 4 = 12", False),
                                              ("# Title\n\n- **one**\n- two", True)])
def test_on_a_terminal_markdown_is_loaded_only_for_markdown(server, clean_env, answer, markdown):
    server.script(Reply(answer))
    terminal = Terminal()
    try:
        code, modules = run_traced(["ask", "hi", "--base-url", server.base_url, "-m", "m"],
                                   dict(clean_env, TERM="xterm-256color"), stdout=terminal.slave)
    finally:
        shown = terminal.close()
    assert code == 0
    assert ("rich.markdown" in modules) is markdown
    if markdown:
        assert b"**" not in shown and b"Title" in shown  # rendered, not shown raw
    else:
        assert b"a plain answer, 3 * 4 = 12" in shown


def test_help_loads_neither_the_sender_nor_media(clean_env):
    code, modules = run_traced(["--help"], clean_env)
    assert code == 0 and "typer" in modules
    assert tops(modules) & (IMAGE_LIBRARIES | SENDING_NEEDS_NONE_OF | MEDIA_READERS | {"httpx2", "httpcore2"}) == set()
    assert not {"mmcli.net.transport", "mmcli.net.openai_routes", "mmcli.media.image"} & modules


def test_the_python_api_asks_without_the_sdk(server, clean_env):
    code = ("import sys, mmcli; answer = mmcli.Client(base_url=sys.argv[1], model='m').ask([], 'hi'); "
            "print(answer.text, sorted(m for m in ('openai', 'rich', 'PIL', 'cv2') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code, server.base_url], env=clean_env, cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["ok", "[]"]
