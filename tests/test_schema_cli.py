"""--schema against a real local HTTP server: what is sent, what is printed, and every way it can fail."""

from __future__ import annotations

import json

import pytest

from tests.conftest import assert_clean_error
from tests.support.scripted_server import Reply, Status, vllm_error

RECEIPT = {"type": "object", "properties": {"total": {"type": "number"}, "currency": {"type": "string"}},
           "required": ["total", "currency"], "additionalProperties": False}


@pytest.fixture
def photo(tmp_path):
    from PIL import Image

    path = tmp_path / "receipt.png"
    Image.new("RGB", (120, 90), (200, 200, 190)).save(path)
    return path


def write_profile(tmp_path, server, name: str, structured_output: str) -> None:
    """A config file with one profile for `server` that says how it takes a schema."""
    config = tmp_path / "config" / "mmcli" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(f'[profiles.{name}]\nbase_url = "{server.base_url}"\nstructured_output = "{structured_output}"\n')


def ask(mmcli, server, *args):
    return mmcli("ask", *args, "--base-url", server.base_url)


@pytest.mark.parametrize("number", ["1e999", "NaN", "-Infinity"])
def test_a_number_json_cannot_hold_is_a_mismatch_not_invalid_json_on_stdout(mmcli, server, photo, number):
    server.script(Reply('{"total": %s, "currency": "EUR", "date": "x"}' % number))
    run = ask(mmcli, server, photo, "read the receipt", "--schema", "total float, currency, date")
    assert_clean_error(run, 7, "does not match the schema", number)
    assert "Infinity" not in run.stdout.replace(number, "") and "NaN" not in run.stdout.replace(number, "")


def test_short_form_is_sent_as_response_format_and_the_object_printed(mmcli, server, photo):
    server.script(Reply('{"total": 12.5, "currency": "EUR", "date": "2026-01-02"}'))
    run = ask(mmcli, server, photo, "read the receipt", "--schema", "total float, currency, date")
    assert run.code == 0, run.stderr
    assert json.loads(run.stdout) == {"total": 12.5, "currency": "EUR", "date": "2026-01-02"}
    assert run.stdout.count("\n") == 1  # piped: one compact line
    sent = server.chat_requests()[0].json["response_format"]
    assert sent["type"] == "json_schema"
    assert sent["json_schema"]["schema"] == {
        "type": "object", "properties": {"total": {"type": "number"}, "currency": {"type": "string"},
                                         "date": {"type": "string"}},
        "required": ["total", "currency", "date"], "additionalProperties": False}


def test_schema_file_and_json_output_carry_an_object(mmcli, server, photo, tmp_path):
    path = tmp_path / "receipt.schema.json"
    path.write_text(json.dumps(RECEIPT))
    server.script(Reply('{"total": 3, "currency": "USD"}'))
    run = ask(mmcli, server, photo, "read it", "--schema", path, "--json")
    assert run.code == 0, run.stderr
    payload = json.loads(run.stdout)
    assert payload["answer"] == {"total": 3, "currency": "USD"}
    request = server.chat_requests()[0].json
    assert request["response_format"]["json_schema"] == {"name": "receipt_schema", "schema": RECEIPT}


def test_multi_and_arrays_in_the_short_form(mmcli, server, photo):
    server.script(Reply('{"items": [{"name": "tea", "price": 2.0, "tags": ["hot"]}]}'))
    run = ask(mmcli, server, photo, "list the items", "--schema", "multi name, price float, tags str[]")
    assert run.code == 0, run.stderr
    schema = server.chat_requests()[0].json["response_format"]["json_schema"]["schema"]
    item = schema["properties"]["items"]["items"]
    assert schema["properties"]["items"]["type"] == "array" and schema["required"] == ["items"]
    assert item["properties"]["tags"] == {"type": "array", "items": {"type": "string"}}
    assert json.loads(run.stdout)["items"][0]["name"] == "tea"


def test_an_answer_that_does_not_match_is_exit_7_with_the_text_kept(mmcli, server, photo):
    server.script(Reply('{"total": "twelve", "currency": "EUR"}'))
    run = ask(mmcli, server, photo, "read it", "--schema", "total float, currency")
    assert_clean_error(run, 7, "does not match the schema", "$.total", "'twelve' is not of type 'number'")
    assert '"twelve"' in run.stdout  # the raw answer is kept


