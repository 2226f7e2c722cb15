"""Markdown: split at headings with markdown-it-py (the parser the Chat page renders with), so each section
carries its heading; the first level-1 heading is the title."""

from __future__ import annotations

import logging
from pathlib import Path

from desktop_ai.engine.documents.readers.document import Document, Section, clean_text, title_from_path
from desktop_ai.engine.documents.readers.text import decode

SUFFIXES = (".md", ".markdown", ".mdown")


def read(path: Path) -> Document:
    from markdown_it import MarkdownIt

    logging.getLogger("markdown_it").setLevel(logging.INFO)  # its DEBUG trace of every block rule floods --verbose
    source = decode(path.read_bytes())
    lines = source.splitlines()
    tokens = MarkdownIt("commonmark").parse(source)
    headings: list[tuple[int, int, str, int]] = []  # (first line, end line, text, level)
    for index, token in enumerate(tokens):
        if token.type == "heading_open" and token.map:
            inline = tokens[index + 1]
            headings.append((token.map[0], token.map[1], inline.content.strip(), int(token.tag[1])))
    title = next((h[2] for h in headings if h[3] == 1), "") or title_from_path(path)
    sections: list[Section] = []
    start, heading = 0, ""
    for first, end, text, _level in headings:
        sections.append(Section(clean_text("\n".join(lines[start:first])), heading))
        start, heading = end, text
    sections.append(Section(clean_text("\n".join(lines[start:])), heading))
    return Document(path, title, sections).require_text()
