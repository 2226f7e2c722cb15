"""The Models window (pytest-qt, offscreen): each state, a download with progress that can be cancelled and
resumed, Remove freeing the space, an added model appearing in a tab's picker, and the offline notice."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtWidgets import QLabel

from desktop_ai.engine.models.catalogue import TASK_GENERATE
from desktop_ai.engine.models.inventory import Inventory
from desktop_ai.engine.models.library import ModelLibrary
from desktop_ai.engine.models.store import ModelStore
from desktop_ai.gui.models_window import ModelsWindow
from desktop_ai.gui.widgets import MANAGE_MODELS, ModelPicker

pytestmark = pytest.mark.timeout(180)
REPO = "distilbert/distilgpt2"  # the catalogue's DistilGPT-2, served by the local Hub (tests/hub_server.py)
WEIGHTS = "model.safetensors"


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _remote(repo_id: str, name: str):
    from desktop_ai.engine.models.downloads import plan_download

    return next(f for f in plan_download(repo_id).files if f.name == name)


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    return ModelStore(tmp_path / "converted")


def make_window(qtbot, store: ModelStore, online: bool | None) -> ModelsWindow:
    window = ModelsWindow(store, inventory=Inventory(store, ModelLibrary(), vram_bytes=None), online=online)
    qtbot.addWidget(window)
    window.confirm_remove = lambda question: True
    window.show()
    return window


def test_offline_the_window_says_so_once_and_each_download_says_how(
    qtbot, store: ModelStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    window = make_window(qtbot, store, online=False)
    assert window.offline_label.isVisible()
    notices = [label for label in window.findChildren(QLabel) if "Offline" in label.text()]
    assert len(notices) == 1
    assert window.state_of("smollm2-135m-instruct-q4") == "embedded"
    needing = [row for row in window.rows.values() if row.download_mb]
    assert any(row.id == "distilgpt2" for row in needing)
    for row in needing:
        assert row.how_to_get and row.how_to_get in window.state_of(row.id), row.id
    assert "models download distilgpt2" in window.state_of("distilgpt2")
    assert not window.download_button.isEnabled()


def test_states_download_progress_cancel_resume_and_remove(qtbot, store: ModelStore, hub_server, tiny_causal_lm_dir: Path) -> None:
    hub_server.add_folder(REPO, tiny_causal_lm_dir)
    hub_server.delay_per_chunk_s = 0.05
    hub_server.chunk = 4096
    from desktop_ai.engine.models import downloads

    downloads.CHUNK_BYTES, old_chunk = 4096, downloads.CHUNK_BYTES
    try:
        window = make_window(qtbot, store, online=True)
        assert not window.offline_label.isVisible()
        assert window.state_of("distilgpt2") == "not downloaded"
        window.select("distilgpt2")
        assert window.download_button.isEnabled()
        window.download_button.click()
        assert window.state_of("distilgpt2") == "downloading"
        weights = _remote(REPO, WEIGHTS)
        partial = downloads.partial_path(REPO, weights)
        qtbot.waitUntil(lambda: window.progress.value() > 0 and "MB/s" in window.progress_label.text(), timeout=30000)
        qtbot.waitUntil(lambda: _size(partial) > 0, timeout=30000)  # the weights are coming
        assert window.cancel_button.isEnabled()
        window.cancel_button.click()
        qtbot.waitUntil(lambda: window.status.text().startswith("Cancelled"), timeout=30000)
        assert "kept to resume" in window.state_of("distilgpt2")
        assert not window.progress.isVisible()
        kept = partial.stat().st_size
        assert 0 < kept < weights.size
        hub_server.delay_per_chunk_s = 0.0
        hub_server.range_headers.clear()
        window.select("distilgpt2")
        window.download_button.click()
        qtbot.waitUntil(lambda: "downloaded to" in window.status.text(), timeout=30000)
        assert "resumed" in window.status.text()
        # nothing starts again from zero: finished files are not fetched again, the partial one from where it stopped
        again = dict(hub_server.range_headers)
        assert again[WEIGHTS] == f"bytes={kept}-", again
        assert set(again) < set(hub_server.repos[REPO].files), again
        assert all(r is None for name, r in again.items() if name != WEIGHTS), again
        assert window.state_of("distilgpt2") == "downloaded"
        on_disk = window.rows["distilgpt2"].size_on_disk_mb
        assert on_disk > 0
        window.select("distilgpt2")
        assert window.remove_button.isEnabled()
        window.remove_button.click()
        assert "MB freed" in window.status.text()
        assert window.state_of("distilgpt2") == "not downloaded"
        assert not downloads.repo_folder(REPO).exists()
    finally:
        downloads.CHUNK_BYTES = old_chunk


def test_a_corrupted_byte_is_reported_in_the_window_and_the_file_deleted(qtbot, store: ModelStore, hub_server,
                                                                        tiny_causal_lm_dir: Path) -> None:
    """The hash check, driven from the window: the local Hub serves the weights with one byte flipped."""
    from desktop_ai.engine.models import downloads

    hub_server.add_folder(REPO, tiny_causal_lm_dir)
    hub_server.corrupt.add(WEIGHTS)
    weights = _remote(REPO, WEIGHTS)
    window = make_window(qtbot, store, online=True)
    window.select("distilgpt2")
    window.download_button.click()
    qtbot.waitUntil(lambda: not window.progress.isVisible(), timeout=30000)  # the download ended, one way or another
    message = window.status.text()
    assert WEIGHTS in message and "does not match the Hub's hash" in message and "deleted" in message, message
    assert not downloads.partial_path(REPO, weights).exists(), "the damaged file is gone"
    assert not (downloads.repo_folder(REPO) / "blobs" / weights.etag).exists()
    assert window.state_of("distilgpt2") != "downloaded"
    assert window.download_button.isEnabled(), "the user can download again"


def test_embedded_models_cannot_be_removed(qtbot, store: ModelStore) -> None:
    window = make_window(qtbot, store, online=False)
    window.select("smollm2-135m-instruct-q4")
    assert not window.remove_button.isEnabled()


def test_an_added_model_file_appears_in_the_tabs_picker(qtbot, store: ModelStore, tmp_path: Path) -> None:
    gguf = tmp_path / "mine.Q8_0.gguf"
    gguf.write_bytes(b"GGUF" + b"\0" * 1000)
    picker = ModelPicker(TASK_GENERATE, store)
    qtbot.addWidget(picker)
    assert picker.findData(MANAGE_MODELS) >= 0
    assert picker.findData(str(gguf)) < 0
    window = make_window(qtbot, store, online=False)
    window.models_changed.connect(picker.refresh_added)
    window.add_path(gguf)
    qtbot.waitUntil(lambda: picker.findData(str(gguf)) >= 0, timeout=10000)
    assert "Added" in window.status.text()
    assert window.state_of("my-mine.q8-0") == "on disk"
    window.select("my-mine.q8-0")
    window.remove_button.click()
    assert "Forgot" in window.status.text() and gguf.exists()


def test_a_bad_file_is_refused_in_the_window(qtbot, store: ModelStore, tmp_path: Path) -> None:
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"nope")
    window = make_window(qtbot, store, online=False)
    window.add_path(bad)
    qtbot.waitUntil(lambda: window.status.text().startswith("Not added"), timeout=10000)
    assert "not a GGUF file" in window.status.text()


def test_hub_search_lists_models_and_gguf_quants(qtbot, store: ModelStore, hub_server, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "tiny.Q4_0.gguf").write_bytes(b"GGUF" + b"\1" * 3000)
    (repo / "tiny.Q8_0.gguf").write_bytes(b"GGUF" + b"\2" * 6000)
    hub_server.add_folder("someone/tiny-GGUF", repo, tags=["gguf"], downloads=42)
    window = make_window(qtbot, store, online=True)
    window.search_box.setText("tiny")
    window.search_button.click()
    qtbot.waitUntil(lambda: window.results.count() == 1, timeout=10000)
    assert "42 downloads" in window.results.item(0).text()
    window.results.setCurrentRow(0)
    qtbot.waitUntil(lambda: window.quant.count() == 2, timeout=10000)
    assert window.quant.itemData(0) == "tiny.Q4_0.gguf"  # smallest first
    window.get_button.click()
    qtbot.waitUntil(lambda: "downloaded to" in window.status.text(), timeout=20000)
    added = [m for m in ModelLibrary().all_models() if m.path.endswith("tiny.Q4_0.gguf")]
    assert added and added[0].task == TASK_GENERATE


def test_the_menu_and_every_tabs_picker_open_the_window_and_added_models_reach_the_tabs(qtbot, tmp_path: Path) -> None:
    from desktop_ai.gui.main_window import MainWindow
    from desktop_ai.gui.translate_tab import TranslationModelPicker

    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    try:
        win.models_action.trigger()
        assert win.models_window.isVisible()
        win.models_window.hide()
        pickers = [*win.findChildren(ModelPicker), *win.findChildren(TranslationModelPicker)]
        assert {p.task for p in win.findChildren(ModelPicker)} >= {"generate", "classify", "recognize", "transcribe"}
        for picker in pickers:
            index = picker.findData(MANAGE_MODELS)
            assert index >= 0, picker.accessibleName()
            picker.setCurrentIndex(index)
            picker.activated.emit(index)
            assert win.models_window.isVisible()
            assert picker.currentData() != MANAGE_MODELS  # the picker keeps the model it had
            win.models_window.hide()
        gguf = tmp_path / "chat.Q4_K_M.gguf"
        gguf.write_bytes(b"GGUF" + b"\0" * 500)
        picker = win.text_tab.generate_page.model_picker
        win.models_window.add_path(gguf)
        qtbot.waitUntil(lambda: picker.findData(str(gguf)) >= 0, timeout=10000)
        box = win.offer_download("DistilGPT-2 (Hugging Face Hub) is not downloaded yet and the Hub cannot be reached")
        assert box is not None and "Download it now" in box.text()
        box.reject()
    finally:
        win.close()
