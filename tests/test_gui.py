"""The window for real (pytest-qt, offscreen): real widgets, signals, the engine process, tiny models."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent
from PySide6.QtWidgets import QAbstractButton, QApplication, QComboBox, QLineEdit, QPlainTextEdit, QSpinBox, QDoubleSpinBox

from desktop_ai.gui.main_window import MainWindow

from responsiveness import EventLoopProbe

ENGINE_START_MS = 90_000
JOB_MS = 120_000


def url_mime(*urls: QUrl) -> QMimeData:
    mime = QMimeData()
    mime.setUrls(list(urls))
    return mime


def drag_and_drop(target, mime: QMimeData) -> None:
    """What a drag from a file manager delivers to a widget (a view's viewport): enter, move, drop, each accepted."""
    assert target.acceptDrops()
    events = (
        QDragEnterEvent(QPoint(40, 40), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier),
        QDragMoveEvent(QPoint(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier),
        QDropEvent(QPointF(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier),
    )
    for event in events:
        QApplication.sendEvent(target, event)
        assert event.isAccepted(), type(event).__name__


@pytest.fixture
def window(qtbot):
    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: win.engine.ready_info is not None, timeout=ENGINE_START_MS)
    yield win
    win.close()


def _generate(qtbot, win: MainWindow, prompt: str, model: Path | str, max_tokens: int = 8, temperature: float = 0.0):
    page = win.text_tab.generate_page
    page.model_picker.select(str(model))
    page.prompt.setPlainText(prompt)
    page.max_tokens.setValue(max_tokens)
    page.temperature.setValue(temperature)
    with qtbot.waitSignal(win.engine.finished_job, timeout=JOB_MS) as blocker:
        page.generate_button.click()
    return blocker.args[1]


def test_window_has_every_job(window):
    tabs = [window.tabs.tabText(i) for i in range(window.tabs.count())]
    assert tabs == ["Text", "Translate", "Image", "Speech"]
    assert window.tabs.widget(3) is window.speech_tab
    image = window.image_side
    assert [image.tabText(i) for i in range(image.count())] == ["Recognize", "My photo labels"]
    assert (image.widget(0), image.widget(1)) == (window.image_tab, window.photo_labels_tab)
    assert window.device_label.text().startswith("Device: cpu")
    assert window.state_label.text() == "Idle"
    assert "hits" in window.cache_label.text()


def test_every_control_has_an_accessible_name(window):
    kinds = (QAbstractButton, QComboBox, QLineEdit, QPlainTextEdit, QSpinBox, QDoubleSpinBox)
    nameless = [
        type(w).__name__ for kind in kinds for w in window.text_tab.findChildren(kind) if not w.accessibleName() and w.isVisibleTo(window)
        and not isinstance(w.parent(), (QComboBox, QSpinBox, QDoubleSpinBox))
    ]
    assert nameless == []


def test_generate_streams_tokens_and_reports(qtbot, window, tiny_causal_lm_dir):
    partials: list[str] = []
    window.engine.partial.connect(lambda job, text: partials.append(text))
    result = _generate(qtbot, window, "hello there", tiny_causal_lm_dir, max_tokens=12)
    page = window.text_tab.generate_page
    assert partials, "tokens must arrive while generating"
    assert page.output.toPlainText().strip() == result.text.strip()
    assert 0 < result.new_tokens <= 12, "a real answer, within max tokens"
    assert "tokens" in page.stats.text()
    assert page.generate_button.isEnabled() and not page.stop_button.isEnabled()
    qtbot.waitUntil(lambda: window.state_label.text() == "Idle", timeout=5000)


def test_second_identical_greedy_run_is_a_cache_hit(qtbot, window, tiny_causal_lm_dir):
    first = _generate(qtbot, window, "the cache", tiny_causal_lm_dir)
    second = _generate(qtbot, window, "the cache", tiny_causal_lm_dir)
    assert not first.from_cache and second.from_cache
    assert second.text == first.text
    qtbot.waitUntil(lambda: "1 hits" in window.cache_label.text(), timeout=5000)
    assert "from cache" in window.text_tab.generate_page.stats.text()


def test_stop_keeps_the_text_so_far(qtbot, window, tiny_long_causal_lm_dir):
    page = window.text_tab.generate_page
    page.model_picker.select(str(tiny_long_causal_lm_dir))
    page.prompt.setPlainText("a long answer please")
    page.max_tokens.setValue(4000)
    page.temperature.setValue(0)  # greedy: a 4000-token answer, so Stop lands in the middle (see the fixture)
    window.engine.partial.connect(lambda job, text: page.stop_button.isEnabled() and page.stop_button.click())
    with qtbot.waitSignal(window.engine.finished_job, timeout=JOB_MS) as blocker:
        page.generate_button.click()
    result = blocker.args[1]
    assert result.stopped
    assert 0 < result.new_tokens < 4000
    assert "Stopped" in page.notice.text()
    assert page.output.toPlainText().strip() == result.text.strip()


def test_empty_prompt_is_a_message_not_a_job(qtbot, window):
    page = window.text_tab.generate_page
    page.prompt.setPlainText("   \n ")
    page.generate_button.click()
    assert "prompt is empty" in page.notice.text()
    assert page.job_id is None and not window.engine.busy


def test_missing_model_folder_is_a_clear_message(qtbot, window, tmp_path):
    page = window.text_tab.generate_page
    page.model_picker.select(str(tmp_path / "no-such-model"))
    page.prompt.setPlainText("hi")
    with qtbot.waitSignal(window.engine.failed, timeout=JOB_MS) as blocker:
        page.generate_button.click()
    assert "does not exist" in blocker.args[1]
    assert "does not exist" in page.notice.text()
    assert page.generate_button.isEnabled()


def test_huge_prompt_is_truncated_with_a_notice(qtbot, window, tiny_causal_lm_dir):
    result = _generate(qtbot, window, "word " * 20_000, tiny_causal_lm_dir, max_tokens=4)
    assert any("truncated" in notice for notice in result.notices)
    assert "truncated" in window.text_tab.generate_page.notice.text()


def test_classify_with_labels_shows_sorted_bars(qtbot, window, tiny_embedding_dir):
    page = window.text_tab.classify_page
    page.model_picker.select(str(tiny_embedding_dir))
    page.labels_radio.setChecked(True)
    page.labels.setText("sport, politics, science, sport")
    page.input.setPlainText("first line\nsecond line\n\nthird line")
    with qtbot.waitSignal(window.engine.finished_job, timeout=JOB_MS) as blocker:
        page.classify_button.click()
    batch = blocker.args[1]
    assert page.results.topLevelItemCount() == 3
    top = page.results.topLevelItem(0)
    assert top.childCount() == 3
    scores = [top.child(i).data(2, 0x0101) for i in range(3)]
    assert scores == sorted(scores, reverse=True)
    assert abs(sum(scores) - 1.0) < 1e-3
    assert "more than once" in page.notice.text()
    assert page.results_as_tsv().count("\n") == 3  # Copy and Save…, row by row: tests/test_gui_features_text.py


def test_one_label_is_refused_with_a_message(qtbot, window, tiny_embedding_dir):
    page = window.text_tab.classify_page
    page.model_picker.select(str(tiny_embedding_dir))
    page.labels_radio.setChecked(True)
    page.labels.setText("sport")
    page.input.setPlainText("a line")
    with qtbot.waitSignal(window.engine.failed, timeout=JOB_MS):
        page.classify_button.click()
    assert "at least two" in page.notice.text()


def test_settings_and_drafts_survive_a_restart(qtbot, tiny_causal_lm_dir):
    first = MainWindow()
    qtbot.addWidget(first)
    page = first.text_tab.generate_page
    page.prompt.setPlainText("my unfinished draft")
    page.max_tokens.setValue(321)
    page.compression_picker.select("int8")
    page.model_picker.select(str(tiny_causal_lm_dir))
    first.text_tab.classify_page.labels.setText("red, green")
    first.close()
    second = MainWindow()
    qtbot.addWidget(second)
    page = second.text_tab.generate_page
    assert page.prompt.toPlainText() == "my unfinished draft"
    assert page.max_tokens.value() == 321
    assert page.compression_picker.compression().value == "int8"
    assert page.model_picker.model_ref() == str(tiny_causal_lm_dir)
    assert second.text_tab.classify_page.labels.text() == "red, green"
    second.close()


def _start_long_generation(qtbot, win: MainWindow, prompt: str, model: Path) -> None:
    """Start a 4000-token greedy answer (the long tiny Llama: see its fixture) and return once the first tokens arrive.

    A sampled 200-token answer could end before the test acted on it, on a busy CI machine.
    """
    page = win.text_tab.generate_page
    page.model_picker.select(str(model))
    page.prompt.setPlainText(prompt)
    page.max_tokens.setValue(4000)
    page.temperature.setValue(0)
    with qtbot.waitSignal(win.engine.partial, timeout=JOB_MS):
        page.generate_button.click()


def test_closing_while_generating_stops_cleanly(qtbot, window, tiny_long_causal_lm_dir):
    _start_long_generation(qtbot, window, "keep going", tiny_long_causal_lm_dir)
    process = window.engine._process
    started = time.perf_counter()
    window.close()
    assert time.perf_counter() - started < 15
    assert not process.is_alive()
    assert process.exitcode == 0, "the engine must stop on its own, not be killed"
    assert not window.engine.isRunning()


def test_engine_crash_is_reported_and_recovers(qtbot, window, tiny_causal_lm_dir, tiny_long_causal_lm_dir):
    page = window.text_tab.generate_page
    _start_long_generation(qtbot, window, "crash now", tiny_long_causal_lm_dir)
    with qtbot.waitSignal(window.engine.failed, timeout=JOB_MS) as blocker:
        window.engine._process.kill()
    assert "stopped unexpectedly" in blocker.args[1]
    assert page.prompt.toPlainText() == "crash now", "the user's text is kept"
    assert page.generate_button.isEnabled()
    result = _generate(qtbot, window, "again", tiny_causal_lm_dir, max_tokens=3)
    assert 0 < result.new_tokens <= 3 and result.text.strip(), "the restarted engine answers"


def test_window_stays_responsive_while_a_model_loads_and_runs(qtbot, window, tiny_causal_lm_dir):
    probe = EventLoopProbe()
    probe.start()
    _generate(qtbot, window, "responsive?", tiny_causal_lm_dir, max_tokens=64, temperature=0.7)
    responsiveness = probe.stop()
    responsiveness.assert_responsive()


# --- runtimes in the Text tab ----------------------------------------------------------------------

def _compression_item(page, value: str):
    picker = page.compression_picker
    index = picker.findData(value)
    return picker.model().item(index), picker.itemData(index, Qt.ItemDataRole.ToolTipRole)


def test_text_tab_runtime_setting_and_compression_that_does_not_apply(qtbot, tiny_causal_lm_dir):
    from desktop_ai.engine.runtimes import llama_cpp

    win = MainWindow()
    qtbot.addWidget(win)
    page = win.text_tab.generate_page
    # Defaults: the fastest runtime for the model, int8 (not fp32) where compression applies.
    assert page.runtime_picker.runtime() == "auto"
    assert page.runtime_picker.accessibleName() == "Runtime"
    assert page.model_picker.model_ref() == "smollm2-135m-instruct-q4"  # the embedded GGUF
    if llama_cpp.available():
        assert page.effective_runtime() == "llama.cpp"
        assert not page.compression_picker.isEnabled()
        assert "already quantized" in page.compression_picker.toolTip()
    page.runtime_picker.select("transformers")
    assert page.compression_picker.isEnabled()
    assert page.compression_picker.compression().value == "int8"
    page.compression_picker.select("prune")
    # CTranslate2 cannot prune: the choice is greyed out with the reason, and int8 takes its place.
    page.model_picker.select(str(tiny_causal_lm_dir))
    page.runtime_picker.select("ctranslate2")
    prune, tip = _compression_item(page, "prune")
    assert not prune.isEnabled() and "does not prune" in tip
    assert page.compression_picker.compression().value == "int8"
    assert _compression_item(page, "int8")[0].isEnabled()
    win.close()
    # The runtime setting survives a restart.
    again = MainWindow()
    qtbot.addWidget(again)
    assert again.text_tab.generate_page.runtime_picker.runtime() == "ctranslate2"
    again.close()


def test_without_llama_cpp_the_window_says_how_to_get_it(qtbot, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    win = MainWindow()
    qtbot.addWidget(win)
    picker = win.text_tab.generate_page.runtime_picker
    index = picker.findData("llama.cpp")
    assert not picker.model().item(index).isEnabled()
    assert "pip install llama-cpp-python==0.3.36" in picker.itemData(index, Qt.ItemDataRole.ToolTipRole)
    page = win.text_tab.generate_page
    assert page.effective_runtime() == "transformers"  # the embedded GGUF then runs on transformers
    assert page.compression_picker.isEnabled()
    win.close()


def test_the_status_bar_says_which_runtime_ran(qtbot, window, tiny_causal_lm_dir):
    page = window.text_tab.generate_page
    page.runtime_picker.select("ctranslate2")
    result = _generate(qtbot, window, "which runtime?", tiny_causal_lm_dir, max_tokens=4)
    assert result.runtime == "ctranslate2"
    assert window.runtime_label.text() == "Runtime: ctranslate2"
    assert "ctranslate2 on cpu" in page.stats.text()


def test_the_embedded_gguf_answers_through_llama_cpp_in_the_window(qtbot, window):
    from llama_cpp_gate import require_llama_cpp

    require_llama_cpp()
    page = window.text_tab.generate_page
    result = _generate(qtbot, window, "Say hello.", "smollm2-135m-instruct-q4", max_tokens=12)
    assert result.runtime == "llama.cpp" and result.compression == "Q4_1 (GGUF)"
    assert result.text.strip() and page.output.toPlainText().strip() == result.text.strip()
    assert window.runtime_label.text() == "Runtime: llama.cpp"


def test_the_status_bar_runtime_follows_an_image_job_after_a_generation(qtbot, window, tiny_causal_lm_dir, tmp_path,
                                                                        monkeypatch):
    """Issue 25: the runtime beside the model is the one of the job they describe, not the last generation's."""
    from packaged_photos import packaged_photos

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    window.text_tab.generate_page.runtime_picker.select("ctranslate2")
    assert _generate(qtbot, window, "first a generation", tiny_causal_lm_dir, max_tokens=3).runtime == "ctranslate2"
    assert window.runtime_label.text() == "Runtime: ctranslate2"
    tab = window.image_tab
    window.show_page(tab)
    photo = tmp_path / "flower.jpg"
    photo.write_bytes(packaged_photos()[1].read_bytes())
    with qtbot.waitSignal(window.engine.finished_job, timeout=JOB_MS) as blocker:
        tab.recognize([str(photo)])
    assert blocker.args[1].runtime == "onnxruntime"
    assert window.runtime_label.text() == "Runtime: onnxruntime"
    assert "onnxruntime" in window.model_label.text()
    assert "jobs lane" in window.runtime_label.toolTip()


def test_a_long_status_message_is_elided_in_its_own_space_with_the_whole_text_in_its_tooltip(qtbot):
    """Issue 25: the job message never runs into the jobs label beside it; what does not fit ends in '…'."""
    window = MainWindow()  # the status bar's layout needs no engine: not waiting for it keeps the test short
    qtbot.addWidget(window)
    window.show()
    window.resize(720, 500)
    qtbot.waitUntil(lambda: window.width() <= 760)
    message = "Answered (llama.cpp on cpu, 128 tokens at 74.2 tokens/s): " + "a long explanation " * 12
    window.show_message(message)
    label = window.message_label
    qtbot.waitUntil(lambda: label.text() != message)
    assert window.current_message() == message and label.toolTip() == message
    assert label.text().endswith("…") and message.startswith(label.text()[:-1])
    shown = label.fontMetrics().horizontalAdvance(label.text())
    assert shown <= label.contentsRect().width(), "the elided text fits its own label"
    right_edge = label.mapTo(window, label.rect().topRight()).x()
    assert right_edge < window.state_label.mapTo(window, window.state_label.rect().topLeft()).x(), \
        "the message stops before the jobs label"
    assert window.state_label.text() in ("Idle", "Starting engine…")
    narrow = len(label.text())
    window.resize(1600, 500)
    qtbot.waitUntil(lambda: len(label.text()) > narrow, timeout=5000)  # a wider window shows more of it
    window.close()
