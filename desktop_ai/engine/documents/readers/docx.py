"""DOCX with python-docx (MIT): paragraphs and tables in body order; paragraphs styled Heading N or Title start a
section. A password-protected DOCX is an OLE container, not a zip: it is listed as encrypted.

A DOCX has no pages of its own, only where Word last laid them out: Word marks each page start it rendered
(w:lastRenderedPageBreak); a file no word processor laid out (one a program wrote) has only its hard page breaks
(w:br w:type="page"). Those marks number the sections' pages, as a PDF's do, so a source says "page 3"."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from desktop_ai.engine.documents.readers.document import (
    REASON_DAMAGED,
    REASON_ENCRYPTED,
    Document,
    Section,
    UnreadableDocumentError,
    clean_text,
    title_from_path,
)

SUFFIXES = (".docx",)
W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def read(path: Path) -> Document:
    import docx
    from docx.table import Table

    with path.open("rb") as handle:
        if handle.read(8) == OLE_MAGIC:
            raise UnreadableDocumentError(REASON_ENCRYPTED, f"{path.name} is protected by a password.")
    try:
        document = docx.Document(str(path))
    except Exception as error:  # python-docx raises PackageNotFoundError, KeyError, BadZipFile... on broken files
        raise UnreadableDocumentError(REASON_DAMAGED, f"{path.name} is not a readable DOCX: {error}") from error
    rendered = next(document.element.body.iter(f"{W}lastRenderedPageBreak"), None) is not None
    sections: list[Section] = []
    heading, title, lines = "", "", []
    page = 1

    def flush() -> None:
        nonlocal lines
        sections.append(Section(clean_text("\n".join(lines)), heading, page))
        lines = []

    for block in document.iter_inner_content():
        before, after = _page_breaks(block._element, rendered)
        if before:
            if any(line.strip() for line in lines):
                flush()
            if any(section.text for section in sections):  # a break before any text starts no page
                page += before
        if isinstance(block, Table):
            rows = [" | ".join(cell.text.strip() for cell in row.cells) for row in block.rows]
            lines.append("\n".join(rows))
        else:
            style = (block.style.name if block.style is not None else "") or ""
            text = block.text.strip()
            if text and (style.startswith("Heading") or style == "Title"):
                flush()
                heading = text
                if not title and style in ("Title", "Heading 1"):
                    title = text
            else:
                lines.append(block.text)
        if after:
            if any(line.strip() for line in lines):
                flush()
            page += after
    flush()
    title = (document.core_properties.title or "").strip() or title or title_from_path(path)
    return Document(path, title, sections).require_text()


def _page_breaks(element: Any, rendered: bool) -> tuple[int, int]:
    """(page breaks before the block's first text, the others): a block goes on the page where its text starts."""
    before = after = 0
    seen_text = False
    for node in element.iter(f"{W}t", f"{W}br", f"{W}lastRenderedPageBreak"):
        if node.tag == f"{W}t":
            seen_text = seen_text or bool((node.text or "").strip())
            continue
        is_break = node.tag == f"{W}lastRenderedPageBreak" if rendered else node.get(f"{W}type") == "page"
        if is_break:
            if seen_text:
                after += 1
            else:
                before += 1
    return before, after
