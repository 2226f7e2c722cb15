"""The window entry point (what a double-click on desktop-ai starts)."""

from __future__ import annotations

import logging
import sys

from desktop_ai import APP_NAME, __version__
from desktop_ai.logging_setup import configure_logging

logger = logging.getLogger(__name__)


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
    logger.info("desktop-ai %s started", __version__)
    return app.exec()
