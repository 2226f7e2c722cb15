"""reStructuredText: parsed by docutils into its section tree; each section's own paragraphs go under its title.
Directives docutils does not know (Sphinx's) are reported quietly and their text is kept where docutils can."""

from __future__ import annotations

from pathlib import Path

from desktop_ai.engine.documents.readers.document import (
    REASON_DAMAGED,
    Document,
    Section,
    UnreadableDocumentError,
    clean_text,
    title_from_path,
)
from desktop_ai.engine.documents.readers.text import decode

SUFFIXES = (".rst", ".rest")


def read(path: Path) -> Document:
    from docutils import nodes
    from docutils.core import publish_doctree

    source = decode(path.read_bytes())
    try:
        tree = publish_doctree(source, settings_overrides={"report_level": 5, "halt_level": 5,
                                                           "file_insertion_enabled": False, "raw_enabled": False})
    except Exception as error:  # docutils raises its own SystemMessage and others on broken markup
        raise UnreadableDocumentError(REASON_DAMAGED, f"{path.name} is not valid reStructuredText: {error}") from error
    title = ""
    for node in tree.children:
        if isinstance(node, nodes.title):
            title = node.astext()
    sections: list[Section] = []

    def own_text(node: nodes.Element) -> str:
        parts = [child.astext() for child in node.children
                 if not isinstance(child, (nodes.section, nodes.title, nodes.system_message))]
        return clean_text("\n\n".join(parts))

    sections.append(Section(own_text(tree), title))
    for section in tree.findall(nodes.section):
        heading = section.next_node(nodes.title)
        sections.append(Section(own_text(section), heading.astext() if heading is not None else ""))
    return Document(path, title or title_from_path(path), sections).require_text()
