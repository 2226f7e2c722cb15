"""The autosave's promise, as a user meets it: dictate in the real app, the window's process dies (SIGKILL, as a
crash or a power cut would), and the next start brings the phrase back, with the recording beside it.

The first run is the real entry point (`desktop-ai`, a separate process) on its own Xvfb display, recording from the
virtual microphone (tests/virtual_microphone.py); Record is started as a user starts it, with Ctrl+R typed into the
window (xdotool, a system package `make test` installs), the window having opened on the Speech tab the user last
used. The second run is the window again (pytest-qt, in this process) on the same DESKTOP_AI_HOME.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from desktop_ai.bench.transcribe import word_errors  # noqa: E402
from desktop_ai.engine.audio.transcript import TranscriptDocument  # noqa: E402
from desktop_ai.engine.errors import EngineError  # noqa: E402
from virtual_microphone import LIVE_SENTENCE  # noqa: E402

SPEECH_TAB_INDEX = 3  # Text, Translate, Image, Speech (the restarted window checks it opened on the Speech tab)
START_S = 120
PHRASE_S = 120


def _wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.1)
    tail = log.read_text(errors="replace")[-3000:] if log is not None and log.exists() else "(no log)"
    pytest.fail(f"timed out waiting for {what} (app exit code {proc.poll() if proc else None}); log:\n{tail}")


def _start_xvfb() -> tuple[subprocess.Popen, str]:
    """A private X display (Xvfb -displayfd tells which number it took)."""
    read, write = os.pipe()
    xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
                            pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write)
    with os.fdopen(read) as pipe:
        number = pipe.readline().strip()
    assert number, "Xvfb did not start"
    return xvfb, f":{number}"


def _xdotool(display: str, *args: str, found: bool = True) -> str:
    done = subprocess.run(["xdotool", *args], env={**os.environ, "DISPLAY": display}, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0 or not found, f"xdotool {' '.join(args)}: {done.stderr}"
    return done.stdout


def _stop(process: psutil.Process | subprocess.Popen) -> None:
    try:
        if isinstance(process, subprocess.Popen):
            if process.poll() is None:
                process.kill()
                process.wait(10)
        elif process.is_running():
            process.kill()
            process.wait(10)
    except (psutil.Error, subprocess.TimeoutExpired, OSError):
        pass


@pytest.mark.skipif(shutil.which("Xvfb") is None or shutil.which("xdotool") is None,
                    reason="needs Xvfb and xdotool (system packages `make test` installs)")
def test_a_phrase_dictated_before_a_crash_comes_back_with_its_recording(virtual_microphone, qtbot) -> None:
    home = Path(os.environ["DESKTOP_AI_HOME"])
    settings = home / "config" / "settings.ini"
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text(f"[window]\ntab={SPEECH_TAB_INDEX}\n")  # the user last used the Speech tab
    transcripts = home / "data" / "transcripts"
    log = home / "log" / "desktop-ai.log"
    wav = virtual_microphone.speak(LIVE_SENTENCE)

    xvfb, display = _start_xvfb()
    env = {**os.environ, "DISPLAY": display, "QT_QPA_PLATFORM": "xcb"}
    app = subprocess.Popen([str(Path(sys.executable).with_name("desktop-ai"))], env=env, stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    engines: list[psutil.Process] = []
    try:
        windows = _wait_for(lambda: _xdotool(display, "search", "--onlyvisible", "--name", "^desktop-ai$", found=False).split(),
                            START_S, "the window", app, log)
        window_id = windows[0]
        _wait_for(lambda: log.exists() and " started" in log.read_text(), START_S, "the event loop", app, log)
        engines = psutil.Process(app.pid).children()
        _xdotool(display, "windowfocus", "--sync", window_id)
        _xdotool(display, "key", "--clearmodifiers", "ctrl+r")  # Record
        recording = _wait_for(lambda: next(iter(transcripts.glob("dictation-*-1.wav")), None), START_S,
                              "the recording to start", app, log)
        virtual_microphone.play(wav)
        autosave = recording.with_name(recording.name.removesuffix("-1.wav") + ".json")

        def saved_phrases() -> list[str]:
            try:
                return [p.text for p in TranscriptDocument.load(autosave).phrases]
            except EngineError:  # not written yet
                return []

        phrases = _wait_for(saved_phrases, PHRASE_S, "the first phrase in the autosave", app, log)
        app.send_signal(signal.SIGKILL)  # the window's process dies while it is still recording
        assert app.wait(10) == -signal.SIGKILL
    finally:
        _stop(app)
        for engine in engines:  # the engines notice the closed pipe and end; never leave one behind
            try:
                engine.wait(15)
            except (psutil.Error, psutil.TimeoutExpired):
                _stop(engine)
        _stop(xvfb)
    assert word_errors(phrases[0], LIVE_SENTENCE) <= 1, phrases

    from desktop_ai.gui.main_window import MainWindow

    window = MainWindow()  # started again, on the same home
    qtbot.addWidget(window)
    try:
        tab = window.speech_tab
        assert window.tabs.currentWidget() is tab, "the test's settings opened the Speech tab (SPEECH_TAB_INDEX)"
        assert tab.autosave.path == autosave, "the newest autosave comes back after a crash"
        assert tab.transcript.rowCount() >= 1 and tab.transcript.item(0, 2).text() == phrases[0]
        import soundfile

        info = soundfile.info(recording)
        assert info.samplerate == 16000 and info.duration >= tab.document.phrases[0].end, \
            f"the recording beside the transcript holds the phrase: {info.duration:.2f} s"
        tab.transcript.item(0, 2).setText("Open the window, corrected.")  # and an edit is autosaved at once
        assert TranscriptDocument.load(autosave).phrases[0].text == "Open the window, corrected."
    finally:
        window.close()
    assert list(transcripts.glob("dictation-*.json")) == [autosave], "closing left no empty autosave behind"
