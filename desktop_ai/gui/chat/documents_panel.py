"""The documents side of the Chat page: collections (add a folder, Update, Remove), their progress while they
index and the files that failed with the reason, a Search box that finds passages without any language model,
and which collections the conversation answers from (the ticked ones).

Indexing and searching run as jobs in the engine's jobs lane (engine/documents/jobs.py); the page only reads the
index file (SQLite) to list collections and failed files. The user can chat while a collection indexes.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from PySide6.QtCore import QFileSystemWatcher, Qt, QTimer, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop_ai.engine.documents.index import DocumentIndex, default_index_path
from desktop_ai.engine.models.store import ModelStore
from desktop_ai.gui.job_page import JobPage, labelled_button
from desktop_ai.gui.worker import EngineThread

logger = logging.getLogger(__name__)
PATH_ROLE = Qt.ItemDataRole.UserRole
WATCH_DELAY_MS = 1500  # a burst of changes (a copy of many files, an editor's save) becomes one Update
MAX_WATCHED = 4000  # folders and files; beyond that, changes inside are caught by Update only


def describe_progress(state: dict[str, Any]) -> str:
    left = state.get("seconds_left")
    text = (f"{state['collection']}: {state['files_done']} of {state['files_total']} files, {state['chunks']} chunks, "
            f"{state['words']:,} words, {state['chunks_per_second']:.1f} chunks/s")
    if left is not None and state["files_done"] < state["files_total"]:
        text += f", about {left:.0f} s left"
    return text


class DocumentsPanel(JobPage):
    def __init__(self, engine: EngineThread, store: ModelStore, device_preference: Any,
                 index_path: Path | None = None, parent: QWidget | None = None) -> None:
        super().__init__(engine, store, device_preference, parent)
        self.index_path = Path(index_path) if index_path is not None else default_index_path()
        self.job_kind = ""
        self.last_progress: dict[str, Any] | None = None
        self.collections = QListWidget()
        self.collections.setAccessibleName("Document collections (ticked ones answer in this chat)")
        self.add_button = labelled_button("Add &folder…", "Index a folder of documents as a new collection")
        self.update_button = labelled_button("&Update", "Read new and changed files again, drop removed ones")
        self.remove_button = labelled_button("Remove", "Forget the selected collection (the files stay)")
        self.stop_button = labelled_button("Stop", "Stop indexing after the current file (what is done is kept)")
        self.progress_label = QLabel()
        self.progress_label.setAccessibleName("Indexing progress")
        self.progress_label.setWordWrap(True)
        self.failed_list = QListWidget()
        self.failed_list.setAccessibleName("Files that could not be indexed")
        self.search_box = QLineEdit()
        self.search_box.setAccessibleName("Search the documents")
        self.search_box.setPlaceholderText("Search the ticked collections…")
        self.results = QListWidget()
        self.results.setAccessibleName("Search results (Enter or double-click opens the file)")
        self.passage = QLabel()
        self.passage.setAccessibleName("Passage")
        self.passage.setWordWrap(True)

        buttons = QHBoxLayout()
        for button in (self.add_button, self.update_button, self.remove_button, self.stop_button):
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QLabel("<b>Documents</b>"))
        layout.addWidget(self.collections, 1)
        layout.addLayout(buttons)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.progress_label)
        layout.addWidget(QLabel("Failed files"))
        layout.addWidget(self.failed_list)
        layout.addWidget(self.search_box)
        layout.addWidget(self.results, 1)
        layout.addWidget(self.passage)
        layout.addWidget(self.notice)

        self.add_button.clicked.connect(self.choose_folder)
        self.update_button.clicked.connect(self.update_selected)
        self.remove_button.clicked.connect(self.remove_selected)
        self.stop_button.clicked.connect(self.stop)
        self.collections.currentItemChanged.connect(lambda *_: self.show_failed())
        self.search_box.returnPressed.connect(self.search)
        self.results.itemActivated.connect(self.open_result)
        self.results.currentItemChanged.connect(lambda item, _: self.show_result(item))
        # Folder watching while the app runs: a change under a collection's folders queues an Update of it,
        # which the engine lane runs (reading only what changed).
        self.watcher = QFileSystemWatcher(self)
        self.watch_timer = QTimer(self)
        self.watch_timer.setSingleShot(True)
        self.watch_timer.setInterval(WATCH_DELAY_MS)
        self.pending_updates: list[str] = []
        self.watcher.directoryChanged.connect(self._on_changed)
        self.watcher.fileChanged.connect(self._on_changed)
        self.watch_timer.timeout.connect(self._run_pending_update)
        self.refresh()
        self.set_running(False)

    # --- what the index holds (read only: SQLite, no model) ---------------------------------------------------
    def _read(self) -> list[dict[str, Any]]:
        if not self.index_path.exists():
            return []
        try:
            with DocumentIndex(self.index_path) as index:
                return [{**c.to_dict(), "failed_files": [f.to_dict() for f in index.failed_files(c)]}
                        for c in index.collections()]
        except Exception as error:  # a damaged index file must not take the Chat page with it
            logger.warning("Reading the documents index failed: %s", error)
            self.show_notice(f"The documents index cannot be read: {error}", error=True)
            return []

    def refresh(self) -> None:
        ticked = set(self.checked_collections())
        current = self.collections.currentItem().data(PATH_ROLE) if self.collections.currentItem() else None
        self.collections.clear()
        self.info = {c["name"]: c for c in self._read()}
        for name, collection in self.info.items():
            item = QListWidgetItem(f"{name} ({collection['indexed']} files, {collection['chunks']} chunks"
                                   + (f", {collection['failed']} failed)" if collection["failed"] else ")"))
            item.setData(PATH_ROLE, name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if name in ticked else Qt.CheckState.Unchecked)
            self.collections.addItem(item)
            if name == current:
                self.collections.setCurrentItem(item)
        if self.collections.currentItem() is None and self.collections.count():
            self.collections.setCurrentRow(0)
        self.show_failed()
        self._watch()

    # --- folder watching ---------------------------------------------------------------------------------------
    def _watch(self) -> None:
        """Watch every collection's folders (for files added, removed or renamed) and its files (for edits)."""
        wanted: list[str] = []
        for collection in self.info.values():
            for source in collection["sources"]:
                if os.path.isdir(source):
                    for folder, dirs, files in os.walk(source):
                        dirs[:] = [d for d in dirs if not d.startswith(".")]
                        wanted.append(folder)
                        wanted.extend(os.path.join(folder, f) for f in files if not f.startswith("."))
                        if len(wanted) > MAX_WATCHED:
                            break
                elif os.path.exists(source):
                    wanted.append(source)
        wanted = wanted[:MAX_WATCHED]
        current = set(self.watcher.files()) | set(self.watcher.directories())
        gone = [p for p in current if p not in set(wanted)]
        if gone:
            self.watcher.removePaths(gone)
        new = [p for p in wanted if p not in current]
        if new:
            self.watcher.addPaths(new)

    def _on_changed(self, path: str) -> None:
        for name, collection in self.info.items():
            if any(path == s or path.startswith(s.rstrip(os.sep) + os.sep) for s in collection["sources"]):
                if name not in self.pending_updates:
                    self.pending_updates.append(name)
        if self.pending_updates:
            self.watch_timer.start()

    def _run_pending_update(self) -> None:
        if not self.pending_updates:
            return
        if self.running:  # after the running job; the chat never waits on this
            self.watch_timer.start()
            return
        name = self.pending_updates.pop(0)
        if name in self.info:
            self.status_message.emit(f"Files changed in {name}: updating it.")
            self._submit("updating documents", "docs_update", {"name": name})

    def checked_collections(self) -> list[str]:
        return [self.collections.item(i).data(PATH_ROLE) for i in range(self.collections.count())
                if self.collections.item(i).checkState() == Qt.CheckState.Checked]

    def set_checked(self, names: list[str]) -> None:
        for i in range(self.collections.count()):
            item = self.collections.item(i)
            item.setCheckState(Qt.CheckState.Checked if item.data(PATH_ROLE) in names else Qt.CheckState.Unchecked)

    def selected(self) -> str | None:
        item = self.collections.currentItem()
        return item.data(PATH_ROLE) if item is not None else None

    def show_failed(self) -> None:
        self.failed_list.clear()
        collection = self.info.get(self.selected() or "")
        for failed in (collection or {}).get("failed_files", []):
            item = QListWidgetItem(f"{Path(failed['path']).name}: {failed['reason']}")
            item.setToolTip(failed["path"])
            self.failed_list.addItem(item)

    # --- jobs in the engine lane -------------------------------------------------------------------------------
    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a folder of documents")
        if folder:
            self.add_folder(Path(folder))

    def add_folder(self, folder: Path, name: str | None = None) -> None:
        """A collection named after the folder (or `name`), indexed in the engine lane."""
        if self.running:
            self.show_notice("A collection is still indexing: wait for it or Stop it first.", error=True)
            return
        name = name or folder.name or str(folder)
        self._submit("indexing documents", "docs_update", {"name": name, "paths": [str(folder)]})

    def update_selected(self) -> None:
        name = self.selected()
        if name is None:
            self.show_notice("Add a folder first: there is no collection to update.", error=True)
        elif self.running:
            self.show_notice("A collection is still indexing: wait for it or Stop it first.", error=True)
        else:
            self._submit("updating documents", "docs_update", {"name": name})

    def remove_selected(self) -> None:
        name = self.selected()
        if name is not None and not self.running:
            self._submit("removing a collection", "docs_remove", {"name": name})

    def search(self) -> None:
        query = self.search_box.text().strip()
        collections = self.checked_collections() or ([self.selected()] if self.selected() else [])
        if not query:
            self.show_notice("Type some words to search for.", error=True)
        elif not collections:
            self.show_notice("Add a folder of documents first: there is nothing to search.", error=True)
        elif self.running:
            self.show_notice("Wait for the indexing to finish (or Stop it) to search.", error=True)
        else:
            self._submit("searching documents", "docs_search", {"collections": collections, "query": query, "top_k": 10})

    def _submit(self, name: str, kind: str, params: dict[str, Any]) -> None:
        self.job_kind = kind
        self.submit(name, kind, {**params, "index": str(self.index_path)})

    def set_running(self, running: bool) -> None:
        super().set_running(running)
        self.stop_button.setEnabled(running)
        for button in (self.add_button, self.update_button, self.remove_button):
            button.setEnabled(not running)

    def _on_partial(self, job_id: int, payload: Any) -> None:
        if self._mine(job_id) and isinstance(payload, dict) and "progress" in payload:
            self.last_progress = payload["progress"]
            self.progress_label.setText(describe_progress(payload["progress"]))

    def handle_result(self, result: Any) -> None:
        kind, self.job_kind = self.job_kind, ""
        if kind == "docs_search":
            self.show_results(result)
            return
        if kind == "docs_update":
            failed = len(result.get("failed") or [])
            text = (f"{result['collection']}: {result['added']} added, {result['changed']} changed, "
                    f"{result['removed']} removed, {failed} failed, {result['chunks_embedded']} chunks embedded.")
            if result.get("stopped"):
                text += " Stopped: Update carries on where it stopped."
            self.progress_label.setText(text)
            self.status_message.emit(text)
            self.refresh()
            if not self.checked_collections():
                self.set_checked([result["collection"]])
        else:
            self.refresh()
        if self.pending_updates:
            self.watch_timer.start()

    def show_results(self, result: dict[str, Any]) -> None:
        self.results.clear()
        for passage in result["passages"]:
            where = Path(passage["path"]).name + (f", page {passage['page']}" if passage["page"] else "")
            item = QListWidgetItem(f"{where}: {' '.join(passage['text'].split())[:120]}")
            item.setData(PATH_ROLE, passage)
            item.setToolTip(passage["path"])
            self.results.addItem(item)
        if not result["passages"]:
            self.show_notice(f"Nothing found for “{result['query']}”.")
        else:
            self.results.setCurrentRow(0)

    def show_result(self, item: QListWidgetItem | None) -> None:
        passage = item.data(PATH_ROLE) if item is not None else None
        self.passage.setText(passage["text"] if passage else "")

    def open_result(self, item: QListWidgetItem) -> None:
        from desktop_ai.gui.chat.sources_view import source_url

        passage = item.data(PATH_ROLE)
        QDesktopServices.openUrl(source_url(passage))
        self.last_opened: QUrl = source_url(passage)

    def _on_failed(self, job_id: int, message: str) -> None:
        if self._mine(job_id):
            self.job_kind = ""
            super()._on_failed(job_id, message)
            self.refresh()


__all__ = ["DocumentsPanel", "describe_progress"]
