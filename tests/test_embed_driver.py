"""embed and search through the one driver: the CLI and mmcli.Client give the same fields, and a run stopped by
a failing batch keeps the vectors already made (in -o, in the index, on the error's .partial)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import mmcli as api
from tests.conftest import assert_clean_error
from tests.support.embed_server import EmbeddingServer
from tests.support.scripted_server import Status, vllm_error

pytestmark = pytest.mark.usefixtures("clean_environ")
ONE_VECTOR = {"data": [{"index": 0, "embedding": [3.0, 4.0] + [0.0] * 6}],
              "usage": {"prompt_tokens": 7, "total_tokens": 7}}
REFUSED = Status(400, vllm_error(400, "the model does not support embeddings"))


@pytest.fixture
def photos(tmp_path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for name, colour in (("a-red.png", (220, 10, 10)), ("b-green.png", (10, 200, 10)), ("c-blue.png", (10, 10, 230))):
        Image.new("RGB", (300, 200), colour).save(folder / name)
    return folder


def test_a_failing_batch_keeps_the_vectors_made_before_it_in_the_output_file(mmcli, embed_server, photos, tmp_path):
    out = tmp_path / "vectors.jsonl"
    embed_server.script(Status(200, ONE_VECTOR), REFUSED)
    run = mmcli("embed", photos, "--batch-size", "1", "-o", out, "--base-url", embed_server.base_url)
    assert_clean_error(run, 4, "does not support embeddings")
    assert "wrote the 1 of 3 vector(s) made before the run stopped" in run.stderr
    [kept] = [json.loads(line) for line in out.read_text().splitlines()]
    assert Path(kept["source"]).name == "a-red.png" and kept["embedding"] == [3.0, 4.0] + [0.0] * 6  # the plain preset keeps it as sent
    assert kept["batch"] == {"index": 0, "size": 1}
    assert len(embed_server.embedding_requests()) == 2  # nothing sent after the failure


def test_a_failing_batch_keeps_the_vectors_made_before_it_in_the_index(mmcli, embed_server, photos, tmp_path):
    index = tmp_path / "idx"
    embed_server.script(Status(200, ONE_VECTOR), REFUSED)
    run = mmcli("embed", photos, "--batch-size", "1", "--index", index, "--base-url", embed_server.base_url)
    assert_clean_error(run, 4)
    assert "kept the 1 vector(s)" in run.stderr
    meta = json.loads((index / "index.json").read_text())
    assert [Path(e["path"]).name for e in meta["entries"]] == ["a-red.png"]
    again = mmcli("embed", photos, "--index", index, "--base-url", embed_server.base_url)
    assert again.code == 0, again.stderr
    assert "2 added, 1 unchanged skipped, 3 in all" in again.stderr
    meta = json.loads((index / "index.json").read_text())
    assert np.load(index / meta["vectors"]).shape == (3, 8)


def test_client_embed_failure_keeps_the_records_on_partial(embed_server, photos):
    embed_server.script(Status(200, ONE_VECTOR), REFUSED)
    with pytest.raises(api.RequestRejected) as failed:
        api.Client(base_url=embed_server.base_url).embed(photos, batch_size=1)
    assert failed.value.exit_code == 4 and failed.value.hint
    [record] = failed.value.partial
    assert Path(record["source"]).name == "a-red.png" and record["dims"] == 8


def test_batches_are_numbered_in_the_records(embed_server, photos, mmcli):
    records = api.Client(base_url=embed_server.base_url).embed(photos, texts=["red"], batch_size=3)
    assert [r["batch"] for r in records] == [{"index": 0, "size": 3}] * 3 + [{"index": 1, "size": 1}]
    run = mmcli("embed", photos, "--text", "red", "--batch-size", "3", "--base-url", embed_server.base_url)
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert lines == records


def test_client_search_gives_what_search_json_gives(mmcli, embed_server, photos, tmp_path):
    index = tmp_path / "idx"
    assert mmcli("embed", photos, "--index", index, "--base-url", embed_server.base_url).code == 0
    client = api.Client(base_url=embed_server.base_url)
    from mmcli.tasks.embed.search import fields

    for args, keywords in ((["a blue sky"], {"query": "a blue sky"}),
                           (["--image", photos / "b-green.png"], {"image": str(photos / "b-green.png")})):
        run = mmcli("search", *args, "--index", index, "-k", "2", "--json", "--base-url", embed_server.base_url)
        assert run.code == 0, run.stderr
        found = client.search(index=index, top_k=2, **keywords)
        assert fields(found) == json.loads(run.stdout)
        assert len(found.matches) == 2 and found.matches[0]["rank"] == 1
    assert Path(client.search("red", index=str(index)).matches[0]["source"]).name == "a-red.png"


def test_client_search_refuses_bad_arguments_before_sending(embed_server, photos, tmp_path):
    client = api.Client(base_url=embed_server.base_url)
    cases = [dict(index=tmp_path), dict(query="red", image=photos / "a-red.png", index=tmp_path),
             dict(query="  ", index=tmp_path), dict(query="red", index=tmp_path / "none"),
             dict(query="red", index=tmp_path, top_k=0), dict(query="red", index=42)]
    for keywords in cases:
        with pytest.raises(api.UsageError) as refused:
            client.search(**keywords)
        assert refused.value.exit_code == 2 and refused.value.hint, keywords
    assert embed_server.embedding_requests() == []


def test_search_of_an_index_by_another_model_is_refused_by_the_client(photos, tmp_path, mmcli):
    index = tmp_path / "idx"
    with EmbeddingServer(models=["model-a"]) as first:
        assert mmcli("embed", photos, "--index", index, "--base-url", first.base_url).code == 0
    with EmbeddingServer(models=["model-b"]) as second:
        with pytest.raises(api.UsageError, match="another model"):
            api.Client(base_url=second.base_url).search("red", index=index)
        assert second.embedding_requests() == []


def test_ctrl_c_while_the_next_file_is_rendered_keeps_the_vectors_made(embed_server, tmp_path, clean_env):
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import ROOT
    from tests.support.pdfs import scanned_pdf

    # huge scans after a small one: their pages are rendered when their turn comes, which takes far longer than
    # the local server's answer, so a Ctrl-C sent just after the first answer lands between requests
    small = scanned_pdf(tmp_path / "a.pdf", 1)
    huge = scanned_pdf(tmp_path / "b.pdf", 6, (6000, 8000))
    out = tmp_path / "vectors.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "mmcli", "embed", str(small), str(huge), "--batch-size", "1",
                             "-o", str(out), "--base-url", embed_server.base_url], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=clean_env, cwd=ROOT, text=True)
    try:
        deadline = time.monotonic() + 60
        while not embed_server.embeddings_answered and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)  # the answer read; the pages of b.pdf take seconds to render
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130 and "Traceback" not in err, err
    kept = out.read_text().splitlines() if out.exists() else []
    assert len(kept) == 1 and re.search(r"wrote the 1 of \d+ vector\(s\) made before the run stopped", err), err
