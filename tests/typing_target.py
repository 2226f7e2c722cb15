"""Another program to type into (issue 29): two windows, each with a text field, that write their text to files.

Run as `python typing_target.py FOLDER` with QT_QPA_PLATFORM=xcb on an X display. It writes FOLDER/windows.json
({"A": X window id, "B": ...}) once both windows are shown, and FOLDER/A.txt / B.txt on every change of a field
(written whole, then renamed, so a reader never sees half a file). It is a separate process on purpose: the text
must arrive through the X server, as it does in any other app.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from PySide6.QtWidgets import QApplication, QTextEdit


def _write(path: Path, text: str) -> None:
    partial = path.with_suffix(".part")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def main() -> int:
    folder = Path(sys.argv[1])
    app = QApplication(sys.argv[:1])
    edits = {}
    for index, name in enumerate(("A", "B")):
        edit = QTextEdit()
        edit.setWindowTitle(f"typing target {name}")
        edit.setAcceptRichText(False)
        edit.resize(400, 200)
        edit.move(20 + 450 * index, 20)
        edit.textChanged.connect(lambda edit=edit, name=name: _write(folder / f"{name}.txt", edit.toPlainText()))
        edit.show()
        edits[name] = edit
    app.processEvents()
    _write(folder / "windows.json", json.dumps({name: int(edit.winId()) for name, edit in edits.items()}))
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
