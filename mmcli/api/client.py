"""The Python API: `mmcli.Client`, the same jobs, runner and settings as the CLI, with objects instead of output.

Inputs may be paths (str or os.PathLike), http(s) or data URLs, bytes, PIL images, or numpy arrays
(RGB, uint8, shape height x width x 3). Nothing is printed: warnings are kept on each result's `.warnings`,
and failures raise `mmcli.MmcliError` subclasses carrying `.exit_code` and `.hint`.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import TYPE_CHECKING, Callable, Iterator, Optional, Union

from ..errors import UsageError

if TYPE_CHECKING:
    from .many import Jobs
    from ..settings import Settings
    from .conversation import Conversation
    from ..tasks.embed.search import Matches
    from ..core.plan import Plan
    from ..tasks.ask import Answer
    from ..tasks.detect.jobs import Detections
    from ..tasks.docqa import DocAnswer


class Client:
    """An endpoint to ask: a profile, a base URL, a model. Settings as the CLI's: keyword > MMCLI_* > config file.

    Every method takes the CLI's option names as keywords (max_pixels=, max_tokens=, temperature=, system=,
    lossless=, fps=, frames=, start=, end=, pages=, per_page=, pages_per_request=, points=, coords=, ...);
    an unknown keyword raises mmcli.UsageError. A local vLLM is started when needed, as the CLI does
    (autostart=False, MMCLI_AUTOSTART=0 or `autostart = false` in the config file turn that off).
    Requests and answers are kept in the history like the CLI's (log=False, MMCLI_LOG=0 or `log = false`
    turn that off); `client.conversation()` asks follow-up questions.
    """

    def __init__(self, profile: Optional[str] = None, base_url: Optional[str] = None, model: Optional[str] = None,
                 family: Optional[str] = None, api_key_env: Optional[str] = None,
                 timeout: Optional[float] = None, *, autostart: Optional[bool] = None,
                 log: Optional[bool] = None, **unknown) -> None:
        self._given = {"profile": profile, "base_url": base_url, "model": model, "family": family,
                       "api_key_env": api_key_env, "timeout": timeout, "autostart": autostart, "log": log, **unknown}
        self._settings()  # bad keywords, config or environment fail here rather than at the first question

    def __repr__(self) -> str:
        given = ", ".join(f"{k}={v!r}" for k, v in self._given.items() if v is not None and k != "base_url")
        if self._given["base_url"]:
            from ..urls import masked_url

            given = ", ".join(filter(None, [f"base_url={masked_url(self._given['base_url'])!r}", given]))
        return f"mmcli.Client({given})"

    def _settings(self) -> "Settings":
        from .keywords import endpoint_flags
        from ..settings import resolve_settings

        return resolve_settings(endpoint_flags(self._given, os.environ))

    def _options(self, task: str, options: dict, dry_run: bool = False):
        from .keywords import endpoint_flags, task_options

        return task_options(task, options, endpoint_flags(self._given, os.environ), dry_run)

    def ask(self, inputs, prompt: str, **options) -> "Answer":
        """Ask about images, videos and audio (one input or a list; [] for a text-only question); returns an Answer."""
        return self._drive("ask", _listed(inputs), prompt, options)

    def ask_stream(self, inputs, prompt: str, **options) -> "AnswerStream":
        """Like ask, but iterate the result for text pieces as they arrive; `.answer` is the Answer after."""
        self._options("ask", options)  # a bad keyword is refused here, not when the loop starts
        return AnswerStream(lambda on_text: self._drive("ask", _listed(inputs), prompt, options, on_text=on_text))

    def video(self, source, prompt: Optional[str] = None, **options) -> "Answer":
        """Ask about one video (default question: describe it); frames are sampled and sized on this machine."""
        from ..tasks import DEFAULT_VIDEO_PROMPT

        return self._drive("video", [source], DEFAULT_VIDEO_PROMPT if prompt is None else prompt, options)

    def docqa(self, inputs, question: str, **options) -> "DocAnswer":
        """Ask about PDFs or page images; pages beyond pages_per_request are answered in batches and merged."""
        return self._drive("docqa", _listed(inputs), question, options)

    def detect(self, inputs, target: str, **options) -> "Detections":
        """Find `target` in images or PDF pages; boxes come back in the original image's pixels."""
        from ..tasks.detect.jobs import check_strict

        found = self._drive("detect", _listed(inputs), target, options)
        if options.get("strict"):  # checked as a flag by the driver's option parsing
            with _partial(found):
                check_strict(found.inputs)
        return found

    def conversation(self, cid: Optional[str] = None, *, system: Optional[str] = None,
                     log: Optional[bool] = None, **unknown) -> "Conversation":
        """A conversation: each `.ask` sends the earlier turns exactly as they were sent, then the question.
        `cid` continues a logged one (mmcli logs lists them); log=False keeps this one out of the history."""
        from .conversation import Conversation
        from .keywords import checked

        checked("conversation", {"cid": cid, "system": system, "log": log, **unknown})
        return Conversation(self, cid=cid, system=system, log=log)

    def _turn(self, inputs: list, prompt: str, options: dict, earlier, log: Optional[bool]) -> "Answer":
        """One question of a conversation, `earlier` sent ahead of it; log=False keeps it out of the history."""
        from dataclasses import replace

        from ..core.driver import TextOnly, drive
        from ..core.history.follow import FollowUp
        from ..tasks.specs import TASKS, AskOptions

        parsed = self._options("ask", options)
        common = parsed.common
        if log is not None:
            common = replace(common, endpoint=replace(common.endpoint, log=log))
        return drive(FollowUp(TASKS["ask"], earlier=earlier), inputs, _question(prompt),
                     AskOptions(sampling=parsed.sampling), common, TextOnly())

    def transcribe(self, files, *, language: Optional[str] = None, prompt: Optional[str] = None,
                   max_upload_mb: float = 25.0, start: Optional[float] = None,
                   end: Optional[float] = None, **unknown) -> list:
        """Transcribe speech in audio or video files (one or a list); one Transcript each (`.text`, `.segments`)."""
        from .keywords import checked
        from .more_tasks import transcribe

        given = checked("transcribe", {"language": language, "prompt": prompt, "max_upload_mb": max_upload_mb,
                                       "start": start, "end": end, **unknown})
        if not _listed(files):
            raise UsageError("nothing to transcribe", hint="give audio or video files, one or a list")
        return transcribe(self._flags(), _listed(files), given.get("language"), given.get("prompt"),
                          given.get("max_upload_mb", 25.0), given.get("start"), given.get("end"))

    def embed(self, inputs=None, *, texts=None, preset: Optional[str] = None, batch_size: int = 8,
              pages: Optional[str] = None, **unknown) -> list[dict]:
        """Embed images, PDF pages and texts; one record each (source, page, kind, dims, embedding, usage)."""
        from .keywords import checked
        from .more_tasks import embed

        given = checked("embed", {"texts": texts, "preset": preset, "batch_size": batch_size, "pages": pages,
                                  **unknown})
        return embed(self._flags(), _listed(inputs), given.get("texts", []), given.get("preset"),
                     given.get("batch_size", 8), given.get("pages"))

    def search(self, query: Optional[str] = None, *, index=None, image=None, top_k: int = 5,
               preset: Optional[str] = None, **unknown) -> "Matches":
        """Search an index made by `mmcli embed --index DIR` with a text or an image; the nearest rows, best first
        (`.matches`: rank, score, source, page, kind, path, thumbnail), as `mmcli search --json` gives them."""
        from .keywords import checked
        from .more_tasks import search

        given = checked("search", {"query": query, "index": index, "top_k": top_k, "preset": preset, **unknown})
        if "index" not in given:
            raise UsageError("search needs index=", hint="give the folder made by mmcli embed --index DIR")
        return search(self._flags(), given.get("query"), given["index"], image, given.get("top_k", 5),
                      given.get("preset"))

    def each(self, inputs, prompt: Optional[str] = None, *, task: str = "ask", output=None,
             concurrency: Optional[int] = None, retry_failed: bool = False, recursive: bool = False,
             engine: str = "local", ray_address: Optional[str] = None, **options) -> "Jobs":
        """`--each`: every input (a folder: its media files) asked on its own, several at once; iterate the result
        for each job's results line as it finishes. `output` is the results file (a rerun skips the jobs in it);
        engine="ray" runs the jobs on Ray Data's workers (`--engine ray`; ray_address: the cluster to join)."""
        from .keywords import checked
        from .many import each
        from ..tasks import DEFAULT_VIDEO_PROMPT

        # task=None is the default, as for every keyword; output, concurrency, ...: by the same row, in many.batch_flags
        task = checked("each", {"task": task}).get("task", "ask")
        if task == "video" and prompt is None:
            prompt = DEFAULT_VIDEO_PROMPT
        return each({"output": output, "concurrency": concurrency, "retry_failed": retry_failed,
                     "recursive": recursive, "engine": engine, "ray_address": ray_address}, task, _listed(inputs),
                    _question(prompt), self._options(task, options),
                    os.environ)

    def batch(self, tasks, *, output=None, concurrency: Optional[int] = None, retry_failed: bool = False,
              engine: str = "local", ray_address: Optional[str] = None, **unknown) -> "Jobs":
        """`mmcli batch`: each task a dict like a tasks-file line ({"command": "ask", "inputs": [...], "prompt": ...,
        "id": ..., options as keywords}); iterate the result for each job's results line as it finishes (engine and
        ray_address as for each)."""
        from .keywords import checked
        from .many import batch

        checked("batch", unknown)  # the run's own keywords: by the same table, in many.batch_flags
        return batch(tasks, {"output": output, "concurrency": concurrency, "retry_failed": retry_failed,
                             "engine": engine, "ray_address": ray_address},
                     self._options, self._settings())

    def openai(self):
        """An `openai.OpenAI` for this client's endpoint and key (for what mmcli does not cover, e.g. other routes)."""
        from ..net.sdk import openai_client

        return openai_client(self._settings().endpoint)

    def _flags(self):
        from .keywords import endpoint_flags

        return endpoint_flags(self._given, os.environ)

    def plan(self, inputs, prompt: Optional[str] = None, *, task: str = "ask",
             **options) -> Union["Plan", list["Plan"]]:
        """The dry run: what `task` (ask, video, docqa or detect) would send; nothing is sent or started.

        ask and video give one Plan; docqa and detect a list, one per request (docqa's merge is not known
        before its batches are answered).
        """
        from .keywords import checked
        from ..tasks import DEFAULT_VIDEO_PROMPT

        task = checked("plan", {"task": task}).get("task", "ask")  # None: the default, as for every keyword
        if task == "video" and prompt is None:
            prompt = DEFAULT_VIDEO_PROMPT
        plans = self._drive(task, [inputs] if task == "video" else _listed(inputs), prompt, options, dry_run=True)
        return plans[0] if task in ("ask", "video") else plans

    def _drive(self, task: str, inputs: list, prompt, options: dict, dry_run: bool = False,
               on_text: Optional[Callable[[str], None]] = None):
        """One call through the driver, as the CLI runs a command: the task's value, or its error raised with
        what was answered on `.partial`."""
        from ..core.driver import TextOnly, drive
        from ..tasks.specs import TASKS, AskOptions

        parsed = self._options(task, options, dry_run)
        spec = TASKS[task]
        if task in ("ask", "video"):
            task_opts = AskOptions(sampling=parsed.sampling, only_video=task == "video")
        elif task == "docqa":
            task_opts = parsed.doc
        else:
            task_opts = parsed.detect_options(_question(prompt))
        return drive(spec, inputs, _question(prompt), task_opts, parsed.common, TextOnly(on_text))


