"""Documents in the window (pytest-qt, offscreen, the real engine lane): add a folder, watch its progress and its
failed files, search it, ask a question with the collection ticked, and open a source under the answer."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
from PySide6.QtCore import QObject, Qt, QUrl, Slot
from PySide6.QtGui import QDesktopServices

from desktop_ai.engine.conversations.store import ConversationStore
import document_files
from desktop_ai.gui.main_window import MainWindow
from document_fixtures import folder, written  # noqa: F401
from test_gui import ENGINE_START_MS, JOB_MS


class FileOpener(QObject):
    """Stands in for the desktop's file viewer: QDesktopServices hands it every file:// URL it is asked to open."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[QUrl] = []

    @Slot(QUrl)
    def open(self, url: QUrl) -> None:
        self.urls.append(url)


@pytest.fixture
def opener():
    handler = FileOpener()
    QDesktopServices.setUrlHandler("file", handler, "open")
    yield handler
    QDesktopServices.unsetUrlHandler("file")


def test_add_a_folder_see_progress_search_ask_and_open_a_source(qtbot, folder: Path, tiny_causal_lm_dir: Path,
                                                                opener: FileOpener) -> None:
    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    win.tabs.setCurrentWidget(win.text_tab)
    win.text_tab.setCurrentWidget(win.text_tab.chat_page)
    page = win.text_tab.chat_page
    panel = page.documents
    assert not panel.isVisible(), "a side panel opened on demand"
    page.documents_button.click()
    assert panel.isVisible()
    qtbot.waitUntil(lambda: win.engine.ready_info is not None, timeout=ENGINE_START_MS)
    progress: list[dict] = []
    win.engine.partial.connect(lambda _job, payload: progress.append(payload["progress"])
                               if isinstance(payload, dict) and "progress" in payload else None)
    try:
        panel.add_folder(folder, "manuals")
        assert panel.running and not panel.add_button.isEnabled()
        qtbot.waitUntil(lambda: not panel.running, timeout=JOB_MS)
        assert [p["files_done"] for p in progress] == list(range(1, 11)), "progress after every file"
        assert panel.progress_label.text().startswith("manuals: 8 added, 0 changed, 0 removed, 2 failed")
        assert panel.collections.count() == 1 and panel.checked_collections() == ["manuals"]
        failed = sorted(panel.failed_list.item(i).text() for i in range(panel.failed_list.count()))
        assert [line.split(":")[0] for line in failed] == ["broken.pdf", "locked.pdf"], "the scan was read by OCR"
        assert any("password" in line.lower() or "encrypted" in line.lower() for line in failed), failed

        panel.search_box.setText("quench valve")
        qtbot.keyClick(panel.search_box, Qt.Key.Key_Return)
        qtbot.waitUntil(lambda: panel.results.count() > 0, timeout=JOB_MS)
        assert panel.results.item(0).text().startswith("handbook.pdf, page 3:")
        assert "labelled Q7" in panel.passage.text()
        panel.open_result(panel.results.item(0))
        assert opener.urls[-1].toLocalFile() == str(folder / "handbook.pdf") and opener.urls[-1].fragment() == "page=3"

        page.conversation_list.new_conversation()
        page.settings_panel.model_picker.select(str(tiny_causal_lm_dir))
        page.settings_panel.max_tokens.setValue(4)
        page.input.setPlainText("Which pump model circulates the glycol coolant?")
        qtbot.keyClick(page.input, Qt.Key.Key_Return)
        qtbot.waitUntil(lambda: not page.running and bool(page.sources_views), timeout=JOB_MS)
        view = next(iter(page.sources_views.values()))
        labels = [w.text() for w in view.findChildren(type(panel.progress_label)) if w.accessibleName() == "Source 1"]
        assert labels and labels[0].startswith("[1] handbook.pdf, page 2 (Pumps)"), labels
        view.open_buttons[0].click()
        assert opener.urls[-1].toLocalFile() == str(folder / "handbook.pdf") and opener.urls[-1].fragment() == "page=2"
        view.passage_buttons[0].click()
        assert view.passage.isVisibleTo(view) and "ZX-4471" in view.passage.text()
        with ConversationStore(page.conversations.path) as store:
            assert store.collections(page.current) == ["manuals"], "the conversation keeps its collections"

        progress.clear()  # a file added while the app runs is indexed without a click (folder watching)
        document_files.write_markdown(folder / "pantry.md")
        qtbot.waitUntil(lambda: panel.info["manuals"]["indexed"] == 9, timeout=JOB_MS)
        assert progress and progress[-1]["chunks"] == 3, "only the new file was embedded"
    finally:
        win.close()
