"""The window entry point (what a double-click on desktop-ai starts)."""

from __future__ import annotations

import logging
import signal
import sys

from desktop_ai import APP_NAME, __version__
from desktop_ai.logging_setup import configure_logging

logger = logging.getLogger(__name__)


def _close_on_signals(app) -> object:
    """Ctrl+C in a terminal or a SIGTERM at logout closes the window normally, so drafts and settings are saved.

    Python only runs signal handlers between bytecodes, so a timer wakes the interpreter regularly.
    """
    from PySide6.QtCore import QTimer

    def close(signum: int, _frame: object) -> None:
        logger.info("Signal %d received; closing the window", signum)
        app.closeAllWindows()
        app.quit()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, close)
    timer = QTimer()
    timer.timeout.connect(lambda: None)
    timer.start(250)
    return timer


def main(argv: list[str] | None = None) -> int:
    if not any(getattr(h, "_desktop_ai", False) for h in logging.getLogger().handlers):
        configure_logging()  # started directly, not through the CLI (which has set up logging already)
    from PySide6.QtWidgets import QApplication

    from desktop_ai.gui.main_window import MainWindow

    app = QApplication.instance() or QApplication([sys.argv[0], *(argv or [])])
    app.setApplicationName(APP_NAME)
    app.setApplicationVersion(__version__)
    app.setDesktopFileName(APP_NAME)
    window = MainWindow()
    window.show()
    keep_alive = _close_on_signals(app)
    logger.info("desktop-ai %s started", __version__)
    code = app.exec()
    keep_alive.stop()
    return code
