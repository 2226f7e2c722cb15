"""README features of the Speech tab that no test touched, used as a user does (issue 17, "README features with no
test"): Open audio…, a dropped folder, .txt and .vtt export, PocketSphinx chosen in the engine picker, Ctrl+R and
Esc, and the no-microphone and unplugged messages."""

from __future__ import annotations

import tempfile
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QFileDialog

from desktop_ai.bench.transcribe import word_errors
from test_gui import JOB_MS
from test_gui_speech import FOX, _drop, _espeak, _open_window
from test_transcription import SPHINX_NUMBERS, sphinx_speech
from virtual_microphone import LIVE_SENTENCE, start_virtual_microphone


def test_open_audio_then_export_txt_and_vtt(qtbot, tmp_path, monkeypatch):
    """Open audio… (the dialog answered by the test) transcribes the file; Export… writes .txt and .vtt."""
    wav = _espeak(tmp_path / "fox.wav")
    monkeypatch.setattr(QFileDialog, "getOpenFileNames", lambda *a, **k: ([str(wav)], "Audio files"))
    win = _open_window(qtbot)
    try:
        tab = win.speech_tab
        with qtbot.waitSignal(win.live_engine.finished_job, timeout=JOB_MS):
            qtbot.mouseClick(tab.open_button, Qt.MouseButton.LeftButton)
        assert tab.document.source == str(wav) and word_errors(tab.document.text(), FOX) <= 2, tab.document.text()
        for suffix in ("txt", "vtt"):
            target = tmp_path / f"fox.{suffix}"
            monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), ""))
            qtbot.mouseClick(tab.export_button, Qt.MouseButton.LeftButton)
            assert str(target) in win.current_message()
        assert (tmp_path / "fox.txt").read_text(encoding="utf-8") == tab.document.text() + "\n"
        vtt = (tmp_path / "fox.vtt").read_text(encoding="utf-8").splitlines()
        assert vtt[0] == "WEBVTT" and vtt[1] == ""
        assert vtt[2].startswith("00:00:0") and " --> " in vtt[2] and "." in vtt[2].split(" --> ")[0]
        assert vtt[3] == tab.document.phrases[0].text
    finally:
        win.close()


def test_a_dropped_folder_transcribes_its_audio_files(qtbot, tmp_path):
    """A folder dropped on the transcript: each audio file in it becomes a transcript (the text file is left out)."""
    folder = tmp_path / "recordings"
    folder.mkdir()
    _espeak(folder / "a-fox.wav")
    _espeak(folder / "b-window.wav", LIVE_SENTENCE)
    (folder / "notes.txt").write_text("not audio\n", encoding="utf-8")
    win = _open_window(qtbot)
    try:
        tab = win.speech_tab
        with qtbot.waitSignal(win.live_engine.finished_job, timeout=JOB_MS) as blocker:
            _drop(tab, folder)
        results = blocker.args[1]
        assert [Path(r["path"]).name for r in results] == ["a-fox.wav", "b-window.wav"]
        assert not any(r.get("error") for r in results)
        assert word_errors(results[0]["text"], FOX) <= 2 and word_errors(results[1]["text"], LIVE_SENTENCE) <= 1
        assert tab.document.source == str(folder / "b-window.wav"), "the last file stays on screen"
        saved = sorted(tab.autosave.path.parent.glob("file-*.json"))
        assert len(saved) >= 1
    finally:
        win.close()


def test_pocketsphinx_chosen_in_the_engine_picker(qtbot, tmp_path):
    """Choosing PocketSphinx in the engine picker runs it on the next file (its words checked on speech it can hear)."""
    numbers = sphinx_speech(tmp_path / "numbers.wav")
    win = _open_window(qtbot)
    try:
        tab = win.speech_tab
        picker = tab.engine_picker
        index = picker.findData("sphinx")
        assert index >= 0
        picker.setCurrentIndex(index)
        picker.activated.emit(index)  # what choosing the item in the open list emits
        assert tab.model_picker.model_ref() == "pocketsphinx-en-us"
        with qtbot.waitSignal(win.live_engine.finished_job, timeout=JOB_MS) as blocker:
            _drop(tab, numbers)
        (result,) = blocker.args[1]
        assert (result["engine"], result["model_id"]) == ("sphinx", "pocketsphinx-en-us")
        assert word_errors(tab.document.text(), SPHINX_NUMBERS) <= 2, tab.document.text()
        assert "sphinx" in win.current_message()
    finally:
        win.close()


