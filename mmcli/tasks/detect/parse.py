"""Pure, tolerant parsing of a model's grounding answer into boxes and points as the model wrote them.

Accepted: JSON or Python literals (never evaluated: json, then ast.literal_eval), fenced or
surrounded by prose, a list or a single object or a wrapper such as {"objects": [...]}, cut off
mid-answer (every complete object is kept); Qwen2-VL's <|box_start|>(x1,y1),(x2,y2)<|box_end|>
tokens, also with the special tokens stripped; PaliGemma's <locNNNN> tokens.
"""

from __future__ import annotations

import ast
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Optional

from mmcli.switches import finite

# Key -> the order its numbers come in. Gemini's box_2d is [ymin, xmin, ymax, xmax].
BOX_KEYS = {"bbox_2d": "xyxy", "bbox": "xyxy", "box_2d": "yxyx", "box": "xyxy", "bounding_box": "xyxy",
            "bbox_xyxy": "xyxy"}
POINT_KEYS = {"point_2d": "xy", "point": "xy"}
LABEL_KEYS = ("label", "name", "category", "class", "object")
MAX_TEXT = 1_000_000
# ast.literal_eval can exhaust the C stack on deep nesting; real answers nest three or four levels.
MAX_DEPTH = 32

_OPENERS = {"[": "]", "{": "}", "(": ")"}
_CLOSERS = set(_OPENERS.values())
_FENCE = re.compile(r"```[A-Za-z0-9_+-]*[ \t]*\n?(.*?)(?:```|\Z)", re.S)
_JSON_WORDS = re.compile(r"(\"(?:\\.|[^\"\\])*\"|'(?:\\.|[^'\\])*')|\b(true|false|null)\b")
_NUM = r"\s*(-?\d+(?:\.\d+)?)\s*"
_PAIR = rf"\({_NUM},{_NUM}\)"
_QWEN2_BOX = re.compile(rf"<\|box_start\|>\s*{_PAIR}\s*,?\s*{_PAIR}\s*<\|box_end\|>")
_QWEN2_REF = re.compile(r"<\|object_ref_start\|>(.*?)<\|object_ref_end\|>", re.S)
_BARE_BOX = re.compile(rf"{_PAIR}\s*,?\s*{_PAIR}")
_LOC_BOX = re.compile(r"((?:<loc\d{4}>){4})([^<;]*)")
_LOC = re.compile(r"<loc(\d{4})>")
_FAIL = object()


@dataclass
class RawItem:
    """One box or point exactly as the model wrote it."""

    kind: str  # box | point
    values: tuple[float, ...]
    order: str  # xyxy | yxyx | xy | yx
    label: str = ""
    extra: dict = field(default_factory=dict)
    space: Optional[str] = None  # set when the format itself fixes the space (PaliGemma: norm1024)


@dataclass
class Parsed:
    """What could be read from one answer."""

    items: list[RawItem] = field(default_factory=list)
    form: str = "none"  # json | qwen2 tokens | coordinate pairs | paligemma | none
    skipped: int = 0  # items that were there but could not be read
    incomplete: int = 0  # items cut off by the end of the answer
    truncated: bool = False
    notes: list[str] = field(default_factory=list)

    def skip(self, why: str) -> None:
        """Count an unreadable item and say why."""
        self.skipped += 1
        self.notes.append(why)


def parse_answer(text: str) -> Parsed:
    """Every box and point in a model's answer, in the order written."""
    text = (text or "")[:MAX_TEXT]
    if "<|box_start|>" in text or "<|object_ref_start|>" in text:
        return _parse_qwen2_tokens(text)
    if _LOC.search(text):
        return _parse_loc_tokens(text)
    fenced = [m.group(1) for m in _FENCE.finditer(text)]
    for candidate in ([("\n".join(fenced))] if fenced else []) + [text]:
        parsed = _parse_literals(candidate)
        if parsed.form != "none":
            return parsed
    return _parse_bare_pairs(text)


# ---------------------------------------------------------------- JSON and Python literals


@dataclass
class _Scan:
    values: list[Any] = field(default_factory=list)
    truncated: bool = False
    incomplete: int = 0
    broken: int = 0  # complete objects with coordinates that neither json nor literal_eval could read


def _parse_literals(text: str) -> Parsed:
    scan = _scan(text, 0)
    parsed = Parsed(truncated=scan.truncated, incomplete=scan.incomplete)
    for _ in range(scan.broken):
        parsed.skip("an object that is neither JSON nor a Python literal")
    answered = bool(scan.broken or scan.truncated)
    for value in scan.values:
        before = (len(parsed.items), parsed.skipped)
        _collect(value, parsed, top=True)
        if (len(parsed.items), parsed.skipped) != before or value == [] or value == ():
            answered = True
        elif isinstance(value, dict):
            parsed.skip("a JSON object with no coordinates")
            answered = True
    if answered:
        parsed.form = "json"
    return parsed


