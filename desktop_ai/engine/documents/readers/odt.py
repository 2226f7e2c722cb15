"""ODT (OpenDocument text) with zipfile and lxml: text:h elements start sections, text:p paragraphs (also in lists
and tables) are their text; the title comes from meta.xml. An encrypted ODT says so in its manifest.

Pages, as for DOCX: where a word processor laid them out it left text:soft-page-break marks (LibreOffice does on
every save); a file only a program wrote has only its paragraph styles' page breaks (fo:break-before/after)."""

from __future__ import annotations

import zipfile
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

SUFFIXES = (".odt",)
TEXT_NS = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"
MANIFEST_NS = "urn:oasis:names:tc:opendocument:xmlns:manifest:1.0"
DC_NS = "http://purl.org/dc/elements/1.1/"
STYLE_NS = "urn:oasis:names:tc:opendocument:xmlns:style:1.0"
FO_NS = "urn:oasis:names:tc:opendocument:xmlns:xsl-fo-compatible:1.0"


def _breaking_styles(*roots) -> tuple[set[str], set[str]]:  # type: ignore[no-untyped-def]
    """Names of paragraph styles that start a page (break-before) and that end one (break-after)."""
    before: set[str] = set()
    after: set[str] = set()
    for root in roots:
        if root is None:
            continue
        for style in root.iter(f"{{{STYLE_NS}}}style"):
            properties = style.find(f"{{{STYLE_NS}}}paragraph-properties")
            if properties is None:
                continue
            name = style.get(f"{{{STYLE_NS}}}name", "")
            if properties.get(f"{{{FO_NS}}}break-before") == "page":
                before.add(name)
            if properties.get(f"{{{FO_NS}}}break-after") == "page":
                after.add(name)
    return before, after


def _text(element) -> str:  # type: ignore[no-untyped-def]
    """An element's text with <text:s/>, <text:tab/> and <text:line-break/> as the spaces and breaks they mean."""
    parts: list[str] = [element.text or ""]
    for child in element:
        local = child.tag.rsplit("}", 1)[-1] if isinstance(child.tag, str) else ""
        if local == "s":
            parts.append(" " * int(child.get(f"{{{TEXT_NS}}}c", "1")))
        elif local == "tab":
            parts.append("\t")
        elif local == "line-break":
            parts.append("\n")
        elif local not in ("note", "annotation"):
            parts.append(_text(child))
        parts.append(child.tail or "")
    return "".join(parts)


def read(path: Path) -> Document:
    from lxml import etree

    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if "META-INF/manifest.xml" in names:
                manifest = etree.fromstring(archive.read("META-INF/manifest.xml"))
                if manifest.find(f".//{{{MANIFEST_NS}}}encryption-data") is not None:
                    raise UnreadableDocumentError(REASON_ENCRYPTED, f"{path.name} is protected by a password.")
            content = etree.fromstring(archive.read("content.xml"))
            meta = etree.fromstring(archive.read("meta.xml")) if "meta.xml" in names else None
            styles = etree.fromstring(archive.read("styles.xml")) if "styles.xml" in names else None
    except UnreadableDocumentError:
        raise
    except (zipfile.BadZipFile, KeyError, etree.XMLSyntaxError, OSError) as error:
        raise UnreadableDocumentError(REASON_DAMAGED, f"{path.name} is not a readable ODT: {error}") from error
    soft = next(content.iter(f"{{{TEXT_NS}}}soft-page-break"), None) is not None
    starts_page, ends_page = (set(), set()) if soft else _breaking_styles(content, styles)
    style_key = f"{{{TEXT_NS}}}style-name"
    sections: list[Section] = []
    heading, lines = "", []
    first_heading = ""
    page = 1

    def flush() -> None:
        nonlocal lines
        sections.append(Section(clean_text("\n".join(lines)), heading, page))
        lines = []

    for element in content.iter(f"{{{TEXT_NS}}}h", f"{{{TEXT_NS}}}p", f"{{{TEXT_NS}}}soft-page-break"):
        if element.tag == f"{{{TEXT_NS}}}soft-page-break" or element.get(style_key) in starts_page:
            if any(line.strip() for line in lines):
                flush()
            if any(section.text for section in sections):  # a break before any text starts no page
                page += 1
            if element.tag == f"{{{TEXT_NS}}}soft-page-break":
                continue
        if element.tag == f"{{{TEXT_NS}}}h":
            flush()
            heading = clean_text(_text(element))
            first_heading = first_heading or heading
        else:
            lines.append(_text(element))
        if element.get(style_key) in ends_page:
            if any(line.strip() for line in lines):
                flush()
            page += 1
    flush()
    title = ""
    if meta is not None:
        node = meta.find(f".//{{{DC_NS}}}title")
        title = (node.text or "").strip() if node is not None else ""
    return Document(path, title or first_heading or title_from_path(path), sections).require_text()