def test_json_output_of_a_failed_answer_keeps_the_text_and_the_error(mmcli, server, photo):
    server.script(Reply("not json at all"))
    run = ask(mmcli, server, photo, "read it", "--schema", "total float", "--json")
    assert run.code == 7, run.stderr
    payload = json.loads(run.stdout)
    assert payload["answer"] == "not json at all" and "not JSON" in payload["error"]


def test_an_answer_cut_at_the_token_limit_is_exit_7_with_a_hint(mmcli, server, photo):
    server.script(Reply('{"total": 1', finish_reason="length"))
    run = ask(mmcli, server, photo, "read it", "--schema", "total float", "--max-tokens", "5")
    assert_clean_error(run, 7, "cut off")
    assert "raise --max-tokens" in run.stderr and "token limit (5)" in run.stderr
    assert '{"total": 1' in run.stdout


def test_without_max_tokens_a_cut_answer_says_the_model_ran_to_the_end_not_raise_max_tokens(mmcli, server, photo):
    # A small model under a schema it cannot follow writes digits until the context is full (16k tokens).
    digits = Reply('{"colour":"2..(250,0),(375,625)))),27.65' + "0" * 500, finish_reason="length")
    server.script(digits, digits)
    run = ask(mmcli, server, photo, "What colour?", "--schema", "colour")
    assert_clean_error(run, 7, "cut off", "end of the model's context", "may not follow the schema")
    assert "raise --max-tokens" not in run.stderr
    hint = run.stderr.split("hint:", 1)[1]
    assert "enum" in hint and "--max-tokens" in hint and "model that follows schemas" in hint
    assert '{"colour":"2..' in run.stdout
    assert "max_tokens" not in server.requests[-1].json  # no cap was sent on the user's behalf

    as_json = ask(mmcli, server, photo, "What colour?", "--schema", "colour", "--json")
    payload = json.loads(as_json.stdout)
    assert as_json.code == 7 and "end of the model's context" in payload["error"]
    assert not any("raise --max-tokens" in warning for warning in payload["warnings"])


@pytest.mark.parametrize("value, fragments", [
    ("total flot", ["short form", "column 7", "unknown type 'flot'"]),
    ("total float, total int", ["column 14", "given twice"]),
    ('{"type": "object", "properties": {"a": {"type": "flot"}}}', ["invalid JSON Schema", "$.properties.a.type"]),
    ('{"type": "object",\n "properties": }', ["invalid JSON", "line 2, column 16"]),
    ("missing.json", ["cannot read the schema file", "missing.json"]),
])
def test_bad_schemas_are_usage_errors_naming_the_position_and_nothing_is_sent(mmcli, server, photo, value,
                                                                              fragments):
    run = ask(mmcli, server, photo, "read it", "--schema", value)
    assert_clean_error(run, 2, *fragments)
    assert server.chat_requests() == []


def test_a_schema_the_endpoint_refuses_is_exit_4_with_its_reason(mmcli, server, photo):
    server.script(Status(400, vllm_error(400, "The provided JSON schema contains features not supported by xgrammar.")))
    run = ask(mmcli, server, photo, "read it", "--schema", "total float")
    assert_clean_error(run, 4, "HTTP 400", "not supported by xgrammar")
    assert "structured_output = \"none\"" in run.stderr


def test_a_profile_without_structured_output_asks_in_the_prompt_and_still_checks(mmcli, server, photo, clean_env,
                                                                                   tmp_path):
    write_profile(tmp_path, server, "plain", "none")
    server.script(Reply('```json\n{"total": 4}\n```'))
    run = mmcli("ask", photo, "read it", "--schema", "total float", "--profile", "plain")
    assert run.code == 0, run.stderr
    assert json.loads(run.stdout) == {"total": 4}
    request = server.chat_requests()[0].json
    assert "response_format" not in request
    assert "matching this JSON Schema" in request["messages"][-1]["content"][-1]["text"]


def test_vllm_structured_outputs_quirk(mmcli, server, photo, tmp_path):
    write_profile(tmp_path, server, "v", "structured_outputs")
    server.script(Reply('{"total": 4}'))
    run = mmcli("ask", photo, "read it", "--schema", "total float", "--profile", "v")
    assert run.code == 0, run.stderr
    request = server.chat_requests()[0].json
    assert request["structured_outputs"]["json"]["properties"] == {"total": {"type": "number"}}


