"""The conversations on the side of the Chat page: search, New, Rename, Delete (with Undo).

It reads and writes only the ConversationStore (SQLite, no model), so it runs in the GUI thread. Delete is the
store's soft delete: the conversation is hidden at once and Undo brings it back; the window purges the deleted
ones when it closes.
"""

from __future__ import annotations

import time

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QLineEdit, QListWidget, QListWidgetItem, QPushButton, QToolButton, QVBoxLayout, QWidget

from desktop_ai.engine.conversations.store import Conversation, ConversationStore
from desktop_ai.engine.errors import EngineError

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
        self.undo_label = QLabel()
        self.undo_label.setAccessibleName("Deleted conversation")
        self.undo_label.setWordWrap(True)
        self.undo_button = _button("&Undo", "Bring back the conversation just deleted")
        self.undo_label.setVisible(False)
        self.undo_button.setVisible(False)

        buttons = QHBoxLayout()
        for button in (self.new_button, self.rename_button, self.delete_button):
            buttons.addWidget(button)
        undo = QHBoxLayout()
        undo.addWidget(self.undo_label, 1)
        undo.addWidget(self.undo_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.search)
        layout.addWidget(self.list, 1)
        layout.addLayout(buttons)
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
