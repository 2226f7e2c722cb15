"""ODT (OpenDocument text) with zipfile and lxml: text:h elements start sections, text:p paragraphs (also in lists
and tables) are their text; the title comes from meta.xml. An encrypted ODT says so in its manifest."""

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
    except UnreadableDocumentError:
        raise
    except (zipfile.BadZipFile, KeyError, etree.XMLSyntaxError, OSError) as error:
        raise UnreadableDocumentError(REASON_DAMAGED, f"{path.name} is not a readable ODT: {error}") from error
    sections: list[Section] = []
    heading, lines = "", []
    first_heading = ""
    for element in content.iter(f"{{{TEXT_NS}}}h", f"{{{TEXT_NS}}}p"):
        if element.tag == f"{{{TEXT_NS}}}h":
            sections.append(Section(clean_text("\n".join(lines)), heading))
            lines = []
            heading = clean_text(_text(element))
            first_heading = first_heading or heading
        else:
            lines.append(_text(element))
    sections.append(Section(clean_text("\n".join(lines)), heading))
    title = ""
    if meta is not None:
        node = meta.find(f".//{{{DC_NS}}}title")
        title = (node.text or "").strip() if node is not None else ""
    return Document(path, title or first_heading or title_from_path(path), sections).require_text()
