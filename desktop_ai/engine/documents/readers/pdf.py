"""PDF with pypdf (BSD): one section per page, numbered as the reader shows them (from 1), headed by the
outline (bookmark) entry the page falls under. A PDF without a text layer (a scan) is read by OCR when
RapidOCR is installed (a dependency), else listed as needing OCR; encrypted and damaged files are listed with
the reason."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from desktop_ai.engine.documents.readers.document import (
    REASON_DAMAGED,
    REASON_EMPTY,
    REASON_ENCRYPTED,
    REASON_NEEDS_OCR,
    Document,
    Section,
    UnreadableDocumentError,
    clean_text,
    title_from_path,
)

logger = logging.getLogger(__name__)

SUFFIXES = (".pdf",)


def _outline_headings(reader: Any) -> dict[int, str]:
    """Page index -> the outline title that starts on it (pages in between keep the last one)."""
    starts: dict[int, str] = {}

    def walk(items: Any) -> None:
        for item in items:
            if isinstance(item, list):
                walk(item)
                continue
            try:
                starts.setdefault(reader.get_destination_page_number(item), str(item.title).strip())
            except Exception:  # an outline entry pointing nowhere is not worth failing the file for
                continue

    try:
        walk(reader.outline)
    except Exception:
        return {}
    return starts


def _has_images(page: Any) -> bool:
    try:
        resources = page.get("/Resources") or {}
        xobjects = resources.get("/XObject") or {}
        return any(xobjects[name].get_object().get("/Subtype") == "/Image" for name in xobjects)
    except Exception:
        return False


def read(path: Path) -> Document:
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError, PdfReadError

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # its repair warnings are not the user's business

    try:
        reader = PdfReader(path)
        if reader.is_encrypted and not reader.decrypt(""):  # an owner password alone still lets anyone read it
            raise UnreadableDocumentError(REASON_ENCRYPTED, f"{path.name} is protected by a password.")
        pages = list(reader.pages)
    except UnreadableDocumentError:
        raise
    except (FileNotDecryptedError, NotImplementedError) as error:  # an encryption pypdf cannot open without a key
        raise UnreadableDocumentError(REASON_ENCRYPTED, f"{path.name} is encrypted: {error}") from error
    except (PdfReadError, OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise UnreadableDocumentError(REASON_DAMAGED, f"{path.name} is not a readable PDF: {error}") from error
    if not pages:
        raise UnreadableDocumentError(REASON_EMPTY, f"{path.name} has no pages.")
    headings = _outline_headings(reader)
    sections: list[Section] = []
    heading = ""
    for index, page in enumerate(pages):
        heading = headings.get(index, heading)
        try:
            text = clean_text(page.extract_text() or "")
        except Exception as error:  # one broken page content stream: keep the others
            logger.info("PDF %s: page %d could not be read: %s", path, index + 1, error)
            text = ""
        sections.append(Section(text, heading, index + 1))
    title = ""
    try:
        title = str((reader.metadata or {}).get("/Title") or "").strip()
    except Exception:
        pass
    document = Document(path, title or title_from_path(path), sections)
    if not any(s.text for s in sections):
        if any(_has_images(page) for page in pages):
            from desktop_ai.engine.documents.readers import pdf_ocr

            if not pdf_ocr.available():
                raise UnreadableDocumentError(
                    REASON_NEEDS_OCR, f"{path.name} has no text layer (a scan): it needs OCR, which is not installed."
                )
            document.sections = pdf_ocr.read_pages(path, pages)
            if not any(s.text for s in document.sections):
                raise UnreadableDocumentError(
                    REASON_EMPTY, f"{path.name} has no text layer (a scan), and OCR found no text in its pictures."
                )
        else:
            raise UnreadableDocumentError(REASON_EMPTY, f"{path.name} has no text.")
    return document.require_text()
