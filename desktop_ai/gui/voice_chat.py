"""Voice chat, a mode of the Chat page: speak, pause, the question is sent; the answer is spoken as it streams;
speaking again interrupts it. Every turn is saved as text like any other (it is an ordinary chat turn).

Nothing new runs in the window: the live lane's dictation job listens (voice activity cuts at the pause, Whisper
writes the phrase), the jobs lane's chat job answers, and the Chat page's read-along speaks it (gui/read_aloud.py).
A loudspeaker is heard by the microphone too: what is heard while (or just after) an answer is read is taken for
its echo when its loudness follows what was played (engine/audio/echo.py), or its words repeat the answer's; echo
neither interrupts the answer nor becomes a question (headphones avoid the question altogether).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import QPushButton

from desktop_ai.engine.audio.echo import SoundEnvelope, is_playback_echo
from desktop_ai.gui.read_aloud import ReadAloud

logger = logging.getLogger(__name__)

ECHO_TAIL_S = 1.5  # a phrase heard this soon after the reading stopped may still be its echo (room, buffers)
PHRASE_SETTLE_MS = 400  # a phrase's segments arrive together; the question is sent once they stopped coming
ECHO_SHARE = 0.6  # this share of the heard words in the answer being read: it is the answer's echo


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def is_echo(heard: str, answer: str, partial: bool = False) -> bool:
    """A partial's last word may be cut ("the cap"): it is left out, and under two words nothing is decided."""
    words = _words(heard)
    if partial:
        words = words[:-1]
        if len(words) < 2:
            return True
    said = set(_words(answer))
    return bool(words) and sum(word in said for word in words) >= ECHO_SHARE * len(words)


class VoiceChat(QObject):
    """The Chat page's Voice chat button and what it runs."""

    def __init__(self, page: Any, live_engine: Any) -> None:
        super().__init__(page)
        self.page = page
        self.live = live_engine
        self.job_id: int | None = None
        self.heard: list[str] = []
        self.button = QPushButton("Voice chat")
        self.button.setCheckable(True)
        self.button.setAccessibleName("Voice chat")
        self.button.setToolTip("Talk with the chat model: speak, pause, and the answer is read aloud; speak again to "
                               "interrupt it. The conversation is saved as text.")
        page.composer.add_mode(self.button)
        self.button.toggled.connect(self._toggled)
        self._settle = QTimer(self)
        self._settle.setSingleShot(True)
        self._settle.setInterval(PHRASE_SETTLE_MS)
        self._settle.timeout.connect(self._send)
        live_engine.partial.connect(self._on_event)
        live_engine.finished_job.connect(self._on_ended)
        live_engine.failed.connect(self._on_failed)

    @property
    def active(self) -> bool:
        return self.job_id is not None

    def _toggled(self, on: bool) -> None:
        if on and self.job_id is None:
            self.page.read_along.checkbox.setChecked(True)  # the answers are spoken
            params = {"engine": "whisper", "model": None, "device": self.page.device_preference(), "compression": "int8",
                      "sound_envelopes": True}
            self.job_id = self.live.submit("voice chat", "dictate", params)
            self.page.show_notice("Voice chat: speak, then pause; the answer is read aloud. Speak again to interrupt it.")
        elif not on and self.job_id is not None:
            self.live.cancel(self.job_id)
            self.job_id = None
            self.heard.clear()
        if not on:
            self._settle.stop()  # a question heard just before voice chat ended is not sent afterwards

    def _answer_being_read(self) -> str:
        reader = ReadAloud.shared
        if reader is None or not reader.speaking:
            return ""
        return self.page.job_text or (self.page.message_view.last("assistant").text
                                      if self.page.message_view.last("assistant") else "")

    def _is_echo(self, event: dict, text: str, partial: bool) -> bool:
        """The answer's own sound: its loudness follows what was played, or (without sound) its words repeat it."""
        reader = ReadAloud.shared
        sound = event.get("sound")
        if reader is not None and reader.played and isinstance(sound, dict):
            heard = SoundEnvelope.from_json(sound)
            newest = max(envelope.end for envelope in reader.played)
            if heard.start < newest + ECHO_TAIL_S and is_playback_echo(heard, reader.played):
                return True
        answer = self._answer_being_read()
        return bool(answer) and is_echo(text, answer, partial=partial)

    def _on_event(self, job_id: int, event: object) -> None:
        if job_id != self.job_id or not isinstance(event, dict):
            return
        kind = event.get("type")
        if kind == "partial" and event.get("text", "").strip():
            if self._answer_being_read() and not self._is_echo(event, event["text"], partial=True):
                self._interrupt()
        elif kind == "final":
            segment = event.get("segment") or {}
            text = str(segment.get("text") or "").strip()
            if text and not self._is_echo(event, text, partial=False):
                self._interrupt()
                self.heard.append(text)
                self._settle.start()
            elif text:
                logger.info("Voice chat: %r heard as the answer's echo", text)

    def _interrupt(self) -> None:
        """You spoke: the answer being read (and written) stops."""
        if ReadAloud.shared is not None and ReadAloud.shared.speaking:
            ReadAloud.shared.stop()
        if self.page.running:
            self.page.stop()

    def _send(self) -> None:
        if self.job_id is None:  # voice chat ended (or the window closed) while the pause was being waited out
            self.heard.clear()
            return
        question = " ".join(self.heard).strip()
        if not question:
            return
        if self.page.running:  # the interrupted answer is still being closed: ask again when it is
            self._settle.start()
            return
        self.heard.clear()
        self.page.input.setPlainText(question)
        self.page.send()

    def _on_ended(self, job_id: int, _result: object) -> None:
        if job_id == self.job_id:
            self.job_id = None
            self.button.setChecked(False)

    def _on_failed(self, job_id: int, message: str) -> None:
        if job_id == self.job_id:
            self.job_id = None
            self.button.setChecked(False)
            self.page.show_notice(f"Voice chat stopped: {message}", error=True)
