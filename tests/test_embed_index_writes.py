"""The index on disk survives a writer killed half way and two writers at once: index.json is written last and
names its vectors file, and writers hold a lock on the folder and re-read the index under it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import ROOT, assert_clean_error
from tests.support.embed_server import _EmbedHandler

pytestmark = pytest.mark.usefixtures("clean_environ")

# A writer that does the first half of an index update (the new vectors file, under the folder's lock), then waits
# on a FIFO: the test kills it there, between the two writes, with a real SIGKILL.
HALF_WRITER = """
import sys
from pathlib import Path
from mmcli.tasks.embed import index as ix

folder, fifo = Path(sys.argv[1]), sys.argv[2]
current = ix.open_index(folder)
entry = {"source": "late.png", "path": "/nowhere/late.png", "page": None, "kind": "image", "sha256": "", "thumbnail": None}
final = ix.updated(current, [entry], [[0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
with ix.locked(folder):
    name = ix.write_vectors(final)
    print(name, flush=True)
    with open(fifo) as wait:  # blocks until the test opens the other end, which it never does
        wait.read()
    ix.commit(final, name)
"""


def colour_photos(folder: Path, colours: dict[str, tuple[int, int, int]]) -> Path:
    folder.mkdir(parents=True)
    for name, colour in colours.items():
        Image.new("RGB", (300, 200), colour).save(folder / name)
    return folder


def rows(index: Path) -> tuple[list[str], tuple]:
    meta = json.loads((index / "index.json").read_text())
    return sorted(Path(e["path"]).name for e in meta["entries"]), np.load(index / meta["vectors"]).shape


def test_a_writer_killed_between_the_vectors_and_index_json_leaves_the_previous_index(
        mmcli, embed_server, tmp_path, clean_env):
    photos = colour_photos(tmp_path / "photos", {"red.png": (220, 10, 10), "blue.png": (10, 10, 230)})
    index = tmp_path / "idx"
    assert mmcli("embed", photos, "--index", index, "--base-url", embed_server.base_url).code == 0
    before = rows(index)
    fifo = tmp_path / "hold"
    os.mkfifo(fifo)
    writer = subprocess.Popen([sys.executable, "-c", HALF_WRITER, str(index), str(fifo)], cwd=ROOT, env=clean_env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stray = writer.stdout.readline().strip()  # the new vectors file is written: the writer now waits
        assert stray.startswith("vectors-") and (index / stray).is_file(), writer.stderr.read()
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
    assert writer.returncode == -signal.SIGKILL
    assert rows(index) == before  # the previous index opens whole
    found = mmcli("search", "red", "--index", index, "--json", "--base-url", embed_server.base_url)
    assert found.code == 0, found.stderr
    assert Path(json.loads(found.stdout)["matches"][0]["source"]).name == "red.png"
    Image.new("RGB", (300, 200), (10, 200, 10)).save(photos / "green.png")
    added = mmcli("embed", photos, "--index", index, "--base-url", embed_server.base_url)  # the dead writer's lock is gone
    assert added.code == 0, added.stderr
    assert "1 added, 2 unchanged skipped, 3 in all" in added.stderr
    names, shape = rows(index)
    assert names == ["blue.png", "green.png", "red.png"] and shape == (3, 8)
    assert not (index / stray).exists()  # the killed writer's file is cleared by the next update


class _Together(_EmbedHandler):
    """Holds each embeddings reply until two requests are in: both runs have opened the index before either saves."""

    barrier = threading.Barrier(2, timeout=60)

    def do_POST(self) -> None:
        if self.path.split("?")[0] == "/v1/embeddings":
            self.barrier.wait()
        super().do_POST()


def test_two_runs_adding_to_one_index_at_once_both_keep_their_rows(embed_server, tmp_path, clean_env):
    embed_server._httpd.RequestHandlerClass = _Together
    _Together.barrier.reset()
    first = colour_photos(tmp_path / "a", {"red.png": (220, 10, 10), "white.png": (250, 250, 250)})
    second = colour_photos(tmp_path / "b", {"blue.png": (10, 10, 230)})
    index = tmp_path / "idx"
    runs = [subprocess.Popen([sys.executable, "-m", "mmcli", "embed", str(folder), "--index", str(index),
                              "--base-url", embed_server.base_url], cwd=ROOT, env=clean_env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for folder in (first, second)]
    outcomes = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outcomes
    assert len(embed_server.embedding_requests()) == 2
    names, shape = rows(index)
    assert names == ["blue.png", "red.png", "white.png"] and shape == (3, 8)
    assert len(list(index.glob("vectors*.npy"))) == 1


def test_an_index_written_before_it_named_its_vectors_file_is_read_and_updated(mmcli, embed_server, tmp_path):
    photos = colour_photos(tmp_path / "photos", {"red.png": (220, 10, 10)})
    index = tmp_path / "idx"
    assert mmcli("embed", photos, "--index", index, "--base-url", embed_server.base_url).code == 0
    meta = json.loads((index / "index.json").read_text())
    (index / meta.pop("vectors")).rename(index / "vectors.npy")  # the version 1 layout
    meta["version"] = 1
    (index / "index.json").write_text(json.dumps(meta))
    found = mmcli("search", "red", "--index", index, "--json", "--base-url", embed_server.base_url)
    assert found.code == 0, found.stderr
    Image.new("RGB", (300, 200), (10, 10, 230)).save(photos / "blue.png")
    assert mmcli("embed", photos, "--index", index, "--base-url", embed_server.base_url).code == 0
    names, shape = rows(index)
    assert names == ["blue.png", "red.png"] and shape == (2, 8)
    assert json.loads((index / "index.json").read_text())["version"] == 2
    assert not (index / "vectors.npy").exists()


@pytest.mark.parametrize("name", ["../outside.npy", "/etc/hostname", "vectors-x.npy", 7, "thumbs/a.npy"])
def test_an_index_naming_a_file_outside_its_own_is_refused(mmcli, embed_server, tmp_path, name):
    photos = colour_photos(tmp_path / "photos", {"red.png": (220, 10, 10)})
    index = tmp_path / "idx"
    assert mmcli("embed", photos, "--index", index, "--base-url", embed_server.base_url).code == 0
    outside = tmp_path / "outside.npy"
    np.save(outside, np.zeros((1, 8), np.float32))
    meta = json.loads((index / "index.json").read_text())
    (index / "index.json").write_text(json.dumps(dict(meta, vectors=name)))
    for command in (["search", "red"], ["embed", photos]):
        run = mmcli(*command, "--index", index, "--base-url", embed_server.base_url)
        assert_clean_error(run, 2, "the index is damaged")
    assert outside.is_file()


@pytest.mark.parametrize("field, value", [("thumbnail", 5), ("thumbnail", "/etc/hostname"),
                                          ("thumbnail", "../../secret.png"), ("thumbnail", "thumbs/../../x.png"),
                                          ("page", "x"), ("source", None), ("path", ["a"])])
def test_a_damaged_index_entry_is_a_clean_error(mmcli, embed_server, tmp_path, field, value):
    photos = colour_photos(tmp_path / "photos", {"red.png": (220, 10, 10), "blue.png": (10, 10, 230)})
    index = tmp_path / "idx"
    assert mmcli("embed", photos, "--index", index, "--base-url", embed_server.base_url).code == 0
    meta = json.loads((index / "index.json").read_text())
    meta["entries"][0][field] = value
    (index / "index.json").write_text(json.dumps(meta))
    for command in (["search", "red", "--open"], ["embed", photos]):
        run = mmcli(*command, "--index", index, "--base-url", embed_server.base_url)
        assert_clean_error(run, 2, "the index is damaged", repr(field))
        assert "hint:" in run.stderr
    assert not (index / "matches.png").exists()
