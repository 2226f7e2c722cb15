"""What belongs to one conversation (its model and system prompt, kept in the ConversationStore) and the
sampling settings of the Chat page (kept in the window's settings), above the messages."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import QDoubleSpinBox, QFormLayout, QHBoxLayout, QLabel, QPlainTextEdit, QSpinBox, QWidget

from desktop_ai.engine.conversations.store import Conversation, ConversationStore
from desktop_ai.engine.errors import EngineError
from desktop_ai.engine.models.catalogue import TASK_GENERATE
from desktop_ai.engine.models.store import ModelStore
from desktop_ai.gui.widgets import ModelPicker

SYSTEM_PROMPT_SAVE_MS = 500


class ConversationSettings(QWidget):
    """The model picker (the Text tab's), the system prompt (saved as you type), max tokens and temperature."""

    failed = Signal(str)  # a store error, for the page's message line

    def __init__(self, conversations: ConversationStore, store: ModelStore, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.conversations = conversations
        self.models = store
        self.conversation_id: str | None = None
        self.model_picker = ModelPicker(TASK_GENERATE, store)
        self.model_picker.setAccessibleName("Model for this conversation")
        self.system_prompt = QPlainTextEdit()
        self.system_prompt.setAccessibleName("System prompt")
        self.system_prompt.setPlaceholderText("System prompt for this conversation (optional), e.g. “Answer briefly.”")
        self.system_prompt.setMaximumHeight(60)
        self.max_tokens = QSpinBox()
        self.max_tokens.setRange(1, 4096)
        self.max_tokens.setValue(256)
        self.max_tokens.setAccessibleName("Max new tokens")
        self.temperature = QDoubleSpinBox()
        self.temperature.setRange(0.0, 2.0)
        self.temperature.setSingleStep(0.1)
        self.temperature.setValue(0.7)
        self.temperature.setAccessibleName("Temperature")
        self.temperature.setToolTip("0 always picks the most likely word (repeatable); higher is more varied.")
        self.context_limit = QSpinBox()
        self.context_limit.setRange(0, 262_144)
        self.context_limit.setSingleStep(512)
        self.context_limit.setSpecialValueText("the model's")
        self.context_limit.setValue(0)
        self.context_limit.setAccessibleName("Context limit in tokens")
        self.context_limit.setToolTip("Read at most this many tokens of the conversation (older turns are left out "
                                      "first). A smaller context answers sooner and takes less memory.")
        options = QHBoxLayout()
        for label, widget in (("Max tokens", self.max_tokens), ("Temperature", self.temperature),
                              ("Context", self.context_limit)):
            options.addWidget(QLabel(label))
            options.addWidget(widget)
        options.addStretch(1)
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Model", self.model_picker)
        form.addRow("System prompt", self.system_prompt)
        form.addRow(options)

        self._prompt_timer = QTimer(self)
        self._prompt_timer.setSingleShot(True)
        self._prompt_timer.setInterval(SYSTEM_PROMPT_SAVE_MS)
        self._prompt_timer.timeout.connect(self.save)
        self.system_prompt.textChanged.connect(self._prompt_timer.start)
        self.model_picker.model_changed.connect(lambda _ref: self.save())

    def show_conversation(self, conversation: Conversation | None) -> None:
        """Save what was typed for the previous conversation, then show this one's model and system prompt."""
        self.save()
        self.conversation_id = conversation.id if conversation else None
        self.system_prompt.blockSignals(True)
        self.system_prompt.setPlainText(conversation.system_prompt if conversation else "")
        self.system_prompt.blockSignals(False)
        if conversation is not None:
            self.model_picker.select(conversation.model or self.models.default_model(TASK_GENERATE))

    def save(self) -> None:
        """Write the system prompt and model to the store where they changed (the engine reads them from there)."""
        self._prompt_timer.stop()
        if self.conversation_id is None:
            return
        text, model = self.system_prompt.toPlainText(), self.model_picker.model_ref()
        try:
            saved = self.conversations.get(self.conversation_id)
            if saved.system_prompt != text:
                self.conversations.set_system_prompt(self.conversation_id, text)
            default = self.models.default_model(TASK_GENERATE)
            if saved.model != model and not (saved.model is None and model == default):
                self.conversations.set_model(self.conversation_id, model)
        except EngineError as error:
            self.failed.emit(str(error))

    def model_ref(self) -> str:
        return self.model_picker.model_ref()

    def model_title(self) -> str:
        return self.model_picker.currentText().split(" — ")[0]

    def options(self) -> dict[str, Any]:
        limit = self.context_limit.value()
        return {"max_new_tokens": self.max_tokens.value(), "temperature": round(self.temperature.value(), 3),
                "top_p": 0.9, "seed": None, "context_limit": limit or None}