def _scan(text: str, depth: int) -> _Scan:
    """Complete bracketed values in `text`, in order; an unclosed one is searched for complete parts."""
    found = _Scan()
    pos = 0
    while depth <= MAX_DEPTH:
        start = _next_open(text, pos)
        if start is None:
            break
        end, nesting = _match(text, start)
        if nesting > MAX_DEPTH:
            break  # no answer nests this deep; reading on would only cost time
        if end is None:
            _recover(text[start:], depth, found)
            break
        if end < 0:
            pos = start + 1
            continue
        value = _literal(text[start:end])
        if value is not _FAIL:
            found.values.append(value)
            pos = end
        elif text[start] == "{" and "{" not in text[start + 1:end]:
            found.broken += int(_mentions_coordinates(text[start:end]))
            pos = end
        else:
            pos = start + 1  # look inside: a broken wrapper may hold good objects
    return found


def _recover(tail: str, depth: int, found: _Scan) -> None:
    # The answer ended inside this value: keep the complete objects inside it.
    found.truncated = True
    inner = _scan(tail[1:], depth + 1)
    found.incomplete += inner.incomplete
    found.broken += inner.broken
    if tail[0] == "{":
        dicts = [v for v in inner.values if isinstance(v, dict)]
        if not dicts and _mentions_coordinates(tail):
            found.incomplete += 1
        found.values.extend(dicts)
    else:
        found.values.extend(inner.values)


def _next_open(text: str, pos: int) -> Optional[int]:
    hits = [i for i in (text.find("[", pos), text.find("{", pos)) if i >= 0]
    return min(hits) if hits else None


def _match(text: str, start: int) -> tuple[Optional[int], int]:
    """(end, deepest nesting) of the value opening at `start`; end None if unclosed, -1 if mismatched or too deep."""
    stack: list[str] = []
    deepest = 0
    quote = None
    i = start
    while i < len(text):
        char = text[i]
        if quote:
            if char == "\\":
                i += 2
                continue
            if char == quote:
                quote = None
        elif char in "\"'":
            quote = char
        elif char in _OPENERS:
            stack.append(_OPENERS[char])
            deepest = max(deepest, len(stack))
            if deepest > MAX_DEPTH:
                return -1, deepest
        elif char in _CLOSERS:
            if stack.pop() != char:
                return -1, deepest
            if not stack:
                return i + 1, deepest
        i += 1
    return None, deepest


def _literal(source: str) -> Any:
    try:
        return json.loads(source)
    except ValueError:
        pass
    python_words = _JSON_WORDS.sub(lambda m: m.group(1) or {"true": "True", "false": "False"}.get(
        m.group(2), "None"), source)
    for candidate in (source, python_words):
        try:
            return ast.literal_eval(candidate)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
    return _FAIL


def _mentions_coordinates(source: str) -> bool:
    return any(key in source for key in (*BOX_KEYS, *POINT_KEYS))


def _is_list(value: Any) -> bool:
    return isinstance(value, (list, tuple))


def _is_numbers(value: Any) -> bool:
    return _is_list(value) and bool(value) and all(_number(v) is not None for v in value)


def _number(value: Any) -> Optional[float]:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    return finite(value)  # None for nan, inf and a whole number too large for a float


def _collect(value: Any, parsed: Parsed, top: bool) -> None:
    """Items from one parsed value: an item, a list of items, or a wrapper around them."""
    if isinstance(value, dict):
        if _coordinate_key(value):
            _add_item(value, parsed)
            return
        for inner in value.values():
            if _is_list(inner) or (isinstance(inner, dict) and _coordinate_key(inner)):
                _collect(inner, parsed, top=False)
        return
    if not _is_list(value):
        return
    if _is_numbers(value):
        if not top or len(value) in (2, 4):
            _add_bare(value, parsed)
        return
    if top and not any(isinstance(v, dict) or _is_list(v) for v in value):
        return  # prose such as "[sic]" or "[2]", not an answer
    for element in value:
        if isinstance(element, dict) and (_coordinate_key(element) or not _wraps_items(element)):
            _add_item(element, parsed)
        elif isinstance(element, dict) or (_is_list(element) and not _is_numbers(element)):
            _collect(element, parsed, top=False)
        elif _is_numbers(element):
            _add_bare(element, parsed)
        else:
            parsed.skip(f"an entry that is not an object: {str(element)[:40]!r}")


