"""The sources under an answer from documents: one line per numbered passage (file and page), a button that
opens the file (at its page where the viewer takes a #page fragment, as PDF viewers do) and one that shows the
passage the model was given."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget


def source_url(source: dict[str, Any]) -> QUrl:
    url = QUrl.fromLocalFile(source["path"])
    if source.get("page") and str(source["path"]).lower().endswith(".pdf"):
        url.setFragment(f"page={source['page']}")
    return url


def source_label(source: dict[str, Any]) -> str:
    where = Path(source["path"]).name + (f", page {source['page']}" if source.get("page") else "")
    heading = f" ({source['heading']})" if source.get("heading") else ""
    cited = "" if source.get("cited") else " · not cited"
    return f"[{source['number']}] {where}{heading}{cited}"


class SourcesView(QFrame):
    """opened(url) after a file was handed to the desktop; the passage shows in place."""

    opened = Signal(QUrl)

    def __init__(self, sources: list[dict[str, Any]], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Sources")
        self.sources = sources
        self.open_buttons: list[QPushButton] = []
        self.passage_buttons: list[QPushButton] = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 0)
        title = QLabel("<b>Sources</b>")
        layout.addWidget(title)
        self.passage = QLabel()
        self.passage.setAccessibleName("Source passage")
        self.passage.setWordWrap(True)
        self.passage.setVisible(False)
        self.passage.setStyleSheet("background: #f4f4f4; padding: 4px;")
        for source in sources:
            row = QHBoxLayout()
            label = QLabel(source_label(source))
            label.setAccessibleName(f"Source {source['number']}")
            open_button = QPushButton("Open")
            open_button.setAccessibleName(f"Open source {source['number']}")
            open_button.setToolTip(source["path"])
            open_button.clicked.connect(lambda _=False, s=source: self.open_source(s))
            show_button = QPushButton("Passage")
            show_button.setAccessibleName(f"Show the passage of source {source['number']}")
            show_button.clicked.connect(lambda _=False, s=source: self.show_passage(s))
            row.addWidget(label, 1)
            row.addWidget(open_button)
            row.addWidget(show_button)
            layout.addLayout(row)
            self.open_buttons.append(open_button)
            self.passage_buttons.append(show_button)
        layout.addWidget(self.passage)

    def open_source(self, source: dict[str, Any]) -> None:
        url = source_url(source)
        if not Path(source["path"]).exists():
            self.passage.setText(f"{source['path']} is no longer there. The passage was:\n\n{source['passage']}")
            self.passage.setVisible(True)
            return
        QDesktopServices.openUrl(url)
        self.opened.emit(url)

    def show_passage(self, source: dict[str, Any]) -> None:
        self.passage.setText(f"{source_label(source)}\n\n{source['passage']}")
        self.passage.setVisible(True)
