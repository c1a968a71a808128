"""Leaving Ray runs early and joining addresses that are not Ray: the run lets go at once, nothing hangs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import assert_clean_error
from tests.test_batch_each import make_images
from tests.test_ray_engine import ray_head  # noqa: F401 - the module's own Ray head

ray = pytest.importorskip("ray", reason="the ray extra (CI installs it: .ci/run)")
pytestmark = [pytest.mark.ray, pytest.mark.real_process, pytest.mark.xdist_group("ray")]
ROOT = Path(__file__).parent.parent

BREAK_SCRIPT = """
import json, sys
import mmcli as api, ray
url, folder, out, address = sys.argv[1:5]
client = api.Client(base_url=url)
for i, item in enumerate(client.each(folder, "read", output=out, engine="ray", ray_address=address, concurrency=2)):
    if i == 1:
        break
print("initialized after break:", ray.is_initialized(), flush=True)
import threading
running = [t.name for t in threading.enumerate() if t.name.startswith(("StreamingExecutor-", "iter_threaded"))]
print("run threads after break:", running, flush=True)
again = client.each(folder, "read", output=out, engine="ray", ray_address=address, concurrency=2)
rest = list(again)
ids = [json.loads(line)["id"] for line in open(out)]
print("ids:", len(ids), len(set(ids)), "rest:", len(rest), flush=True)
"""


def test_breaking_out_of_each_on_ray_lets_go_of_ray_and_the_file(server, clean_env, tmp_path, ray_head):  # noqa: F811
    """`break` out of `for ... in client.each(..., engine="ray")` (no name kept): Ray is let go and the results
    file unlocked at once, without waiting for the garbage collector; a second run finishes the rest; the
    process exits (a process that hangs at exit fails on the timeout)."""
    folder = tmp_path / "album"
    make_images(folder, 8)
    out = tmp_path / "out.jsonl"
    env = dict(clean_env, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", BREAK_SCRIPT, server.base_url, str(folder), str(out), ray_head],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=150, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    assert "initialized after break: False" in proc.stdout, proc.stdout + proc.stderr
    # A Ray Data thread still in Ray when Ray shut down ended the process (exit 1) some of the time.
    assert "run threads after break: []" in proc.stdout, proc.stdout + proc.stderr
    assert "ids: 8 8" in proc.stdout, proc.stdout + proc.stderr


def test_an_address_where_something_else_answers_is_refused_at_once(mmcli, server, tmp_path):
    """A port that is open but not Ray (here an HTTP server) is one clear error, not minutes of Ray retrying
    (a run that retries fails on the timeout)."""
    from urllib.parse import urlsplit

    make_images(tmp_path / "album", 1)
    port = urlsplit(server.base_url).port
    for address in (f"127.0.0.1:{port}", f"localhost:{port}"):
        run = mmcli("ask", "--each", tmp_path / "album", "what is it?", "-o", tmp_path / "o.jsonl", "--base-url",
                    server.base_url, "--engine", "ray", "--ray-address", address, timeout=60)
        assert_clean_error(run, 2, "cannot reach Ray", "not Ray", address)
        assert "gcs_client" not in run.stderr
    assert not server.chat_requests() and not (tmp_path / "o.jsonl").exists()



@pytest.mark.parametrize("address, what", [("", "--ray-address must be a Ray address"),
                                           ("http://127.0.0.1:8265", "not a Ray address"),
                                           ("ray://127.0.0.1:10001", "a Ray Client address (ray://) cannot run"),
                                           ("a..b:6379", "a..b is not a host name")])
def test_addresses_ray_cannot_use_are_refused_before_ray_is_asked(mmcli, server, tmp_path, address, what):
    """An empty address, a web URL and a Ray Client address (Ray Data's run fails through Ray Client) are one
    clear error naming the form to give, with none of Ray's own lines."""
    make_images(tmp_path / "album", 1)
    run = mmcli("ask", "--each", tmp_path / "album", "what is it?", "-o", tmp_path / "o.jsonl", "--base-url",
                server.base_url, "--engine", "ray", "--ray-address", address, timeout=60)
    assert_clean_error(run, 2, what)
    assert "HOST:6379" in run.stderr and "gcs_client" not in run.stderr
    assert not server.chat_requests() and not (tmp_path / "o.jsonl").exists()


def test_a_parquet_output_folder_holding_the_inputs_is_refused(mmcli, server, tmp_path):
    """-o NAME.parquet that is the input folder itself is refused before anything is sent or written."""
    folder = tmp_path / "album.parquet"
    make_images(folder, 2)
    before = sorted(p.name for p in folder.iterdir())
    run = mmcli("ask", "--each", folder, "what is it?", "-o", folder, "--base-url", server.base_url,
                "--engine", "ray", timeout=120)
    assert_clean_error(run, 2, "refusing to write into a folder that holds")
    assert not server.chat_requests() and sorted(p.name for p in folder.iterdir()) == before
