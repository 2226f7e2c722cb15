"""Text → Classify → My labels in the real window (pytest-qt, offscreen): examples typed and loaded from a file, Train
in the engine lane with the accuracy and confusion table shown, classify, and a correction by double-click."""

from __future__ import annotations

import csv
from pathlib import Path

from PySide6.QtCore import Qt

from taught_examples import split
from test_gui import JOB_MS, window  # noqa: F401 - the window fixture


def _wait_job(qtbot, window, click) -> object:
    with qtbot.waitSignal(window.engine.finished_job, timeout=JOB_MS) as blocker:
        click()
    return blocker.args[1]


def test_teach_train_classify_and_correct_with_a_click(qtbot, window, tmp_path: Path) -> None:
    page = window.text_tab.my_labels_page
    window.text_tab.setCurrentWidget(window.text_tab.classify_section)
    window.text_tab.classify_section.show_my_labels()
    train, test = split(5)
    # sport and cooking typed into the window, weather loaded from a CSV file
    for label in ("sport", "cooking"):
        page.add_label(label)
        for text in (t for t, l in train if l == label):
            qtbot.keyClicks(page.example_box, text)
            qtbot.keyClick(page.example_box, Qt.Key.Key_Return)
    weather = tmp_path / "weather.csv"
    with weather.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([("text", "label"), *[(t, l) for t, l in train if l == "weather"]])
    bad = tmp_path / "bad.csv"
    bad.write_text("one column only\nand another line\n", encoding="utf-8")
    with qtbot.waitSignal(window.engine.failed, timeout=JOB_MS):
        page.load_file(bad)
    assert "bad.csv" in page.notice.text() and "text" in page.notice.text(), page.notice.text()
    with qtbot.waitSignal(page.examples_loaded, timeout=JOB_MS):  # read in the engine lane, not the window's thread
        page.load_file(weather)
    assert {label: len(texts) for label, texts in page.examples.items()} == {"sport": 5, "cooking": 5, "weather": 5}
    page.name.setCurrentText("topics")

    result = _wait_job(qtbot, window, page.train_button.click)
    assert result.classifier["name"] == "topics"
    assert "Cross-validated accuracy:" in page.accuracy.text()
    # which classifier cross-validation chose (the head, the language model or both), with each one's accuracy
    assert "Classifier: " in page.accuracy.text() and "chosen by cross-validation" in page.accuracy.text()
    assert page.confusion.rowCount() == 3 and page.confusion.columnCount() == 3
    total = sum(int(page.confusion.item(r, c).text()) for r in range(3) for c in range(3))
    # every example, or (when the language model was chosen) every example it scored beside its prompt's six
    assert total == result.report.judged and result.report.judged in (15, 9), result.report

    texts = [t for t, _ in test[:3]]
    page.input.setPlainText("\n".join(texts))
    _wait_job(qtbot, window, page.classify_button.click)
    assert [label for _, label in page.result_labels()] == ["sport"] * 3

    # "this one is weather": double-click the weather row under the first text; the lane learns it and the texts
    # are classified again
    top = page.results.topLevelItem(0)
    weather_row = next(top.child(i) for i in range(top.childCount()) if top.child(i).text(0) == "weather")
    page.results.scrollToItem(weather_row)
    rect = page.results.visualItemRect(weather_row)
    qtbot.mouseClick(page.results.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())  # a view double-clicks
    with qtbot.waitSignal(window.engine.finished_job, timeout=JOB_MS):  # on the item it was pressed on
        qtbot.mouseDClick(page.results.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert page.running, "the corrected classifier classifies the texts again"
    with qtbot.waitSignal(window.engine.finished_job, timeout=JOB_MS):
        pass
    assert page.result_labels()[0] == (texts[0], "weather")
    assert [text for text, _ in page.result_labels()] == texts


def test_one_label_is_a_message_in_the_window(qtbot, window) -> None:
    page = window.text_tab.my_labels_page
    page.name.setCurrentText("solo")
    page.add_label("sport")
    page.example_box.setPlainText("A goal!\nA try.")
    with qtbot.waitSignal(window.engine.failed, timeout=JOB_MS):
        page.train_button.click()
    assert "at least two labels" in page.notice.text()
    assert page.train_button.isEnabled()


def test_my_labels_is_a_part_of_the_classify_page(qtbot, window) -> None:
    text_tab = window.text_tab
    section = text_tab.classify_section
    assert [text_tab.tabText(i) for i in range(text_tab.count())] == ["Chat", "Generate", "Classify"]
    assert text_tab.indexOf(text_tab.my_labels_page) == -1 and text_tab.indexOf(text_tab.classify_page) == -1
    window.tabs.setCurrentWidget(text_tab)
    text_tab.setCurrentWidget(section)
    assert section.stack.currentWidget() is text_tab.classify_page and text_tab.classify_page.isVisible()
    qtbot.mouseClick(section.taught_button, Qt.MouseButton.LeftButton)
    assert section.stack.currentWidget() is text_tab.my_labels_page
    assert text_tab.my_labels_page.isVisible() and not text_tab.classify_page.isVisible()
    assert section.taught_button.accessibleName() == "Classify with my labels"
    section.show_typed()
    assert text_tab.classify_page.isVisible()


def test_the_sentiment_mode_says_how_to_train_the_built_in_classifier_then_uses_it(qtbot, window, tmp_path: Path) -> None:
    from desktop_ai.engine.models.store import ModelStore
    from desktop_ai.engine.tasks.builtin_sentiment import NAME, NOT_TRAINED, train_builtin
    from desktop_ai.engine.tasks.taught_classifiers import TaughtLibrary

    page = window.text_tab.classify_page
    page.sentiment_radio.setChecked(True)
    page.input.setPlainText("I loved every minute of this film.\nA dull, lifeless waste of two hours.")
    with qtbot.waitSignal(window.engine.finished_job, timeout=JOB_MS) as blocker:
        page.classify_button.click()
    assert NOT_TRAINED in page.notice.text() and "teach sentiment --builtin" in page.notice.text()
    assert blocker.args[1].results[0].model_id != f"taught:{NAME}"

    # trained (small: the head alone on 8 reviews) into the user's library, which the engine lane reads
    train_builtin(ModelStore(tmp_path / "converted"), TaughtLibrary(), train_per_label=4, test_per_label=0,
                  lm_examples=0, zero_shot=False, device="cpu")
    with qtbot.waitSignal(window.engine.finished_job, timeout=JOB_MS) as blocker:
        page.classify_button.click()
    assert [r.model_id for r in blocker.args[1].results] == [f"taught:{NAME}"] * 2
    assert NOT_TRAINED not in page.notice.text() and page.results.topLevelItemCount() == 2
