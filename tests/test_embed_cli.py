"""mmcli embed and search against a local endpoint that answers POST /v1/embeddings like vLLM."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import assert_clean_error
from tests.support.embed_server import EmbeddingServer, cosine
from tests.support.pdfs import text_pdf
from tests.support.scripted_server import Status, vllm_error


@pytest.fixture
def photos(tmp_path) -> Path:
    """A folder of three plain-coloured photos of different sizes."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for name, colour, size in (("red.png", (220, 10, 10), (300, 200)), ("green.jpg", (10, 200, 10), (280, 224)),
                               ("blue.png", (10, 10, 230), (200, 400))):
        Image.new("RGB", size, colour).save(folder / name)
    return folder


def _lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def _user_parts(conversation: list[dict]) -> list[dict]:
    return conversation[-1]["content"]


def test_json_lines_one_per_image_and_text(mmcli, embed_server, photos):
    run = mmcli("embed", photos / "red.png", photos / "green.jpg", "--text", "a red car",
                "--base-url", embed_server.base_url)
    assert run.code == 0, run.stderr
    lines = _lines(run.stdout)
    assert [line["kind"] for line in lines] == ["image", "image", "text"]
    assert lines[0]["source"].endswith("red.png") and lines[2]["source"] == "a red car"
    assert all(line["dims"] == 8 == len(line["embedding"]) for line in lines)
    assert lines[0]["usage"]["prompt_tokens"] > 0
    # The red photo and the words "a red car" land close together; the green photo does not.
    assert cosine(lines[0]["embedding"], lines[2]["embedding"]) > 0.95
    assert cosine(lines[1]["embedding"], lines[2]["embedding"]) < 0.2


def test_images_are_resized_to_the_grid(mmcli, embed_server, photos):
    run = mmcli("embed", photos / "red.png", "--family", "qwen2-vl", "--base-url", embed_server.base_url)
    assert run.code == 0, run.stderr
    request = embed_server.embedding_requests()[0]
    url = _user_parts(request["messages"])[0]["image_url"]["url"]
    import base64
    import io

    image = Image.open(io.BytesIO(base64.b64decode(url.partition(",")[2])))
    assert image.width % 28 == 0 and image.height % 28 == 0


def test_batches_hold_at_most_batch_size_conversations(mmcli, embed_server, photos):
    run = mmcli("embed", photos, "--text", "one", "--text", "two", "--batch-size", "2",
                "--base-url", embed_server.base_url)
    assert run.code == 0, run.stderr
    requests = embed_server.embedding_requests()
    sizes = [len(r["messages"]) if isinstance(r["messages"][0], list) else 1 for r in requests]
    assert sizes == [2, 2, 1]
    assert len(_lines(run.stdout)) == 5


def test_a_single_item_is_sent_as_one_conversation(mmcli, embed_server, photos):
    run = mmcli("embed", photos / "red.png", "--base-url", embed_server.base_url)
    assert run.code == 0, run.stderr
    messages = embed_server.embedding_requests()[0]["messages"]
    assert isinstance(messages[0], dict) and messages[0]["role"] == "user"


@pytest.mark.parametrize("preset, image_words, text_words, placeholder, system", [
    ("plain", None, "a red car", False, None),
    ("vlm2vec", "Represent the given image.", "a red car", False, None),
    ("dse-qwen2", "What is shown in this image?", "Query: a red car", True, None),
    ("gme", None, "a red car", False, "Find an image that matches the given text."),
])
def test_request_shape_of_each_preset(mmcli, embed_server, photos, preset, image_words, text_words, placeholder,
                                      system):
    run = mmcli("embed", photos / "red.png", "--text", "a red car", "--preset", preset,
                "--base-url", embed_server.base_url)
    assert run.code == 0, run.stderr
    image_conv, text_conv = embed_server.embedding_requests()[0]["messages"]
    image_parts, text_parts = _user_parts(image_conv), _user_parts(text_conv)
    assert image_parts[0]["type"] == "image_url"
    assert [p["text"] for p in image_parts[1:]] == ([image_words] if image_words else [])
    assert text_parts[-1] == {"type": "text", "text": text_words}
    assert (text_parts[0]["type"] == "image_url") is placeholder
    if placeholder:
        url = text_parts[0]["image_url"]["url"]
        import base64
        import io

        assert Image.open(io.BytesIO(base64.b64decode(url.partition(",")[2]))).size == (56, 56)
    assert (text_conv[0]["content"] if text_conv[0]["role"] == "system" else None) == system
    vectors = [line["embedding"] for line in _lines(run.stdout)]
    normalised = preset != "plain"
    assert all(bool(abs(np.linalg.norm(v) - 1) < 1e-6) is normalised for v in vectors)


