"""Documents: real files written by real writers (reportlab, pypdf, python-docx, odfpy, zip) are read with their
headings and pages, chunked in MiniLM's own tokens, indexed into SQLite and searched by words and meaning with the
real embedded all-MiniLM-L6-v2. Updates read only what changed (the embedding calls are counted), removed files
lose their chunks, unreadable files are listed with their reasons."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from document_fixtures import embedder, embedding_store, folder, index, written  # noqa: F401
from desktop_ai.engine.documents.chunking import WINDOW_TOKENS, chunk_document
from desktop_ai.engine.documents.embedding import DocumentEmbedder
from desktop_ai.engine.documents.index import DocumentIndex
from desktop_ai.engine.documents.indexing import Indexer
from desktop_ai.engine.documents.readers import read_document
from desktop_ai.engine.documents.readers.document import (
    REASON_DAMAGED,
    REASON_EMPTY,
    REASON_ENCRYPTED,
    REASON_NEEDS_OCR,
    Document,
    Section,
    UnreadableDocumentError,
)
from desktop_ai.engine.documents.search import DocumentSearch, fts_query, fuse
from desktop_ai.engine.errors import InvalidInputError


# --- readers ----------------------------------------------------------------------------------------------------

def test_every_format_reads_with_its_title_headings_and_pages(written: dict[str, Path]) -> None:
    pdf = read_document(written["pdf"])
    assert pdf.title == "Station Handbook"
    assert [(s.page, s.heading) for s in pdf.sections] == [(1, "Introduction"), (2, "Pumps"), (3, "Emergency")]
    assert "ZX-4471" in pdf.sections[1].text and "quench" in pdf.sections[2].text
    docx = read_document(written["docx"])
    assert docx.title == "Garden Notes" and [s.heading for s in docx.sections] == ["Tomatoes", "Roses"]
    assert "Turn the heap every fortnight" in docx.sections[1].text, "table text is read"
    odt = read_document(written["odt"])
    assert odt.title == "Bicycle Repair" and odt.sections[-1].heading == "Brakes" and "cantilever" in odt.sections[-1].text
    epub = read_document(written["epub"])
    assert epub.title == "Voyage Log" and [(s.page, s.heading) for s in epub.sections] == [(1, "Departure"), (2, "Storm")]
    markdown = read_document(written["markdown"])
    assert markdown.title == "Kitchen Guide" and "sourdough" in {s.heading: s.text for s in markdown.sections}["Bread"]
    html = read_document(written["html"])
    assert html.title == "Astronomy Club" and "Dobsonian" in {s.heading: s.text for s in html.sections}["Telescopes"]
    assert "hidden script" not in " ".join(s.text for s in html.sections), "scripts are not text"
    assert "Home | About" not in " ".join(s.text for s in html.sections), "navigation is not text"
    rst = read_document(written["rst"])
    assert rst.title == "Chess Openings" and "c5" in {s.heading: s.text for s in rst.sections}["Sicilian Defence"]


@pytest.mark.parametrize("name, kind", [("encrypted", REASON_ENCRYPTED), ("damaged", REASON_DAMAGED)])
def test_unreadable_files_say_why(written: dict[str, Path], name: str, kind: str) -> None:
    with pytest.raises(UnreadableDocumentError) as caught:
        read_document(written[name])
    assert caught.value.kind == kind and written[name].name in str(caught.value)


def test_a_scan_is_read_by_ocr_or_said_to_need_it(written: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    from PIL import Image
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    from desktop_ai.engine.documents.readers import pdf_ocr

    scan = read_document(written["scan"])
    assert [(s.page, s.text) for s in scan.sections] == [(1, "SCANNED INVOICE 2291")]
    blank = tmp_path / "blank-scan.pdf"  # a picture with nothing written on it
    pdf = canvas.Canvas(str(blank), pagesize=A4)
    pdf.drawImage(ImageReader(Image.new("RGB", (400, 300), "white")), 50, 500, width=400, height=300)
    pdf.showPage()
    pdf.save()
    with pytest.raises(UnreadableDocumentError) as caught:
        read_document(blank)
    assert caught.value.kind == REASON_EMPTY and "OCR found no text" in str(caught.value)
    monkeypatch.setattr(pdf_ocr, "available", lambda: False)  # an install without RapidOCR
    with pytest.raises(UnreadableDocumentError) as caught:
        read_document(written["scan"])
    assert caught.value.kind == REASON_NEEDS_OCR and "scan.pdf" in str(caught.value)


def test_empty_and_zip_damaged_files_say_why(tmp_path: Path) -> None:
    empty = tmp_path / "empty.md"
    empty.write_text("   \n\n")
    with pytest.raises(UnreadableDocumentError) as caught:
        read_document(empty)
    assert caught.value.kind == REASON_EMPTY
    for name in ("cut.docx", "cut.odt", "cut.epub"):
        broken = tmp_path / name
        broken.write_bytes(b"PK\x03\x04 not really a zip")
        with pytest.raises(UnreadableDocumentError) as caught:
            read_document(broken)
        assert caught.value.kind == REASON_DAMAGED, name


# --- chunks -----------------------------------------------------------------------------------------------------

def test_chunks_fit_the_model_window_and_keep_title_heading_and_page(embedder: DocumentEmbedder) -> None:
    sentence = "The glacier moved {n} metres in the winter of that year, more than any survey had predicted. "
    long_text = "".join(sentence.format(n=n) for n in range(200))
    document = Document(Path("glaciers.pdf"), "Glacier Survey", [Section(long_text, "Measurements", 7)])
    tokenizer = embedder.tokenizer
    chunks = chunk_document(document, tokenizer)
    assert len(chunks) > 5
    for chunk in chunks:
        assert (chunk.title, chunk.heading, chunk.page) == ("Glacier Survey", "Measurements", 7)
        full = len(tokenizer(chunk.embedding_text)["input_ids"])
        assert full <= WINDOW_TOKENS, "nothing is cut off past the model's window"
        assert chunk.embedding_text.startswith("Glacier Survey / Measurements\n")
    assert chunks[0].text.endswith("."), "cut at a sentence end"
    joined = " ".join(c.text for c in chunks)
    for n in (0, 57, 123, 199):
        assert f"moved {n} metres" in joined, "no text is lost between chunks"
    # Without sentence ends to cut at, every chunk fills the window exactly: not one token more.
    words = " ".join(f"tundra{n % 50} permafrost" for n in range(1500))
    unbroken = chunk_document(Document(Path("log.txt"), "Log", [Section(words, "", None)]), tokenizer)
    counts = [len(tokenizer(c.embedding_text)["input_ids"]) for c in unbroken]
    assert max(counts) == WINDOW_TOKENS and all(c.tokens == n for c, n in zip(unbroken, counts))


# --- index and search -------------------------------------------------------------------------------------------

def _indexer(index: DocumentIndex, embedder: DocumentEmbedder) -> Indexer:
    return Indexer(index, embedder)


def test_search_finds_the_passage_on_its_page_and_lists_failed_files(index: DocumentIndex, embedder: DocumentEmbedder,
                                                                      folder: Path) -> None:
    seen = []
    result = _indexer(index, embedder).add("mine", [folder], progress=seen.append)
    assert result.added == 8 and result.chunks_embedded > 8
    assert {(Path(f.path).name, f.kind) for f in result.failed} == {
        ("locked.pdf", REASON_ENCRYPTED), ("broken.pdf", REASON_DAMAGED)}
    assert [s.files_done for s in seen] == list(range(1, 11)) and seen[-1].files_total == 10
    assert seen[-1].chunks == result.chunks_embedded and seen[-1].words > 100
    collection = index.collection("mine")
    assert (collection.files, collection.indexed, collection.failed) == (10, 8, 2)
    assert {Path(f.path).name for f in index.failed_files(collection)} == {"locked.pdf", "broken.pdf"}

    search = DocumentSearch(index, embedder)
    by_meaning = search.search(["mine"], "what to do when the reactor overheats", top_k=3).passages[0]
    assert (Path(by_meaning.path).name, by_meaning.page, by_meaning.heading) == ("handbook.pdf", 3, "Emergency")
    scanned = search.search(["mine"], "invoice 2291", top_k=3).passages[0]
    assert (Path(scanned.path).name, scanned.page) == ("scan.pdf", 1), "the scan was read by OCR"
    exact = search.search(["mine"], "ZX-4471", top_k=3).passages[0]
    assert (Path(exact.path).name, exact.page) == ("handbook.pdf", 2) and exact.bm25_rank == 1
    roses = search.search(["mine"], "when should I prune roses", top_k=3).passages[0]
    assert Path(roses.path).name == "garden.docx" and roses.heading == "Roses"
    storm = search.search(["mine"], "bad weather at sea", top_k=3).passages[0]
    assert (Path(storm.path).name, storm.page) == ("voyage.epub", 2)
    unrelated = search.search(["mine"], "quarterly football league standings", top_k=3)
    assert unrelated.passages and not unrelated.relevant, "nothing there is about football"
    with pytest.raises(InvalidInputError, match="no collection named 'other'"):
        search.search(["other"], "pump")


def test_an_edit_reindexes_only_that_file_and_a_deletion_drops_its_chunks(index: DocumentIndex,
                                                                          embedder: DocumentEmbedder,
                                                                          folder: Path) -> None:
    indexer = _indexer(index, embedder)
    indexer.add("mine", [folder])
    collection = index.collection("mine")
    assert index.chunk_count(collection, str(folder / "kitchen.md")) == 3
    before = embedder.texts_embedded
    again = indexer.update("mine")
    assert embedder.texts_embedded == before and again.unchanged == 10 and again.chunks_embedded == 0

    kitchen = folder / "kitchen.md"
    kitchen.write_text(kitchen.read_text() + "\n## Pasta\n\nCook the rigatoni in salted water for eleven minutes.\n")
    before = embedder.texts_embedded
    edited = indexer.update("mine")
    assert (edited.changed, edited.added, edited.unchanged) == (1, 0, 9)
    assert embedder.texts_embedded - before == 4 == edited.chunks_embedded, "only the edited file's chunks"
    hit = DocumentSearch(index, embedder).search(["mine"], "rigatoni", top_k=1).passages[0]
    assert Path(hit.path).name == "kitchen.md" and hit.heading == "Pasta"

    touched = folder / "astronomy.html"
    os.utime(touched, (touched.stat().st_atime, touched.stat().st_mtime + 100))
    before = embedder.texts_embedded
    assert indexer.update("mine").unchanged == 10 and embedder.texts_embedded == before, "same content: not embedded"

    (folder / "handbook.pdf").unlink()
    removed = indexer.update("mine")
    assert removed.removed == 1 and index.chunk_count(collection, str(folder / "handbook.pdf")) == 0
    rows = index.db.execute("SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH 'quench'").fetchone()[0]
    assert rows == 0, "its words left the FTS index too"
    assert all(Path(p.path).name != "handbook.pdf"
               for p in DocumentSearch(index, embedder).search(["mine"], "coolant pump", top_k=10).passages)


def test_a_changed_embedding_setting_asks_for_a_rebuild_with_an_estimate(index: DocumentIndex,
                                                                         embedder: DocumentEmbedder,
                                                                         folder: Path) -> None:
    indexer = _indexer(index, embedder)
    indexer.add("mine", [folder / "kitchen.md"])
    collection = index.collection("mine")
    index.set_settings(collection, {"embedding_model": "some-other-model", "window_tokens": 512})
    with pytest.raises(InvalidInputError, match=r"must be embedded again, about \d+ minute"):
        indexer.update("mine")
    assert index.chunk_count(collection) == 3, "nothing was thrown away before the user agreed"
    rebuilt = indexer.update("mine", rebuild=True)
    assert rebuilt.added == 1 and index.collection("mine").settings["embedding_model"] == embedder.model_id


def test_collections_search_separately_and_remove_cleanly(index: DocumentIndex, embedder: DocumentEmbedder,
                                                          written: dict[str, Path]) -> None:
    indexer = _indexer(index, embedder)
    indexer.add("kitchen", [written["markdown"]])
    indexer.add("garden", [written["docx"]])
    search = DocumentSearch(index, embedder)
    assert {Path(p.path).name for p in search.search(["kitchen"], "roses sourdough", top_k=10).passages} == {"kitchen.md"}
    both = {Path(p.path).name for p in search.search(["kitchen", "garden"], "roses sourdough", top_k=10).passages}
    assert both == {"kitchen.md", "garden.docx"}
    index.remove_collection("kitchen")
    assert index.collection_names() == ["garden"]
    assert index.db.execute("SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH 'sourdough'").fetchone()[0] == 0


def test_fts_query_quotes_words_and_fusion_weighs_the_lists() -> None:
    assert fts_query('what is "NEAR(a b)" AND pump-7?') == '"near" OR "b" OR "pump" OR "7"'
    assert fts_query("the and") == '"the" OR "and"', "only stop words: keep them"
    scores = fuse([(1.0, [1, 2, 3]), (2.0, [3, 4])], k=60)
    assert scores[3] == pytest.approx(1 / 63 + 2 / 61) and max(scores, key=scores.get) == 3


def test_an_index_file_is_plain_sqlite_with_fts5(index: DocumentIndex) -> None:
    index.create_collection("x", [], {})
    with sqlite3.connect(index.path) as other:
        assert other.execute("SELECT name FROM collections").fetchall() == [("x",)]


def test_onnx_runtime_embeds_the_same_vectors_as_pytorch(embedder: DocumentEmbedder, embedding_store) -> None:
    texts = ["The primary coolant pump is model ZX-4471.", "Prune the climbing roses in late February.",
             "A gale tore the mainsail off the Azores. " * 20]
    ours = embedder.embed(texts)
    assert embedder.runtime == "onnx", "the CPU default is ONNX Runtime"
    reference = DocumentEmbedder(embedding_store, device="cpu", runtime="torch").embed(texts)
    assert ours.shape == (3, 384) and abs(ours - reference).max() < 1e-4
    assert abs(embedder.embed_query(texts[1]) - reference[1]).max() < 1e-4, "a query on its one-thread session"
    assert abs(float((ours[0] * ours[0]).sum()) - 1.0) < 1e-5, "unit length"
    import onnx

    ops = {node.op_type for node in onnx.load(str(embedder._onnx.path), load_external_data=False).graph.node}
    assert {"Attention", "SkipLayerNormalization"} <= ops, "the export is fused (embedding_onnx._fuse)"


def test_docx_and_odt_sections_carry_the_page_they_are_on(tmp_path: Path) -> None:
    """Pages in formats without pages: hard breaks in a file a program wrote, and the page starts a word processor
    marked where it laid the document out (Word's w:lastRenderedPageBreak, LibreOffice's text:soft-page-break)."""
    import docx
    from docx.oxml import OxmlElement
    from odf.opendocument import OpenDocumentText
    from odf.style import ParagraphProperties, Style
    from odf.text import H, P, SoftPageBreak

    written = docx.Document()
    written.add_heading("Tomatoes", level=1)
    written.add_paragraph("Plant the Brandywine tomatoes after the last frost.")
    written.add_page_break()
    written.add_paragraph("Water them every morning in July.")  # still under Tomatoes, on page 2
    written.add_heading("Roses", level=1)
    written.add_paragraph("Prune the climbing roses in late February.")
    written.save(str(tmp_path / "hard.docx"))
    pages = {(s.heading, s.page) for s in read_document(tmp_path / "hard.docx").sections if s.text}
    assert pages == {("Tomatoes", 1), ("Tomatoes", 2), ("Roses", 2)}

    laid_out = docx.Document()
    for text in ("First page text.", "Second page text.", "Third page text."):
        laid_out.add_paragraph(text)
    for paragraph in laid_out.paragraphs[1:]:  # Word's marks where pages 2 and 3 began, at these paragraphs' starts
        paragraph.runs[0]._r.insert(0, OxmlElement("w:lastRenderedPageBreak"))
    laid_out.save(str(tmp_path / "rendered.docx"))
    assert [(s.text, s.page) for s in read_document(tmp_path / "rendered.docx").sections if s.text] == [
        ("First page text.", 1), ("Second page text.", 2), ("Third page text.", 3)]

    styled = OpenDocumentText()
    new_page = Style(name="NewPage", family="paragraph")
    new_page.addElement(ParagraphProperties(breakbefore="page"))
    styled.automaticstyles.addElement(new_page)
    styled.text.addElement(H(outlinelevel=1, text="Bicycle Repair"))
    styled.text.addElement(P(text="Find the hole by submerging the inner tube in water."))
    styled.text.addElement(P(stylename=new_page, text="Adjust the brakes so the pads touch the rim squarely."))
    styled.save(str(tmp_path / "styled.odt"))
    assert [(s.text[:6], s.page) for s in read_document(tmp_path / "styled.odt").sections if s.text] == [
        ("Find t", 1), ("Adjust", 2)]

    soft = OpenDocumentText()
    soft.text.addElement(P(text="Page one words."))
    soft.text.addElement(SoftPageBreak())
    soft.text.addElement(P(text="Page two words."))
    soft.save(str(tmp_path / "soft.odt"))
    assert [(s.text, s.page) for s in read_document(tmp_path / "soft.odt").sections if s.text] == [
        ("Page one words.", 1), ("Page two words.", 2)]
