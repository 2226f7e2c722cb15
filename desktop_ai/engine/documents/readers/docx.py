"""DOCX with python-docx (MIT): paragraphs and tables in body order; paragraphs styled Heading N or Title start a
section. A password-protected DOCX is an OLE container, not a zip: it is listed as encrypted."""

from __future__ import annotations

from pathlib import Path

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
    sections: list[Section] = []
    heading, title, lines = "", "", []
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            rows = [" | ".join(cell.text.strip() for cell in row.cells) for row in block.rows]
            lines.append("\n".join(rows))
            continue
        style = (block.style.name if block.style is not None else "") or ""
        text = block.text.strip()
        if text and (style.startswith("Heading") or style == "Title"):
            sections.append(Section(clean_text("\n".join(lines)), heading))
            lines = []
            heading = text
            if not title and style in ("Title", "Heading 1"):
                title = text
        else:
            lines.append(block.text)
    sections.append(Section(clean_text("\n".join(lines)), heading))
    title = (document.core_properties.title or "").strip() or title or title_from_path(path)
    return Document(path, title, sections).require_text()
