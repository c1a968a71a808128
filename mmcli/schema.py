"""Structured answers: a --schema value becomes a JSON Schema, and an answer becomes a checked object.

Pure: nothing here sends, prints or reads the environment. `jsonschema` is imported only when a
schema is checked or an answer validated, so `import mmcli` stays light.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from .errors import OutputUnparseable, UsageError
from .files import small_text_file
from .schema_refs import endless_ref, remote_ref

SHORT_TYPES = {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}
SHORT_HINT = ("the short form is fields separated by commas (or lines): name [type][: description], types "
              "str int float bool, list[T] or T[] for arrays, and a leading `multi ` for a list of objects; "
              'e.g. "total float, currency, date"')
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
MAX_SHOWN = 120
MAX_SCHEMA_BYTES = 1 << 20  # a schema is a page of JSON, not a data file


@dataclass(frozen=True)
class Schema:
    """A JSON Schema answers must match; `check` False leaves the answer to the task's own parser (detect).
    With `regex`, the answer is held to that regular expression instead (vLLM's structured_outputs)."""

    schema: dict = field(hash=False)
    name: str = "answer"
    check: bool = True
    regex: Optional[str] = None

    def parse(self, text: str, finish_reason: Optional[str] = None, max_tokens: Optional[int] = None) -> Any:
        """The answer as a value matching the schema, or OutputUnparseable (exit 7) saying why; `max_tokens` is
        the limit the request gave (None: the server's), for the hint when the answer was cut."""
        return parse_answer(text, self.schema, finish_reason, max_tokens)


def checked(schema: Optional[Schema]) -> bool:
    """Whether answers under `schema` are parsed and checked here (detect's guided boxes are read by its parser)."""
    return schema is not None and schema.check


def load_schema(value: str) -> Schema:
    """The Schema a --schema value names: a JSON Schema file, inline JSON, or the short form."""
    text = value.strip()
    if not text:
        raise UsageError("empty --schema", hint=SHORT_HINT)
    if text.startswith("{"):
        schema, name = _json(text, "--schema"), "answer"
    elif _looks_like_file(text):
        path = Path(text).expanduser()
        hint = "give a JSON Schema file, inline JSON, or the short form"
        try:
            data = small_text_file(path, MAX_SCHEMA_BYTES, "the schema file", hint)
        except (OSError, UnicodeDecodeError) as exc:
            why = getattr(exc, "strerror", None) or str(exc)
            raise UsageError("cannot read the schema file", why, where=text, hint=hint) from None
        schema, name = _json(data, text), _safe_name(path.stem)
    else:
        schema, name = short_schema(text), "answer"
    check_schema(schema, where=text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN] + "...")
    return Schema(schema, name)


def _looks_like_file(text: str) -> bool:
    return text.lower().endswith(".json") or (("/" in text or "\\" in text) and "," not in text
                                              and Path(text).expanduser().exists())


def _safe_name(stem: str) -> str:
    """A json_schema name endpoints accept: letters, digits, _ and -, at most 64."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", stem).strip("_")[:64]
    return name or "answer"


def _json(text: str, where: str) -> dict:
    try:
        schema = json.loads(text)
    except RecursionError:
        raise UsageError("invalid --schema", "nested too deeply", where=where) from None
    except json.JSONDecodeError as exc:
        raise UsageError("invalid JSON", f"line {exc.lineno}, column {exc.colno}: {exc.msg}",
                         where=where, hint="a JSON Schema is one JSON object, e.g. "
                         '{"type": "object", "properties": {"total": {"type": "number"}}}') from None
    if not isinstance(schema, dict):
        raise UsageError("invalid --schema", f"a JSON Schema is an object, not {type(schema).__name__}",
                         where=where, hint=SHORT_HINT)
    return schema


def check_schema(schema: dict, where: str = "--schema") -> None:
    """A usage error naming the position of the first mistake, when `schema` is no valid JSON Schema."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError, best_match

    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        error = best_match([exc]) or exc
        raise UsageError("invalid JSON Schema", f"at {_position(error.path)}: {_short(error.message)}",
                         where=where, hint="see https://json-schema.org/understanding-json-schema") from None
    except RecursionError:
        raise UsageError("invalid JSON Schema", "nested too deeply", where=where) from None
    remote = remote_ref(schema)
    if remote is not None:
        raise UsageError("invalid JSON Schema", f"$ref {_short(remote)!r} points outside the schema", where=where,
                         hint="only references inside the schema (#/$defs/...) can be used; nothing is fetched")
    endless = endless_ref(schema)
    if endless is not None:
        raise UsageError("invalid JSON Schema", f"at {_position(endless)}: $ref leads back to itself without end",
                         where=where, hint="a schema may refer to itself only below a property or an item")


def _position(path) -> str:
    from .terminal import strip_controls

    parts = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
    return "$" + strip_controls(parts)  # property names come from the schema file: no escape sequence passes


def _short(text: str) -> str:
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN] + "..."


