"""The Image tab for real (pytest-qt, offscreen): real drops, the engine process, real ImageNet weights."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent
from PySide6.QtWidgets import QAbstractButton, QApplication, QComboBox, QFileDialog, QLineEdit, QSpinBox

from desktop_ai.engine.tasks.image_classification import ImageResult, LabelScore, RecognitionBatch
from desktop_ai.gui.image_tab import RESULT_ROLE, ImageTab, save_image_results
from desktop_ai.gui.main_window import MainWindow
from desktop_ai.gui.widgets import FROM_DISK
from desktop_ai.gui.worker import EngineThread

from responsiveness import EventLoopProbe
from test_gui import JOB_MS, drag_and_drop, url_mime, window  # noqa: F401

SHARED = Path(__file__).resolve().parents[2] / "shared" / "models"
MODEL = SHARED / "mobilenet_v2_int8" / "model.pt"
SAMPLES = SHARED / "sample_images"
needs_shared = pytest.mark.skipif(not MODEL.exists(), reason="../shared/models is absent")
# What ../shared's MobileNetV2 (int8) says about the packaged photos: palace (77 %), and the daisy is honeycomb (75 %).
FOLDER_TOP1 = {"china.jpg": "palace", "flower.jpg": "honeycomb"}


def _drop(tab: ImageTab, mime: QMimeData) -> None:
    drag_and_drop(tab.results.viewport(), mime)


def _use_shared_model(tab: ImageTab) -> None:
    tab.model_picker.select(str(MODEL))
    tab.compression_picker.select("none")


def _rows(tab: ImageTab) -> dict[str, object]:
    return {tab.results.topLevelItem(i).text(0): tab.results.topLevelItem(i) for i in range(tab.results.topLevelItemCount())}


@pytest.fixture
def lone_tab(qtbot):
    """The tab on an engine that is never started: for what must not reach the engine at all."""
    from desktop_ai.engine.models.store import ModelStore

    engine = EngineThread()
    tab = ImageTab(engine, ModelStore(Path(os.environ["DESKTOP_AI_HOME"]) / "models"), lambda: "cpu")
    qtbot.addWidget(tab)
    tab.show()
    yield tab
    assert engine.process_pid is None


@needs_shared
def test_dropped_photos_folders_and_a_text_file_are_recognised(qtbot, window, tmp_path):  # noqa: F811
    tab = window.image_tab
    window.show_page(tab)
    _use_shared_model(tab)
    from packaged_photos import packaged_photos

    notes = tmp_path / "notes.txt"
    notes.write_text("not a photo\n")
    album = tmp_path / "album"  # a folder, its photos in a subfolder too: every photo in it is recognised
    (album / "later").mkdir(parents=True)
    china, flower = packaged_photos()
    (album / china.name).write_bytes(china.read_bytes())
    (album / "later" / flower.name).write_bytes(flower.read_bytes())
    (album / "later" / "readme.md").write_text("not a photo, and not listed: a folder's photos are what counts\n")
    files = [SAMPLES / "dog.jpg", album, SAMPLES / "bird.jpg", SAMPLES / "wasmedge_input.jpg", notes]
    names = ["dog.jpg", china.name, flower.name, "bird.jpg", "wasmedge_input.jpg", "notes.txt"]
    partials: list[int] = []
    window.engine.partial.connect(lambda job, payload: partials.append(len(payload)))
    probe = EventLoopProbe()
    probe.start()
    with qtbot.waitSignal(window.engine.finished_job, timeout=JOB_MS) as blocker:
        _drop(tab, url_mime(*(QUrl.fromLocalFile(str(f)) for f in files)))
        assert tab.stop_button.isEnabled()
    responsiveness = probe.stop()
    batch: RecognitionBatch = blocker.args[1]
    assert partials, "rows must arrive while the job runs"
    assert len(batch.results) == 6 and not batch.stopped
    assert tab.results.topLevelItemCount() == 6
    order = [tab.results.topLevelItem(i).text(0) for i in range(6)]
    assert order == names, "rows end in the order the files were dropped, a folder's photos in its place"
    assert [r.path for r in batch.results][1:3] == [str(album / china.name), str(album / "later" / flower.name)]
    rows = _rows(tab)
    assert "Samoyed" in rows["dog.jpg"].text(1)
    assert "drake" in rows["bird.jpg"].text(1)
    assert "banana" in rows["wasmedge_input.jpg"].text(1)
    assert FOLDER_TOP1[china.name] in rows[china.name].text(1) and FOLDER_TOP1[flower.name] in rows[flower.name].text(1)
    for name in names[:-1]:
        assert not rows[name].icon(0).isNull(), f"{name} has a thumbnail"
        assert rows[name].childCount() == 5
        assert 0.0 < rows[name].data(2, 0x0101) <= 1.0
    assert "not an image" in rows["notes.txt"].text(1)
    assert not rows["notes.txt"].icon(0).isNull(), "a failed file is marked"
    assert rows["notes.txt"].childCount() == 0
    responsiveness.assert_responsive()
    assert not tab.stop_button.isEnabled() and not tab.progress_bar.isVisible()
    assert "6 image(s), 1 failed" in tab.stats.text()
    assert "could not be recognised" in tab.notice.text()
    assert window.model_label.text() == f"Model: {MODEL.name} (from disk) · pytorch", "the model and the runtime that ran it"

    tsv = tab.results_as_tsv().splitlines()
    assert len(tsv) == 7 and tsv[1].split("\t")[0] == str(SAMPLES / "dog.jpg")
    out = tmp_path / "results.csv"
    tab.export_csv(out)
    table = list(csv.reader(io.StringIO(out.read_text())))
    assert table[0][:3] == ["path", "label_1", "score_1"] and table[0][-1] == "error"
    assert len(table) == 7


def test_a_web_address_is_listed_with_a_message_and_never_sent(qtbot, lone_tab):
    _drop(lone_tab, url_mime(QUrl("https://example.com/cat.jpg")))
    assert "only files on this computer can be recognised; save the image first" in lone_tab.notice.text().lower()
    assert lone_tab.job_id is None
    assert lone_tab.results.topLevelItemCount() == 1
    assert lone_tab.results.topLevelItem(0).text(1).lower().startswith("only files on this computer can be recognised")


def test_text_is_not_a_drop(qtbot, lone_tab):
    mime = QMimeData()
    mime.setText("just words")
    enter = QDragEnterEvent(QPoint(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(lone_tab.results.viewport(), enter)
    assert not enter.isAccepted()


def test_every_control_is_named_and_a_model_file_is_a_file_dialog(qtbot, lone_tab, monkeypatch, tmp_path):
    kinds = (QAbstractButton, QComboBox, QLineEdit, QSpinBox)
    nameless = [
        type(w).__name__ for kind in kinds for w in lone_tab.findChildren(kind)
        if not w.accessibleName() and not isinstance(w.parent(), (QComboBox, QSpinBox))
    ]
    assert nameless == []
    assert not lone_tab.arch_combo.isEnabled(), "a catalogue model knows its architecture"
    model_file = tmp_path / "my_model.pth"
    asked: list[str] = []
    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(lambda *a, **k: (asked.append(k.get("filter", "")) or str(model_file), "")))
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(lambda *a, **k: pytest.fail("image models are files")))
    picker = lone_tab.model_picker
    index = picker.findData(FROM_DISK)
    picker.setCurrentIndex(index)
    picker.activated.emit(index)
    assert asked and "*.pt" in asked[0] and "*.pth" in asked[0]
    assert picker.model_ref() == str(model_file)
    assert lone_tab.arch_combo.isEnabled(), "a state_dict file needs its architecture"


@needs_shared
def test_stop_during_a_big_folder_keeps_the_results_so_far(qtbot, window, tmp_path):  # noqa: F811
    from PIL import Image

    folder = tmp_path / "many"
    folder.mkdir()
    base = Image.new("RGB", (64, 64), (200, 120, 40))
    for i in range(300):
        image = base.copy()
        image.putpixel((i % 64, i // 64), (i % 256, 0, 255))  # distinct bytes: the cache cannot answer them all
        image.save(folder / f"img_{i:03d}.png")
    tab = window.image_tab
    _use_shared_model(tab)
    window.engine.partial.connect(lambda job, payload: tab.stop_button.isEnabled() and tab.stop_button.click())
    with qtbot.waitSignal(window.engine.finished_job, timeout=JOB_MS) as blocker:
        _drop(tab, url_mime(QUrl.fromLocalFile(str(folder))))
    batch: RecognitionBatch = blocker.args[1]
    assert batch.stopped
    assert 0 < tab.results.topLevelItemCount() < 300
    assert tab.results.topLevelItemCount() == len(batch.results)
    assert not tab.stop_button.isEnabled()
    assert "Stopped" in tab.notice.text()


def test_export_csv_writes_a_header_and_one_line_per_image(tmp_path):
    results = [
        ImageResult("/photos/a.jpg", [LabelScore("cat", 0.9), LabelScore("dog, hound", 0.1)]),
        ImageResult("/photos/b.jpg", [LabelScore("car", 0.5), LabelScore("bus", 0.3), LabelScore("van", 0.2)]),
        ImageResult("/photos/c.txt", error="c.txt is not an image file"),
    ]
    out = tmp_path / "out.csv"
    out.write_text("an older file")
    save_image_results(out, results)
    table = list(csv.reader(io.StringIO(out.read_text())))
    assert table[0] == ["path", "label_1", "score_1", "label_2", "score_2", "label_3", "score_3", "error"]
    assert len(table) == 4
    assert table[1][:5] == ["/photos/a.jpg", "cat", "0.900000", "dog, hound", "0.100000"]
    assert table[1][5:] == ["", "", ""]
    assert table[3][0] == "/photos/c.txt" and table[3][-1] == "c.txt is not an image file"
    assert not (tmp_path / "out.csv.part").exists()


def test_image_settings_survive_a_restart(qtbot):
    first = MainWindow()
    qtbot.addWidget(first)
    first.image_tab.top_k.setValue(7)
    first.image_tab.arch_combo.setCurrentText("resnet18")
    first.image_tab.compression_picker.select("int8")
    first.image_tab.model_picker.select(str(MODEL))
    first.close()
    second = MainWindow()
    qtbot.addWidget(second)
    tab = second.image_tab
    assert tab.top_k.value() == 7
    assert tab.arch_combo.currentText() == "resnet18"
    assert tab.architecture() == "resnet18"
    assert tab.compression_picker.compression().value == "int8"
    assert tab.model_picker.model_ref() == str(MODEL)
    assert tab.arch_combo.isEnabled()
    second.close()


# --- the embedded model, and sorting into folders ---------------------------------------------------------

def test_embedded_model_is_the_offline_default_and_a_drop_sorts_into_folders(qtbot, window, tmp_path, monkeypatch):  # noqa: F811
    """Issue 17 (skips): on photos every install has (tests/packaged_photos.py), so it runs without ../shared."""
    from packaged_photos import TOP1, packaged_photos

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tab = window.image_tab
    window.show_page(tab)
    assert tab.model_picker.model_ref() == "efficientnet-lite0", "the embedded model is the default"
    photos = tmp_path / "photos"
    photos.mkdir()
    names = list(TOP1)
    for source in packaged_photos():
        (photos / source.name).write_bytes(source.read_bytes())
    assert not tab.sort_button.isEnabled()
    with qtbot.waitSignal(window.engine.finished_job, timeout=JOB_MS) as blocker:
        _drop(tab, url_mime(*(QUrl.fromLocalFile(str(photos / n)) for n in names)))
    batch: RecognitionBatch = blocker.args[1]
    assert batch.runtime == "onnxruntime"
    rows = _rows(tab)
    assert [rows[n].text(1) for n in names] == [TOP1[n] for n in names]
    assert "download" not in tab.notice.text().lower()
    assert "EfficientNet-Lite0" in window.model_label.text() and "onnxruntime" in window.model_label.text()
    assert tab.sort_button.isEnabled()

    from PySide6.QtWidgets import QMessageBox

    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.No)
    target = tmp_path / "sorted"
    from desktop_ai.gui import sort_dialog

    def fill(dialog: sort_dialog.SortDialog) -> int:
        dialog.target.setText(str(target))
        dialog.move_check.setChecked(True)
        dialog.min_score.setValue(34)  # between the two top scores (daisy 33 %, palace 35 %)
        return sort_dialog.QDialog.DialogCode.Accepted

    monkeypatch.setattr(sort_dialog.SortDialog, "exec", fill)
    tab.sort_button.click()  # a move, refused at the confirmation: nothing happens
    assert not target.exists() and all((photos / n).exists() for n in names)

    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    with qtbot.waitSignal(window.engine.finished_job, timeout=JOB_MS):
        tab.sort_button.click()
    assert (target / "unsure" / "flower.jpg").is_file() and (target / "palace" / "china.jpg").is_file()
    assert not any(photos.iterdir()), "moved after the confirmation"
    assert "Moved 2 photo(s) into 2 folder(s)" in tab.notice.text()
    assert _rows(tab)["flower.jpg"].data(0, RESULT_ROLE).path == str(target / "unsure" / "flower.jpg"), "rows follow the photos"
