"""What a run keeps in memory: results hold answers and sizes, not request bodies or media, so a long embed run or
chat does not grow with every image sent. Checked on the objects themselves, not by measuring memory
(bench/memory.py measures it)."""

from __future__ import annotations

import gc
import json
import types
import weakref
from pathlib import Path

import pytest
from PIL import Image

import mmcli as api
from tests.support.scripted_server import Reply

pytestmark = pytest.mark.usefixtures("clean_environ")
BIG = 2048  # bytes: more than any field of a result but a payload


def heavy_parts(root: object) -> list[str]:
    """Data URLs and payload-sized bytes reachable from `root` (modules, classes and functions not followed)."""
    found, seen, stack = [], set(), [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, (type, types.ModuleType, types.FunctionType, types.MethodType)):
            continue
        seen.add(id(obj))
        if isinstance(obj, str):
            if obj.startswith("data:"):
                found.append(f"a data URL ({len(obj):,} chars)")
            continue
        if isinstance(obj, (bytes, bytearray, memoryview)):
            if len(obj) > BIG:
                found.append(f"{len(obj):,} bytes")
            continue
        stack.extend(gc.get_referents(obj))
    return found


@pytest.fixture
def noisy_photos(tmp_path) -> Path:
    """Twelve photos whose payloads are far over BIG, in a folder."""
    import numpy as np

    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(3)
    for i in range(12):
        Image.fromarray(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)).save(folder / f"p{i:02d}.png")
    return folder


def test_an_embed_run_keeps_no_request_body_or_image_on_its_results(embed_server, noisy_photos):
    from mmcli.api.more_tasks import _common
    from mmcli.core.driver import Presenter, drive
    from mmcli.tasks.embed.task import EmbedArgs, embed_inputs
    from mmcli.tasks.specs import TASKS

    seen = []

    class Keeping(Presenter):
        def done(self, result, planned):
            seen.append(result)

    args = EmbedArgs(inputs=[str(noisy_photos)], texts=[], batch_size=5)
    flags = api.Client(base_url=embed_server.base_url)._flags()
    value = drive(TASKS["embed"], embed_inputs(args.inputs), "", args, _common(flags), Keeping())
    assert len(value.records) == len(value.results) == len(seen) == 12
    assert len(embed_server.embedding_requests()) == 3  # the media did go out, in three batches
    assert heavy_parts(value.results) == [] and heavy_parts(seen) == []
    totals = value.results[0].plan.totals()  # sizes are still told after the payloads went
    assert totals["items"] == 5 and totals["bytes"] > 5 * BIG and totals["request_bytes"] > totals["bytes"]
    assert value.results[0].plan.summary()["items"][0]["bytes"] > BIG


def test_an_index_still_gets_a_thumbnail_of_every_image(mmcli, embed_server, noisy_photos, tmp_path):
    index = tmp_path / "idx"
    run = mmcli("embed", noisy_photos, "--index", index, "--batch-size", "5", "--base-url", embed_server.base_url)
    assert run.code == 0, run.stderr
    entries = json.loads((index / "index.json").read_text())["entries"]
    assert len(entries) == 12 and all(e["thumbnail"] for e in entries)
    for entry in entries:
        with Image.open(index / entry["thumbnail"]) as thumb:
            assert thumb.format == "JPEG" and max(thumb.size) <= 192 and thumb.size[0] > thumb.size[1]


def test_a_runner_keeps_no_result_its_caller_let_go(server, tmp_path):
    """A chat's Runner lives as long as the chat: a result it kept would keep that turn's request, media and all."""
    from mmcli.core.flow import connect, open_inputs
    from mmcli.events import Events
    from mmcli.api.more_tasks import _common
    from mmcli.tasks.ask import ask_job

    server.script(Reply("one"), Reply("two"))
    photo = tmp_path / "p.png"
    Image.new("RGB", (64, 48), (200, 30, 30)).save(photo)
    opts = _common(api.Client(base_url=server.base_url, log=False)._flags())
    events = Events()
    started = connect(open_inputs([str(photo)], opts, events, ("image",)), opts, events)
    first = started.runner.run(ask_job(started.checked, "what is it?", started.ctx))
    gone = weakref.ref(first)
    assert first.text == "one"
    del first
    second = started.runner.run(ask_job([], "and now?", started.ctx))
    gc.collect()
    assert second.text == "two" and gone() is None
