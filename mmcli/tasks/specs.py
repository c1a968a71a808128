"""Each task as data for the one driver: which inputs it takes, how it picks and plans them, its finish
and its fields. The driver (mmcli.core.driver) runs every one of them the same way."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Optional

from .planned import Planned

if TYPE_CHECKING:
    from ..settings import MediaOptions
    from ..core.inputs import CheckedInput
    from ..core.job import Job
    from ..media.audio import AudioOptions
    from ..media.frames import SamplingOptions
    from ..core.runner import Result, Runner, TextFn
    from .common import Context


@dataclass(frozen=True)
class AskOptions:
    """ask's and video's own options: frame sampling, audio parts, a video's sound track."""

    sampling: Optional["SamplingOptions"] = None
    audio: Optional["AudioOptions"] = None  # how audio inputs are cut and sent
    sound: Optional["AudioOptions"] = None  # video --audio: the sound track, cut the same way
    only_video: bool = False  # mmcli video: one video, nothing else


@dataclass
class AskSelection:
    """ask's checked inputs, and a video's decoded sound track when it is sent too."""

    checked: list["CheckedInput"]
    sound: Any = None


class TaskSpec:
    """One task's pieces; see the subclasses."""

    name = ""

    def allowed(self, options: Any) -> tuple[str, ...]:
        """The kinds of input this task takes."""
        raise NotImplementedError

    def select(self, checked: list["CheckedInput"], options: Any, media: "MediaOptions") -> Any:
        """Checks and choices made on the read inputs, before any server is asked (pages, sound tracks)."""
        return checked

    def plan_jobs(self, selection: Any, prompt: str, options: Any, ctx: "Context") -> Planned:
        """The jobs to send."""
        raise NotImplementedError

    def requests(self, planned: Planned) -> Iterable[Any]:
        """What is sent, one request at a time: each job (embed: batches of jobs, built as their turn comes)."""
        return planned.jobs

    def send(self, runner: "Runner", request: Any, planned: Planned, on_text: Optional["TextFn"]) -> list["Result"]:
        """Send one request; its results, one per job."""
        return [runner.run(request, on_text)]

    def follow_up(self, planned: Planned, results: list["Result"], ctx: "Context") -> Optional["Job"]:
        """One more job built from the answers (docqa's merge), or None."""
        return None

    def finish(self, planned: Planned, results: list["Result"], warnings: list[str]) -> Any:
        """The task's value from its results (pure)."""
        raise NotImplementedError

    def fields(self, value: Any) -> dict:
        """The one JSON shape of the value."""
        raise NotImplementedError

    def answered(self, value: Any) -> bool:
        """Whether a stopped run's value holds anything worth keeping."""
        return bool(getattr(value, "text", ""))


class AskTask(TaskSpec):
    """ask and video: one request holding every input."""

    def __init__(self, name: str = "ask") -> None:
        self.name = name

    def allowed(self, options: Optional[AskOptions]) -> tuple[str, ...]:
        """ask takes images, videos and audio; video one video."""
        return ("video",) if self.name == "video" or (options and options.only_video) else ("image", "video", "audio")

    def select(self, checked, options: Optional[AskOptions], media) -> AskSelection:
        """A video's sound track is decoded here, so a silent video is refused before any server is asked."""
        from .ask import video_sound

        sound = None
        if options is not None and options.sound is not None and checked:
            sound = video_sound(checked[0], options.sound)
        return AskSelection(checked, sound)

    def plan_jobs(self, selection: AskSelection, prompt: str, options: Optional[AskOptions], ctx) -> Planned:
        """The one job, every input in order (and the sound track after a video)."""
        from .ask import ask_job
        from .audio_parts import audio_content

        options = options or AskOptions()
        job = ask_job(selection.checked, prompt, ctx, options.sampling, options.audio)
        if selection.sound is not None:
            job.content.extend(audio_content(selection.sound, options.sound, ctx.target.family))
        return Planned([job], prompt)

    def finish(self, planned: Planned, results, warnings: list[str]):
        """The Answer."""
        from .ask import finish_answer

        return finish_answer(results, warnings)

    def fields(self, value) -> dict:
        """answer, model, finish_reason, usage, the check against the plan, the plan's summary."""
        from .ask import answer_fields

        return answer_fields(value)