def test_dry_run_shows_the_preset_and_sends_nothing(mmcli, embed_server, photos):
    run = mmcli("embed", photos / "red.png", "--text", "q", "--preset", "dse-qwen2", "--dry-run", "--json",
                "--base-url", embed_server.base_url)
    assert run.code == 0, run.stderr
    plan = json.loads(run.stdout)
    assert plan["preset"]["text_format"] == "Query: {text}" and plan["preset"]["placeholder_image"] is True
    request = plan["requests"][0]["request"]
    assert request["add_generation_prompt"] is True and len(request["messages"]) == 2
    assert plan["requests"][0]["totals"]["visual_tokens"] > 4  # the photo's grid plus the 2x2 placeholder
    assert embed_server.embedding_requests() == []


def test_pdf_pages_give_one_vector_each(mmcli, embed_server, tmp_path):
    pdf = text_pdf(tmp_path / "doc.pdf", 3)
    run = mmcli("embed", pdf, "--pages", "1,3", "--base-url", embed_server.base_url)
    assert run.code == 0, run.stderr
    lines = _lines(run.stdout)
    assert [(line["kind"], line["page"]) for line in lines] == [("page", 1), ("page", 3)]


def test_a_folder_of_more_images_than_max_pages_is_embedded_in_batches(mmcli, embed_server, tmp_path):
    folder = tmp_path / "many"
    folder.mkdir()
    for n in range(60):
        Image.new("RGB", (32, 32), (n * 4, 0, 0)).save(folder / f"{n:02}.png")
    run = mmcli("embed", folder, "--batch-size", "16", "--base-url", embed_server.base_url)
    assert run.code == 0, run.stderr
    assert len(_lines(run.stdout)) == 60 and len(embed_server.embedding_requests()) == 4
    # --max-pages still caps a long PDF's pages
    pdf = text_pdf(tmp_path / "doc.pdf", 3)
    run = mmcli("embed", pdf, folder / "00.png", "--max-pages", "2", "--base-url", embed_server.base_url)
    assert_clean_error(run, 2, "too many pages", "3 pages, over the limit of 2")
    assert "--pages 1-2" in run.stderr and "--max-pages 3" in run.stderr


def test_npy_output_with_sidecar_and_no_clobber(mmcli, embed_server, photos, tmp_path):
    target = tmp_path / "vecs.npy"
    run = mmcli("embed", photos, "--format", "npy", "-o", target, "--base-url", embed_server.base_url)
    assert run.code == 0, run.stderr
    matrix = np.load(target)
    sidecar = json.loads((tmp_path / "vecs.json").read_text())
    assert matrix.shape == (3, 8) and matrix.dtype == np.float32
    assert [Path(r["source"]).name for r in sidecar["sources"]] == ["blue.png", "green.jpg", "red.png"]
    assert sidecar["model"] == "emb-model"
    again = mmcli("embed", photos, "--format", "npy", "-o", target, "--base-url", embed_server.base_url)
    assert_clean_error(again, 2, "output file exists")
    assert len(embed_server.embedding_requests()) == 1  # refused before anything was sent


def test_a_npy_file_name_without_format_npy_is_refused(mmcli, embed_server, photos, tmp_path):
    run = mmcli("embed", photos, "-o", tmp_path / "v.npy", "--base-url", embed_server.base_url)
    assert_clean_error(run, 2, "a .npy output file needs --format npy")
    assert "hint: add --format npy" in run.stderr
    assert not (tmp_path / "v.npy").exists() and embed_server.requests == []


