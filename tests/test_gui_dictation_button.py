"""The microphone on every text box and dictate anywhere from the window (issue 29): without speech, that each of
the four boxes has the same button and that dictated text goes to the box whose button was clicked; one real
dictation into a box through the virtual microphone and the live lane (partial in grey, final at the cursor, Esc
stops, history kept); and the window's global shortcut typing a phrase into another program under Xvfb."""

from __future__ import annotations

import json

from PySide6.QtCore import Qt
from PySide6.QtGui import QTextCursor
from PySide6.QtTest import QTest

from desktop_ai.bench.transcribe import word_errors
from desktop_ai.gui.dictation_button import PARTIAL_COLOR, DictationButton
from test_gui import JOB_MS
from test_gui_speech import _open_window
from virtual_microphone import LIVE_SENTENCE
from xvfb_display import focus, start_typing_target, start_xvfb


def _boxes(win):
    return {"the chat message": win.text_tab.chat_page.input, "the prompt": win.text_tab.generate_page.prompt,
            "the text to translate": win.translate_tab.input, "the texts": win.text_tab.classify_page.input}


def _button(box) -> DictationButton:
    (button,) = box.findChildren(DictationButton)
    return button


def _check_every_box(win, qtbot, monkeypatch) -> None:
    """Each box has the same button; a click submits a dictation with the Speech tab's settings, and the words of
    that dictation (the live lane's events, sent here by hand) go to that box only, spoken commands included."""
    submitted: list[tuple[str, dict]] = []

    def submit(name, kind, params):
        submitted.append((kind, params))
        return 1000 + len(submitted)

    monkeypatch.setattr(win.live_engine, "submit", submit)  # no speech here: the real run follows
    monkeypatch.setattr(win.live_engine, "cancel", lambda job_id=None: win.live_engine.finished_job.emit(
        job_id, {"segments": [], "error": None}))
    boxes = _boxes(win)
    for name, box in boxes.items():
        button = _button(box)
        assert button.accessibleName() == f"Dictate into {name}"
        assert button.focusPolicy() == Qt.FocusPolicy.NoFocus
    for name, box in boxes.items():
        before = {other: b.toPlainText() for other, b in boxes.items()}
        button = _button(box)
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
        kind, params = submitted[-1]
        assert kind == "dictate" and params["model"] == win.speech_tab.model_picker.model_ref()
        assert params["recording_path"].endswith(".wav")
        job = win.box_dictation.job_id
        for text in ("Dear Anna,", "New line.", "Open the window.", "Close the door.", "Scratch that."):
            win.live_engine.partial.emit(job, {"type": "final", "segment": {"start": 0.0, "end": 1.0, "text": text}})
        assert box.toPlainText() == before[name] + "Dear Anna,\nOpen the window."
        assert all(b.toPlainText() == before[other] for other, b in boxes.items() if other != name)
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)  # a second click stops
        assert not button.listening and not button.isChecked()


def _dictate_into_a_box(win, virtual_microphone, qtbot, home) -> None:
    """The real path: the virtual microphone, the live lane, Whisper; into the Translate tab's source at its cursor."""
    win.tabs.setCurrentWidget(win.translate_tab)
    box = win.translate_tab.input
    box.setPlainText("Note: and more")
    cursor = box.textCursor()
    cursor.setPosition(len("Note:"))
    box.setTextCursor(cursor)
    box.setFocus()
    wav = virtual_microphone.speak(LIVE_SENTENCE)
    events: list[dict] = []
    greys: list[bool] = []

    def watch(_job, payload) -> None:  # runs after the button's own slot (connected when the window was built)
        if not isinstance(payload, dict):
            return
        events.append(payload)
        if payload.get("type") == "partial" and payload.get("text", "").strip():
            button = _button(box)
            start = button._partial_start
            probe = QTextCursor(box.document())
            probe.setPosition(start + 2)
            greys.append(probe.charFormat().foreground().color() == PARTIAL_COLOR
                         and payload["text"].split()[0] in box.toPlainText())

    win.live_engine.partial.connect(watch)
    button = _button(box)
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    assert button.isChecked() and button.listening
    qtbot.waitUntil(lambda: any(e.get("type") == "level" for e in events), timeout=JOB_MS)
    virtual_microphone.play(wav, wait=False)
    qtbot.waitUntil(lambda: any(e.get("type") == "final" and e.get("segment") for e in events), timeout=JOB_MS)
    text = box.toPlainText()
    assert text.startswith("Note: ") and text.endswith(" and more"), text
    heard = text[len("Note: "):-len(" and more")]
    assert word_errors(heard, LIVE_SENTENCE) <= 1, text
    assert greys and all(greys), "the phrase in progress was shown in grey at the cursor"
    assert box.textCursor().position() == len("Note: ") + len(heard), "the cursor is after the dictated words"
    with qtbot.waitSignal(win.live_engine.finished_job, timeout=JOB_MS):
        QTest.keyClick(box, Qt.Key.Key_Escape)
    win.live_engine.partial.disconnect(watch)
    assert not button.isChecked() and not button.listening
    assert box.toPlainText() == text, "Esc stopped the dictation and left the text alone"
    documents = {path: json.loads(path.read_text(encoding="utf-8"))
                 for path in (home / "data" / "transcripts").glob("dictation-*.json") if path.stat().st_size}
    finals = [e["segment"]["text"] for e in events if e.get("type") == "final" and e.get("segment")]
    (saved,) = [path for path, doc in documents.items() if [p["text"] for p in doc["phrases"]] == finals]
    assert saved.with_suffix(".wav").is_file(), "the audio is kept with the transcript"


