"""The one sender: jobs become requests, go out with retries, and come back as Results."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Optional

from ..errors import BadReply, MmcliError, PartialAnswerError, RunStopped
from .job import Job
from .plan import Plan
from ..schema import checked
from .verify import check_fits, server_visual_tokens, text_tokens

if TYPE_CHECKING:
    from ..presets import Preset
    from .endpoint import Target

TextFn = Callable[[str], None]
StatusFn = Callable[[str], None]


@dataclass
class Result:
    """What one job came back with: the answer (whole or partial), usage, and the error if it failed."""

    job: Job
    plan: Plan
    text: str = ""
    model: Optional[str] = None
    finish_reason: Optional[str] = None
    usage: dict = field(default_factory=dict)
    error: Optional[MmcliError] = None
    interrupted: bool = False
    vector: Optional[list[float]] = None  # an embedding job's vector, as the server sent it
    reply: object = None  # a transcription's reply (segments, language), as the server sent it
    server_visual_tokens: Optional[int] = None  # --verify: prompt tokens minus the exact text tokens
    seconds: Optional[float] = None  # from sending to the end of the answer
    value: object = None  # --schema: the answer parsed and checked against the schema

    @property
    def structured(self) -> bool:
        """Whether `value` is the answer: it came whole and checked out against the job's --schema."""
        return checked(self.job.generation.schema) and self.ok

    @property
    def answer(self) -> object:
        """What the answer is: the checked object under a schema, else its text (also a failed one's text)."""
        return self.value if self.structured else self.text

    @property
    def ok(self) -> bool:
        """Whether the answer arrived whole."""
        return self.error is None and not self.interrupted

    @property
    def planned_visual_tokens(self) -> Optional[int]:
        """The visual tokens the plan counted, when every item's cost is known."""
        return self.plan.visual_tokens

    @property
    def verified(self) -> Optional[bool]:
        """Whether the server saw what was planned: exact with --verify, else False when the prompt is
        smaller than the planned visual tokens alone; None when nothing can be said."""
        planned, prompt = self.planned_visual_tokens, self.usage.get("prompt_tokens")
        if self.server_visual_tokens is not None and planned is not None:
            return self.server_visual_tokens == planned
        if not planned or not isinstance(prompt, int):
            return None
        return prompt >= planned


