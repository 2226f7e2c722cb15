"""The Text tab's Chat page: conversations on the side, the one selected as messages, an answer streaming in.

The window never loads or runs a model: every turn is a "chat" job in the jobs lane (engine/tasks/chat.py),
which writes the user message and the answer into the ConversationStore as it streams. The page reads that
store (SQLite, no model) to show a conversation, and writes only what belongs to the conversation itself:
create, rename, delete, its system prompt and model.

One answer is written at a time. Its partial pieces are routed by conversation: while you look at another
conversation the answer goes on into its own (the page keeps the text so far), and when you switch back it is
all there; once the job ends the store holds the final answer.
"""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QLabel, QSplitter, QVBoxLayout, QWidget

from desktop_ai.engine.conversations.store import ConversationStore
from desktop_ai.engine.errors import EngineError
from desktop_ai.engine.models.store import ModelStore
from desktop_ai.gui.read_aloud import ChatReadAlong
from desktop_ai.gui.chat.chat_settings import ConversationSettings
from desktop_ai.gui.chat.conversation_list import ConversationList, display_title
from desktop_ai.gui.chat.chat_composer import Composer
from desktop_ai.gui.job_page import JobPage, labelled_button
from desktop_ai.gui.chat.message_view import MessageView
from desktop_ai.gui.chat.documents_panel import DocumentsPanel
from desktop_ai.gui.chat.sources_view import SourcesView
from desktop_ai.gui.settings import read
from desktop_ai.gui.worker import EngineThread

logger = logging.getLogger(__name__)

EMPTY_MESSAGE = "The message is empty: type something to send."


def result_dict(result: Any) -> dict[str, Any]:
    """The chat job's result: a ChatTurnResult, or its to_dict() (the contract allows either)."""
    return result.to_dict() if hasattr(result, "to_dict") else dict(result)


def describe_context(context: dict[str, Any] | None) -> tuple[str, bool]:
    """'N of M tokens', and whether older turns were left out to fit (then the label says so). The job's start
    message says "used"/"total" (the prompt), its result "context_used"/"context_total" (prompt and answer)."""
    context = context or {}
    total = context.get("context_total") or context.get("total")
    if not total:
        return "Context: shown once the model has read this conversation", False
    used, total = int(context.get("context_used") or context.get("used") or 0), int(total)
    text = f"Context: {used:,} of {total:,} tokens"
    dropped = int(context.get("dropped_messages") or 0)
    if dropped:
        text += (f" · the oldest {dropped} message{'s were' if dropped > 1 else ' was'} left out to fit "
                 "(the system prompt is always kept)")
    return text, bool(dropped)


