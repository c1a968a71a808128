"""What Ray's workers run around the vLLM engines of `--engine ray --backend vllm`. Before the engine, each job
is prepared as a local run prepares it (mmcli.batch.export's preparation: the inputs checked, the model-grid
resize, the wire format, the same job id) and its request becomes the engine's messages, images and sampling
parameters. After it, the engine's output is finished by the task's own finish (mmcli.batch.recorded, as
`batch collect` finishes an export) into the results line a local run writes.

Nothing here imports Ray or vLLM: the rows are plain columns, the images Pillow images (what vLLM takes).
"""

from __future__ import annotations

import json
import pickle
import time
from typing import TYPE_CHECKING, Any, Optional

from ..errors import MmcliError, RequestRejected, UsageError

if TYPE_CHECKING:
    from ..core.endpoint import Target
    from ..events import Events
    from .work import Work

STATE = "mmcli"  # the column that carries, as JSON, a job's line head and what its finish needs
# Ray's LLM stages cannot let a row by: a job not to be answered (already done, or its inputs bad) passes the
# engine as this one-token question, and its line (or count) is made from the state alone.
PLACEHOLDER = [{"role": "user", "content": [{"type": "text", "text": "."}]}]
ENGINE_HINT = "the line keeps vLLM's own words; run the job over HTTP (leave out --backend vllm) to compare"


def engine_messages(messages: list[dict]) -> tuple[list[dict], list]:
    """The request's messages as the engine's chat template takes them (an image part becomes {"type":
    "image"}), and the images, decoded from the exact bytes mmcli prepared, in order."""
    images, converted = [], []
    for message in messages:
        content = message["content"]
        if message["role"] == "system":  # as a string, as Ray's own media stage keeps it: templates expect one
            converted.append({"role": "system", "content": content if isinstance(content, str) else
                              "\n".join(part["text"] for part in content if part.get("type") == "text")})
            continue
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        parts = []
        for part in content:
            kind = part.get("type")
            if kind == "text":
                parts.append({"type": "text", "text": part["text"]})
            elif kind == "image_url" and part["image_url"]["url"].startswith("data:"):
                images.append(decoded_image(part["image_url"]["url"]))
                parts.append({"type": "image"})
            else:
                raise UsageError(f"--backend vllm sends images and text, and this job has a {kind} part"
                                 + (" given by URL" if kind == "image_url" else ""),
                                 hint="run it over HTTP: leave out --backend vllm and give the server's --base-url")
        converted.append({"role": message["role"], "content": parts})
    return converted, images


def decoded_image(url: str) -> Any:
    """A data URL's image as vLLM decodes one (Pillow, RGB)."""
    import base64
    import io

    from PIL import Image

    data = base64.b64decode(url.partition(",")[2])
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")


def sampling_params(request: dict) -> dict:
    """The chat request's generation fields as vLLM's SamplingParams. Every row has every key (Ray stacks the
    rows' columns); a JSON schema goes as text, as it may not fit one column type across rows."""
    params: dict = {"max_tokens": request.get("max_tokens", request.get("max_completion_tokens")),
                    "temperature": float(request.get("temperature", 1.0))}  # 1.0: vLLM's own default
    structured = request.get("structured_outputs")
    form = request.get("response_format")
    if isinstance(form, dict) and form.get("type") == "json_schema":
        structured = {"json": form["json_schema"]["schema"]}
    params["structured_outputs"] = ({key: json.dumps(value) if isinstance(value, (dict, list)) else value
                                     for key, value in structured.items()} if structured else None)
    return params


