"""mmcli.schema: the short form, loading and checking schemas, checking answers, rows, detect schemas."""

from __future__ import annotations

import json

import pytest

from mmcli.errors import OutputUnparseable, UsageError
from mmcli.schema import (check_schema, detect_schema, flatten, guided_boxes, load_schema, parse_answer,
                          short_schema)


def test_short_form_types_arrays_and_descriptions():
    schema = short_schema("total float, count int, paid bool, note str, tags list[str], ids int[], date")
    props = schema["properties"]
    assert [props[k]["type"] for k in ("total", "count", "paid", "note", "date")] == [
        "number", "integer", "boolean", "string", "string"]
    assert props["tags"] == {"type": "array", "items": {"type": "string"}}
    assert props["ids"] == {"type": "array", "items": {"type": "integer"}}
    assert schema["required"] == list(props) and schema["additionalProperties"] is False


def test_short_form_on_lines_keeps_commas_in_descriptions_and_multi_wraps_a_list():
    schema = short_schema("multi name: the name, as printed\nprice float")
    item = schema["properties"]["items"]["items"]
    assert item["properties"]["name"]["description"] == "the name, as printed"
    assert schema["required"] == ["items"] and item["required"] == ["name", "price"]


@pytest.mark.parametrize("text, column", [("a, b flot", 6), ("a int extra", 7), ("a, 9b", 4), ("a, a", 4),
                                          ("  ", 1), ("a list[x]", 8)])
def test_short_form_errors_name_the_column(text, column):
    with pytest.raises(UsageError) as failed:
        load_schema(text) if not text.strip() else short_schema(text)
    assert failed.value.exit_code == 2
    if text.strip():
        assert f"column {column}:" in failed.value.why, failed.value.why


def test_schema_files_are_read_and_named(tmp_path):
    path = tmp_path / "my receipt!.json"
    path.write_text(json.dumps({"type": "object"}))
    loaded = load_schema(str(path))
    assert loaded.schema == {"type": "object"} and loaded.name == "my_receipt"


@pytest.mark.parametrize("value, fragment", [
    ('{"type": "object", "properties": {"a": {"type": "flot"}}}', "$.properties.a.type"),
    ('{"$ref": "https://example.com/s.json"}', "points outside the schema"),
    ("[1, 2]", "not a JSON Schema"), ('{"a": ' * 5000, "nested too deeply"),
])
def test_bad_schemas(value, fragment, tmp_path):
    if value.startswith("["):
        path = tmp_path / "list.json"
        path.write_text(value)
        value, fragment = str(path), "is an object, not list"
    with pytest.raises(UsageError) as failed:
        load_schema(value)
    assert fragment in failed.value.message()


def test_answers_are_checked_unfenced_and_the_first_error_named():
    schema = short_schema("total float, tags str[]")
    assert parse_answer('```json\n{"total": 1, "tags": []}\n```', schema) == {"total": 1, "tags": []}
    with pytest.raises(OutputUnparseable) as failed:
        parse_answer('{"total": 1, "tags": [3]}', schema)
    assert "$.tags[0]" in failed.value.why and failed.value.exit_code == 7
    with pytest.raises(OutputUnparseable, match="cut off"):
        parse_answer('{"total": 1, "ta', schema, "length")
    with pytest.raises(OutputUnparseable):
        parse_answer("[" * 100_000, schema)


def test_flatten_rows():
    assert flatten({"a": 1, "b": {"c": "x", "d": {"e": None}}, "f": [1, {"g": 2}], "h": {}}) == {
        "a": 1, "b.c": "x", "b.d.e": None, "f": '[1, {"g": 2}]', "h": "{}"}
    assert flatten([1, 2]) == {"answer": "[1, 2]"}


def test_detect_schema_bounds_follow_the_space():
    abs_schema = detect_schema("abs", (1120, 840))
    axes = abs_schema["items"]["properties"]["bbox_2d"]["prefixItems"]
    assert [a["maximum"] for a in axes] == [1120, 840, 1120, 840] and abs_schema["maxItems"] == 100
    point = detect_schema("norm1000", (10, 10), points=True)["items"]["properties"]["point_2d"]
    assert point["minItems"] == point["maxItems"] == 2 and point["prefixItems"][1]["maximum"] == 1000
    assert guided_boxes("generic", "json_schema", None, "norm1000", (1, 1)) is None
    assert guided_boxes("qwen3-vl", "json_schema", False, "norm1000", (1, 1)) is None
    assert guided_boxes("qwen3-vl", "none", None, "norm1000", (1, 1)) is None
    assert guided_boxes("qwen3-vl", "json_schema", None, "norm1000", (1, 1)).check is False
    with pytest.raises(UsageError):
        guided_boxes("qwen3-vl", "none", True, "norm1000", (1, 1))


@pytest.mark.parametrize("schema", [
    {"$ref": "#"},
    {"properties": {"a": {"$ref": "#/properties/a"}}},
    {"$ref": "#/$defs/a", "$defs": {"a": {"allOf": [{"$ref": "#"}]}}},
    {"$ref": "#/$defs/a%20b", "$defs": {"a b": {"$ref": "#/$defs/a%20b"}}},  # a pointer is percent-encoded
    {"$ref": "#x", "$defs": {"a": {"$anchor": "x", "anyOf": [{"$ref": "#x"}]}}},  # a named place
])
def test_a_ref_that_comes_back_to_itself_without_end_is_refused(schema):
    with pytest.raises(UsageError) as refused:
        check_schema(schema)
    assert "leads back to itself without end" in refused.value.message()


@pytest.mark.parametrize("schema", [
    {"type": "object", "properties": {"child": {"$ref": "#"}}},  # a tree: ends with the answer's depth
    {"type": "array", "items": {"$ref": "#"}},
    {"$defs": {"n": {"type": "number"}}, "properties": {"a": {"$ref": "#/$defs/n"}}},
])
def test_refs_that_step_down_into_the_answer_are_allowed(schema):
    check_schema(schema)


def test_a_schema_file_that_is_a_fifo_or_device_is_refused_without_waiting(tmp_path):
    import os

    fifo = tmp_path / "schema.json"
    os.mkfifo(fifo)
    for path in (str(fifo), "/dev/zero"):
        with pytest.raises(UsageError) as refused:
            load_schema(path)
        assert "not a regular file" in refused.value.message()


def test_escape_sequences_in_property_names_never_reach_the_error(tmp_path):
    path = tmp_path / "s.json"
    path.write_text('{"properties": {"\\u001b]0;pwn\\u0007x": {"type": "striing"}}}')
    with pytest.raises(UsageError) as refused:
        load_schema(str(path))
    assert "\x1b" not in refused.value.message() and "\x07" not in refused.value.message()