def short_schema(text: str) -> dict:
    """The JSON Schema of the short form, e.g. "total float, currency, date" or "multi name, age int"."""
    start = len(text) - len(text.lstrip())
    body = text.strip()
    multi = re.match(r"multi\s+", body)
    offset = start + (multi.end() if multi else 0)
    if multi:
        body = body[multi.end():]
    sep = "\n" if "\n" in body else ","
    properties: dict = {}
    column = offset
    for piece in body.split(sep):
        if piece.strip():
            at = column + len(piece) - len(piece.lstrip())
            name, prop = _short_field(piece, at)
            if name in properties:
                raise _short_error(at + 1, f"field {name!r} is given twice")
            properties[name] = prop
        column += len(piece) + 1
    if not properties:
        raise _short_error(offset + 1, "no fields")
    one = {"type": "object", "properties": properties, "required": list(properties),
           "additionalProperties": False}
    if not multi:
        return one
    return {"type": "object", "properties": {"items": {"type": "array", "items": one}}, "required": ["items"],
            "additionalProperties": False}


def _short_error(column: int, why: str) -> UsageError:
    return UsageError("invalid --schema short form", f"column {column}: {why}", hint=SHORT_HINT)


def _short_field(piece: str, column: int) -> tuple[str, dict]:
    """One `name [type][: description]` field; `column` is where it starts (0-based) for errors."""
    spec, colon, description = piece.strip().partition(":")
    words = spec.split()
    if not words:
        raise _short_error(column + 1, "a field has no name")
    name = words[0]
    if not _NAME.fullmatch(name):
        raise _short_error(column + 1, f"{name!r} is not a field name (letters, digits, _ . -)")
    type_at = column + piece.strip().find(words[1]) if len(words) > 1 else column
    if len(words) > 2:
        raise _short_error(column + piece.strip().find(words[2]) + 1,
                           f"unexpected {words[2]!r} after the type (a description goes after a colon)")
    prop = _short_type(words[1], type_at) if len(words) > 1 else {"type": "string"}
    if colon:
        prop["description"] = description.strip()
    return name, prop


def _short_type(word: str, column: int) -> dict:
    if word.endswith("[]"):
        return {"type": "array", "items": _short_type(word[:-2], column)}
    match = re.fullmatch(r"list\[(.*)\]", word)
    if match:
        return {"type": "array", "items": _short_type(match.group(1), column + 5)}
    if word not in SHORT_TYPES:
        raise _short_error(column + 1, f"unknown type {word!r} (types: {', '.join(SHORT_TYPES)})")
    return {"type": SHORT_TYPES[word]}


# When no --max-tokens was given, a cut answer ran to the end of the context (vLLM's default: the room left
# by the prompt) or the server's own default limit: a model that does not keep to the schema, not a short limit.
RAN_TO_THE_END = ("it ran to the end of the model's context (or the server's default token limit): the model "
                  "may not follow the schema")
RAN_TO_THE_END_HINT = ("give a field with known values an `enum`, ask for fewer fields, use a model that follows "
                       "schemas, or cap the answer with --max-tokens so it fails fast; the text so far is kept")


def _cut_off(max_tokens: Optional[int]) -> OutputUnparseable:
    if max_tokens is None:
        return OutputUnparseable("the answer was cut off before its JSON was complete", RAN_TO_THE_END,
                                 hint=RAN_TO_THE_END_HINT)
    return OutputUnparseable("the answer was cut off before its JSON was complete",
                             f"it stopped at the token limit ({max_tokens})",
                             hint="raise --max-tokens; the text so far is kept")


