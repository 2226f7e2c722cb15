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

from desktop_ai.engine.audio.echo import SoundEnvelope, is_playback_echo, speech_over_echo
from desktop_ai.gui.read_aloud import ReadAloud

logger = logging.getLogger(__name__)

ECHO_TAIL_S = 1.5  # a phrase heard this soon after the reading stopped may still be its echo (room, buffers)
PHRASE_SETTLE_MS = 400  # a phrase's segments arrive together; the question is sent once they stopped coming
ECHO_SHARE = 0.6  # this share of the heard words in the answer being read: it is the answer's echo


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def without_echo_prefix(heard: str, answer: str) -> str:
    """A phrase that began as the answer's echo and went on with a question ("...vibrant culture. Stop. What about
    Germany?"): the question, from its first word the answer does not have."""
    said = set(_words(answer))
    pieces = heard.split()
    for index, piece in enumerate(pieces):
        words = _words(piece)
        if words and any(word not in said for word in words):
            return " ".join(pieces[index:])
    return heard


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
        self._barged_in: tuple[float | None, str] = (None, "")  # the phrase that interrupted an answer, and the answer
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

    def _heard_and_played(self, event: dict) -> tuple[SoundEnvelope, list[SoundEnvelope]] | None:
        """The phrase's sound and what was read lately, when the phrase may overlap the reading or its echo."""
        reader = ReadAloud.shared
        sound = event.get("sound")
        if reader is None or not reader.played or not isinstance(sound, dict):
            return None
        heard = SoundEnvelope.from_json(sound)
        newest = max(envelope.end for envelope in reader.played)
        return (heard, reader.played) if heard.start < newest + ECHO_TAIL_S else None

    def _is_echo(self, event: dict, text: str, partial: bool) -> bool:
        """The answer's own sound: its loudness follows what was played and nobody speaks over it at the end, or
        (without sound to go by) its words repeat the answer's."""
        found = self._heard_and_played(event)
        if found is not None:
            heard, played = found
            if speech_over_echo(heard, played, last_s=1.0 if partial else 1.5):
                return False
            if is_playback_echo(heard, played):
                return True
        answer = self._answer_being_read()
        return bool(answer) and is_echo(text, answer, partial=partial)

    def _on_event(self, job_id: int, event: object) -> None:
        if job_id != self.job_id or not isinstance(event, dict):
            return
        kind = event.get("type")
        if kind == "partial" and event.get("text", "").strip():
            answer = self._answer_being_read()
            if answer and not self._is_echo(event, event["text"], partial=True):
                self._barged_in = (event.get("start"), answer)  # this phrase interrupted the answer
                logger.debug("Voice chat: %r spoken over the answer: it stops", event["text"])
                self._interrupt()
        elif kind == "final":
            segment = event.get("segment") or {}
            text = str(segment.get("text") or "").strip()
            barged_start, answer = self._barged_in
            if text and barged_start is not None and event.get("start") == barged_start:
                self._barged_in = (None, "")
                text = without_echo_prefix(text, answer)  # the phrase began as echo; the question is its rest
            elif text and self._is_echo(event, text, partial=False):
                logger.debug("Voice chat: %r heard as the answer's echo", text)
                return
            if text:
                logger.debug("Voice chat: heard %r", text)
                self._interrupt()
                self.heard.append(text)
                self._settle.start()

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