class ChatPage(JobPage):

    def __init__(self, engine: EngineThread, store: ModelStore, device_preference: Any,
                 conversations: ConversationStore | None = None, parent: QWidget | None = None) -> None:
        super().__init__(engine, store, device_preference, parent)
        self.conversations = conversations or ConversationStore()
        self.current: str | None = None  # the conversation shown
        self.drafts: dict[str, str] = {}  # what was typed, per conversation, while another one is shown
        self.contexts: dict[str, dict[str, Any]] = {}  # the last context numbers the engine gave, per conversation
        self._shut_down = False
        self._reset_job()

        self.conversation_list = ConversationList(self.conversations)
        self.settings_panel = ConversationSettings(self.conversations, store)
        self.message_view = MessageView()
        self.context_label = QLabel()
        self.context_label.setAccessibleName("Context window")
        self.context_label.setWordWrap(True)
        self.composer = Composer()
        self.input = self.composer.input
        self.send_button, self.stop_button = self.composer.send_button, self.composer.stop_button
        self.regenerate_button, self.edit_button = self.composer.regenerate_button, self.composer.edit_button
        self.cancel_edit_button = self.composer.cancel_edit_button
        self.composer.buttons.addWidget(self.progress_bar, 1)
        self.composer.buttons.addStretch(1)
        self.store_notice = QLabel()
        self.store_notice.setAccessibleName("Conversation database notice")
        self.store_notice.setWordWrap(True)
        self.store_notice.setStyleSheet("color: #b00020;")
        self.store_notice.setVisible(bool(self.conversations.notice))
        self.store_notice.setText(self.conversations.notice or "")

        right = QWidget()
        column = QVBoxLayout(right)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(self.settings_panel)
        column.addWidget(self.message_view, 1)
        column.addWidget(self.context_label)
        column.addWidget(self.composer)
        column.addWidget(self.notice)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.setAccessibleName("Conversations and messages")
        self.splitter.addWidget(self.conversation_list)
        self.splitter.addWidget(right)
        self.documents = DocumentsPanel(engine, store, device_preference)  # collections, Search, chat with them
        self.documents.status_message.connect(self.status_message)
        self.splitter.addWidget(self.documents)
        # A side panel opened on demand: always shown, its width would make the window too wide for a small screen.
        self.documents.setVisible(False)
        self.documents_button = labelled_button("&Documents", "Show or hide your document collections: the ticked "
                                                "ones answer this chat, with their sources under each answer")
        self.documents_button.setCheckable(True)
        self.documents_button.toggled.connect(self.documents.setVisible)
        self.composer.add_mode(self.documents_button)
        self.sources_views: dict[int, SourcesView] = {}  # under each answer from documents, by message id
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([230, 700])
        layout = QVBoxLayout(self)
        layout.addWidget(self.store_notice)
        layout.addWidget(self.splitter, 1)

        self.settings_panel.failed.connect(lambda text: self.show_notice(text, error=True))
        self.conversation_list.selected.connect(self.show_conversation)
        self.conversation_list.message.connect(self.show_notice)
        self.send_button.clicked.connect(self.send)
        self.stop_button.clicked.connect(self.stop)
        self.regenerate_button.clicked.connect(self.regenerate)
        self.edit_button.clicked.connect(self.start_edit)
        self.cancel_edit_button.clicked.connect(self.cancel_edit)
        self.input.submitted.connect(self.send)
        self.input.escape_pressed.connect(self.escape)
        QShortcut(QKeySequence("Escape"), self, self.escape, context=Qt.ShortcutContext.WidgetWithChildrenShortcut)
        QShortcut(QKeySequence("Ctrl+N"), self, self.conversation_list.new_conversation,
                  context=Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.conversation_list.refresh()
        self.update_buttons()
        self.read_along = ChatReadAlong(self)  # "Read answers aloud" (gui/read_aloud.py)

    # --- the conversation shown ---------------------------------------------------------------
    def show_conversation(self, conversation_id: str | None) -> None:
        """Show one conversation from the store, plus the answer being written into it, if any."""
        if self.current is not None and self.current != conversation_id:
            self.drafts[self.current] = self.composer.draft()
            self.input.setPlainText(self.drafts.pop(conversation_id, "") if conversation_id else "")
        self.composer.leave_edit()
        self.current = conversation_id
        self.message_view.clear()
        conversation = None
        if conversation_id is not None:
            try:
                conversation = self.conversations.get(conversation_id)
                messages = self.conversations.messages(conversation_id)
            except EngineError as error:
                self.show_notice(str(error), error=True)
                self.current = None
        self.settings_panel.show_conversation(conversation)
        if conversation is None:
            self.context_label.setText(describe_context(None)[0])
            self.update_buttons()
            return
        self.sources_views.clear()
        for message in messages:
            widget = self.message_view.add_message(message.role, message.content, message.id, message.stopped)
            if message.role == "assistant":
                widget.set_details(message.first_token_ms, message.tokens_per_second)
                self._show_sources(widget, message.id)
        collections = self.conversations.collections(conversation_id)
        if collections:
            self.documents.set_checked(collections)
        if self.job_conversation == conversation_id:
            self._show_streaming_answer()
        self._show_context(conversation_id)
        self.update_buttons()

    def _show_sources(self, widget: Any, message_id: int) -> None:
        sources = self.conversations.sources(message_id)
        if sources:
            view = SourcesView(sources)
            view.opened.connect(lambda url: self.status_message.emit(f"Opened {url.toString()}"))
            widget.layout().addWidget(view)
            self.sources_views[message_id] = view

    def _show_streaming_answer(self) -> None:
        """The running job's messages, which the store may not hold yet (or holds as of its last write)."""
        if self.job_user_message_id is None:
            self._show_sent_message(self.job_action, self.job_draft)
        if self.job_message_id is not None:
            widget = self.message_view.find(self.job_message_id) or self.message_view.add_message("assistant", "", self.job_message_id)
            widget.set_text(self.job_text)
            widget.set_stopped(False)

    def _show_context(self, conversation_id: str) -> None:
        text, dropped = describe_context(self.contexts.get(conversation_id))
        self.context_label.setText(text)
        self.context_label.setStyleSheet("color: #9a5b00;" if dropped else "")

    def _show_sent_message(self, action: str, text: str) -> None:
        """What was just sent, shown at once (the engine writes it to the store as the job starts)."""
        view = self.message_view
        if action == "edit" and view.last("user") is not None:
            view.remove_after(view.last("user"))
            view.last("user").set_text(text)
        elif action == "regenerate":
            if view.last() is not None and view.last().role == "assistant":
                view.remove(view.last())
        else:
            view.add_message("user", text)

    # --- turns --------------------------------------------------------------------------------
    def send(self) -> None:
        text = self.input.toPlainText()
        if self.running:
            self.show_notice(self._busy_message(), error=True)
            return
        if not text.strip():
            self.show_notice(EMPTY_MESSAGE, error=True)
            return
        if self.current is None and self.conversation_list.new_conversation() is None:
            return
        action = "edit" if self.composer.editing else "send"
        self._start_turn(action, text)
        self.input.clear()
        self.composer.leave_edit()

    def regenerate(self) -> None:
        if self.running:
            self.show_notice(self._busy_message(), error=True)
        elif self.current is None or self.message_view.last("user") is None:
            self.show_notice("There is no message to answer again yet.", error=True)
        else:
            self._start_turn("regenerate", None)

    def start_edit(self) -> None:
        last = self.message_view.last("user")
        if self.running:
            self.show_notice(self._busy_message(), error=True)
            return
        if last is None:
            self.show_notice("There is no message of yours to edit yet.", error=True)
            return
        self.composer.begin_edit(last.text)
        self.show_notice("Editing your last message: Enter sends it again and replaces what followed; Esc cancels.")

    def cancel_edit(self) -> None:
        if self.composer.cancel_edit():
            self.show_notice("")

    def escape(self) -> None:
        if self.running:
            self.stop()
        else:
            self.cancel_edit()

    def _busy_message(self) -> str:
        where = ""
        if self.job_conversation != self.current:
            try:
                where = f" in “{display_title(self.conversations.get(self.job_conversation))}”"
            except EngineError:
                pass
        return f"An answer is still being written{where}: wait for it or Stop it first. Your message is kept."

    def _start_turn(self, action: str, message: str | None) -> None:
        self.settings_panel.save()
        self._show_sent_message(action, message or "")
        params = {"conversation": self.current, "action": action, "message": message,
                  "model": self.settings_panel.model_ref(), "device": self.device_preference(), "runtime": "auto",
                  "options": self.settings_panel.options(), "store": str(self.conversations.path),
                  "collections": self.documents.checked_collections()}
        self._reset_job()
        self.job_conversation, self.job_action, self.job_draft = self.current, action, message or ""
        self.conversation_list.busy_conversation = self.current
        self.model_in_use.emit(self.settings_panel.model_title())
        self.submit("chatting", "chat", params)

    def _reset_job(self) -> None:
        self.job_conversation: str | None = None
        self.job_action = ""
        self.job_draft = ""
        self.job_user_message_id: int | None = None
        self.job_message_id: int | None = None
        self.job_text = ""

    # --- the job's signals --------------------------------------------------------------------
    def _mine(self, job_id: int) -> bool:
        return not self._shut_down and super()._mine(job_id)  # the lane's last messages can come after close

    def _on_partial(self, job_id: int, payload: Any) -> None:
        if not self._mine(job_id) or not isinstance(payload, dict):
            return
        conversation = payload.get("conversation", self.job_conversation)
        if "user_message_id" in payload:
            self.job_user_message_id = int(payload["user_message_id"])
            if payload.get("context"):
                self.contexts[conversation] = dict(payload["context"])
                notices = payload["context"].get("notices") or []
                if notices:  # e.g. a message longer than the whole context was cut
                    self.show_notice(" ".join(notices))
            if conversation == self.current:
                last = self.message_view.last("user")
                if last is not None:
                    last.message_id = self.job_user_message_id
                self._show_context(conversation)
            self.conversation_list.refresh()  # the title comes from the first message
        if "message_id" in payload:
            self.job_message_id = int(payload["message_id"])
            piece = str(payload.get("text") or "")
            restarted = bool(payload.get("restarted"))  # answered again (on the CPU): what was shown goes
            self.job_text = piece if restarted else self.job_text + piece
            if conversation == self.current:
                widget = self.message_view.find(self.job_message_id)
                if widget is None:
                    widget = self.message_view.add_message("assistant", "", self.job_message_id)
                if restarted:
                    widget.set_text(piece)
                else:
                    widget.append(piece)

    def _on_finished(self, job_id: int, result: Any) -> None:
        if self._mine(job_id):
            super()._on_finished(job_id, result)
            self._end_job()

    def _on_failed(self, job_id: int, message: str) -> None:
        if not self._mine(job_id):
            return
        conversation, action, draft = self.job_conversation, self.job_action, self.job_draft
        super()._on_failed(job_id, message)
        if action in ("send", "edit") and conversation == self.current:
            if self._saved_as_last_message(conversation, draft):  # the engine writes it before loading the model
                self.show_notice(f"{message} Your message is saved: Regenerate tries again.", error=True)
            elif not self.input.toPlainText().strip():
                self.input.setPlainText(draft)  # it never reached the store: nothing typed is lost
                self.show_notice(f"{message} Your message is back in the box below.", error=True)
        self._end_job()

    def _saved_as_last_message(self, conversation: str, text: str) -> bool:
        try:
            users = [m for m in self.conversations.messages(conversation) if m.role == "user"]
        except EngineError:
            return False
        return bool(users) and users[-1].content == text

    def _end_job(self) -> None:
        finished = self.job_conversation
        self._reset_job()
        self.conversation_list.busy_conversation = None
        self.conversation_list.refresh()
        if finished is not None and finished == self.current:
            self.show_conversation(finished)  # the store holds the final answer, its timings and "stopped"
        self.update_buttons()

    def handle_result(self, result: Any) -> None:
        data = result_dict(result)
        conversation = data.get("conversation", self.job_conversation)
        self.contexts[conversation] = {key: data.get(key) for key in ("context_used", "context_total", "dropped_messages")}
        self.show_notice(" ".join(data.get("notices") or []))
        runtime = data.get("runtime") or ""
        if runtime:
            self.runtime_used.emit(runtime)
        ran = f" ({runtime})" if runtime else ""
        self.status_message.emit(f"Stopped; the answer so far is kept{ran}." if data.get("stopped") else f"Answered{ran}.")

    def set_running(self, running: bool) -> None:
        super().set_running(running)
        self.update_buttons()

    def update_buttons(self) -> None:
        running = self.running
        has_turn = self.current is not None and self.message_view.last("user") is not None
        self.send_button.setEnabled(not running)
        self.stop_button.setEnabled(running)
        self.regenerate_button.setEnabled(not running and has_turn)
        self.edit_button.setEnabled(not running and has_turn)

    # --- lifetime -----------------------------------------------------------------------------
    def save_settings(self, settings: QSettings) -> None:
        self.settings_panel.save()
        settings.setValue("chat/splitter", self.splitter.saveState())
        settings.setValue("chat/conversation", self.current or "")
        settings.setValue("chat/max_tokens", self.settings_panel.max_tokens.value())
        settings.setValue("chat/temperature", self.settings_panel.temperature.value())
        settings.setValue("chat/context_limit", self.settings_panel.context_limit.value())
        settings.setValue("chat/draft", self.composer.draft())

    def load_settings(self, settings: QSettings) -> None:
        state = settings.value("chat/splitter")
        if state is not None:
            self.splitter.restoreState(state)
        self.settings_panel.max_tokens.setValue(read(settings, "chat/max_tokens", 256, int))
        self.settings_panel.temperature.setValue(read(settings, "chat/temperature", 0.7, float))
        self.settings_panel.context_limit.setValue(read(settings, "chat/context_limit", 0, int))
        last = read(settings, "chat/conversation", "")
        if last and last != self.current:
            self.conversation_list.select(last)
        draft = read(settings, "chat/draft", "")
        if draft and not self.input.toPlainText():
            self.input.setPlainText(draft)

    def shutdown(self) -> None:
        """At window close, after the lanes stopped (the engine wrote its last words): purge deleted ones, close."""
        if self._shut_down:
            return
        self._shut_down = True
        try:
            self.conversations.purge_deleted()
        except EngineError as error:
            logger.warning("Deleted conversations were not purged: %s", error)
        self.conversations.close()
