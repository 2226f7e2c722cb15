"""Install desktop-ai into a freedesktop (Linux) desktop's application menu.

`pip install` puts a `desktop-ai` script into a virtual environment's bin/, which no
application menu knows about. This module writes the XDG desktop entry and the icons into
the user's data folder, with `Exec=` pointing at that script by absolute path, so the menu
entry keeps working although the venv's bin/ is not on the desktop session's PATH.

The entry (resources/desktop-ai.desktop) declares the photos, recordings and .txt files the app reads
(`MimeType=`) and takes them as arguments (`Exec=desktop-ai %F`), so file managers offer "Open with
desktop-ai" and files dropped on the launcher open in their tabs (gui/open_files.py). `update-desktop-database`
(run below when present) is what makes file managers see the MimeType list. The file passes
`desktop-file-validate` (Debian's desktop-file-utils), which the tests run.

No Qt here: the CLI's `install-desktop` command calls this without starting a GUI.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

logger = logging.getLogger(__name__)

APP_ID = "desktop-ai"

# resources/ lies next to the package in a source checkout or an editable install.
_RESOURCES_DIR = Path(__file__).resolve().parent.parent / "resources"

_DESKTOP_FILE = f"{APP_ID}.desktop"
_SVG_ICON = Path("icons") / f"{APP_ID}.svg"
_PNG_ICON = Path("icons") / f"{APP_ID}-256.png"

# Characters that force an Exec argument to be quoted (Desktop Entry spec, "The Exec key").
_EXEC_RESERVED = set(" \t\n\"'\\><~|&;$*?#()`")


def _resources_dir() -> Path:
    """Return the resources folder, failing clearly when the package was installed without it."""
    resources = _RESOURCES_DIR
    missing = [
        name for name in (_DESKTOP_FILE, _SVG_ICON, _PNG_ICON) if not (resources / name).is_file()
    ]
    if missing:
        raise FileNotFoundError(
            f"desktop-ai resources not found in {resources} (missing: "
            f"{', '.join(str(m) for m in missing)}). The desktop entry can only be installed "
            "from a source checkout or an editable install (pip install -e .)."
        )
    return resources


def _default_data_home() -> Path:
    """$XDG_DATA_HOME, or ~/.local/share; the spec says a relative value must be ignored."""
    env = os.environ.get("XDG_DATA_HOME", "")
    if env and Path(env).is_absolute():
        return Path(env)
    return Path.home() / ".local" / "share"


def _default_executable() -> Path:
    """Find the installed `desktop-ai` script: next to this interpreter first (the venv), then PATH."""
    candidate = Path(sys.executable).parent / APP_ID
    if candidate.is_file():
        return candidate
    found = shutil.which(APP_ID)
    if found:
        return Path(found)
    raise FileNotFoundError(
        f"cannot find the '{APP_ID}' executable next to {sys.executable} or on PATH; "
        "install the package first (pip install -e .) or pass the executable explicitly."
    )


def _quote_exec_arg(arg: str) -> str:
    """Quote one Exec argument as the Desktop Entry spec requires (paths with spaces, etc.)."""
    if "\n" in arg or "\r" in arg:
        raise ValueError(f"an Exec argument cannot contain a newline: {arg!r}")
    if any(ch in _EXEC_RESERVED for ch in arg):
        inner = "".join("\\" + ch if ch in '"`$\\' else ch for ch in arg)
        arg = f'"{inner}"'
    # '%' starts a field code; then the string-value escaping applies to backslashes.
    return arg.replace("%", "%%").replace("\\", "\\\\")


def _rewrite_exec(desktop_text: str, executable: Path) -> str:
    """Point every `Exec=desktop-ai ...` line at the absolute executable, keeping its arguments."""
    quoted = _quote_exec_arg(str(executable))
    lines = []
    rewritten = 0
    for line in desktop_text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == "Exec":
            program, space, rest = value.strip().partition(" ")
            if program == APP_ID:
                line = f"Exec={quoted}{space}{rest}"
                rewritten += 1
        lines.append(line)
    if not rewritten:
        raise ValueError(f"no 'Exec={APP_ID}' line found in the desktop entry template")
    return "\n".join(lines) + "\n"


def _write_atomic(dest: Path, data: bytes) -> None:
    """Write via a temporary file and rename, so a menu never sees a half-written entry."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _refresh_caches(data_home: Path) -> None:
    """Best effort: tell menus and icon themes about the new files; harmless where tools are absent."""
    commands = [
        ["update-desktop-database", "-q", str(data_home / "applications")],
    ]
    hicolor = data_home / "icons" / "hicolor"
    if (hicolor / "index.theme").is_file():  # the tool refuses a theme folder without one
        commands.append(["gtk-update-icon-cache", "-q", "-t", "-f", str(hicolor)])
    for cmd in commands:
        if shutil.which(cmd[0]) is None:
            continue
        try:
            subprocess.run(cmd, check=False, timeout=30, capture_output=True)
        except (OSError, subprocess.SubprocessError) as exc:
            logger.debug("%s failed: %s", cmd[0], exc)
    try:  # icon lookups cache by folder mtime
        os.utime(hicolor)
    except OSError:
        pass


def install_desktop_entry(
    executable: Path | None = None,
    data_home: Path | None = None,
    *,
    refresh_caches: bool = True,
) -> list[Path]:
    """Install the .desktop file and icons for the current user; return the paths written.

    `executable` defaults to the `desktop-ai` script of this interpreter's environment (or
    PATH); `data_home` to $XDG_DATA_HOME or ~/.local/share. Running it again overwrites
    the same files, so it doubles as "repair" after moving the venv.
    """
    if not (sys.platform.startswith("linux") or "bsd" in sys.platform):
        raise RuntimeError(
            f"install-desktop is only for freedesktop (Linux) desktops, not {sys.platform}; "
            "on this platform start the app with the 'desktop-ai' command."
        )
    resources = _resources_dir()
    exe = Path(executable).expanduser() if executable is not None else _default_executable()
    exe = exe.absolute()  # absolute, but keep symlinks (e.g. ~/.local/bin shims) as they are
    if not exe.is_file():
        logger.warning("%s does not exist (yet); the menu entry will not start until it does", exe)
    home = Path(data_home).expanduser().absolute() if data_home is not None else _default_data_home()

    desktop_text = (resources / _DESKTOP_FILE).read_text(encoding="utf-8")
    targets: list[tuple[Path, bytes]] = [
        (
            home / "applications" / _DESKTOP_FILE,
            _rewrite_exec(desktop_text, exe).encode("utf-8"),
        ),
        (
            home / "icons" / "hicolor" / "scalable" / "apps" / f"{APP_ID}.svg",
            (resources / _SVG_ICON).read_bytes(),
        ),
        (
            home / "icons" / "hicolor" / "256x256" / "apps" / f"{APP_ID}.png",
            (resources / _PNG_ICON).read_bytes(),
        ),
    ]
    written: list[Path] = []
    for dest, data in targets:
        _write_atomic(dest, data)
        logger.info("wrote %s", dest)
        written.append(dest)

    if refresh_caches:
        _refresh_caches(home)
    logger.info("desktop entry installed: Exec=%s", exe)
    return written
