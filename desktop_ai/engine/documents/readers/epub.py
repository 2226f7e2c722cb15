"""EPUB with zipfile and lxml (ebooklib is AGPL): the OPF package file gives the title and the reading order
(spine); each chapter is XHTML, read like HTML. Chapters stand in for pages: section.page is the chapter's place
in the spine. A book with DRM (META-INF/encryption.xml naming content files) is listed as encrypted."""

from __future__ import annotations

import posixpath
import zipfile
from pathlib import Path

from desktop_ai.engine.documents.readers.document import (
    REASON_DAMAGED,
    REASON_ENCRYPTED,
    Document,
    Section,
    UnreadableDocumentError,
    title_from_path,
)
from desktop_ai.engine.documents.readers.html import html_sections

SUFFIXES = (".epub",)
CONTAINER_NS = "urn:oasis:names:tc:opendocument:xmlns:container"
OPF_NS = "http://www.idpf.org/2007/opf"
DC_NS = "http://purl.org/dc/elements/1.1/"
FONT_OBFUSCATION = ("http://www.idpf.org/2008/embedding", "http://ns.adobe.com/pdf/enc#RC")


def read(path: Path) -> Document:
    from lxml import etree

    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if "META-INF/encryption.xml" in names:
                encryption = archive.read("META-INF/encryption.xml").decode("utf-8", "replace")
                if not any(method in encryption for method in FONT_OBFUSCATION):  # fonts only are not DRM
                    raise UnreadableDocumentError(REASON_ENCRYPTED, f"{path.name} is protected by DRM.")
            container = etree.fromstring(archive.read("META-INF/container.xml"))
            rootfile = container.find(f".//{{{CONTAINER_NS}}}rootfile").get("full-path")
            package = etree.fromstring(archive.read(rootfile))
            base = posixpath.dirname(rootfile)
            items = {item.get("id"): item.get("href") for item in package.iter(f"{{{OPF_NS}}}item")}
            spine = [items[ref.get("idref")] for ref in package.iter(f"{{{OPF_NS}}}itemref") if ref.get("idref") in items]
            title_node = package.find(f".//{{{DC_NS}}}title")
            sections: list[Section] = []
            for number, href in enumerate(spine, 1):
                name = posixpath.normpath(posixpath.join(base, href)) if base else href
                _, chapter = html_sections(archive.read(name), page=number)
                sections.extend(chapter)
    except UnreadableDocumentError:
        raise
    except (zipfile.BadZipFile, KeyError, AttributeError, etree.XMLSyntaxError, OSError) as error:
        raise UnreadableDocumentError(REASON_DAMAGED, f"{path.name} is not a readable EPUB: {error}") from error
    title = (title_node.text or "").strip() if title_node is not None else ""
    return Document(path, title or title_from_path(path), sections).require_text()