def test_no_microphone_gets_a_message(qtbot, monkeypatch):
    """No sound server and no capture device: Record says there is no microphone, and the tab stays usable."""
    monkeypatch.setenv("PULSE_SERVER", "unix:/nonexistent/pulse/native")
    win = _open_window(qtbot)
    try:
        tab = win.speech_tab
        with qtbot.waitSignal(win.live_engine.failed, timeout=JOB_MS, check_params_cb=lambda job, message: "microphone" in message):
            qtbot.mouseClick(tab.record_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: not tab.recording, timeout=JOB_MS)
        assert "No microphone was found" in tab.notice.text()
        assert tab.record_button.isEnabled() and tab.open_button.isEnabled()
        assert win.live_engine.isRunning(), "no crash"
    finally:
        win.close()


def test_a_late_no_microphone_answer_leaves_the_transcription_message(qtbot, tmp_path, monkeypatch):
    """The microphone listing runs beside a transcription and can answer after it: its 'no microphone' goes to the
    tab's notice and the picker, and the status bar keeps what the transcription said."""
    monkeypatch.setenv("PULSE_SERVER", "unix:/nonexistent/pulse/native")
    numbers = sphinx_speech(tmp_path / "numbers.wav")
    win = _open_window(qtbot)
    try:
        tab = win.speech_tab
        qtbot.waitUntil(lambda: tab._devices_job is None, timeout=JOB_MS)  # the first listing has answered
        index = tab.engine_picker.findData("sphinx")
        tab.engine_picker.setCurrentIndex(index)
        tab.engine_picker.activated.emit(index)
        with qtbot.waitSignal(win.live_engine.finished_job, timeout=JOB_MS):
            _drop(tab, numbers)
        transcribed = win.current_message()
        assert transcribed.startswith("Transcribed 1 file(s) with sphinx"), transcribed
        with qtbot.waitSignal(win.live_engine.failed, timeout=JOB_MS, check_params_cb=lambda job, message: "microphone" in message):
            tab.refresh_devices()  # a listing that answers after the transcription
        assert "No microphone was found" in tab.notice.text()
        assert "No microphone was found" in tab.input_picker.toolTip()
        assert win.current_message() == transcribed
    finally:
        win.close()