def test_dry_run_shows_the_schema_in_the_request(mmcli, server, photo):
    run = ask(mmcli, server, photo, "read it", "--schema", "total float", "--dry-run", "--json")
    assert run.code == 0, run.stderr
    assert json.loads(run.stdout)["request"]["response_format"]["json_schema"]["schema"]["required"] == ["total"]


def test_format_needs_each_and_schema(mmcli, server, photo):
    assert_clean_error(ask(mmcli, server, photo, "x", "--format", "csv"), 2, "--format works with --each")
    run = ask(mmcli, server, photo, "x", "--each", "--schema", "a", "--format", "xlsx")
    assert_clean_error(run, 2, "unknown table format")
    run = ask(mmcli, server, photo, "x", "--each", "--schema", "a", "--format", "csv", "--engine", "ray")
    assert_clean_error(run, 2, "--format cannot go with --engine ray")
    assert server.requests == []


def make_receipts(folder, count):
    from PIL import Image

    folder.mkdir()
    for n in range(count):
        Image.new("RGB", (60 + n, 40), (n * 40, 90, 160)).save(folder / f"r{n}.png")
    return sorted(folder.iterdir())


def each_receipts(mmcli, server, tmp_path, *answers: str):
    """`ask --each` over one receipt per answer under "total float", one job at a time: (run, lines)."""
    make_receipts(tmp_path / "receipts", len(answers))
    server.script(*(Reply(answer) for answer in answers))
    results = tmp_path / "results.jsonl"
    run = mmcli("ask", "--each", tmp_path / "receipts", "total?", "--schema", "total float", "-o", results,
                "--base-url", server.base_url, "-j", "1")
    return run, [json.loads(line) for line in results.read_text().splitlines()]


def test_each_lines_carry_objects(mmcli, server, tmp_path):
    run, lines = each_receipts(mmcli, server, tmp_path, '{"total": 1.5}', '{"total": 2.5}')
    assert run.code == 0, run.stderr
    assert sorted(line["answer"]["total"] for line in lines) == [1.5, 2.5]
    assert all("response_format" in r.json for r in server.chat_requests())


def test_each_invalid_answer_fails_that_job_with_exit_7_on_its_line(mmcli, server, tmp_path):
    run, lines = each_receipts(mmcli, server, tmp_path, '{"total": 1.5}', '{"total": "n/a"}')
    assert run.code == 8, run.stderr
    failed = [line for line in lines if "error" in line]
    assert len(failed) == 1 and failed[0]["error"]["exit_code"] == 7
    assert "$.total" in failed[0]["error"]["message"]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_each_format_writes_one_row_per_file_source_first(mmcli, server, tmp_path, fmt):
    paths = make_receipts(tmp_path / "receipts", 3)
    server.script(Reply('{"total": 1.5, "shop": {"name": "A, B"}, "items": ["x", "y"]}'),
                  Reply('{"total": 2, "shop": {"name": "C"}, "items": []}'),
                  Status(400, vllm_error(400, "bad image")))
    run = mmcli("ask", "--each", tmp_path / "receipts", "read", "--schema",
                '{"type": "object", "properties": {"total": {"type": "number"}, "shop": {"type": "object"}, '
                '"items": {"type": "array"}}}', "--format", fmt, "--base-url", server.base_url, "-j", "1")
    assert run.code == 8, run.stderr
    if fmt == "csv":
        import csv
        import io

        rows = list(csv.DictReader(io.StringIO(run.stdout)))
        assert list(rows[0]) == ["source", "total", "shop.name", "items", "error"]
    else:
        rows = [json.loads(line) for line in run.stdout.splitlines()]
        assert list(rows[0]) == ["source", "total", "shop.name", "items", "error"]
    assert [row["source"] for row in rows] == [str(p) for p in paths]
    assert str(rows[0]["total"]) == "1.5" and rows[0]["shop.name"] == "A, B"
    assert json.loads(rows[0]["items"]) == ["x", "y"]
    assert "bad image" in rows[2]["error"]


