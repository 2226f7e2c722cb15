"""Plain text: one section, the file name as title. Bytes that are not UTF-8 are read as Latin-1 rather than lost."""

from __future__ import annotations

from pathlib import Path

from desktop_ai.engine.documents.readers.document import Document, Section, clean_text, title_from_path

SUFFIXES = (".txt", ".text", ".log")


def decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "utf-16") if data[:2] in (b"\xff\xfe", b"\xfe\xff") else ("utf-8-sig",):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def read(path: Path) -> Document:
    text = clean_text(decode(path.read_bytes()))
    return Document(path, title_from_path(path), [Section(text)]).require_text()