class Runner:
    """Sends jobs to one target; each Result is handed back (or on RunStopped) and not kept here."""

    def __init__(self, target: "Target", status: Optional[StatusFn] = None, verify: bool = False,
                 warn: Optional[StatusFn] = None, pacer=None, recorder: Optional[Callable[[Result], None]] = None
                 ) -> None:
        self.target = target
        self.status = status
        self.warn = warn
        self.verify = verify  # count the text exactly (vLLM's /tokenize) and compare visual tokens exactly
        self.pacer = pacer  # shared by the senders of a many-job run (mmcli.batch.pacing.Pacer)
        self.recorder = recorder  # sees every finished chat result (the history); must never raise

    def plan(self, job: Job, *, stream: Optional[bool] = None) -> Plan:
        """The exact request for `job` and what is known about it."""
        from .wire import build_request, inserted_text

        endpoint = self.target.settings.endpoint
        request = build_request(job, endpoint.quirks, stream=stream)
        return Plan(model=job.model, family=job.family.name, base_url=endpoint.base_url, items=job.plan_items,
                    request=request, family_source=self.target.family_source, notes=list(self.target.notes),
                    inserted_text=inserted_text(job, endpoint.quirks),
                    resent=len(job.earlier.items) if job.earlier is not None else 0)

    def run(self, job: Job, on_text: Optional[TextFn] = None, *, stream: Optional[bool] = None) -> Result:
        """Send one job; a failed one's Result (with what arrived) goes out on RunStopped."""
        from ..net import openai_routes as client
        from .endpoint import context_limit

        plan = self.plan(job, stream=stream)
        result = Result(job, plan)
        started = time.monotonic()
        heard: list[str] = []  # what streamed so far: an answer stopped by Ctrl-C keeps it
        closed: list[BrokenPipeError] = []  # the reader of the output went away: the answer is still logged

        def hear(delta: str) -> None:
            heard.append(delta)
            if on_text is not None and not closed:
                try:
                    on_text(delta)
                except BrokenPipeError as exc:
                    closed.append(exc)

        try:
            if plan.visual_tokens is not None:  # only then can the fit be judged
                check_fits(plan, context_limit(self.target), job.generation.max_tokens)
            answer = client.chat(self.target.settings.endpoint, plan.request, on_text=hear, status=self.status,
                                 pacer=self.pacer)
        except PartialAnswerError as exc:
            _copy_answer(result, exc.partial)  # the text that arrived stays on the result
            result.error = exc.cause  # the error of its own class, as every caller raises it
        except MmcliError as exc:
            result.error = exc
        except KeyboardInterrupt as exc:
            result.interrupted = True
            result.text = "".join(heard)
            self._finish(result, started)
            raise RunStopped([result], exc) from None
        else:
            _copy_answer(result, answer)
            try:
                check_structured(result)
                if self.verify:
                    result.server_visual_tokens = server_visual_tokens(self.target.settings.endpoint, result,
                                                                       self.warn)
            except KeyboardInterrupt as exc:  # the answer is whole: only its checks (a /tokenize) were cut short
                self._finish(result, started)
                raise RunStopped([result], exc) from None
        self._finish(result, started)
        if closed:
            raise closed[0]
        if result.error is not None:
            raise RunStopped([result], result.error)
        return result

    def text_tokens(self, result: Result) -> int:
        """The exact tokens of `result`'s request without its media (vLLM's POST /tokenize); MmcliError if unknown."""
        return text_tokens(self.target.settings.endpoint, result.plan.request)

    def _finish(self, result: Result, started: float) -> None:
        result.seconds = time.monotonic() - started
        if self.recorder is not None:
            self.recorder(result)

    def transcribe(self, job: Job, fields: dict) -> Result:
        """Upload one audio piece to /audio/transcriptions; its Result (a failed one's on RunStopped)."""
        from ..net import openai_routes as client

        endpoint = self.target.settings.endpoint
        item = job.items[0]
        plan = Plan(model=job.model, family=job.family.name, base_url=endpoint.base_url, items=[item],
                    request={"model": job.model, **{k: v for k, v in fields.items() if v is not None}})
        result = Result(job, plan)
        try:
            reply = client.transcribe(endpoint, item.data or b"", item.source, {"model": job.model, **fields},
                                      self.status)
            if not isinstance(reply, dict) or not isinstance(reply.get("text"), str):
                raise BadReply("the transcription has no text", where=job.meta.source if job.meta else job.label,
                               hint="the endpoint may not serve /audio/transcriptions")
        except MmcliError as exc:
            result.error = exc
        except KeyboardInterrupt as exc:
            result.interrupted = True
            raise RunStopped([result], exc) from None
        else:
            result.reply, result.text, result.model = reply, reply["text"], job.model
        if result.error is not None:
            raise RunStopped([result], result.error)
        return result

    def plan_embedding(self, jobs: list[Job], preset: "Preset") -> Plan:
        """The exact POST /embeddings request for a batch of jobs (one conversation each)."""
        from .wire import build_embedding_request

        endpoint = self.target.settings.endpoint
        request = build_embedding_request(jobs, endpoint.quirks, preset)
        items = [item for job in jobs for item in job.items]
        return Plan(model=jobs[0].model if jobs else None, family=self.target.family.name,
                    base_url=endpoint.base_url, items=items, request=request,
                    family_source=self.target.family_source)

    def embed(self, jobs: list[Job], preset: "Preset") -> list[Result]:
        """Send a batch of embedding jobs in one request; one Result (with its vector) per job.

        The usage is the whole request's: the server counts tokens per request, not per conversation.
        """
        from ..net import openai_routes as client

        plan = self.plan_embedding(jobs, preset)
        results = [Result(job, plan) for job in jobs]
        try:
            vectors, usage = client.embed(self.target.settings.endpoint, plan.request, status=self.status)
        except MmcliError as exc:
            for result in results:
                result.error = exc
        except KeyboardInterrupt as exc:
            for result in results:
                result.interrupted = True
            raise RunStopped(results, exc) from None
        else:
            for result, vector in zip(results, vectors):
                result.vector, result.usage, result.model = vector, dict(usage), plan.model
        if results and results[0].error is not None:
            raise RunStopped(results, results[0].error)
        return results


def check_structured(result: Result) -> None:
    """Under a --schema: the answer parsed and checked into `result.value`, or `result.error` (exit 7) naming
    the first mismatch, the text kept. Live runs and collected exports check the same way."""
    schema = result.job.generation.schema
    if not checked(schema) or result.error is not None:
        return
    try:
        result.value = schema.parse(result.text, result.finish_reason, result.job.generation.max_tokens)
    except MmcliError as exc:  # OutputUnparseable
        result.error = exc


def _copy_answer(result: Result, answer) -> None:
    result.text = answer.text
    result.model = answer.model
    result.finish_reason = answer.finish_reason
    result.usage = dict(answer.usage)