def test_batch_tasks_take_a_run_schema_and_a_line_schema(mmcli, server, tmp_path, photo):
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(json.dumps({"command": "ask", "inputs": [str(photo)], "prompt": "a"}) + "\n"
                     + json.dumps({"command": "ask", "inputs": [str(photo)], "prompt": "b", "schema": "n int"})
                     + "\n")
    server.script(Reply('{"total": 1}'), Reply('{"n": 2}'))
    run = mmcli("batch", tasks, "--schema", "total float", "--base-url", server.base_url, "-j", "1")
    assert run.code == 0, run.stderr
    answers = sorted((json.loads(line) for line in run.stdout.splitlines()), key=lambda r: r["line"])
    assert answers[0]["answer"] == {"total": 1} and answers[1]["answer"] == {"n": 2}
    sent = [r.json["response_format"]["json_schema"]["schema"]["required"] for r in server.chat_requests()]
    assert sorted(sent) == [["n"], ["total"]]


def test_docqa_batches_and_merge_all_carry_the_schema(mmcli, server, tmp_path):
    pages = make_receipts(tmp_path / "pages", 3)
    server.script(Reply('{"total": 1}'), Reply('{"total": 2}'), Reply('{"total": 3}'))
    run = mmcli("docqa", *pages, "what is the total?", "--schema", "total float", "--pages-per-request", "2",
                "--json", "--base-url", server.base_url)
    assert run.code == 0, run.stderr
    payload = json.loads(run.stdout)
    assert payload["answer"] == {"total": 3} and payload["pages"] == [1, 2, 3]
    assert [b["answer"] for b in payload["batches"]] == [{"total": 1}, {"total": 2}]
    assert [b["pages"] for b in payload["batches"]] == [[1, 2], [3]]
    requests = [r.json for r in server.chat_requests()]
    assert len(requests) == 3
    assert all(r["response_format"]["json_schema"]["schema"]["required"] == ["total"] for r in requests)
    merge = requests[2]["messages"][-1]["content"]
    assert '{"total": 1}' in merge and '{"total": 2}' in merge


def test_docqa_a_batch_that_fails_its_schema_stops_before_the_merge(mmcli, server, tmp_path):
    pages = make_receipts(tmp_path / "pages", 3)
    server.script(Reply('{"total": 1}'), Reply('{"total": null}'))
    run = mmcli("docqa", *pages, "total?", "--schema", "total float", "--pages-per-request", "2",
                "--base-url", server.base_url)
    assert_clean_error(run, 7, "$.total")
    assert len(server.chat_requests()) == 2
    assert '{"total": 1}' in run.stdout and '{"total": null}' in run.stdout  # both answers kept


def test_python_api_schema_keyword(server, photo):
    import mmcli
    from mmcli.errors import OutputUnparseable

    server.script(Reply('{"total": 9.5}'), Reply('{"total": "x"}'))
    client = mmcli.Client(base_url=server.base_url, autostart=False)
    answer = client.ask(photo, "total?", schema={"type": "object", "properties": {"total": {"type": "number"}}})
    assert answer.data == {"total": 9.5} and answer.text == '{"total": 9.5}'
    with pytest.raises(OutputUnparseable) as failed:
        client.ask(photo, "total?", schema="total float")
    assert failed.value.exit_code == 7 and failed.value.partial.text == '{"total": "x"}'
    with pytest.raises(mmcli.UsageError):
        client.ask(photo, "total?", schema="total flot")
    with pytest.raises(mmcli.UsageError):
        client.detect(photo, "cat", schema="total float")


def test_export_and_collect_check_answers_against_the_schema(mmcli, server, tmp_path):
    from tests.test_batch_export import run_batch_file

    make_receipts(tmp_path / "receipts", 2)
    export = tmp_path / "requests.jsonl"
    run = mmcli("ask", "--each", tmp_path / "receipts", "total?", "--schema", "total float", "--export",
                "openai-batch", export, "--model", "tiny", "--family", "qwen2-vl", "-j", "1")
    assert run.code == 0, run.stderr
    bodies = [json.loads(line)["body"] for line in export.read_text().splitlines()]
    assert all(b["response_format"]["json_schema"]["schema"]["required"] == ["total"] for b in bodies)
    server.script(Reply('{"total": 2}'), Reply('{"total": "two"}'))
    output = tmp_path / "output.jsonl"
    run_batch_file(server, export, output)
    results = tmp_path / "results.jsonl"
    run = mmcli("batch", "collect", export, output, "-o", results)
    assert run.code == 8, run.stderr
    found = [json.loads(line) for line in results.read_text().splitlines()]
    assert sorted(str(r.get("answer")) for r in found if "error" not in r) == ["{'total': 2}"]
    assert [r["error"]["exit_code"] for r in found if "error" in r] == [7]


