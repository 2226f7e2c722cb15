"""What every reader returns: a document as titled sections, each with its heading and page (for citations)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from desktop_ai.engine.errors import EngineError

# Why a file could not be indexed; the index keeps these as they are and the window lists them.
REASON_ENCRYPTED = "encrypted"
REASON_DAMAGED = "damaged"
REASON_EMPTY = "empty"
REASON_NEEDS_OCR = "needs OCR"
REASON_UNSUPPORTED = "unsupported"


class UnreadableDocumentError(EngineError):
    """A file that cannot be read into text; `kind` is one of the REASON_* values, the message says more."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass
class Section:
    """A run of text under one heading on one page (page is None for formats without pages)."""

    text: str
    heading: str = ""
    page: int | None = None


@dataclass
class Document:
    path: Path
    title: str
    sections: list[Section] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)

    @property
    def words(self) -> int:
        return sum(len(s.text.split()) for s in self.sections)

    def require_text(self) -> Document:
        """An empty document is refused by name, so it is listed with its reason instead of indexed as nothing."""
        self.sections = [s for s in self.sections if s.text.strip()]
        if not self.sections:
            raise UnreadableDocumentError(REASON_EMPTY, f"{self.path.name} has no text.")
        return self


def title_from_path(path: Path) -> str:
    return path.stem.replace("_", " ").strip() or path.name


def clean_text(text: str) -> str:
    """Collapse runs of spaces inside lines and blank runs between paragraphs; keep paragraph breaks."""
    lines = [" ".join(line.split()) for line in text.splitlines()]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip()
