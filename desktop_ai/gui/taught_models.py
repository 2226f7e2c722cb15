"""The Models window's list of taught classifiers: labels, examples, accuracy and size; export, import, delete.

These are small files, never models to load: the window's background runner reads and copies them, so the GUI
thread never waits on the disk."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import (
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop_ai.engine.tasks.taught_classifiers import FILE_SUFFIX, KIND_HEAD, TaughtLibrary, describe_choice

Runner = Callable[[Callable[[], Any], Callable[[Any], None], Callable[[str], None]], None]
COLUMNS = ["Name", "Task", "Labels", "Examples", "Accuracy", "Size", "Classifier"]


class TaughtClassifiersBox(QGroupBox):
    def __init__(self, run: Runner, library: TaughtLibrary | None = None, parent: QWidget | None = None) -> None:
        super().__init__("Your taught classifiers", parent)
        self.setAccessibleName("Your taught classifiers")
        self.run = run
        self.library = library or TaughtLibrary()
        self.tree = QTreeWidget()
        self.tree.setAccessibleName("Taught classifiers")
        self.tree.setHeaderLabels(COLUMNS)
        self.tree.setRootIsDecorated(False)
        self.tree.header().setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.export_button = QPushButton("Export…")
        self.import_button = QPushButton("Import…")
        self.delete_button = QPushButton("Delete")
        for button, tip in ((self.export_button, "Write the selected classifier to one file"),
                            (self.import_button, "Add a classifier from an exported file"),
                            (self.delete_button, "Delete the selected classifier")):
            button.setToolTip(tip)
            button.setAccessibleName(button.text().rstrip("…"))
        self.status = QLabel()
        self.status.setAccessibleName("Taught classifiers status")
        self.status.setWordWrap(True)
        buttons = QHBoxLayout()
        for button in (self.export_button, self.import_button, self.delete_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.tree)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        self.export_button.clicked.connect(self._choose_export)
        self.import_button.clicked.connect(self._choose_import)
        self.delete_button.clicked.connect(self._ask_delete)
        self.refresh()

    def refresh(self) -> None:
        self.run(lambda: [c.describe() for c in self.library.list()], self._show, self._failed)

    def _show(self, described: list[dict[str, Any]]) -> None:
        self.tree.clear()
        for d in described:
            accuracy = "-" if d["accuracy"] is None else f"{100 * d['accuracy']:.0f} %"
            examples = ", ".join(f"{label} {count}" for label, count in d["examples"].items())
            size = f"{(d['size_bytes'] or 0) / 1024:.0f} KiB"
            task = "texts" if d["task"] == "classify" else "photos"
            item = QTreeWidgetItem([d["name"], task, ", ".join(d["labels"]), examples, accuracy, size,
                                    describe_choice(d.get("kind", KIND_HEAD), d.get("choices") or {})])
            self.tree.addTopLevelItem(item)
        self.status.setText("" if described else "None yet: teach labels in Text → Classify → My labels.")

    def _failed(self, message: str) -> None:
        self.status.setText(f"<span style='color:#b00020'>{message}</span>")

    def names(self) -> list[str]:
        return [self.tree.topLevelItem(i).text(0) for i in range(self.tree.topLevelItemCount())]

    def selected(self) -> str | None:
        item = self.tree.currentItem()
        return item.text(0) if item is not None else None

    def export(self, name: str, target: Path) -> None:
        self.run(lambda: self.library.export(name, target), lambda path: self.status.setText(f"Exported to {path}"), self._failed)

    def import_file(self, path: Path) -> None:
        def done(classifier: Any) -> None:
            self.status.setText(f"Imported {classifier.name!r}.")
            self.refresh()

        self.run(lambda: self.library.import_file(path), done, self._failed)

    def delete(self, name: str) -> None:
        def done(_: Any) -> None:
            self.status.setText(f"Deleted {name!r}.")
            self.refresh()

        self.run(lambda: self.library.delete(name), done, self._failed)

    def _choose_export(self) -> None:
        name = self.selected()
        if name is None:
            self._failed("Select a classifier to export.")
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export", f"{name}{FILE_SUFFIX}", f"Taught classifier (*{FILE_SUFFIX})")
        if path:
            self.export(name, Path(path))

    def _choose_import(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import", "", f"Taught classifier (*{FILE_SUFFIX} *.npz)")
        if path:
            self.import_file(Path(path))

    def _ask_delete(self) -> None:
        name = self.selected()
        if name is None:
            self._failed("Select a classifier to delete.")
            return
        answer = QMessageBox.question(self, "Delete", f"Delete the taught classifier {name!r}? Export it first to keep a copy.")
        if answer == QMessageBox.StandardButton.Yes:
            self.delete(name)
