"""The order every command follows: settings, then inputs checked, then the endpoint, then media and sending."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping, Optional

if TYPE_CHECKING:
    from ..settings import CommonOptions, GenerationOptions, MediaOptions, Settings
    from .endpoint import Target
    from ..events import Events
    from .inputs import CheckedInput
    from .job import Content, Job, Meta
    from .runner import Runner


@dataclass
class Context:
    """A task's surroundings: where requests go, how media and answers are shaped, who hears about it."""

    target: "Target"
    media: "MediaOptions"
    generation: "GenerationOptions"
    events: "Events"

    def job(self, content: list["Content"], prompt: str, label: str = "", meta: "Meta" = None,
            named_warnings: bool = False) -> "Job":
        """A job for this target with these options; a question that is not text is refused."""
        from .job import Job

        check_text(prompt, "the question")
        check_text(self.generation.system or "", "the system prompt")
        return Job(content=content, prompt=prompt, model=self.target.model, family=self.target.family,
                   generation=self.generation, label=label, meta=meta, named_warnings=named_warnings)


def check_text(text: str, what: str) -> None:
    """Refuse text holding bytes that are not UTF-8 (Python keeps them as lone surrogates): no server reads them."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        from ..errors import UsageError

        bad = text[exc.start:exc.end].encode("utf-8", "surrogateescape")
        raise UsageError(f"{what} is not valid UTF-8 text", f"it holds the byte(s) {bad!r} at character {exc.start}",
                         hint="write it in UTF-8 (iconv -t UTF-8 converts other encodings)") from None


@dataclass
class Opened:
    """Settings resolved and every input opened and checked; nothing has been sent yet."""

    settings: "Settings"
    checked: list["CheckedInput"]


@dataclass
class Started:
    """A command ready to build its jobs: its checked inputs, its context and its runner."""

    checked: list["CheckedInput"]
    ctx: "Context"
    runner: "Runner"


def open_inputs(inputs: list, opts: "CommonOptions", events: "Events", allowed: tuple[str, ...],
                environ: Optional[Mapping[str, str]] = None) -> Opened:
    """Resolve settings, then open and check every input (downloads included)."""
    from ..settings import resolve_settings
    from .inputs import read_inputs

    settings = resolve_settings(opts.endpoint, environ)
    checked = read_inputs(inputs, opts.media, settings.endpoint.timeout, events.warn, allowed)
    return Opened(settings, checked)


def connect(opened: Opened, opts: "CommonOptions", events: "Events",
            environ: Optional[Mapping[str, str]] = None) -> Started:
    """Find (or start) the endpoint and learn its model and family; a dry run asks nothing."""
    from .endpoint import connect as find_target
    from .history.recorder import recorder_for
    from .runner import Runner

    if len(opts.endpoint.base_urls) > 1:
        from ..urls import masked_url

        # several servers share the jobs of a many-job run; one request goes to one server
        events.warn(f"--base-url is given {len(opts.endpoint.base_urls)} times: this run sends only to the first, "
                    f"{masked_url(opts.endpoint.base_urls[0])}; the others are for --each and mmcli batch")
    target = find_target(opened.settings, events, dry_run=opts.output.dry_run, environ=environ)
    ctx = Context(target, opts.media, opts.generation, events)
    recorder = None if opts.output.dry_run else recorder_for(opened.settings, events.warn, environ)
    return Started(opened.checked, ctx, Runner(target, status=events.status, verify=opts.output.verify,
                                               warn=events.warn, recorder=recorder))


def start(inputs: list, opts: "CommonOptions", events: "Events", allowed: tuple[str, ...],
          environ: Optional[Mapping[str, str]] = None) -> Started:
    """Both steps, for commands with no checks of their own between them."""
    return connect(open_inputs(inputs, opts, events, allowed, environ), opts, events, environ)