def test_ctrl_r_records_and_esc_stops(virtual_microphone, qtbot):
    """Ctrl+R starts recording, Esc stops it with the phrase kept; Ctrl+R again also stops a recording."""
    win = _open_window(qtbot)
    try:
        tab = win.speech_tab
        win.activateWindow()
        QTest.qWaitForWindowActive(win.windowHandle(), 5000)
        qtbot.waitUntil(lambda: tab.input_picker.count() > 1, timeout=JOB_MS)
        wav = virtual_microphone.speak(LIVE_SENTENCE)
        events: list[dict] = []
        win.live_engine.partial.connect(lambda job, payload: events.append(payload) if isinstance(payload, dict) else None)
        QTest.keyClick(tab.transcript, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
        assert tab.recording, "Ctrl+R started recording"
        qtbot.waitUntil(lambda: any(e.get("type") == "level" for e in events), timeout=JOB_MS)
        virtual_microphone.play(wav, wait=False)
        qtbot.waitUntil(lambda: bool(tab.document.phrases), timeout=JOB_MS)
        with qtbot.waitSignal(win.live_engine.finished_job, timeout=JOB_MS):
            QTest.keyClick(tab.transcript, Qt.Key.Key_Escape)
        assert not tab.recording
        assert word_errors(tab.document.text(), LIVE_SENTENCE) <= 1, tab.document.text()
        events.clear()
        QTest.keyClick(tab.transcript, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
        assert tab.recording
        qtbot.waitUntil(lambda: any(e.get("type") == "level" for e in events), timeout=JOB_MS)
        with qtbot.waitSignal(win.live_engine.finished_job, timeout=JOB_MS):
            QTest.keyClick(tab.transcript, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
        assert not tab.recording and word_errors(tab.document.text(), LIVE_SENTENCE) <= 1, "the first phrase is kept"
    finally:
        win.close()


def test_a_microphone_unplugged_mid_sentence_keeps_what_was_said(virtual_microphone, qtbot):
    """The sound server dies while the sentence is spoken (the microphone is gone): the window says so, and the
    words heard until then stay in the transcript and its autosave."""
    win = _open_window(qtbot)
    try:
        tab = win.speech_tab
        wav = virtual_microphone.speak(LIVE_SENTENCE + " and then we can sit down by the fire and talk about the day")
        events: list[dict] = []
        win.live_engine.partial.connect(lambda job, payload: events.append(payload) if isinstance(payload, dict) else None)
        qtbot.mouseClick(tab.record_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: any(e.get("type") == "level" for e in events), timeout=JOB_MS)
        virtual_microphone.play(wav, wait=False)
        qtbot.waitUntil(lambda: "window" in tab.partial_label.text().lower(), timeout=JOB_MS)
        with qtbot.waitSignal(win.live_engine.finished_job, timeout=JOB_MS):
            virtual_microphone.daemon.kill()  # the microphone goes away mid-sentence
        assert "stopped delivering sound" in tab.notice.text(), tab.notice.text()
        assert "window" in tab.document.text().lower(), tab.document.text()
        assert "window" in " ".join(p.text for p in tab.document.phrases).lower()
        from test_gui_speech import _saved

        assert _saved(tab).text() == tab.document.text(), "what was said is autosaved"
    finally:
        win.close()


def test_refresh_lists_a_microphone_plugged_in_after_the_window_opened(qtbot, tmp_path, monkeypatch):
    """Speech's Refresh (README: "List the microphones again (after plugging one in)"), issue 17's "README features
    with no test". The window opens while no sound server answers at the address the system points to (no
    microphone), so only the system default is offered; then the server starts there (the microphone is plugged in),
    Refresh lists its devices, and the picked one records the spoken sentence."""
    runtime = Path(tempfile.mkdtemp(prefix="vmic-"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    monkeypatch.setenv("PULSE_SERVER", f"unix:{runtime / 'pulse-native'}")  # where the server will listen
    win = _open_window(qtbot)
    try:
        tab = win.speech_tab
        qtbot.waitUntil(lambda: tab._devices_job is None and tab.input_picker.count() >= 1, timeout=JOB_MS)
        before = [tab.input_picker.itemText(i) for i in range(tab.input_picker.count())]
        assert before == ["System default microphone"], before
        with start_virtual_microphone(tmp_path, runtime=runtime) as mic:
            qtbot.mouseClick(tab.refresh_button, Qt.MouseButton.LeftButton)
            qtbot.waitUntil(lambda: tab._devices_job is None and tab.input_picker.count() > 1, timeout=JOB_MS)
            listed = [tab.input_picker.itemText(i) for i in range(1, tab.input_picker.count())]
            assert any("pulse" in name.lower() or "default" in name.lower() for name in listed), listed
            tab.input_picker.setCurrentIndex(1 + next(i for i, name in enumerate(listed)
                                                      if "pulse" in name.lower() or "default" in name.lower()))
            wav = mic.speak(LIVE_SENTENCE)
            events: list[dict] = []
            win.live_engine.partial.connect(lambda job, payload: events.append(payload) if isinstance(payload, dict) else None)
            qtbot.mouseClick(tab.record_button, Qt.MouseButton.LeftButton)
            qtbot.waitUntil(lambda: any(e.get("type") == "level" for e in events), timeout=JOB_MS)
            mic.play(wav)
            qtbot.waitUntil(lambda: word_errors(tab.document.text(), LIVE_SENTENCE) <= 1, timeout=JOB_MS)
            with qtbot.waitSignal(win.live_engine.finished_job, timeout=JOB_MS):
                qtbot.mouseClick(tab.record_button, Qt.MouseButton.LeftButton)
    finally:
        win.close()