def test_exported_docqa_merge_carries_the_schema(mmcli, server, tmp_path):
    from tests.test_batch_export import run_batch_file

    from tests.support.pdfs import text_pdf

    text_pdf(tmp_path / "a.pdf", 3)
    export = tmp_path / "pdf.jsonl"
    run = mmcli("docqa", "--each", tmp_path / "a.pdf", "total?", "--schema", "total float", "--pages-per-request",
                "2", "--export", "openai-batch", export, "--model", "tiny", "--family", "qwen2-vl")
    assert run.code == 0, run.stderr
    server.script(Reply('{"total": 1}'), Reply('{"total": 2}'))
    output = tmp_path / "out.jsonl"
    run_batch_file(server, export, output)
    results = tmp_path / "results.jsonl"
    mmcli("batch", "collect", export, output, "-o", results)
    merge_file = tmp_path / "pdf.merge.jsonl"
    merge = json.loads(merge_file.read_text())["body"]
    assert merge["response_format"]["json_schema"]["schema"]["required"] == ["total"]
    server.script(Reply('{"total": 3}'))
    merge_out = tmp_path / "merge-out.jsonl"
    run_batch_file(server, merge_file, merge_out)
    run = mmcli("batch", "collect", merge_file, merge_out, "-o", results)
    assert run.code == 0, run.stderr
    assert [json.loads(line)["answer"] for line in results.read_text().splitlines()] == [{"total": 3}]


def test_video_with_a_schema(mmcli, server, tmp_path):
    from tests.test_video_fixtures import write_clip

    clip = write_clip(tmp_path / "clip.mp4", frames=20, fps=10, size=(160, 120))
    server.script(Reply('{"people": 2, "outdoors": true}'))
    run = mmcli("video", clip, "who is there?", "--schema", "people int, outdoors bool", "--base-url",
                server.base_url)
    assert run.code == 0, run.stderr
    assert json.loads(run.stdout) == {"people": 2, "outdoors": True}
    request = server.chat_requests()[0].json
    assert request["response_format"]["json_schema"]["schema"]["required"] == ["people", "outdoors"]
    assert request["messages"][-1]["content"][0]["type"] == "video_url"


def test_on_a_terminal_the_object_is_indented_and_harmless(mmcli, server, photo):
    def _assert_harmless(shown: str) -> None:  # escapes are written as JSON's \u escapes, never raw
        assert not any(bad in shown for bad in ("\x1b", "\x07", "\x9b")), shown

    server.script(Reply('{"note": "hi \\u001b]0;PWNED\\u0007 \\u009b2J there", "n": 1}'),
                  Reply("broken \x1b[2J\x1b]0;PWNED\x07 answer"))
    args = ["ask", photo, "q", "--schema", "note, n int", "--base-url", server.base_url]
    run = mmcli(*args, stdout_tty=True, env={"TERM": "xterm-256color"})
    assert run.code == 0, run.output
    _assert_harmless(run.stdout)
    assert '{\n  "note": "hi' in run.stdout and '"n": 1\n}' in run.stdout
    run = mmcli(*args, stdout_tty=True, env={"TERM": "xterm-256color"})
    assert run.code == 7  # the kept raw answer is shown cleaned too
    _assert_harmless(run.stdout)
    assert "broken" in run.stdout and "answer" in run.stdout


def test_piped_the_object_is_one_compact_line_and_the_failed_text_is_kept(mmcli, server, photo):
    server.script(Reply('{"note": "a",  "n": 1}'), Reply('{"note": "a"}'))
    args = ["ask", photo, "q", "--schema", "note, n int", "--base-url", server.base_url]
    run = mmcli(*args)
    assert run.code == 0 and run.stdout == '{"note":"a","n":1}\n', run.output
    run = mmcli(*args)
    assert_clean_error(run, 7, "'n' is a required property")
    assert run.stdout == '{"note": "a"}\n'


