"""Another program to type into: two windows, each with a text field, that report their text in files.

What `bench --task dictate-anywhere` and the dictate-anywhere tests type into. Run as
`python -m desktop_ai.gui.typing_probe FOLDER` with QT_QPA_PLATFORM=xcb on an X display. It writes
FOLDER/windows.json ({"A": X window id, "B": ...}) once both windows are shown; on every change of a field,
FOLDER/A.txt (the whole text, written then renamed, so a reader never sees half a file) and a line in
FOLDER/A.log ({"t": time.monotonic(), "text": ...}: the moment the field changed, on the clock every process
shares). A separate process on purpose: the text must arrive through the X server, as in any other app.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QTextEdit


def _write(path: Path, text: str) -> None:
    partial = path.with_suffix(".part")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


class _Report:
    """Each change on the shared clock at once (one line appended to an open log); the whole text once the burst of
    keys is handled (a zero-time timer), so the probe's own writing costs a typed phrase next to nothing."""

    def __init__(self, folder: Path, name: str, edit: QTextEdit) -> None:
        self.path = folder / f"{name}.txt"
        self.edit = edit
        self.log = open(folder / f"{name}.log", "a", encoding="utf-8")  # noqa: SIM115  (open while the probe runs)
        self.timer = QTimer(singleShot=True, interval=0)
        self.timer.timeout.connect(lambda: _write(self.path, self.edit.toPlainText()))
        edit.textChanged.connect(self.changed)

    def changed(self) -> None:
        self.log.write(json.dumps({"t": time.monotonic(), "text": self.edit.toPlainText()}) + "\n")
        self.log.flush()
        self.timer.start()


def main() -> int:
    folder = Path(sys.argv[1])
    app = QApplication(sys.argv[:1])
    edits = {}
    reports = []
    for index, name in enumerate(("A", "B")):
        edit = QTextEdit()
        edit.setWindowTitle(f"typing target {name}")
        edit.setAcceptRichText(False)
        edit.resize(400, 200)
        edit.move(20 + 450 * index, 20)
        reports.append(_Report(folder, name, edit))
        edit.show()
        edits[name] = edit
    app.processEvents()
    _write(folder / "windows.json", json.dumps({name: int(edit.winId()) for name, edit in edits.items()}))
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