def test_npy_needs_an_output_file(mmcli, embed_server, photos):
    assert_clean_error(mmcli("embed", photos, "--format", "npy", "--base-url", embed_server.base_url),
                       2, "--format npy needs an output file")


def test_a_model_that_cannot_embed_is_exit_4_with_the_pooling_hint(mmcli, embed_server, photos):
    embed_server.script(Status(400, vllm_error(400, "The model does not support Embeddings API")))
    run = mmcli("embed", photos / "red.png", "--base-url", embed_server.base_url)
    assert_clean_error(run, 4, "cannot make embeddings")
    assert "hint: start the server with --runner pooling" in run.stderr


def test_vllm_without_an_embeddings_route_gets_the_same_hint(mmcli, embed_server, photos):
    embed_server.script(Status(404, {"detail": "Not Found"}))
    run = mmcli("embed", photos / "red.png", "--base-url", embed_server.base_url)
    assert_clean_error(run, 4, "cannot make embeddings")
    assert "--runner pooling" in run.stderr


def test_a_reply_with_too_few_vectors_is_a_bad_reply(mmcli, embed_server, photos):
    embed_server.script(Status(200, {"data": [{"index": 0, "embedding": [1.0, 0.0]}], "usage": {}}))
    run = mmcli("embed", photos / "red.png", photos / "blue.png", "--base-url", embed_server.base_url)
    assert_clean_error(run, 5, "1 embedding(s) for 2 input(s)")


@pytest.mark.parametrize("odd", [10 ** 400, float("nan")], ids=["huge-integer", "nan"])
def test_a_vector_holding_what_no_float_can_hold_is_a_bad_reply(mmcli, embed_server, photos, odd):
    embed_server.script(Status(200, {"data": [{"index": 0, "embedding": [odd, 0.0]}], "usage": {}}))
    run = mmcli("embed", photos / "red.png", "--base-url", embed_server.base_url)
    assert_clean_error(run, 5, "other than finite numbers")


def test_index_skips_unchanged_files_and_reembeds_changed_ones(mmcli, embed_server, photos, tmp_path):
    index = tmp_path / "idx"
    first = mmcli("embed", photos, "--index", index, "--base-url", embed_server.base_url)
    assert first.code == 0, first.stderr
    assert "3 added" in first.stderr
    Image.new("RGB", (300, 200), (240, 240, 0)).save(photos / "red.png")  # new contents, same name
    second = mmcli("embed", photos, "--index", index, "--base-url", embed_server.base_url)
    assert second.code == 0, second.stderr
    assert "1 added, 2 unchanged skipped, 3 in all" in second.stderr
    meta = json.loads((index / "index.json").read_text())
    assert meta["model"] == "emb-model" and meta["preset"] == "plain" and len(meta["entries"]) == 3
    assert np.load(index / meta["vectors"]).shape == (3, 8)
    assert sorted(p.name for p in index.glob("vectors*.npy")) == [meta["vectors"]]  # the old vectors file is gone


def test_search_ranks_by_cosine_and_an_image_finds_itself(mmcli, embed_server, photos, tmp_path):
    index = tmp_path / "idx"
    assert mmcli("embed", photos, "--index", index, "--base-url", embed_server.base_url).code == 0
    by_text = mmcli("search", "a blue sky", "--index", index, "-k", "2", "--json",
                    "--base-url", embed_server.base_url)
    assert by_text.code == 0, by_text.stderr
    matches = json.loads(by_text.stdout)["matches"]
    assert len(matches) == 2 and Path(matches[0]["source"]).name == "blue.png"
    by_image = mmcli("search", "--image", photos / "green.jpg", "--index", index, "--json",
                     "--base-url", embed_server.base_url)
    best = json.loads(by_image.stdout)["matches"][0]
    assert Path(best["source"]).name == "green.jpg" and best["score"] == pytest.approx(1.0, abs=1e-5)


