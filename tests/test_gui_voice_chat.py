"""Voice chat on the Chat page, for real: a question spoken into the virtual microphone (PulseAudio null sink) is
written by the live lane's dictation, sent as a chat turn, answered by the embedded chat model and read aloud onto
the same sink; the answer's echo in the microphone does not count as a new question; the turn is saved as text."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from desktop_ai.gui.chat.chat_page import result_dict
from desktop_ai.gui.voice_chat import is_echo, without_echo_prefix

from test_gui import JOB_MS
from test_gui_read_aloud import Monitor, window  # noqa: F401 - the window on the virtual sound card

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None or shutil.which("sox") is None,
                                reason="needs the espeak-ng and sox programs")


def _chat_page_listening(window, max_tokens: int):  # noqa: F811
    """The Chat page, greedy answers of at most `max_tokens`, and the live lane's status messages as they come."""
    page = window.text_tab.chat_page
    window.tabs.setCurrentWidget(window.text_tab)
    window.text_tab.setCurrentWidget(page)
    page.settings_panel.max_tokens.setValue(max_tokens)
    page.settings_panel.temperature.setValue(0.0)
    statuses: list[str] = []
    window.live_engine.partial.connect(
        lambda _job, event: statuses.append(event.get("message", "")) if isinstance(event, dict) and event.get("type") == "status" else None)
    return page, statuses


def _wait_listening(qtbot, statuses: list[str]) -> None:
    """Listening with the speech model loaded: the status after "Loading the speech model" (or the first, if it
    loaded before)."""
    qtbot.waitUntil(lambda: bool(statuses) and statuses[-1].startswith("Listening on")
                    and (len(statuses) > 2 or "Loading" not in " ".join(statuses)), timeout=JOB_MS)


def test_echo_of_the_answer_is_told_from_a_new_question():
    answer = "The capital of France is Paris. It lies on the river Seine."
    assert is_echo("the capital of France is Paris", answer)
    assert is_echo("It lies on the river sane.", answer)  # a word misheard
    assert not is_echo("What about Germany?", answer)
    assert not is_echo("", answer)
    assert is_echo("The cap", answer, partial=True) and is_echo("Paris. It li", answer, partial=True)  # cut words
    assert not is_echo("What about Germ", answer, partial=True)
    assert without_echo_prefix("on the river Seine. Stop. What about Germany?", answer) == "Stop. What about Germany?"
    assert without_echo_prefix("What about Germany?", answer) == "What about Germany?"


def test_a_spoken_question_gets_a_spoken_answer(qtbot, window, virtual_microphone):  # noqa: F811
    page, statuses = _chat_page_listening(window, max_tokens=24)
    chats: list[dict] = []
    window.engine.finished_job.connect(lambda _job, r: chats.append(result_dict(r)) if isinstance(r, dict) and "turn" in r else None)
    readings: list[dict] = []
    window.read_aloud.state_changed.connect(
        lambda _owner, speaking: readings.append(window.read_aloud.last_report or {}) if not speaking else None)

    window.voice_chat.button.click()
    assert window.voice_chat.active and page.read_along.checkbox.isChecked()
    _wait_listening(qtbot, statuses)
    monitor = Monitor()
    try:
        question = virtual_microphone.speak("What is the capital of France?")
        virtual_microphone.play(question)
        asked_at = time.monotonic()
        qtbot.waitUntil(lambda: bool(chats), timeout=JOB_MS)
        qtbot.waitUntil(lambda: bool(readings) and not window.read_aloud.speaking, timeout=JOB_MS)
        assert monitor.loud_after(asked_at + 0.5), "the answer was heard on the sink"
    finally:
        monitor.close()
    stored = [(m.role, m.content) for m in page.conversations.messages(page.current)]
    assert stored[0][0] == "user" and "capital" in stored[0][1].lower() and "france" in stored[0][1].lower()
    assert stored[1] == ("assistant", chats[0]["text"]) and chats[0]["text"].strip()
    assert readings[-1].get("sentences"), readings
    assert len([role for role, _ in stored if role == "user"]) == 1, "the answer's echo was not taken for a question"
    window.voice_chat.button.click()
    assert not window.voice_chat.active


def test_speaking_over_the_answer_interrupts_it(qtbot, window, virtual_microphone):  # noqa: F811
    """Barge-in: a question spoken while the answer is read (onto the same sink the microphone hears, so the
    microphone gets both) stops the reading and becomes the next turn; the answer's echo alone never does."""
    page, statuses = _chat_page_listening(window, max_tokens=160)
    readings: list[tuple[int | None, bool]] = []  # (job, speaking) as the reader changes state
    window.read_aloud.state_changed.connect(lambda _owner, speaking: readings.append((window.read_aloud.job_id, speaking)))
    reports: dict[int, dict] = {}  # each reading's own report, by job
    window.read_aloud.engine.finished_job.connect(
        lambda job, result: reports.__setitem__(job, result) if isinstance(result, dict) and "sentences" in result else None)

    # the speaker is nearer the microphone than the loudspeaker is: the question comes in louder than the echo.
    # Made before the answer starts and kept short, so it ends while even a one-sentence answer (about 7 s) plays.
    spoken = virtual_microphone.speak("Stop, please. Tell me about Germany.", name="barge-in.wav")
    louder = spoken.with_name("barge-in-louder.wav")
    subprocess.run(["sox", str(spoken), str(louder), "norm", "-1"], check=True)
    window.voice_chat.button.click()
    _wait_listening(qtbot, statuses)
    monitor = Monitor()
    try:
        virtual_microphone.play(virtual_microphone.speak("Describe the city of Paris in five sentences."))
        qtbot.waitUntil(lambda: window.read_aloud.speaking and bool(window.read_aloud.played), timeout=JOB_MS)
        first_reading = window.read_aloud.job_id
        qtbot.wait(1000)  # into the answer's first sentence
        assert window.read_aloud.job_id == first_reading, "the answer's own echo did not stop it"
        virtual_microphone.play(louder)
        qtbot.waitUntil(lambda: len([m for m in page.conversations.messages(page.current) if m.role == "user"]) >= 2,
                        timeout=JOB_MS)
    finally:
        monitor.close()
        window.voice_chat.button.click()
    users = [m.content for m in page.conversations.messages(page.current) if m.role == "user"]
    # The interrupting phrase is the next turn. Its words are Whisper's of the question mixed with the answer's echo
    # until the reading stopped ("...tell me about his money and our capital city" in one run): which of them come
    # through varies, so only that it is a turn of its own, and not the answer's text, is asserted.
    assert len(users) == 2, users
    assert users[1].strip() and users[1] != page.conversations.messages(page.current)[1].content, users
    qtbot.waitUntil(lambda: first_reading in reports or window.read_aloud.job_id != first_reading, timeout=JOB_MS)
    assert window.read_aloud.job_id != first_reading, "the first reading is over"
    report = reports.get(first_reading)
    assert report is None or report["stopped"], f"the first answer was cut short, not read to its end: {report}"
