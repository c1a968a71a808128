"""--export openai-batch and mmcli batch collect, with a stand-in batch runner posting to a real local server."""

from __future__ import annotations

import json
from pathlib import Path

import httpx2

from tests.conftest import assert_clean_error
from tests.support.scripted_server import Reply
from tests.test_batch_each import lines, make_images
from mmcli.batch.export import Parts, part_path

MODEL = ["--model", "tiny", "--family", "qwen2-vl"]


def run_batch_file(server, path: Path, out: Path) -> None:
    """What a Batch API does with an input file: POST each body, write the answers (here in reverse order)."""
    answers = []
    for raw in path.read_text().splitlines():
        line = json.loads(raw)
        assert line["method"] == "POST" and line["url"] == "/v1/chat/completions"
        assert "stream" not in line["body"]
        reply = httpx2.post(server.root_url + line["url"], json=line["body"], timeout=30)
        answers.append({"id": "batch_req_x", "custom_id": line["custom_id"],
                        "response": {"status_code": reply.status_code, "request_id": "r", "body": reply.json()},
                        "error": None})
    out.write_text("".join(json.dumps(a) + "\n" for a in reversed(answers)))


def answered_export(mmcli, server, tmp_path: Path, count: int = 3) -> tuple[Path, list[str]]:
    """`ask --each` over `count` photos exported as a batch file, and the lines the batch runner answered it with."""
    make_images(tmp_path / "album", count)
    export = tmp_path / "r.jsonl"
    assert mmcli("ask", "--each", tmp_path / "album", "q", "--export", "openai-batch", export, *MODEL).code == 0
    output = tmp_path / "answers.jsonl"
    run_batch_file(server, export, output)
    return export, output.read_text().splitlines()


def test_export_then_collect_gives_the_lines_of_a_live_run(mmcli, server, tmp_path):
    make_images(tmp_path / "album", 4)
    export = tmp_path / "requests.jsonl"
    run = mmcli("ask", "--each", tmp_path / "album", "caption", "--export", "openai-batch", export,
                "--base-url", server.base_url, *MODEL)
    assert run.code == 0, run.stderr
    assert server.requests == []  # nothing sent, not even the model list
    assert f"next: `mmcli batch submit {export} --profile NAME`" in run.stderr
    assert "batch runner (docs/many-files.md)" in run.stderr and f"`mmcli batch collect {export} OUTPUT.jsonl" in run.stderr
    manifest = json.loads((tmp_path / "requests.manifest.json").read_text())
    assert len(manifest["jobs"]) == 4 and manifest["model"] == "tiny" and manifest["files"][0]["lines"] == 4
    bodies = [json.loads(line)["body"] for line in export.read_text().splitlines()]
    assert all(b["messages"][-1]["content"][0]["image_url"]["url"].startswith("data:image/jpeg;base64,")
               for b in bodies)

    output = tmp_path / "output.jsonl"
    run_batch_file(server, export, output)
    collected = tmp_path / "collected.jsonl"
    run = mmcli("batch", "collect", export, output, "-o", collected)
    assert run.code == 0, run.stderr
    assert "4 done, 0 failed" in run.stderr

    live = tmp_path / "live.jsonl"
    assert mmcli("ask", "--each", tmp_path / "album", "caption", "-o", live, "--base-url", server.base_url,
                 *MODEL).code == 0
    by_id = {r["id"]: r for r in lines(collected)}
    for record in lines(live):
        mine = by_id[record["id"]]  # the same job id either way
        assert set(mine) == set(record) - {"seconds"}
        assert mine["answer"] == record["answer"] and mine["plan"]["items"] == record["plan"]["items"]
        assert mine["plan"]["totals"]["visual_tokens"] == record["plan"]["totals"]["visual_tokens"]
        assert mine["verified"] is True


def test_detect_export_collect_maps_boxes_to_original_pixels(mmcli, server, tmp_path):
    make_images(tmp_path / "album", 2)
    server.default = Reply('[{"bbox_2d": [100, 100, 500, 500], "label": "cat"}]')
    export = tmp_path / "det.jsonl"
    assert mmcli("detect", "--each", tmp_path / "album", "the cat", "--export", "openai-batch", export,
                 *MODEL).code == 0
    output = tmp_path / "out.jsonl"
    run_batch_file(server, export, output)
    run = mmcli("batch", "collect", export, output)
    assert run.code == 0, run.stderr
    found = [json.loads(line) for line in run.stdout.splitlines()]
    entry = found[0]["inputs"][0]
    width, height = entry["original_size"]
    x1, y1, x2, y2 = entry["detections"][0]["bbox"]
    assert (x1, x2) == (round(width / 10), round(width / 2)) and (y1, y2) == (round(height / 10), round(height / 2))


def test_collect_reports_missing_and_failed_answers(mmcli, server, tmp_path):
    export, kept = answered_export(mmcli, server, tmp_path)
    output = tmp_path / "o.jsonl"
    broken = json.loads(kept[1])
    broken["response"] = {"status_code": 400, "body": {"error": {"message": "bad image"}}}
    output.write_text(kept[0] + "\n" + json.dumps(broken) + "\n")  # one answer missing, one failed
    run = mmcli("batch", "collect", export, output, "-o", tmp_path / "res.jsonl")
    assert_clean_error(run, 8, "2 job(s) are not done")
    assert "1 done, 1 failed, 0 already done, 1 with no output yet" in run.stderr
    assert "bad image" in (tmp_path / "res.jsonl").read_text()


