"""Read aloud in the window (pytest-qt, offscreen), played on the PulseAudio null sink and heard on its monitor:
a speaker button beside every text, Stop, the settings, and a chat answer spoken while it is still being written.
Synthesis runs in the engine lane: the GUI thread only submits and listens."""

from __future__ import annotations

import os
import shutil
import threading
import time

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from desktop_ai.gui.chat.chat_page import result_dict
from desktop_ai.gui.main_window import MainWindow
from desktop_ai.gui.read_aloud import READ_LABEL, STOP_LABEL, ReadAloudSettingsDialog

from test_gui import ENGINE_START_MS, JOB_MS

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs the espeak-ng program")


class Monitor:
    """Records the null sink's monitor in a thread, each block with the time it arrived."""

    def __init__(self) -> None:
        from desktop_ai.engine.audio.microphone import MicrophoneStream

        self.stream = MicrophoneStream().start()
        self.blocks: list[tuple[float, np.ndarray]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            block = self.stream.read(timeout=0.05)
            if len(block):
                self.blocks.append((time.monotonic(), block))

    def first_sound_at(self, threshold: float = 0.02) -> float | None:
        return next((at for at, block in list(self.blocks) if np.max(np.abs(block)) > threshold), None)

    def loud_after(self, when: float, threshold: float = 0.02) -> bool:
        return any(np.max(np.abs(block)) > threshold for at, block in list(self.blocks) if at > when)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.stream.stop()


@pytest.fixture
def window(qtbot, virtual_microphone):
    """The window started after the virtual sound card, so its engine lanes play there."""
    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: win.engine.ready_info is not None, timeout=ENGINE_START_MS)
    yield win
    win.close()


@pytest.fixture
def monitor(virtual_microphone):
    recording = Monitor()
    yield recording
    recording.close()


def test_every_text_has_a_named_speaker_button(qtbot, window):
    buttons = {
        "generated text": window.text_tab.generate_page.speak_button,
        "translation": window.translate_tab.speak_button,
        "transcript": window.speech_tab.speak_button,
    }
    for what, button in buttons.items():
        assert button.accessibleName() == f"Read {what} aloud" and button.text() == READ_LABEL
    chat = window.text_tab.chat_page
    answer = chat.message_view.add_message("assistant", "An answer.")
    question = chat.message_view.add_message("user", "A question?")
    assert answer.speak_button.accessibleName() == "Read answer aloud"
    assert not hasattr(question, "speak_button")
    assert chat.read_along.checkbox.accessibleName() == "Read answers aloud"


def test_speaker_button_reads_the_translation_and_stop_silences_it(qtbot, window, monitor):
    page = window.translate_tab
    page.output.setPlainText("The weather is lovely today. We will walk along the river and look at the boats. "
                             "Then we will have lunch in the little square.")
    reader = window.read_aloud
    page.speak_button.click()
    assert page.speak_button.text() == STOP_LABEL and reader.speaking
    qtbot.waitUntil(lambda: monitor.first_sound_at() is not None, timeout=JOB_MS)
    page.speak_button.click()  # Stop
    stopped_at = time.monotonic()
    assert page.speak_button.text() == READ_LABEL and not reader.speaking
    qtbot.waitUntil(lambda: time.monotonic() - stopped_at > 1.0, timeout=5000)
    assert not monitor.loud_after(stopped_at + 0.4), "the sound went on after Stop"


def test_a_reading_ends_by_itself_and_a_bad_text_is_said(qtbot, window, monitor):
    page = window.text_tab.generate_page
    page.output.setPlainText("Good morning.")
    with qtbot.waitSignal(window.read_aloud.state_changed, timeout=JOB_MS,
                          check_params_cb=lambda owner, speaking: owner is page.speak_button and not speaking):
        page.speak_button.click()
    assert monitor.first_sound_at() is not None and page.speak_button.text() == READ_LABEL
    assert window.read_aloud.last_report["sentences"] == ["Good morning."]
    page.output.setPlainText("Der Zug nach Berlin fährt heute wegen des Wetters etwas später ab.")
    with qtbot.waitSignal(window.read_aloud.failed, timeout=JOB_MS) as failed:
        page.speak_button.click()
    assert "looks like German" in failed.args[0]
    assert "Reading aloud: This text looks like German" in window.current_message()
    assert page.speak_button.text() == READ_LABEL


def test_read_aloud_settings_are_chosen_and_kept(qtbot, window):
    dialog = ReadAloudSettingsDialog(window.read_aloud, window)
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: dialog.device.count() > 1, timeout=JOB_MS)  # listed by the engine lane
    assert dialog.voice.itemData(0) == "" and "en_US-joe-medium" in dialog.voice.itemText(0)
    pulse = dialog.device.findData("pulse")
    assert pulse > 0, [dialog.device.itemText(i) for i in range(dialog.device.count())]
    dialog.device.setCurrentIndex(pulse)
    dialog.speed.setValue(1.5)
    dialog.accept()
    assert (window.read_aloud.speed, window.read_aloud.device, window.read_aloud.voice) == (1.5, "pulse", None)
    window.save_settings()
    again = MainWindow()
    qtbot.addWidget(again)
    try:
        assert (again.read_aloud.speed, again.read_aloud.device) == (1.5, "pulse")
    finally:
        again.close()


def test_a_chat_answer_is_spoken_before_it_has_finished_writing(qtbot, window, monitor):
    page = window.text_tab.chat_page
    window.tabs.setCurrentWidget(window.text_tab)
    window.text_tab.setCurrentWidget(page)
    page.settings_panel.max_tokens.setValue(60)
    page.settings_panel.temperature.setValue(0.0)
    page.read_along.checkbox.setChecked(True)
    results: list[tuple[float, dict]] = []
    window.engine.finished_job.connect(lambda _job, result: results.append((time.monotonic(), result)))
    page.input.setPlainText("Write a long story about a fox and a dog.")
    page.send()
    failures: list[str] = []
    window.engine.failed.connect(lambda _job, message: failures.append(message))
    spoken: list[str] = []
    window.read_aloud.sentence_spoken.connect(spoken.append)
    try:  # the first sentence is made into speech, then heard
        qtbot.waitUntil(lambda: bool(spoken) or any("turn" in r for _, r in results) or bool(failures), timeout=JOB_MS)
        qtbot.waitUntil(lambda: monitor.first_sound_at() is not None or any("turn" in r for _, r in results)
                        or bool(failures), timeout=JOB_MS)
    except Exception as error:  # say how far the answer and the reading got
        raise AssertionError(f"answer so far {page.job_text!r}, sentences made {spoken}, lane jobs "
                             f"{window.engine.running_jobs()}") from error
    assert not failures, failures
    heard = monitor.first_sound_at()
    assert heard is not None and page.running, "the answer was heard while it was still being written"
    answer = page.message_view.last("assistant")
    assert answer is not None and answer.speak_button.text() == STOP_LABEL  # its own button can stop it
    qtbot.waitUntil(lambda: any("turn" in r for _, r in results), timeout=JOB_MS)
    finished_at, chat = next((at, result_dict(r)) for at, r in results if "turn" in r)
    assert heard < finished_at and not chat["stopped"]
    assert page.conversations.messages(page.current)[-1].content == chat["text"]  # the turn is saved as text
    assert window.read_aloud.speaking, "the rest of the answer is still being read"
    window.read_aloud.stop()  # Stop: silence
    stopped_at = time.monotonic()
    assert not window.read_aloud.speaking
    qtbot.waitUntil(lambda: time.monotonic() - stopped_at > 1.0, timeout=5000)
    assert not monitor.loud_after(stopped_at + 0.4)