def test_every_surface_carries_the_same_object(mmcli, server, tmp_path):
    """--json, a results line, Client and a collected line: one fields() shape, the answer an object."""
    import mmcli as api
    from tests.test_batch_export import run_batch_file

    [photo] = make_receipts(tmp_path / "one", 1)
    answer = '{"total": 4.5, "currency": "EUR"}'
    server.script(Reply(answer), Reply(answer), Reply(answer))
    args = ["read it", "--schema", "total float, currency", "--base-url", server.base_url]
    shown = json.loads(mmcli("ask", photo, *args, "--json").stdout)
    [line] = [json.loads(text) for text in mmcli("ask", "--each", tmp_path / "one", *args).stdout.splitlines()]
    got = api.Client(base_url=server.base_url, autostart=False).ask(photo, "read it", schema="total float, currency")
    export = tmp_path / "requests.jsonl"
    run = mmcli("ask", "--each", tmp_path / "one", "read it", "--schema", "total float, currency", "--export",
                "openai-batch", export, "--model", "tiny", "--family", "qwen2-vl")
    assert run.code == 0, run.stderr
    server.script(Reply(answer))
    run_batch_file(server, export, tmp_path / "output.jsonl")
    results = tmp_path / "results.jsonl"
    assert mmcli("batch", "collect", export, tmp_path / "output.jsonl", "-o", results).code == 0
    [collected] = [json.loads(text) for text in results.read_text().splitlines()]
    want = {"total": 4.5, "currency": "EUR"}
    assert shown["answer"] == line["answer"] == got.data == collected["answer"] == want
    assert got.structured and got.text == answer
    assert set(shown) - {"error"} >= set(line) - {"id", "command", "sources", "prompt", "seconds", "line"}


def test_docqa_page_by_page_prints_one_object_per_page(mmcli, server, tmp_path):
    import mmcli as api

    pages = make_receipts(tmp_path / "pages", 2)
    server.script(Reply('{"total": 1}'), Reply('{"total": 2}'), Reply('{"total": 1}'), Reply('{"total": 2}'))
    run = mmcli("docqa", *pages, "total?", "--per-page", "--schema", "total float", "--base-url", server.base_url)
    assert run.code == 0, run.stderr
    assert run.stdout == '{"total":1}\n{"total":2}\n'  # piped: JSON lines, no headings
    found = api.Client(base_url=server.base_url, autostart=False).docqa(pages, "total?", per_page=True,
                                                                       schema="total float")
    assert found.data == [{"total": 1}, {"total": 2}]
    assert [b["answer"] for b in found.batches] == [{"total": 1}, {"total": 2}]


def test_docqa_a_merge_that_fails_its_schema_keeps_every_answer(mmcli, server, tmp_path):
    pages = make_receipts(tmp_path / "pages", 3)
    server.script(Reply('{"total": 1}'), Reply('{"total": 2}'), Reply("the total is 3"))
    run = mmcli("docqa", *pages, "total?", "--schema", "total float", "--pages-per-request", "2",
                "--base-url", server.base_url)
    assert_clean_error(run, 7, "not JSON")
    assert '{"total": 1}' in run.stdout and '{"total": 2}' in run.stdout and "the total is 3" in run.stdout
    server.script(Reply('{"total": 1}'), Reply('{"total": 2}'), Reply("the total is 3"))
    run = mmcli("docqa", *pages, "total?", "--schema", "total float", "--pages-per-request", "2", "--json",
                "--base-url", server.base_url)
    assert run.code == 7
    payload = json.loads(run.stdout)
    assert payload["answer"] == "the total is 3" and "not JSON" in payload["error"]
    assert [b["answer"] for b in payload["batches"]] == [{"total": 1}, {"total": 2}]


def test_csv_cells_a_spreadsheet_would_run_are_made_inert(mmcli, server, tmp_path):
    import csv
    import io

    make_receipts(tmp_path / "receipts", 1)
    server.script(Reply('{"note": "=HYPERLINK(\\"http://x\\")", "total": -3, "tag": "@home"}'))
    run = mmcli("ask", "--each", tmp_path / "receipts", "read", "--schema", "note, total int, tag", "--format", "csv",
                "--base-url", server.base_url)
    assert run.code == 0, run.stderr
    [row] = list(csv.DictReader(io.StringIO(run.stdout)))
    assert row["note"] == "'=HYPERLINK(\"http://x\")" and row["tag"] == "'@home"
    assert row["total"] == "-3"  # a number stays a number
