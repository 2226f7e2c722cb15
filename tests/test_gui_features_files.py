"""README features of the Image and Translate tabs that no test touched, used as a user does (issue 17, "README
features with no test"): Image's Open files… and Open folder…, a re-dropped photo coming from the cache, the
offline message; Translate's Open…, From folder…, Copy and Save…. Photos: tests/packaged_photos.py (every install
has them), the embedded EfficientNet-Lite0; translation: the tests' tiny MarianMT."""

from __future__ import annotations

import shutil

from PySide6.QtCore import Qt, QUrl
from PySide6.QtWidgets import QApplication, QFileDialog

from desktop_ai.gui.widgets import FROM_DISK
from packaged_photos import TOP1, packaged_photos
from test_gui import JOB_MS, url_mime, window  # noqa: F401 - the window fixture
from test_gui_image import _drop, _rows


def _labels(tab) -> dict[str, str]:
    return {name: row.text(1) for name, row in _rows(tab).items()}


def test_image_open_files_open_folder_and_a_photo_dropped_again(qtbot, window, tmp_path, monkeypatch):
    """Open files… and Open folder… (the dialogs answered by the test) recognise the photos with the embedded
    model; the same photo dropped again comes back from the result cache, and the window says so."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tab = window.image_tab
    window.show_page(tab)
    china, flower = packaged_photos()
    monkeypatch.setattr(QFileDialog, "getOpenFileNames", lambda *a, **k: ([str(china)], "Images"))
    with qtbot.waitSignal(window.engine.finished_job, timeout=JOB_MS) as blocker:
        qtbot.mouseClick(tab.open_files_button, Qt.MouseButton.LeftButton)
    assert _labels(tab) == {"china.jpg": TOP1["china.jpg"]}
    assert not blocker.args[1].results[0].from_cache

    folder = tmp_path / "holiday"
    (folder / "day 2").mkdir(parents=True)
    shutil.copyfile(flower, folder / "day 2" / "flower.jpg")  # in a subfolder: found too
    (folder / "notes.txt").write_text("not a photo\n", encoding="utf-8")
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(folder))
    with qtbot.waitSignal(window.engine.finished_job, timeout=JOB_MS) as blocker:
        qtbot.mouseClick(tab.open_folder_button, Qt.MouseButton.LeftButton)
    recognised = [r for r in blocker.args[1].results if r.ok]
    assert [r.predictions[0].label for r in recognised] == [TOP1["flower.jpg"]]
    assert _labels(tab)["flower.jpg"] == TOP1["flower.jpg"]

    with qtbot.waitSignal(window.engine.finished_job, timeout=JOB_MS) as blocker:
        _drop(tab, url_mime(QUrl.fromLocalFile(str(china))))
    (again,) = blocker.args[1].results
    assert again.from_cache and again.predictions[0].label == TOP1["china.jpg"]
    rows = [tab.results.topLevelItem(i) for i in range(tab.results.topLevelItemCount())]
    cached_rows = [row.text(0) for row in rows if row.toolTip(0).endswith("(from the result cache)")]
    assert cached_rows == ["china.jpg"], "the row says it came from the cache"
    assert "1 from cache" in window.current_message() or "1 from cache" in tab.notice.text()


def test_image_model_that_needs_a_download_offline_says_what_to_do(qtbot, tmp_path, monkeypatch):
    """An online model chosen while offline: the tab says it is not downloaded and how to get it; nothing crashes."""
    from desktop_ai.gui.main_window import MainWindow
    from test_gui import ENGINE_START_MS

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # an empty torchvision cache, for the engine too
    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window.engine.ready_info is not None, timeout=ENGINE_START_MS)
    tab = window.image_tab
    window.show_page(tab)
    tab.model_picker.select("mobilenet_v3_large")
    with qtbot.waitSignal(window.engine.failed, timeout=JOB_MS) as blocker:
        _drop(tab, url_mime(QUrl.fromLocalFile(str(packaged_photos()[0]))))
    message = blocker.args[1]
    shown = tab.notice.text()
    assert "offline" in message.lower() or "not downloaded" in message.lower(), message
    assert "MobileNetV3" in shown or "mobilenet" in shown.lower(), shown
    assert window.engine.isRunning() and tab.open_files_button.isEnabled()
    window.close()


def test_translate_open_from_folder_copy_and_save(qtbot, window, tiny_marian_dir, tmp_path, monkeypatch):
    """Open .txt… fills the input, From folder… picks a MarianMT folder, Translate, then Copy and Save… keep it."""
    page = window.translate_tab
    window.tabs.setCurrentWidget(page)
    source = tmp_path / "page.txt"
    source.write_text("Hello world. How are you?\n\nA second paragraph.", encoding="utf-8")
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(source), "Text files (*.txt)"))
    qtbot.mouseClick(page.open_button, Qt.MouseButton.LeftButton)
    assert page.input.toPlainText() == source.read_text(encoding="utf-8")

    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(tiny_marian_dir))
    picker = page.model_picker
    picker.showPopup()
    view = picker.view()
    row = picker.findData(FROM_DISK)
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=view.visualRect(view.model().index(row, 0)).center())
    qtbot.waitUntil(lambda: picker.folder() == str(tiny_marian_dir), timeout=5000)

    with qtbot.waitSignal(window.engine.finished_job, timeout=JOB_MS) as blocker:
        qtbot.mouseClick(page.translate_button, Qt.MouseButton.LeftButton)
    result = blocker.args[1]
    assert result.sentences == 3 and result.translated == 3
    translation = page.output.toPlainText()
    assert translation.strip() and translation.count("\n\n") == 1, "the paragraphs are kept"

    QApplication.clipboard().clear()
    qtbot.mouseClick(page.copy_button, Qt.MouseButton.LeftButton)
    assert QApplication.clipboard().text() == translation
    target = tmp_path / "translation.txt"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), ""))
    qtbot.mouseClick(page.save_button, Qt.MouseButton.LeftButton)
    assert target.read_text(encoding="utf-8") == translation
    assert str(target) in window.current_message()