def test_export_splits_files(mmcli, tmp_path):
    make_images(tmp_path / "album", 5)
    export = tmp_path / "big.jsonl"
    run = mmcli("ask", "--each", tmp_path / "album", "q", "--export", "openai-batch", export, *MODEL,
                "--batch-max-mb", "1", "--max-pixels", "2000000")
    assert run.code == 0, run.stderr
    parts = json.loads((tmp_path / "big.manifest.json").read_text())["files"]
    assert sum(p["lines"] for p in parts) == 5 and all(p["bytes"] <= 1_000_000 for p in parts)

    split = Parts(tmp_path / "few.jsonl", 10_000, max_lines=2)
    for n in range(5):
        split.write(b'{"n": %d}\n' % n)
    split.close()
    assert [f["lines"] for f in split.files] == [2, 2, 1]
    assert part_path(tmp_path / "few.jsonl", 3).read_bytes() == b'{"n": 4}\n'


def test_export_needs_a_model_and_refuses_to_overwrite(mmcli, tmp_path):
    make_images(tmp_path / "album", 1)
    export = tmp_path / "r.jsonl"
    run = mmcli("ask", "--each", tmp_path / "album", "q", "--export", "openai-batch", export,
                "--base-url", "http://127.0.0.1:9/v1")
    assert_clean_error(run, 2, "--export needs the model's name")
    assert mmcli("ask", "--each", tmp_path / "album", "q", "--export", "openai-batch", export, *MODEL).code == 0
    again = mmcli("ask", "--each", tmp_path / "album", "q", "--export", "openai-batch", export, *MODEL)
    assert_clean_error(again, 2, "exists")
    run = mmcli("ask", "--each", tmp_path / "album", "q", "--export", "csv", export, *MODEL)
    assert_clean_error(run, 2, "unknown export format")


def test_docqa_merge_is_a_second_batch_file(mmcli, server, tmp_path):
    from tests.support.pdfs import text_pdf

    docs = tmp_path / "docs"
    docs.mkdir()
    text_pdf(docs / "a.pdf", 3)
    text_pdf(docs / "b.pdf", 1)
    export = tmp_path / "doc.jsonl"
    run = mmcli("docqa", "--each", docs, "who wrote it?", "--pages-per-request", "2", "--export", "openai-batch",
                export, *MODEL, "--max-tokens", "50", "-j", "1")  # one worker: a.pdf's lines, then b.pdf's
    assert run.code == 0, run.stderr
    assert [p["lines"] for p in json.loads((tmp_path / "doc.manifest.json").read_text())["files"]] == [3]
    server.script(Reply("Alice wrote it (p. 1)."), Reply("Nothing relevant on these pages."),
                  Reply("Bob (p. 1)."))  # the last line of the file is b.pdf
    output = tmp_path / "out.jsonl"
    run_batch_file(server, export, output)
    results = tmp_path / "results.jsonl"
    run = mmcli("batch", "collect", export, output, "-o", results)
    assert_clean_error(run, 8, "1 job(s) are not done")
    merge_file = tmp_path / "doc.merge.jsonl"
    assert f"run {merge_file} through the batch runner" in run.stderr
    assert [r["answer"] for r in lines(results)] == ["Bob (p. 1)."]  # the one-request document is done
    merge = json.loads(merge_file.read_text())
    prompt = merge["body"]["messages"][-1]["content"]
    assert "Alice wrote it (p. 1)." in json.dumps(prompt) and "Nothing relevant" not in json.dumps(prompt)
    assert merge["body"]["max_tokens"] == 50 and merge["body"]["model"] == "tiny"

    server.script(Reply("Alice wrote it (p. 1)."))
    merge_out = tmp_path / "merge-out.jsonl"
    run_batch_file(server, merge_file, merge_out)
    run = mmcli("batch", "collect", merge_file, merge_out, "-o", results)
    assert run.code == 0, run.stderr
    done = {Path(r["sources"][0]).name: r for r in lines(results)}
    assert done["a.pdf"]["answer"] == "Alice wrote it (p. 1)." and done["a.pdf"]["mode"] == "batches"
    assert [b["pages"] for b in done["a.pdf"]["batches"]] == [[1, 2], [3]]
    assert done["a.pdf"]["pages"] == [1, 2, 3]


def test_the_next_steps_name_an_export_with_a_space_as_one_argument(mmcli, server, tmp_path):
    make_images(tmp_path / "album", 1)
    export = tmp_path / "my requests.jsonl"
    run = mmcli("ask", "--each", tmp_path / "album", "caption", "--export", "openai-batch", export,
                "--base-url", server.base_url, *MODEL)
    assert run.code == 0, run.stderr
    assert f"next: `mmcli batch submit '{export}' --profile NAME`" in run.stderr  # pasted, it is one argument
