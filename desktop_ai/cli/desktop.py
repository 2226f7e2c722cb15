"""`install-desktop`: the application-menu entry and icons."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from desktop_ai.cli.output import EXIT_OK, CliError, out

logger = logging.getLogger(__name__)


def cmd_install_desktop(args: argparse.Namespace) -> int:
    """pip puts the script in a venv that no application menu knows; this puts it in the menu."""
    from desktop_ai.desktop_entry import install_desktop_entry

    try:
        written = install_desktop_entry()
    except (RuntimeError, FileNotFoundError, ValueError) as error:
        raise CliError(str(error)) from None
    for path in written:
        out(str(path))
    return EXIT_OK


def add_parsers(commands: Any, common: argparse.ArgumentParser) -> None:
    """install-desktop."""
    install = commands.add_parser("install-desktop", parents=[common], help="add desktop-ai to this Linux desktop's application menu",
                                  description="Write the .desktop file and icons into $XDG_DATA_HOME (or ~/.local/share).")
    install.set_defaults(handler=cmd_install_desktop)
