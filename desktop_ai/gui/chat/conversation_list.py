"""The conversations on the side of the Chat page: search, New, Rename, Delete (with Undo), Export and Import.

It reads and writes only the ConversationStore (SQLite, no model), so it runs in the GUI thread. Delete is the
store's soft delete: the conversation is hidden at once and Undo brings it back; the window purges the deleted
ones when it closes.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QLabel, QLineEdit, QListWidget, QListWidgetItem, QPushButton, QToolButton, QVBoxLayout, QWidget

from desktop_ai.engine.conversations.store import Conversation, ConversationStore
from desktop_ai.engine.errors import EngineError
from desktop_ai.gui.job_page import save_text

ID_ROLE = Qt.ItemDataRole.UserRole
UNTITLED = "New conversation"
SEARCH_DELAY_MS = 200


def display_title(conversation: Conversation) -> str:
    return conversation.title.strip() or UNTITLED


def _button(text: str, tip: str) -> QPushButton:
    button = QPushButton(text)
    button.setAccessibleName(text.replace("&", "").rstrip("…"))
    button.setToolTip(tip)
    return button


class ConversationList(QWidget):
    selected = Signal(object)  # a conversation id, or None when nothing is selected
    message = Signal(str, bool)  # text for the page's message line, and whether it is an error

    def __init__(self, store: ConversationStore, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.busy_conversation: str | None = None  # the one an answer is being written into (it cannot be deleted)
        self.deleted_id: str | None = None  # what Undo brings back
        self.search = QLineEdit()
        self.search.setAccessibleName("Search conversations")
        self.search.setPlaceholderText("Search titles and messages…")
        self.search.setClearButtonEnabled(True)
        for button in self.search.findChildren(QToolButton):  # the clear button is a control of its own
            button.setAccessibleName("Clear search")
        self.list = QListWidget()
        self.list.setAccessibleName("Conversations")
        self.list.setEditTriggers(QListWidget.EditTrigger.EditKeyPressed | QListWidget.EditTrigger.DoubleClicked)
        self.new_button = _button("&New", "Start a new conversation (Ctrl+N)")
        self.rename_button = _button("&Rename", "Rename the selected conversation (F2)")
        self.delete_button = _button("&Delete", "Delete the selected conversation (Undo brings it back)")
        self.export_button = _button("E&xport…", "Save the selected conversation as Markdown or JSON")
        self.import_button = _button("&Import…", "Add a conversation from a JSON file exported before")
        self.undo_label = QLabel()
        self.undo_label.setAccessibleName("Deleted conversation")
        self.undo_label.setWordWrap(True)
        self.undo_button = _button("&Undo", "Bring back the conversation just deleted")
        self.undo_label.setVisible(False)
        self.undo_button.setVisible(False)

        buttons = QHBoxLayout()
        for button in (self.new_button, self.rename_button, self.delete_button):
            buttons.addWidget(button)
        files = QHBoxLayout()
        files.addWidget(self.export_button)
        files.addWidget(self.import_button)
        undo = QHBoxLayout()
        undo.addWidget(self.undo_label, 1)
        undo.addWidget(self.undo_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.search)
        layout.addWidget(self.list, 1)
        layout.addLayout(buttons)
        layout.addLayout(files)
        layout.addLayout(undo)

        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(SEARCH_DELAY_MS)
        self._search_timer.timeout.connect(lambda: self.refresh())
        self.search.textChanged.connect(lambda _text: self._search_timer.start())
        self.search.returnPressed.connect(lambda: self.refresh())
        self.list.currentItemChanged.connect(self._on_current_changed)
        self.list.itemChanged.connect(self._on_item_edited)
        self.new_button.clicked.connect(self.new_conversation)
        self.rename_button.clicked.connect(self.rename_selected)
        self.delete_button.clicked.connect(self.delete_selected)
        self.undo_button.clicked.connect(self.undo_delete)
        self.export_button.clicked.connect(self._ask_export)
        self.import_button.clicked.connect(self._ask_import)
        self._update_buttons()

    # --- what is shown ------------------------------------------------------------------------
    def current_id(self) -> str | None:
        item = self.list.currentItem()
        return None if item is None else str(item.data(ID_ROLE))

    def ids(self) -> list[str]:
        return [str(self.list.item(row).data(ID_ROLE)) for row in range(self.list.count())]

    def refresh(self, select: str | None = None) -> None:
        """Re-read the list (newest first, filtered by the search box); keeps the selection where it can."""
        if self.list.state() == QListWidget.State.EditingState:
            return  # a rename is being typed: do not pull the item from under it
        self._search_timer.stop()
        previous = self.current_id()
        keep = select or previous
        try:
            conversations = self.store.list(self.search.text().strip() or None)
        except EngineError as error:
            self.message.emit(str(error), True)
            return
        self.list.blockSignals(True)
        self.list.clear()
        for conversation in conversations:
            item = QListWidgetItem(display_title(conversation))
            item.setData(ID_ROLE, conversation.id)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable)
            updated = time.strftime("%Y-%m-%d %H:%M", time.localtime(conversation.updated))
            item.setToolTip(f"{conversation.message_count} messages, last {updated}")
            self.list.addItem(item)
        self.list.blockSignals(False)
        row = self.ids().index(keep) if keep in self.ids() else (0 if self.list.count() else -1)
        self.list.blockSignals(True)
        self.list.setCurrentRow(row)
        self.list.blockSignals(False)
        if self.current_id() != previous:
            self.selected.emit(self.current_id())
        self._update_buttons()

    def select(self, conversation_id: str | None) -> None:
        """Show this conversation (clearing a search that hides it)."""
        if conversation_id is None:
            return
        if conversation_id not in self.ids():
            self.search.blockSignals(True)
            self.search.clear()
            self.search.blockSignals(False)
            self.refresh(conversation_id)
        if conversation_id in self.ids():
            self.list.setCurrentRow(self.ids().index(conversation_id))

    def _on_current_changed(self, current: QListWidgetItem | None, _previous: QListWidgetItem | None) -> None:
        self._update_buttons()
        self.selected.emit(None if current is None else str(current.data(ID_ROLE)))

    def _update_buttons(self) -> None:
        has = self.list.currentItem() is not None
        self.rename_button.setEnabled(has)
        self.delete_button.setEnabled(has)
        self.export_button.setEnabled(has)

    # --- actions ------------------------------------------------------------------------------
    def new_conversation(self) -> str | None:
        try:
            conversation = self.store.create()
        except EngineError as error:
            self.message.emit(str(error), True)
            return None
        self.select(conversation.id)
        return conversation.id

    def rename_selected(self) -> None:
        item = self.list.currentItem()
        if item is not None:
            self.list.editItem(item)

    def _on_item_edited(self, item: QListWidgetItem) -> None:
        conversation_id = str(item.data(ID_ROLE))
        title = item.text().strip()
        try:
            if title and title != UNTITLED:
                self.store.rename(conversation_id, title)
                self.message.emit(f"Renamed to “{title}”.", False)
            current = self.store.get(conversation_id)
        except EngineError as error:
            self.message.emit(str(error), True)
            return
        self.list.blockSignals(True)
        item.setText(display_title(current))  # an empty title is refused: the old one comes back
        self.list.blockSignals(False)

    def delete_selected(self) -> None:
        conversation_id = self.current_id()
        if conversation_id is None:
            return
        if conversation_id == self.busy_conversation:
            self.message.emit("An answer is being written into this conversation: Stop it first, then delete.", True)
            return
        title = self.list.currentItem().text()
        row = self.list.currentRow()
        try:
            self.store.delete(conversation_id)
        except EngineError as error:
            self.message.emit(str(error), True)
            return
        self.deleted_id = conversation_id
        self.undo_label.setText(f"Deleted “{title}”.")
        self.undo_label.setVisible(True)
        self.undo_button.setVisible(True)
        ids = self.ids()
        ids.remove(conversation_id)
        following = ids[min(row, len(ids) - 1)] if ids else None
        self.refresh(following)
        if following is None:
            self.selected.emit(None)
        self.message.emit(f"Deleted “{title}”. Undo brings it back.", False)

    def undo_delete(self) -> None:
        if self.deleted_id is None:
            return
        conversation_id, self.deleted_id = self.deleted_id, None
        try:
            self.store.restore(conversation_id)
        except EngineError as error:
            self.message.emit(str(error), True)
            return
        self.undo_label.setVisible(False)
        self.undo_button.setVisible(False)
        self.select(conversation_id)
        self.message.emit("The conversation is back.", False)

    # --- files --------------------------------------------------------------------------------
    def export_to(self, path: Path) -> bool:
        """The selected conversation as Markdown (.md) or JSON (anything else), written safely."""
        conversation_id = self.current_id()
        if conversation_id is None:
            self.message.emit("Select a conversation to export.", True)
            return False
        try:
            if path.suffix.lower() in (".md", ".markdown"):
                text = self.store.export_markdown(conversation_id)
            else:
                text = json.dumps(self.store.export_json(conversation_id), ensure_ascii=False, indent=2) + "\n"
            save_text(path, text)
        except (EngineError, OSError) as error:
            self.message.emit(f"Could not export to {path}: {error}", True)
            return False
        self.message.emit(f"Exported to {path}.", False)
        return True

    def import_from(self, path: Path) -> str | None:
        """A conversation from a JSON export, under a new id; bad files get a message saying what is wrong."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            self.message.emit(f"{path.name} is not a conversation file that can be read: {error}", True)
            return None
        try:
            conversation = self.store.import_json(data)
        except EngineError as error:
            self.message.emit(f"{path.name} was not imported: {error}", True)
            return None
        self.select(conversation.id)
        self.message.emit(f"Imported “{display_title(conversation)}”.", False)
        return conversation.id

    def _ask_export(self) -> None:
        item = self.list.currentItem()
        name = "".join(c if c.isalnum() or c in " -_" else "_" for c in item.text()).strip() if item else ""
        path, _ = QFileDialog.getSaveFileName(self, "Export the conversation", f"{name or 'conversation'}.md",
                                              "Markdown (*.md);;JSON (*.json)")
        if path:
            self.export_to(Path(path))

    def _ask_import(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import a conversation", filter="JSON (*.json);;All files (*)")
        if path:
            self.import_from(Path(path))