class DocqaTask(TaskSpec):
    """docqa: pages in one request, in batches merged by one more, or page by page."""

    name = "docqa"

    def allowed(self, options) -> tuple[str, ...]:
        """PDFs and page images."""
        return ("image", "pdf")

    def select(self, checked, options, media):
        """Every PDF opened and its pages chosen."""
        from .docqa import choose_pages

        return choose_pages(checked, options)

    def plan_jobs(self, selection, prompt: str, options, ctx) -> Planned:
        """The pages rendered, labelled and grouped into requests."""
        from .docqa import doc_jobs

        doc = doc_jobs(selection, prompt, options, ctx)
        return Planned(doc.jobs, prompt, doc=doc, mode=doc.mode, numbers=doc.numbers)

    def follow_up(self, planned: Planned, results, ctx):
        """In batches: the merge of the batch answers."""
        from .docqa import merge_job

        if planned.mode != "batches":
            return None
        return merge_job(planned.prompt, results, planned.doc, ctx)

    def finish(self, planned: Planned, results, warnings: list[str]):
        """The DocAnswer."""
        from .docqa import finish_document

        return finish_document(results, planned.mode, planned.numbers, warnings)

    def fields(self, value) -> dict:
        """answer, pages, mode, usage, batches, the check against the plan."""
        from .docqa import document_fields

        return document_fields(value)

    def answered(self, value) -> bool:
        """Some batch (or the merge) was answered."""
        return bool(value.batches or value.text)


class DetectTask(TaskSpec):
    """detect: one request per image or page; boxes mapped back to the original pixels."""

    name = "detect"

    def allowed(self, options) -> tuple[str, ...]:
        """Images and PDFs."""
        return ("image", "pdf")

    def select(self, checked, options, media):
        """Pages chosen; --pass-url refused."""
        from .detect.jobs import choose

        return choose(checked, options, media.pass_url)

    def plan_jobs(self, selection, prompt: str, options, ctx) -> Planned:
        """One job per image and page, with its family's grounding prompt."""
        from .detect.jobs import detect_jobs

        return Planned(detect_jobs(selection, options, ctx), prompt, target=options.target)

    def finish(self, planned: Planned, results, warnings: list[str]):
        """The Detections."""
        from .detect.jobs import finish_detect

        return finish_detect(results, planned.target, warnings)

    def fields(self, value) -> dict:
        """target, model, family, one entry per input, usage, the check against the plan."""
        from .detect.jobs import detections_fields

        return detections_fields(value)

    def answered(self, value) -> bool:
        """Some image's answer arrived."""
        return bool(value.inputs)


class EmbedTask(TaskSpec):
    """embed: one conversation per image, page and text, sent in batches; one record per vector."""

    name = "embed"

    def allowed(self, options) -> tuple[str, ...]:
        """Images and PDFs (texts are options, not inputs)."""
        return ("image", "pdf")

    def select(self, checked, options, media):
        """Pages chosen; the index opened."""
        from .embed.task import choose

        return choose(checked, options)

    def plan_jobs(self, selection, prompt: str, options, ctx) -> Planned:
        """The preset, the index's checks, and the batches (built as their turn comes)."""
        from .embed.task import plan

        return plan(selection, options, ctx)

    def requests(self, planned) -> Iterable[Any]:
        """The batches."""
        return planned.batches

    def send(self, runner, request, planned, on_text) -> list["Result"]:
        """One POST /embeddings per batch."""
        from .embed.task import send

        return send(runner, request, planned)

    def finish(self, planned: Planned, results, warnings: list[str]):
        """The records, one per vector."""
        from .embed.task import finish

        return finish(planned, results, warnings)

    def fields(self, value) -> dict:
        """model, preset, vectors."""
        from .embed.task import fields

        return fields(value)

    def answered(self, value) -> bool:
        """Some vector was made."""
        return bool(value.records)


class SearchTask(TaskSpec):
    """search: the query embedded like the index, compared with every row."""

    name = "search"

    def allowed(self, options) -> tuple[str, ...]:
        """The query image, if any."""
        return ("image",)

    def select(self, checked, options, media):
        """The index opened and its preset found."""
        from .embed.search import choose

        return choose(checked, options)

    def plan_jobs(self, selection, prompt: str, options, ctx) -> Planned:
        """The query's one job."""
        from .embed.search import plan

        return plan(selection, options, ctx)

    def send(self, runner, request, planned, on_text) -> list["Result"]:
        """One POST /embeddings."""
        return runner.embed([request], planned.preset)

    def finish(self, planned: Planned, results, warnings: list[str]):
        """The matches."""
        from .embed.search import finish

        return finish(planned, results, warnings)

    def fields(self, value) -> dict:
        """query, index, model, preset, rows, matches, usage."""
        from .embed.search import fields

        return fields(value)

    def answered(self, value) -> bool:
        """The query was answered."""
        return bool(value.matches)


TASKS: dict[str, TaskSpec] = {"ask": AskTask(), "video": AskTask("video"), "docqa": DocqaTask(),
                              "detect": DetectTask(), "embed": EmbedTask(), "search": SearchTask()}
