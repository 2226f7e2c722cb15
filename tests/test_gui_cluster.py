"""Settings → Cluster for folder jobs, for real (pytest-qt, offscreen): the address is saved, survives a restart,
and reaches the params of folder jobs only, whose engine lane then runs them on the cluster."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
from PySide6.QtCore import QUrl
from PySide6.QtWidgets import QInputDialog

from desktop_ai.gui.main_window import MainWindow

from test_gui import JOB_MS, drag_and_drop, url_mime, window  # noqa: F401

needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed (make test installs it)")


def _menu_action(win: MainWindow, text: str):
    settings = next(a.menu() for a in win.menuBar().actions() if a.text() == "&Settings")
    return next(a for a in settings.actions() if a.text() == text)


def test_the_cluster_address_is_saved_and_comes_back(qtbot, monkeypatch: pytest.MonkeyPatch) -> None:
    first = MainWindow()
    qtbot.addWidget(first)
    asked: list[str] = []

    def answer(parent, title, label, text=""):
        asked.append(text)
        return "  ray://head.example:10001 ", True

    monkeypatch.setattr(QInputDialog, "getText", staticmethod(answer))
    _menu_action(first, "C&luster for folder jobs…").trigger()
    assert asked == [""], "the dialog opens on the address in use (none yet)"
    assert first.cluster_address == "ray://head.example:10001"
    assert first.image_tab.cluster_address() == first.speech_tab.cluster_address() == "ray://head.example:10001"
    first.close()

    second = MainWindow()
    qtbot.addWidget(second)
    assert second.cluster_address == "ray://head.example:10001"
    assert second.speech_tab.cluster_params(folder_job=True) == {"cluster": "ray://head.example:10001"}
    assert second.speech_tab.cluster_params(folder_job=False) == {}, "single files stay on this machine"
    second.set_cluster_address("")
    assert second.image_tab.cluster_params(folder_job=True) == {}
    second.close()


def test_a_dropped_folder_of_recordings_carries_the_address(qtbot, window, tmp_path: Path) -> None:  # noqa: F811
    folder = tmp_path / "recordings"
    folder.mkdir()
    (folder / "a.wav").write_text("not really audio")  # the job fails in the lane; the params are what is checked
    sent: list[dict] = []
    submit = window.live_engine.submit

    def spy(name, kind, params):
        sent.append(params)
        return submit(name, kind, params)

    window.live_engine.submit = spy  # the tab's engine: records what is sent, and sends it on
    window.set_cluster_address("127.0.0.1:1")
    with qtbot.waitSignal(window.live_engine.failed, timeout=JOB_MS) as blocker:
        drag_and_drop(window.speech_tab.transcript.viewport(), url_mime(QUrl.fromLocalFile(str(folder))))
    assert sent and sent[-1]["cluster"] == "127.0.0.1:1" and sent[-1]["paths"] == [str(folder / "a.wav")]
    message = blocker.args[1]
    assert "Nothing answers at 127.0.0.1:1" in message or "desktop-ai[cluster]" in message, message
    assert "Nothing answers at 127.0.0.1:1" in window.speech_tab.notice.text() or "desktop-ai[cluster]" in message


@needs_ray
def test_a_folder_of_photos_runs_on_the_cluster_and_single_photos_here(qtbot, window, tmp_path: Path) -> None:  # noqa: F811
    from packaged_photos import TOP1, photo_folder

    folder = tmp_path / "photos"
    photo_folder(folder, 2)  # photos every install has (china.jpg, flower.jpg)
    window.set_cluster_address("local")
    tab = window.image_tab
    with qtbot.waitSignal(window.engine.finished_job, timeout=JOB_MS * 2) as blocker:
        drag_and_drop(tab.results.viewport(), url_mime(QUrl.fromLocalFile(str(folder))))
    batch = blocker.args[1]
    assert "cluster at local" in batch.runtime, batch.runtime
    assert [Path(r.path).name for r in batch.results] == ["china.jpg", "flower.jpg"]
    assert [r.predictions[0].label for r in batch.results] == [TOP1["china.jpg"], TOP1["flower.jpg"]]
    assert tab.results.topLevelItemCount() == 2 and TOP1["flower.jpg"] in tab.results.topLevelItem(1).text(1)
    assert all(r.thumbnail_png for r in batch.results), "the workers send a thumbnail with each result"
    assert not tab.results.topLevelItem(1).icon(0).isNull()

    with qtbot.waitSignal(window.engine.finished_job, timeout=JOB_MS * 2) as blocker:
        drag_and_drop(tab.results.viewport(), url_mime(QUrl.fromLocalFile(str(folder))))
    again = blocker.args[1]
    assert all(r.from_cache and r.thumbnail_png for r in again.results), "a rerun comes from the cache, thumbnails too"

    with qtbot.waitSignal(window.engine.finished_job, timeout=JOB_MS) as blocker:
        drag_and_drop(tab.results.viewport(), url_mime(QUrl.fromLocalFile(str(folder / "china.jpg"))))
    assert "cluster" not in blocker.args[1].runtime, "a single photo is not a folder job"