def test_the_microphone_on_every_text_box_and_dictate_anywhere(virtual_microphone, qtbot, monkeypatch, tmp_path,
                                                              _isolated_home):
    """One window for the three parts (an engine start costs seconds on a loaded machine; the model stays loaded)."""
    win = _open_window(qtbot)
    try:
        with monkeypatch.context() as patch:
            _check_every_box(win, qtbot, patch)
        _dictate_into_a_box(win, virtual_microphone, qtbot, _isolated_home)
        with start_xvfb() as display, start_typing_target(display, tmp_path / "target") as target:
            try:
                _dictate_anywhere_from_the_window(win, virtual_microphone, qtbot, display, target)
            finally:
                win.anywhere.close()  # before the X server goes
    finally:
        win.close()


def _dictate_anywhere_from_the_window(win, virtual_microphone, qtbot, display, target) -> None:
    """The window's global shortcut (pressed on the X server) starts live dictation; the phrase is typed into the
    other program, which keeps the focus (the overlay never takes it); the shortcut again stops."""
    from Xlib import X, XK
    from Xlib import display as xdisplay
    from Xlib.ext import xtest

    from desktop_ai.anywhere.x11 import X11Desktop

    assert win.anywhere.start_desktop(X11Desktop(display)) is None, "ctrl+alt+d grabbed"
    overlay = win.anywhere.overlay
    assert overlay.windowFlags() & Qt.WindowType.WindowDoesNotAcceptFocus
    assert overlay.testAttribute(Qt.WidgetAttribute.WA_ShowWithoutActivating)
    focus(display, target.windows["A"])
    before = target.text("A")

    def press_shortcut(key: str = "d") -> None:
        keyboard = xdisplay.Display(display)
        try:
            codes = [keyboard.keysym_to_keycode(XK.string_to_keysym(n)) for n in ("Control_L", "Alt_L", key)]
            for code in codes:
                xtest.fake_input(keyboard, X.KeyPress, code)
            for code in reversed(codes):
                xtest.fake_input(keyboard, X.KeyRelease, code)
            keyboard.sync()
        finally:
            keyboard.close()

    events: list[dict] = []
    win.live_engine.partial.connect(lambda _job, p: events.append(p) if isinstance(p, dict) else None)
    press_shortcut()
    qtbot.waitUntil(lambda: win.anywhere.listening and overlay.isVisible(), timeout=10000)
    qtbot.waitUntil(lambda: any(e.get("type") == "level" for e in events), timeout=JOB_MS)
    virtual_microphone.play(virtual_microphone.speak(LIVE_SENTENCE), wait=False)
    qtbot.waitUntil(lambda: word_errors(target.text("A")[len(before):], LIVE_SENTENCE) <= 1, timeout=JOB_MS)
    assert target.text("B") == "", "nothing went to the other window"
    assert win.anywhere.desktop.focused_window() == f"0x{target.windows['A']:x}", "the focus stayed in the program"
    with qtbot.waitSignal(win.live_engine.finished_job, timeout=JOB_MS):
        press_shortcut()
    assert not win.anywhere.listening and not overlay.isVisible()
    # The setting: another shortcut replaces it (kept in the settings); the old one is given back to the apps.
    assert win.anywhere.set_shortcut("ctrl+alt+e") is None
    assert win.settings.value("dictate_anywhere/shortcut") == "ctrl+alt+e"
    press_shortcut("d")  # if it were still grabbed it would start, and "e" right after would stop again
    press_shortcut("e")
    qtbot.waitUntil(lambda: win.anywhere.listening, timeout=10000)
    with qtbot.waitSignal(win.live_engine.finished_job, timeout=JOB_MS):
        press_shortcut("e")