def _listed(inputs) -> list:
    """One input or several: a list or tuple is several, None is none, anything else (an array too) is one."""
    if inputs is None:
        return []
    return list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]


def _question(text: object) -> str:
    if not isinstance(text, str):
        raise UsageError("the question must be text", f"got {type(text).__name__}", hint="give the question as a str")
    if not text.strip():
        raise UsageError("the question is empty", hint="give the words to ask")
    return text


@contextmanager
def _partial(found: object) -> Iterator[None]:
    from ..errors import MmcliError

    try:
        yield
    except MmcliError as exc:
        exc.partial = found
        raise


class _Cancelled(Exception):
    """The reader of a stream stopped reading: the request is abandoned."""


class AnswerStream:
    """Text pieces of one answer as they arrive. The request is sent when the loop starts; after it,
    `.answer` is the Answer (also the generator's return value). A failure raises its MmcliError from
    the loop, with the text so far on `.partial`. Leaving the loop early abandons the request."""

    def __init__(self, run: Callable[[Callable[[str], None]], "Answer"]) -> None:
        self._run = run
        self.answer: Optional["Answer"] = None
        self._pieces: list[str] = []
        self._generator = self._generate()

    @property
    def text(self) -> str:
        """The text so far."""
        return "".join(self._pieces)

    def __iter__(self):
        return self._generator

    def _generate(self):
        import queue
        import threading

        # The runner pushes text from its loop; a thread turns that into pieces this generator can pull.
        pieces: "queue.Queue[tuple[str, object]]" = queue.Queue()
        cancel = threading.Event()

        def on_text(piece: str) -> None:
            if cancel.is_set():
                raise _Cancelled()
            pieces.put(("text", piece))

        def work() -> None:
            try:
                pieces.put(("done", self._run(on_text)))
            except BaseException as exc:  # noqa: B902 - handed to the reading thread, which raises it
                pieces.put(("error", exc))

        threading.Thread(target=work, name="mmcli-stream", daemon=True).start()
        try:
            while True:
                kind, value = pieces.get()
                if kind == "text":
                    self._pieces.append(value)
                    yield value
                elif kind == "done":
                    self.answer = value
                    return value
                else:
                    raise value
        finally:
            cancel.set()
