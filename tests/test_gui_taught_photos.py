"""Photo labels in the real window: photos dropped on labels (real drops of file URLs), Train in the engine lane,
photos dropped on the results recognised with the user's labels (ImageNet's beside), sorted into folders."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QUrl

from packaged_photos import packaged_photos
from test_gui import JOB_MS, drag_and_drop, url_mime, window  # noqa: F401 - the window fixture
from test_taught_photos import crops


def _drop(widget, paths: list[Path]) -> None:
    drag_and_drop(widget.viewport(), url_mime(*[QUrl.fromLocalFile(str(p)) for p in paths]))


def test_photos_dropped_per_label_teach_recognise_and_sort(qtbot, window, tmp_path: Path) -> None:
    page = window.photo_labels_tab
    window.show_page(page)
    assert window.tabs.currentWidget() is window.image_side and window.image_side.currentWidget() is page, \
        "the photo labels are a page of the Image tab"
    unseen = []
    for label, source in zip(("temple", "flower"), packaged_photos()):
        page.add_label(label)
        _drop(page.labels, crops(source, tmp_path / "teach" / label, label, 5, 0))
        unseen += crops(source, tmp_path / "unseen", label, 2, 5)
    assert {label: len(paths) for label, paths in page.photos.items()} == {"temple": 5, "flower": 5}
    page.name.setCurrentText("garden")
    with qtbot.waitSignal(window.engine.finished_job, timeout=JOB_MS):
        page.train_button.click()
    assert "Cross-validated accuracy:" in page.accuracy.text(), page.notice.text()
    with qtbot.waitSignal(window.engine.finished_job, timeout=JOB_MS):
        _drop(page.results, unseen)
    assert page.result_labels() == {str(p): p.name.split("-")[0] for p in unseen}
    first = page.results.topLevelItem(0)
    assert first.child(first.childCount() - 1).text(1) == "ImageNet"
    with qtbot.waitSignal(window.engine.finished_job, timeout=JOB_MS):
        page.sort_into(tmp_path / "sorted")
    for photo in unseen:
        assert (tmp_path / "sorted" / photo.name.split("-")[0] / photo.name).is_file()

    # the Image tab offers the same labels beside ImageNet's: recognition and Sort into folders use them
    image = window.image_tab
    window.show_page(image)
    assert window.image_side.currentWidget() is image
    picker = image.labels_picker
    assert [picker.itemText(i) for i in range(picker.count())] == ["ImageNet's labels (the model's own)",
                                                                   "Your labels: garden"]
    picker.select("garden")
    with qtbot.waitSignal(window.engine.finished_job, timeout=JOB_MS):
        _drop(image.results, unseen)
    rows = [image.results.topLevelItem(i) for i in range(image.results.topLevelItemCount())]
    assert {row.toolTip(0).splitlines()[0]: row.text(1) for row in rows} == {str(p): p.name.split("-")[0] for p in unseen}
    assert any(rows[0].child(i).text(0) == "ImageNet" for i in range(rows[0].childCount())), "ImageNet's labels beside"
    with qtbot.waitSignal(window.engine.finished_job, timeout=JOB_MS):
        image.sort_into(str(tmp_path / "sorted-in-image-tab"))
    for photo in unseen:
        assert (tmp_path / "sorted-in-image-tab" / photo.name.split("-")[0] / photo.name).is_file()
    picker.select(None)  # ImageNet's labels again: the plain recognition job
    assert picker.classifier() is None
