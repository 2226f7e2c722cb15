"""The Translate tab for real (offscreen): real widgets, the engine process, a tiny MarianMT model."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
from PySide6.QtWidgets import QAbstractButton, QComboBox, QPlainTextEdit, QSpinBox  # noqa: E402

from desktop_ai.gui.main_window import MainWindow  # noqa: E402
from responsiveness import EventLoopProbe  # noqa: E402
from test_gui import ENGINE_START_MS, JOB_MS, window  # noqa: E402, F401

PARAGRAPHS = (
    "The house is small. The garden is green.\n"
    "A second line of the first paragraph.\n"
    "\n"
    "Here is another paragraph. It has two sentences!\n"
    "\n"
    "\n"
    "The last one asks a question? Yes."
)


def _translate(qtbot, win: MainWindow, text: str, folder, beams: int = 1):
    page = win.translate_tab
    page.model_picker.select(str(folder))
    page.input.setPlainText(text)
    page.beams.setValue(beams)
    with qtbot.waitSignal(win.engine.finished_job, timeout=JOB_MS) as blocker:
        page.translate_button.click()
    return blocker.args[1]


def test_translate_streams_and_keeps_paragraphs(qtbot, window, tiny_marian_dir):
    page = window.translate_tab
    partials: list[object] = []
    window.engine.partial.connect(lambda job, text: partials.append(text))
    probe = EventLoopProbe()
    probe.start()
    result = _translate(qtbot, window, PARAGRAPHS, tiny_marian_dir)
    responsiveness = probe.stop()
    assert partials and all(isinstance(p, str) for p in partials), "the page so far must arrive while translating"
    assert not result.stopped and result.sentences == 7
    out = page.output.toPlainText()
    assert out == result.text
    in_lines, out_lines = PARAGRAPHS.split("\n"), out.split("\n")
    assert len(out_lines) == len(in_lines), "paragraphs and line breaks are kept"
    assert all(not o.strip() for i, o in zip(in_lines, out_lines) if not i.strip()), "blank lines stay blank"
    assert "7 sentences" in page.stats.text() and "from the cache" in page.stats.text() and "on cpu" in page.stats.text()
    assert result.runtime == "ctranslate2" and "with ctranslate2" in page.stats.text(), "the tab says which runtime ran"
    assert page.translate_button.isEnabled() and not page.stop_button.isEnabled()
    assert not page.progress_bar.isVisible()
    responsiveness.assert_responsive()


def test_stop_keeps_the_translation_so_far(qtbot, window, tiny_marian_dir):
    page = window.translate_tab
    page.model_picker.select(str(tiny_marian_dir))
    page.input.setPlainText(" ".join(f"Sentence number {i} is here." for i in range(200)))
    page.beams.setValue(1)
    window.engine.partial.connect(lambda job, text: page.stop_button.isEnabled() and page.stop_button.click())
    with qtbot.waitSignal(window.engine.finished_job, timeout=JOB_MS) as blocker:
        page.translate_button.click()
    result = blocker.args[1]
    assert result.stopped
    assert result.translated < 200
    assert page.output.toPlainText() == result.text
    assert "Stopped" in page.notice.text()
    assert not page.stop_button.isEnabled() and page.translate_button.isEnabled()


def test_editing_one_sentence_translates_only_that_one(qtbot, window, tiny_marian_dir):
    first = _translate(qtbot, window, PARAGRAPHS, tiny_marian_dir)
    assert first.translated == first.sentences
    edited = PARAGRAPHS.replace("The garden is green.", "The garden is very green.")
    second = _translate(qtbot, window, edited, tiny_marian_dir)
    assert second.translated == 1 and second.cached == second.sentences - 1
    assert "1 translated" in window.translate_tab.stats.text()


def test_offline_default_pair_names_the_model(qtbot, tmp_path, monkeypatch):
    empty = tmp_path / "empty-hub-cache"
    empty.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(empty))  # the engine process inherits it
    win = MainWindow()
    qtbot.addWidget(win)
    try:
        page = win.translate_tab
        page.model_picker.select("")
        page.select_languages("en", "de")
        page.input.setPlainText("Hello world.")
        with qtbot.waitSignal(win.engine.failed, timeout=ENGINE_START_MS + JOB_MS) as blocker:
            page.translate_button.click()
        for text in (blocker.args[1], page.notice.text()):
            assert "opus-mt-en-de" in text and "offline" in text
        assert page.translate_button.isEnabled()
    finally:
        win.close()


def test_unlisted_pair_is_a_message_not_a_job(qtbot, window):
    page = window.translate_tab
    page.model_picker.select("")
    page.select_languages("de", "fr")
    page.input.setPlainText("Hallo Welt.")
    page.translate_button.click()
    assert "opus-mt-de-fr" in page.notice.text() and "From folder" in page.notice.text()
    assert page.job_id is None and not window.engine.busy


def test_swap_moves_the_translation_into_the_input(qtbot, window):
    page = window.translate_tab
    page.select_languages("en", "fr")
    page.input.setPlainText("Good morning.")
    page.output.setPlainText("Bonjour.")
    page.swap_button.click()
    assert page.languages() == ("fr", "en")
    assert page.input.toPlainText() == "Bonjour."
    assert page.output.toPlainText() == ""


def test_empty_input_is_a_message_not_a_job(qtbot, window):
    page = window.translate_tab
    page.input.setPlainText("  \n\n ")
    page.translate_button.click()
    assert "nothing to translate" in page.notice.text()
    assert page.job_id is None and not window.engine.busy


def test_open_txt_loads_utf8_and_refuses_binary(qtbot, window, tmp_path):
    page = window.translate_tab
    good = tmp_path / "page.txt"
    good.write_text("Grüße aus Köln.\n\nZweiter Absatz.", encoding="utf-8")
    assert page.load_file(good)
    assert page.input.toPlainText() == "Grüße aus Köln.\n\nZweiter Absatz."
    bad = tmp_path / "picture.txt"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00\x00")
    assert not page.load_file(bad)
    assert "not a UTF-8 text file" in page.notice.text()
    assert not page.load_file(tmp_path / "missing.txt")
    assert "Cannot read" in page.notice.text()
    assert page.input.toPlainText() == "Grüße aus Köln.\n\nZweiter Absatz.", "a failed open keeps the input"


def test_every_translate_control_has_an_accessible_name(window):
    kinds = (QAbstractButton, QComboBox, QPlainTextEdit, QSpinBox)
    nameless = [
        type(w).__name__ for kind in kinds for w in window.translate_tab.findChildren(kind) if not w.accessibleName()
        and not isinstance(w.parent(), (QComboBox, QSpinBox))
    ]
    assert nameless == []


def test_translate_settings_survive_a_restart(qtbot, tiny_marian_dir):
    first = MainWindow()
    qtbot.addWidget(first)
    page = first.translate_tab
    page.select_languages("fr", "en")
    page.beams.setValue(6)
    page.compression_picker.select("int8")
    page.model_picker.select(str(tiny_marian_dir))
    page.input.setPlainText("Bonjour tout le monde.")
    first.close()
    second = MainWindow()
    qtbot.addWidget(second)
    page = second.translate_tab
    assert page.languages() == ("fr", "en")
    assert page.beams.value() == 6
    assert page.compression_picker.compression().value == "int8"
    assert page.model_picker.folder() == str(tiny_marian_dir)
    assert page.input.toPlainText() == "Bonjour tout le monde."
    second.close()