class EngineRows:
    """Ray's preprocess: a row holding a pickled job becomes the engine's row (messages, images, parameters)
    and the state its finish needs."""

    def __init__(self, target: "Target", previous: dict[str, dict], retry_failed: bool) -> None:
        self.target, self.previous, self.retry_failed = target, previous, retry_failed

    def __call__(self, row: dict) -> dict:
        """One job, prepared; a job already done, or whose inputs are bad, passes as the placeholder."""
        from ..events import Events
        from .results import error_fields, line_start

        work = pickle.loads(row["work"])
        state: dict = {"started": time.time(), "label": work.label, "model": self.target.model,
                       "family": self.target.family.name}
        state["head"], state["done"] = line_start(work, self.target.family.name, self.target.model,
                                                  self.previous, self.retry_failed)
        if state["done"] is not None:
            return placeholder(state)
        events = Events()
        try:
            request, job, entry = self.prepared(work, events)
            messages, images = engine_messages(request["messages"])
            params = sampling_params(request)
        except MmcliError as exc:
            return placeholder({**state, "fields": {"error": error_fields(exc)}, "warnings": list(events.warnings)})
        state.update(job=job, entry=entry, warnings=list(events.warnings), max_tokens=params["max_tokens"])
        return {"messages": messages, "multimodal_data": {"image": images} if images else None,
                "sampling_params": params, STATE: json.dumps(state, default=str)}

    def prepared(self, work: "Work", events: "Events") -> tuple[dict, dict, dict]:
        """The job's one request, and what collect's finish needs of it (mmcli.batch.export's manifest entry)."""
        from ..core.runner import Runner
        from ..tasks.common import Context
        from .export import finisher_entry, prepared_jobs

        jobs, extra = prepared_jobs(work, Context(self.target, work.media, work.generation, events))
        if len(jobs) != 1:
            raise UsageError(f"--backend vllm sends one request per job, and this one needs {len(jobs)}",
                             hint="run it over HTTP (leave out --backend vllm), or split the document")
        plan = Runner(self.target).plan(jobs[0])  # as a local run plans it (streamed), so the lines' plans match
        job = {"command": work.command, "prompt": work.prompt, **extra}
        return plan.request, job, finisher_entry(jobs[0], plan)


def placeholder(state: dict) -> dict:
    """The row of a job that is not answered: the one-token question, its line or count in the state."""
    return {"messages": PLACEHOLDER, "multimodal_data": None,
            "sampling_params": {"max_tokens": 1, "temperature": 0.0, "structured_outputs": None},
            STATE: json.dumps(state, default=str)}


def finished_row(row: dict) -> dict:
    """Ray's postprocess: the engine's output row (see `answer_piece`) becomes the job's results row, through
    the task's own finish; a failed request is a failed line."""
    from .recorded import finished_fields
    from .results import error_fields, line_end
    from .ray_workers import line_row, skipped_row

    state = json.loads(row[STATE])
    if state["done"] is not None:
        return skipped_row(state["done"] == "failed-before")
    warnings = list(state.get("warnings") or [])
    fields = state.get("fields")
    if fields is None and row.get("__inference_error__"):
        error = RequestRejected("the vLLM engine failed on the request", str(row["__inference_error__"])[:300],
                                where=", ".join(state["head"]["sources"]), hint=ENGINE_HINT)
        fields = {"error": error_fields(error)}
    elif fields is None:
        fields = finished_fields(state["job"], [state["entry"]], [answer_piece(row, state)],
                                 {"family": state["family"], "model": state["model"]}, warnings)
    record = line_end(state["head"], fields, warnings, time.time() - state["started"])
    return line_row(state["label"], record)


def answer_piece(row: dict, state: dict) -> Any:
    """The answer in an output row of Ray's vLLM stage (ray.llm._internal.batch.stages.vllm_engine_stage's
    vLLMOutputData: generated_text, num_input_tokens, num_generated_tokens) as a chat reply's piece. The row
    says no finish reason: an answer that used every token it was allowed was cut ("length")."""
    from ..net.replies import Piece

    prompt, answer = int(row.get("num_input_tokens") or 0), int(row.get("num_generated_tokens") or 0)
    limit: Optional[int] = state.get("max_tokens")
    return Piece(text=str(row.get("generated_text") or ""), model=state["model"],
                 finish_reason="length" if limit is not None and answer >= limit else "stop",
                 usage={"prompt_tokens": prompt, "completion_tokens": answer, "total_tokens": prompt + answer},
                 has_choice=True)