def test_search_table_and_contact_sheet(mmcli, embed_server, photos, tmp_path):
    index = tmp_path / "idx"
    assert mmcli("embed", photos, "--index", index, "--base-url", embed_server.base_url).code == 0
    run = mmcli("search", "red", "--index", index, "--open", "--base-url", embed_server.base_url)
    assert run.code == 0, run.stderr
    rows = [line for line in run.stdout.splitlines() if ".png" in line or ".jpg" in line]
    assert "red.png" in rows[0] and len(rows) == 3
    with Image.open(index / "matches.png") as sheet:
        assert sheet.size[0] >= 3 * 192 and sheet.getpixel((96, 96))[0] > 150  # the red photo's tile first


def test_an_index_refuses_another_model(mmcli, photos, tmp_path):
    index = tmp_path / "idx"
    with EmbeddingServer(models=["model-a"]) as first:
        assert mmcli("embed", photos, "--index", index, "--base-url", first.base_url).code == 0
    with EmbeddingServer(models=["model-b"]) as second:
        search = mmcli("search", "red", "--index", index, "--base-url", second.base_url)
        assert_clean_error(search, 2, "another model", "model-a", "model-b")
        add = mmcli("embed", photos, "--index", index, "--base-url", second.base_url)
        assert_clean_error(add, 2, "another model")
        assert second.embedding_requests() == []


def test_usage_errors(mmcli, embed_server, photos, tmp_path):
    url = embed_server.base_url
    assert_clean_error(mmcli("embed", "--base-url", url), 2, "nothing to embed")
    assert_clean_error(mmcli("embed", photos, "--preset", "clip", "--base-url", url), 2, "unknown embedding preset")
    assert_clean_error(mmcli("embed", photos, "--index", tmp_path / "i", "--text", "x", "--base-url", url), 2,
                       "--index holds images")
    assert_clean_error(mmcli("search", "red", "--index", tmp_path / "none", "--base-url", url), 2, "no index")
    assert_clean_error(mmcli("search", "--index", tmp_path / "none", "--base-url", url), 2, "nothing to search")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_clean_error(mmcli("embed", empty, "--base-url", url), 3, "no images or PDFs")


def test_index_drops_the_rows_of_deleted_files(mmcli, embed_server, photos, tmp_path):
    index = tmp_path / "idx"
    assert mmcli("embed", photos, "--index", index, "--base-url", embed_server.base_url).code == 0
    (photos / "red.png").unlink()
    run = mmcli("embed", photos, "--index", index, "--base-url", embed_server.base_url)
    assert run.code == 0, run.stderr
    assert "1 removed" in run.stderr and "2 in all" in run.stderr
    meta = json.loads((index / "index.json").read_text())
    assert sorted(Path(e["path"]).name for e in meta["entries"]) == ["blue.png", "green.jpg"]
    assert np.load(index / meta["vectors"]).shape == (2, 8)
    found = mmcli("search", "red", "--index", index, "--json", "--base-url", embed_server.base_url)
    assert "red.png" not in found.stdout


def test_damaged_indexes_and_an_index_that_is_a_file(mmcli, embed_server, photos, tmp_path):
    url = embed_server.base_url
    afile = tmp_path / "notes.txt"
    afile.write_text("mine")
    for command in (("embed", photos), ("search", "red")):
        run = mmcli(*command, "--index", afile, "--base-url", url)
        assert_clean_error(run, 2, "--index names a file")
    assert afile.read_text() == "mine"
    index = tmp_path / "idx"
    assert mmcli("embed", photos, "--index", index, "--base-url", url).code == 0
    meta = json.loads((index / "index.json").read_text())
    for damage in ({"dims": "eight"}, {"dims": [8]}, {"entries": "x"}, {"model": None}):
        (index / "index.json").write_text(json.dumps(dict(meta, **damage)))
        run = mmcli("search", "red", "--index", index, "--base-url", url)
        assert_clean_error(run, 2, "index")
