"""Where a JSON Schema's $ref points: outside the schema (never fetched), or back to itself without end."""

from __future__ import annotations

from typing import Any, Optional


def remote_ref(node: Any) -> Optional[str]:
    """The first $ref that does not point inside the schema itself, if any."""
    stack = [node]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and not ref.startswith("#"):
                return ref
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return None


# Keywords whose subschemas apply to the same value (no step down into it): a $ref cycle through only these
# never ends, where one through "properties" or "items" ends with the answer's depth.
_IN_PLACE = ("allOf", "anyOf", "oneOf", "not", "if", "then", "else")


def endless_ref(schema: dict) -> Optional[tuple]:
    """The path of a $ref that comes back to itself through in-place keywords only (`{"$ref": "#"}`), if any."""
    nodes: dict[int, tuple] = {}
    stack: list[tuple[Any, tuple]] = [(schema, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, dict):
            nodes[id(node)] = path
            stack.extend((value, path + (key,)) for key, value in node.items())
        elif isinstance(node, list):
            stack.extend((value, path + (i,)) for i, value in enumerate(node))

    def next_steps(node: dict) -> list:
        steps = []
        ref = node.get("$ref")
        target = _pointed(schema, ref) if isinstance(ref, str) else None
        if isinstance(target, dict):
            steps.append(target)
        for key in _IN_PLACE:
            value = node.get(key)
            steps.extend(v for v in (value if isinstance(value, list) else [value]) if isinstance(v, dict))
        return steps

    done: set[int] = set()
    for start in list(_all_dicts(schema)):
        trail, frontier = set(), [(start, iter(next_steps(start)))]
        trail.add(id(start))
        while frontier:
            node, steps = frontier[-1]
            step = next(steps, None)
            if step is None:
                trail.discard(id(node))
                done.add(id(node))
                frontier.pop()
            elif id(step) in trail:
                return nodes.get(id(node), ())
            elif id(step) not in done:
                trail.add(id(step))
                frontier.append((step, iter(next_steps(step))))
    return None


def _all_dicts(node: Any):
    stack = [node]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            yield node
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def _pointed(schema: dict, ref: str) -> Any:
    """What a local reference points at ("#", "#/$defs/a", "#/$defs/a%20b", "#name" for an $anchor), or None."""
    from urllib.parse import unquote

    if not ref.startswith("#"):
        return None
    fragment = unquote(ref[1:])  # a pointer in a URI fragment is percent-encoded, then read as a pointer
    if fragment and not fragment.startswith("/"):
        return next((node for node in _all_dicts(schema)
                     if fragment in (node.get("$anchor"), node.get("$dynamicAnchor"))), None)
    node: Any = schema
    for part in fragment[1:].split("/") if fragment else []:
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node