def _wraps_items(value: dict) -> bool:
    return any(_is_list(v) and any(isinstance(e, dict) for e in v) for v in value.values())


def _coordinate_key(item: dict) -> Optional[str]:
    for key in ("bbox_2d", "point_2d", *BOX_KEYS, *POINT_KEYS):
        if key in item:
            return key
    return None


def _add_item(item: dict, parsed: Parsed) -> None:
    key = _coordinate_key(item)
    if key is None:
        parsed.skip("an object with no coordinates (keys: " + ", ".join(map(str, list(item)[:6])) + ")")
        return
    label_key = next((k for k in LABEL_KEYS if k in item and item[k] is not None), None)
    label = _text(item[label_key]) if label_key else ""
    extra = {str(k): jsonable(v) for k, v in item.items() if k not in (key, label_key)}
    groups = _coordinate_groups(item[key], 4 if key in BOX_KEYS else 2)
    if groups is None:
        parsed.skip(f"{key!r} is not a list of {'4' if key in BOX_KEYS else '2'} numbers: {str(item[key])[:60]}")
        return
    kind, order = ("box", BOX_KEYS[key]) if key in BOX_KEYS else ("point", POINT_KEYS[key])
    for values in groups:
        parsed.items.append(RawItem(kind, values, order, label, dict(extra)))


def _coordinate_groups(value: Any, size: int) -> Optional[list[tuple[float, ...]]]:
    """[[x1, y1], [x2, y2]] and [x1, y1, x2, y2] both give one group; a list of boxes gives several."""
    if _is_numbers(value):
        numbers = tuple(_number(v) for v in value)
        return [numbers] if len(numbers) == size else None
    if not _is_list(value) or not value or not all(_is_numbers(v) for v in value):
        return None
    if size == 4 and all(len(v) == 2 for v in value) and len(value) == 2:
        return [tuple(_number(v) for pair in value for v in pair)]
    if all(len(v) == size for v in value):
        return [tuple(_number(v) for v in group) for group in value]
    return None


def _add_bare(value: Any, parsed: Parsed) -> None:
    numbers = tuple(_number(v) for v in value)
    if len(numbers) == 4:
        parsed.items.append(RawItem("box", numbers, "xyxy"))
    elif len(numbers) == 2:
        parsed.items.append(RawItem("point", numbers, "xy"))
    else:
        parsed.skip(f"a list of {len(numbers)} numbers, neither a box nor a point")


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(jsonable(value), ensure_ascii=False)


def jsonable(value: Any) -> Any:
    """A Python literal as JSON-ready data (tuples and sets become lists, other oddities strings)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((jsonable(v) for v in value), key=repr)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


# ---------------------------------------------------------------- token forms


def _parse_qwen2_tokens(text: str) -> Parsed:
    parsed = Parsed(form="qwen2 tokens")
    refs = [(m.end(), m.group(1).strip()) for m in _QWEN2_REF.finditer(text)]
    for match in _QWEN2_BOX.finditer(text):
        label = next((name for end, name in reversed(refs) if end <= match.start()), "")
        values = tuple(float(v) for v in match.groups())
        parsed.items.append(RawItem("box", values, "xyxy", label))
    opened = text.count("<|box_start|>")
    unread = opened - len(parsed.items)
    if unread > 0:
        tail = text[text.rfind("<|box_start|>"):]
        if "<|box_end|>" not in tail:
            parsed.truncated = True
            parsed.incomplete = 1
            unread -= 1
        for _ in range(unread):
            parsed.skip("a <|box_start|> ... <|box_end|> span without two (x, y) pairs")
    return parsed


def _parse_bare_pairs(text: str) -> Parsed:
    # Qwen2-VL's box tokens are special tokens; servers often strip them, leaving "dog(12,34),(56,78)".
    parsed = Parsed()
    previous_end, label = 0, ""
    for match in _BARE_BOX.finditer(text):
        between = text[previous_end:match.start()].strip().splitlines()
        if between and between[-1].strip(" \t,;:.-*"):
            label = between[-1].strip(" \t,;:.-*")[:100]
        parsed.items.append(RawItem("box", tuple(float(v) for v in match.groups()), "xyxy", label))
        previous_end = match.end()
    if parsed.items:
        parsed.form = "coordinate pairs"
    return parsed


def _parse_loc_tokens(text: str) -> Parsed:
    parsed = Parsed(form="paligemma")
    for match in _LOC_BOX.finditer(text):
        values = tuple(float(v) for v in _LOC.findall(match.group(1)))
        parsed.items.append(RawItem("box", values, "yxyx", match.group(2).strip(), space="norm1024"))
    return parsed