def parse_answer(text: str, schema: dict, finish_reason: Optional[str] = None,
                 max_tokens: Optional[int] = None) -> Any:
    """The answer's JSON value, checked against `schema`; OutputUnparseable names the first problem."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import best_match

    try:
        value = json.loads(_unfenced(text), parse_float=_finite, parse_constant=_no_constant)
    except _NotFinite as exc:
        raise OutputUnparseable("the answer does not match the schema", f"{exc} is not a number JSON can hold",
                                hint="the raw answer is kept") from None
    except RecursionError:
        raise OutputUnparseable("the answer does not match the schema", "its JSON is nested too deeply",
                                hint="the raw answer is kept") from None
    except json.JSONDecodeError as exc:
        if finish_reason == "length":
            raise _cut_off(max_tokens) from None
        where = f"line {exc.lineno}, column {exc.colno}: {exc.msg}"
        why = "the answer is empty" if not text.strip() else f"not JSON ({where})"
        raise OutputUnparseable("the answer does not match the schema", why,
                                hint="the raw answer is kept; check that the endpoint supports structured "
                                     "output, or simplify the schema") from None
    try:
        error = best_match(Draft202012Validator(schema).iter_errors(value))
    except RecursionError:
        raise OutputUnparseable("the answer does not match the schema", "its JSON is nested too deeply",
                                hint="the raw answer is kept") from None
    if error is not None:
        raise OutputUnparseable("the answer does not match the schema",
                                f"at {_position(error.absolute_path)}: {_short(error.message)}",
                                hint="the raw answer is kept; a server that constrains its output to the "
                                     "schema (vLLM, OpenAI) avoids this")
    return value


class _NotFinite(ValueError):
    """A number in an answer that JSON cannot write back (NaN, Infinity, 1e999)."""


def _finite(text: str) -> float:
    import math

    number = float(text)
    if not math.isfinite(number):
        raise _NotFinite(text)
    return number


def _no_constant(text: str) -> float:
    raise _NotFinite(text)


def _unfenced(text: str) -> str:
    """The JSON inside a ```json fence, as models answer when the server does not constrain them."""
    stripped = text.strip()
    match = re.fullmatch(r"```[A-Za-z0-9_-]*\s*\n?(.*?)\n?```", stripped, re.S)
    return match.group(1) if match else stripped


def instruction(schema: dict) -> str:
    """What the prompt says when the endpoint cannot constrain its output: answer JSON matching the schema."""
    return ("Answer with JSON only, no other text, matching this JSON Schema:\n"
            + json.dumps(schema, ensure_ascii=False))


def flatten(value: Any, prefix: str = "") -> dict:
    """Columns of one row: nested objects as dotted names, lists as JSON text, scalars as they are."""
    if not isinstance(value, dict):
        return {prefix or "answer": _cell(value)}
    row: dict = {}
    for key, inner in value.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(inner, dict) and inner:
            row.update(flatten(inner, name))
        else:
            row[name] = _cell(inner)
    return row


def _cell(value: Any) -> Any:
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return value


# Families whose grounding answers are asked for under a schema unless --no-guided: their coordinate
# conventions are known (Qwen2-VL and Qwen3-VL 0..1000, Qwen2.5-VL pixels of the image as sent).
GUIDED_FAMILIES = ("qwen2-vl", "qwen2.5-vl", "qwen3-vl")


def guided_boxes(family: str, structured_output: str, guided: Optional[bool], space: str, sent: tuple[int, int],
                 points: bool = False, vllm: bool = False) -> Optional[Schema]:
    """The form detect's answer is held to, or None for the free-text answer (--no-guided, or no support).

    Qwen2-VL's boxes keep their own form (box tokens, 0..1000), held to a regular expression, which only
    vLLM takes: by default only where the endpoint is known to be vLLM. Every other answer is JSON under
    a schema bounded by the coordinate range."""
    if guided is False or (guided is None and family not in GUIDED_FAMILIES):
        return None
    if structured_output == "none":
        if guided:
            raise UsageError("--guided needs structured output", "the profile says this endpoint has none "
                             "(structured_output = \"none\")", hint="leave out --guided")
        return None
    if family == "qwen2-vl" and not points:  # its prompt asks for box tokens, not JSON
        if space != "norm1000" or not (guided or vllm or structured_output == "structured_outputs"):
            return None
        return Schema({}, "boxes", check=False, regex=QWEN2_VL_BOXES)
    return Schema(detect_schema(space, sent, points), "boxes", check=False)


_THOUSAND = "(1000|[1-9][0-9]{0,2}|0)"  # 0..1000, no leading zeros
# Qwen2-VL's own answer: [<|object_ref_start|>label<|object_ref_end|>]<|box_start|>(x1,y1),(x2,y2)<|box_end|>, repeated.
# The label has no brackets, so the reply with its special tokens stripped still reads one way.
QWEN2_VL_BOXES = (r"((<\|object_ref_start\|>[^<>()]{1,100}<\|object_ref_end\|>)?"
                  rf"<\|box_start\|>\({_THOUSAND},{_THOUSAND}\),\({_THOUSAND},{_THOUSAND}\)<\|box_end\|>){{0,100}}")


# --- detect: boxes and points under a schema with the family's coordinate range as bounds

def coordinate_bounds(space: str, sent: tuple[int, int]) -> tuple[str, float, float]:
    """(JSON type, x maximum, y maximum) of the space boxes are asked in (abs: the image as sent)."""
    if space == "abs":
        return "integer", float(sent[0]), float(sent[1])
    if space == "norm1":
        return "number", 1.0, 1.0
    return "integer", 1000.0, 1000.0


def detect_schema(space: str, sent: tuple[int, int], points: bool = False, max_items: int = 100,
                  min_items: int = 0) -> dict:
    """The schema of a grounding answer: a list of {"bbox_2d": [x1, y1, x2, y2], "label"} (or point_2d [x, y])."""
    kind, width, height = coordinate_bounds(space, sent)

    def number(top: float) -> dict:
        return {"type": kind, "minimum": 0, "maximum": int(top) if kind == "integer" else top}

    axes = [number(width), number(height)] * (1 if points else 2)
    key = "point_2d" if points else "bbox_2d"
    coords = {"type": "array", "prefixItems": axes, "items": False, "minItems": len(axes), "maxItems": len(axes)}
    item = {"type": "object", "properties": {key: coords, "label": {"type": "string", "maxLength": 100}},
            "required": [key, "label"], "additionalProperties": False}
    found = {"type": "array", "items": item, "maxItems": max_items}
    return {**found, "minItems": min_items} if min_items else found
