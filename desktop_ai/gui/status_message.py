"""The status bar's message about the last thing a job did, in a space of its own.

QStatusBar's own temporary message is drawn in whatever room the permanent labels leave and cut mid-word
there, running into the label beside it; this label takes the stretch instead, elides what does not fit
with "…" and keeps the whole text in its tooltip (and for screen readers)."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QLabel, QSizePolicy, QWidget

MESSAGE_SECONDS = 10


class StatusMessage(QLabel):
    def __init__(self, parent: QWidget | None = None, seconds: float = MESSAGE_SECONDS) -> None:
        super().__init__(parent)
        self.setAccessibleName("Last message")
        # Ignored: the label never asks for the width of its text, so a long message cannot push the
        # permanent labels off; it gets the room that is left and elides within it.
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setMinimumWidth(60)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.NoTextInteraction)
        self._full = ""
        self._clear_timer = QTimer(self, singleShot=True, interval=int(seconds * 1000))
        self._clear_timer.timeout.connect(lambda: self.show_message(""))

    @property
    def full_text(self) -> str:
        """The message as it was given, whatever the room to show it."""
        return self._full

    def show_message(self, text: str) -> None:
        self._full = text
        self.setToolTip(text)
        self.setAccessibleDescription(text)
        self._elide()
        if text:
            self._clear_timer.start()
        else:
            self._clear_timer.stop()

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        room = max(0, self.contentsRect().width())
        self.setText(self.fontMetrics().elidedText(self._full, Qt.TextElideMode.ElideRight, room))
