"""HTML: the visible text of the page with lxml, split at <h1>..<h6> so each section carries its heading;
scripts, styles and navigation are left out. EPUB chapters (XHTML) are read with the same code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from desktop_ai.engine.documents.readers.document import Document, Section, clean_text, title_from_path

SUFFIXES = (".html", ".htm", ".xhtml")
HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
SKIPPED = {"script", "style", "noscript", "template", "head", "nav", "svg", "math"}
BLOCKS = {"p", "div", "li", "ul", "ol", "br", "tr", "table", "section", "article", "blockquote", "pre", "dd", "dt",
          "header", "footer", "aside", "main", "figure", "figcaption", "hr"} | HEADINGS


def _local(tag: Any) -> str:
    return tag.rsplit("}", 1)[-1].lower() if isinstance(tag, str) else ""


def html_sections(markup: bytes, page: int | None = None) -> tuple[str, list[Section]]:
    """(the <title> or first <h1>, the sections in reading order)."""
    import lxml.html

    if not markup.strip():
        return "", []
    root = lxml.html.fromstring(markup)
    title_node = root.find(".//title")
    title = clean_text(title_node.text_content()) if title_node is not None else ""
    sections: list[Section] = []
    buffer: list[str] = []
    state = {"heading": ""}

    def flush() -> None:
        sections.append(Section(clean_text("".join(buffer)), state["heading"], page))
        buffer.clear()

    def walk(element: Any) -> None:
        tag = _local(element.tag)
        if tag in HEADINGS:
            flush()
            state["heading"] = clean_text(element.text_content())
            if tag == "h1":
                state.setdefault("first_h1", state["heading"])
        elif tag and tag not in SKIPPED:
            buffer.append(element.text or "")
            for child in element:
                walk(child)
            if tag in BLOCKS:
                buffer.append("\n")
        if element.tail:
            buffer.append(element.tail)

    walk(root)
    flush()
    return title or state.get("first_h1", ""), [s for s in sections if s.text]


def read(path: Path) -> Document:
    title, sections = html_sections(path.read_bytes())
    return Document(path, title or title_from_path(path), sections).require_text()
