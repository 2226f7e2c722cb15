"""One reader per format, chosen by the file's suffix. Every reader returns a Document or raises
UnreadableDocumentError with the reason (encrypted, damaged, empty, needs OCR); anything else a library throws
on a broken file is turned into "damaged" here, so one bad file never stops a collection."""

from __future__ import annotations

import logging
from pathlib import Path
from types import ModuleType

from desktop_ai.engine.documents.readers import docx, epub, html, markdown, odt, pdf, restructuredtext, text
from desktop_ai.engine.documents.readers.document import (
    REASON_DAMAGED,
    REASON_UNSUPPORTED,
    Document,
    Section,
    UnreadableDocumentError,
)

logger = logging.getLogger(__name__)

READERS: tuple[ModuleType, ...] = (text, markdown, restructuredtext, html, pdf, docx, odt, epub)
BY_SUFFIX: dict[str, ModuleType] = {suffix: module for module in READERS for suffix in module.SUFFIXES}

__all__ = ["BY_SUFFIX", "Document", "Section", "UnreadableDocumentError", "is_supported", "read_document"]


def is_supported(path: Path) -> bool:
    return path.suffix.lower() in BY_SUFFIX


def read_document(path: Path) -> Document:
    reader = BY_SUFFIX.get(path.suffix.lower())
    if reader is None:
        raise UnreadableDocumentError(REASON_UNSUPPORTED, f"{path.name}: {path.suffix or 'no suffix'} files are not read.")
    try:
        return reader.read(path)
    except (UnreadableDocumentError, MemoryError):
        raise
    except Exception as error:
        logger.info("Reading %s failed", path, exc_info=True)
        raise UnreadableDocumentError(REASON_DAMAGED, f"{path.name} could not be read: {error}") from error
