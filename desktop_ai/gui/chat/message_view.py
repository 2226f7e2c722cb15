"""The conversation as messages: yours and the assistant's told apart, Markdown rendered (markdown_render), a
Copy button on every message and on every code block, "stopped" on an answer cut short.

An answer streams into its message piece by piece; the Markdown is re-rendered at most every RENDER_MS (parsing
the whole answer for every token would cost more than writing it), and the widgets of the blocks already shown
are reused, so a long answer does not flicker or get slower to show.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QTimer, Qt, QUrl
from PySide6.QtGui import QDesktopServices, QFontDatabase, QGuiApplication, QResizeEvent
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from desktop_ai.gui.read_aloud import SpeakerButton
from desktop_ai.gui.chat.markdown_render import CODE, Segment, render_segments

RENDER_MS = 80
ROLE_TITLES = {"user": "You", "assistant": "Assistant"}
STYLE = """
MessageWidget[role="user"] { background: #e8f0fe; border: 1px solid #c6d7f5; border-radius: 6px; }
MessageWidget[role="assistant"] { background: #f6f6f6; border: 1px solid #dddddd; border-radius: 6px; }
CodeBlockView { background: #fbfbfb; border: 1px solid #cccccc; border-radius: 4px; }
"""


def copy_to_clipboard(text: str) -> None:
    QGuiApplication.clipboard().setText(text)


class MarkdownView(QTextBrowser):
    """Rendered HTML that is exactly as tall as its text (the conversation scrolls, not each message)."""

    def __init__(self, name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName(name)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)  # a wide table scrolls sideways
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setOpenLinks(False)
        self.anchorClicked.connect(self._open_link)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction | Qt.TextInteractionFlag.TextSelectableByKeyboard)
        self.viewport().setAutoFillBackground(False)
        self.setStyleSheet("QTextBrowser { background: transparent; }")
        self.document().documentLayout().documentSizeChanged.connect(lambda _size: self.fit_height())

    @staticmethod
    def _open_link(url: QUrl) -> None:
        if url.scheme() in ("http", "https", "mailto"):  # never a file: or an app's own scheme from a model's answer
            QDesktopServices.openUrl(url)

    def set_html(self, html: str) -> None:
        if html != getattr(self, "_html", None):
            self._html = html
            self.setHtml(html)
            self.fit_height()

    def fit_height(self) -> None:
        self.document().setTextWidth(max(self.viewport().width(), 50))
        height = math.ceil(self.document().size().height()) + 2 * self.frameWidth() + 2
        if self.horizontalScrollBar().isVisible():
            height += self.horizontalScrollBar().height()
        if height != self.height():
            self.setFixedHeight(height)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self.fit_height()


class CodeBlockView(QFrame):
    """One code block: its language, a Copy button for just this code, the code in a monospace font."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.code = ""
        self.language = QLabel()
        self.language.setAccessibleName("Code language")
        self.copy_button = QPushButton("Copy code")
        self.copy_button.setAccessibleName("Copy code")
        self.copy_button.setToolTip("Copy this code block to the clipboard")
        self.copy_button.clicked.connect(lambda: copy_to_clipboard(self.code))
        self.editor = QPlainTextEdit()
        self.editor.setReadOnly(True)
        self.editor.setAccessibleName("Code block")
        self.editor.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.editor.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.editor.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.editor.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        header = QHBoxLayout()
        header.setContentsMargins(6, 2, 2, 0)
        header.addWidget(self.language)
        header.addStretch(1)
        header.addWidget(self.copy_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.setSpacing(2)
        layout.addLayout(header)
        layout.addWidget(self.editor)

    def set_code(self, code: str, language: str) -> None:
        self.language.setText(language or "code")
        self.editor.setAccessibleName(f"Code block ({language})" if language else "Code block")
        if code == self.code:
            return
        self.code = code
        self.editor.setPlainText(code)
        lines = max(code.count("\n") + 1, 1)
        metrics = self.editor.fontMetrics()
        scrollbar = self.editor.horizontalScrollBar().sizeHint().height()
        self.editor.setFixedHeight(lines * metrics.lineSpacing() + 2 * self.editor.frameWidth() + 12 + scrollbar)


class MessageWidget(QFrame):
    """One message. `text` is the Markdown source (what Copy copies); the rendered view follows it."""

    def __init__(self, role: str, text: str = "", message_id: int | None = None, stopped: bool = False,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.role = role
        self.message_id = message_id
        self.text = text
        self.setProperty("role", role)
        self.setAccessibleName(f"{ROLE_TITLES.get(role, role)} message")
        self.title = QLabel(f"<b>{ROLE_TITLES.get(role, role)}</b>")
        self.title.setAccessibleName("From")
        self.stopped_label = QLabel("stopped")
        self.stopped_label.setAccessibleName("Answer stopped")
        self.stopped_label.setToolTip("This answer was cut short (Stop, a failure or the app closing); the text so far is kept.")
        self.stopped_label.setStyleSheet("color: #9a5b00; font-style: italic;")
        self.details = QLabel()
        self.details.setAccessibleName("Answer details")
        self.details.setStyleSheet("color: #666666;")
        self.copy_button = QPushButton("Copy")
        self.copy_button.setAccessibleName("Copy message")
        self.copy_button.setToolTip("Copy this message (as Markdown) to the clipboard")
        self.copy_button.clicked.connect(lambda: copy_to_clipboard(self.text))
        header = QHBoxLayout()
        header.addWidget(self.title)
        header.addWidget(self.stopped_label)
        header.addWidget(self.details)
        header.addStretch(1)
        header.addWidget(self.copy_button)
        if role == "assistant":
            self.speak_button = SpeakerButton(lambda: self.text, "answer")
            header.addWidget(self.speak_button)
        self.body = QVBoxLayout()
        self.body.setSpacing(4)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 6)
        layout.addLayout(header)
        layout.addLayout(self.body)
        self.blocks: list[QWidget] = []
        self._render_timer = QTimer(self)
        self._render_timer.setSingleShot(True)
        self._render_timer.setInterval(RENDER_MS)
        self._render_timer.timeout.connect(self.render)
        self.set_stopped(stopped)
        self.render()

    def set_stopped(self, stopped: bool) -> None:
        self.stopped = stopped
        self.stopped_label.setVisible(stopped)

    def set_details(self, first_token_ms: float | None, tokens_per_second: float | None) -> None:
        parts = []
        if first_token_ms is not None:
            parts.append(f"first token {first_token_ms:.0f} ms")
        if tokens_per_second:
            parts.append(f"{tokens_per_second:.1f} tokens/s")
        self.details.setText(" · ".join(parts))

    def set_text(self, text: str) -> None:
        if text != self.text:
            self.text = text
            self.render()

    def append(self, piece: str) -> None:
        """Streamed text: kept at once, rendered soon (at most every RENDER_MS)."""
        self.text += piece
        if not self._render_timer.isActive():
            self._render_timer.start()

    def render(self) -> None:
        self._render_timer.stop()
        segments = render_segments(self.text) if self.text else []
        for index, segment in enumerate(segments):
            self._show(index, segment)
        for widget in self.blocks[len(segments):]:
            widget.deleteLater()
        del self.blocks[len(segments):]

    def _show(self, index: int, segment: Segment) -> None:
        wanted = CodeBlockView if segment.kind == CODE else MarkdownView
        if index < len(self.blocks) and type(self.blocks[index]) is not wanted:
            for widget in self.blocks[index:]:
                widget.deleteLater()
            del self.blocks[index:]
        if index >= len(self.blocks):
            widget = CodeBlockView() if wanted is CodeBlockView else MarkdownView("Your message" if self.role == "user" else "Answer")
            self.blocks.append(widget)
            self.body.addWidget(widget)
        widget = self.blocks[index]
        if isinstance(widget, CodeBlockView):
            widget.set_code(segment.content, segment.language)
        else:
            widget.set_html(segment.content)

    def code_blocks(self) -> list[CodeBlockView]:
        return [w for w in self.blocks if isinstance(w, CodeBlockView)]

    def text_views(self) -> list[MarkdownView]:
        return [w for w in self.blocks if isinstance(w, MarkdownView)]


class MessageView(QScrollArea):
    """The messages of the conversation shown, oldest first; it follows a streaming answer while you are at the end."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Conversation")
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        container = QWidget()
        container.setStyleSheet(STYLE)
        self.column = QVBoxLayout(container)
        self.column.setContentsMargins(6, 6, 6, 6)
        self.column.setSpacing(8)
        self.placeholder = QLabel("Type a message below to start. Enter sends it, Shift+Enter starts a new line.")
        self.placeholder.setAccessibleName("Conversation is empty")
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setStyleSheet("color: #777777;")
        self.column.addWidget(self.placeholder)
        self.column.addStretch(1)
        self.setWidget(container)
        self.messages: list[MessageWidget] = []
        self._follow = True
        self.verticalScrollBar().rangeChanged.connect(self._on_range_changed)
        self.verticalScrollBar().valueChanged.connect(self._on_scrolled)

    def clear(self) -> None:
        for widget in self.messages:
            widget.deleteLater()
        self.messages.clear()
        self.placeholder.setVisible(True)
        self._follow = True

    def add_message(self, role: str, text: str = "", message_id: int | None = None, stopped: bool = False) -> MessageWidget:
        widget = MessageWidget(role, text, message_id, stopped)
        self.column.insertWidget(self.column.count() - 1, widget)  # before the stretch
        self.messages.append(widget)
        self.placeholder.setVisible(False)
        return widget

    def remove(self, widget: MessageWidget) -> None:
        self.messages.remove(widget)
        widget.deleteLater()
        self.placeholder.setVisible(not self.messages)

    def remove_after(self, widget: MessageWidget) -> None:
        """Every message after this one (an edited message replaces what followed it)."""
        for later in self.messages[self.messages.index(widget) + 1:]:
            self.remove(later)

    def find(self, message_id: int) -> MessageWidget | None:
        return next((w for w in self.messages if w.message_id == message_id), None)

    def last(self, role: str | None = None) -> MessageWidget | None:
        return next((w for w in reversed(self.messages) if role is None or w.role == role), None)

    def _on_scrolled(self, value: int) -> None:
        self._follow = value >= self.verticalScrollBar().maximum() - 4

    def _on_range_changed(self, _minimum: int, maximum: int) -> None:
        if self._follow:
            self.verticalScrollBar().setValue(maximum)
