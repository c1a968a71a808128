"""The Python API: `mmcli.Client`, the same jobs, runner and settings as the CLI, with objects instead of output.

Inputs may be paths (str or os.PathLike), http(s) or data URLs, bytes, PIL images, or numpy arrays
(RGB, uint8, shape height x width x 3). Nothing is printed: warnings are kept on each result's `.warnings`,
and failures raise `mmcli.MmcliError` subclasses carrying `.exit_code` and `.hint`.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import TYPE_CHECKING, Callable, Iterator, Optional, Union

from .errors import UsageError
from .events import Events

if TYPE_CHECKING:
    from .config import Settings
    from .job import Job
    from .plan import Plan
    from .runner import Result, Runner
    from .tasks.ask import Answer
    from .tasks.detect import Detections
    from .tasks.docqa import DocAnswer


class Client:
    """An endpoint to ask: a profile, a base URL, a model. Settings as the CLI's: keyword > MMCLI_* > config file.

    Every method takes the CLI's option names as keywords (max_pixels=, max_tokens=, temperature=, system=,
    lossless=, fps=, frames=, start=, end=, pages=, per_page=, pages_per_request=, points=, coords=, ...);
    an unknown keyword raises mmcli.UsageError. A local vLLM is started when needed, as the CLI does
    (autostart=False, MMCLI_AUTOSTART=0 or `autostart = false` in the config file turn that off).
    """

    def __init__(self, profile: Optional[str] = None, base_url: Optional[str] = None, model: Optional[str] = None,
                 family: Optional[str] = None, api_key_env: Optional[str] = None,
                 timeout: Optional[float] = None, *, autostart: Optional[bool] = None) -> None:
        self._given = {"profile": profile, "base_url": base_url, "model": model, "family": family,
                       "api_key_env": api_key_env, "timeout": timeout, "autostart": autostart}
        self._settings()  # bad keywords, config or environment fail here rather than at the first question

    def __repr__(self) -> str:
        given = ", ".join(f"{k}={v!r}" for k, v in self._given.items() if v is not None and k != "base_url")
        if self._given["base_url"]:
            from .urls import masked_url

            given = ", ".join(filter(None, [f"base_url={masked_url(self._given['base_url'])!r}", given]))
        return f"mmcli.Client({given})"

    def _settings(self) -> "Settings":
        from .api_options import endpoint_flags
        from .config import resolve_settings

        return resolve_settings(endpoint_flags(self._given, os.environ))

    def _options(self, task: str, options: dict, dry_run: bool = False):
        from .api_options import endpoint_flags, task_options

        return task_options(task, options, endpoint_flags(self._given, os.environ), dry_run)

    def ask(self, inputs, prompt: str, **options) -> "Answer":
        """Ask about images, videos and audio (one input or a list; [] for a text-only question); returns an Answer."""
        runner, job, events = self._prepare_ask(inputs, prompt, options)
        return _answer(runner, job, events)

    def ask_stream(self, inputs, prompt: str, **options) -> "AnswerStream":
        """Like ask, but iterate the result for text pieces as they arrive; `.answer` is the Answer after."""
        runner, job, events = self._prepare_ask(inputs, prompt, options)
        return AnswerStream(lambda on_text: _answer(runner, job, events, on_text))

    def video(self, source, prompt: Optional[str] = None, **options) -> "Answer":
        """Ask about one video (default question: describe it); frames are sampled and sized on this machine."""
        runner, job, events = self._prepare_ask([source], prompt, options, task="video")
        return _answer(runner, job, events)

    def docqa(self, inputs, question: str, **options) -> "DocAnswer":
        """Ask about PDFs or page images; pages beyond pages_per_request are answered in batches and merged."""
        from .tasks.docqa import answer_document, partial_document, prepare_docqa

        parsed, events = self._options("docqa", options), Events()
        runner, jobs, ctx = prepare_docqa(_listed(inputs), _question(question), parsed.doc, parsed.common, events)
        with _raising_cause(lambda results: partial_document(results, jobs)):
            return answer_document(runner, jobs, question, ctx)

    def detect(self, inputs, target: str, **options) -> "Detections":
        """Find `target` in images or PDF pages; boxes come back in the original image's pixels."""
        from .tasks.detect import Detections, check_strict, prepare_detect

        parsed, events = self._options("detect", options), Events()
        detect = parsed.detect_options(_question(target))
        runner, jobs = prepare_detect(_listed(inputs), detect, parsed.common, events)
        with _raising_cause(lambda results: Detections.from_results(
                [r for r in results if r.text], detect.target, events.warnings)):
            results = runner.run_all(jobs)
        found = Detections.from_results(results, detect.target, events.warnings)
        if detect.strict:
            with _partial(found):
                check_strict(found.inputs)
        return found

    def plan(self, inputs, prompt: Optional[str] = None, *, task: str = "ask",
             **options) -> Union["Plan", list["Plan"]]:
        """The dry run: what `task` (ask, video, docqa or detect) would send; nothing is sent or started.

        ask and video give one Plan; docqa and detect a list, one per request (docqa's merge is not known
        before its batches are answered).
        """
        if task in ("ask", "video"):
            runner, job, _ = self._prepare_ask(inputs if task == "ask" else [inputs], prompt, options, task=task,
                                               dry_run=True)
            return runner.plan(job)
        if task not in ("docqa", "detect"):
            raise UsageError("unknown task", where=str(task), hint="use ask, video, docqa or detect")
        parsed, events = self._options(task, options, dry_run=True), Events()
        if task == "docqa":
            from .tasks.docqa import prepare_docqa

            runner, doc_jobs, _ = prepare_docqa(_listed(inputs), _question(prompt), parsed.doc, parsed.common,
                                                events)
            jobs = doc_jobs.jobs
        else:
            from .tasks.detect import prepare_detect

            runner, jobs = prepare_detect(_listed(inputs), parsed.detect_options(_question(prompt)),
                                          parsed.common, events)
        return [runner.plan(job) for job in jobs]

    def _prepare_ask(self, inputs, prompt: Optional[str], options: dict, task: str = "ask",
                     dry_run: bool = False) -> tuple["Runner", "Job", Events]:
        from .tasks import DEFAULT_VIDEO_PROMPT
        from .tasks.ask import prepare_ask

        if task == "video" and prompt is None:
            prompt = DEFAULT_VIDEO_PROMPT
        parsed, events = self._options(task, options, dry_run), Events()
        allowed = ("video",) if task == "video" else ("image", "video", "audio")
        runner, job = prepare_ask(_listed(inputs), _question(prompt), parsed.common, events, parsed.sampling,
                                  allowed=allowed)
        return runner, job, events


def _listed(inputs) -> list:
    """One input or several: a list or tuple is several, None is none, anything else (an array too) is one."""
    if inputs is None:
        return []
    return list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]


def _question(text: object) -> str:
    if not isinstance(text, str):
        raise UsageError("the question must be text", f"got {type(text).__name__}")
    if not text.strip():
        raise UsageError("the question is empty")
    return text


def _answer(runner: "Runner", job: "Job", events: Events,
            on_text: Optional[Callable[[str], None]] = None) -> "Answer":
    from .tasks.ask import answer_from

    with _raising_cause(lambda results: answer_from(results[-1], events.warnings)):
        result = runner.run(job, on_text)
    return answer_from(result, events.warnings)


@contextmanager
def _raising_cause(partial: Callable[[list["Result"]], object]) -> Iterator[None]:
    """A stopped run raises its cause (an MmcliError, or KeyboardInterrupt), with what was answered on `.partial`."""
    from .runner import RunStopped

    try:
        yield
    except RunStopped as stopped:
        from .client import PartialAnswerError

        cause = stopped.cause
        if isinstance(cause, PartialAnswerError):  # its class says only "part arrived"; raise the real one
            cause = cause.cause
        cause.partial = partial(stopped.results)
        raise cause from None


@contextmanager
def _partial(found: object) -> Iterator[None]:
    from .errors import MmcliError

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
