"""Tests of the freedesktop menu entry installer (no Qt, no models: runs in milliseconds)."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import shlex
import stat
import struct
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from desktop_ai import desktop_entry
from desktop_ai.desktop_entry import install_desktop_entry

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

on_freedesktop = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="desktop entries are a freedesktop (Linux) thing"
)


def _fake_executable(folder: Path) -> Path:
    """A stand-in for the venv's `desktop-ai` script."""
    folder.mkdir(parents=True, exist_ok=True)
    exe = folder / "desktop-ai"
    exe.write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return exe


def _read_desktop(path: Path) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # keys are case-sensitive in desktop entries
    parser.read(path, encoding="utf-8")
    assert parser.has_section("Desktop Entry")
    return parser["Desktop Entry"]


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path} is not a PNG"
    length, chunk_type = struct.unpack(">I4s", data[8:16])
    assert chunk_type == b"IHDR" and length == 13
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _expected_paths(data_home: Path) -> list[Path]:
    return [
        data_home / "applications" / "desktop-ai.desktop",
        data_home / "icons" / "hicolor" / "scalable" / "apps" / "desktop-ai.svg",
        data_home / "icons" / "hicolor" / "256x256" / "apps" / "desktop-ai.png",
    ]


@on_freedesktop
def test_install_writes_entry_and_icons(tmp_path: Path) -> None:
    exe = _fake_executable(tmp_path / "venv" / "bin")
    data_home = tmp_path / "share"

    written = install_desktop_entry(exe, data_home, refresh_caches=False)

    assert written == _expected_paths(data_home)
    for path in written:
        assert path.is_file() and path.stat().st_size > 0

    entry = _read_desktop(written[0])
    assert entry["Type"] == "Application"
    assert entry["Icon"] == "desktop-ai"
    assert entry["Name"] == "desktop-ai"
    assert entry["Terminal"] == "false"
    exec_argv = shlex.split(entry["Exec"])
    assert exec_argv[0] == str(exe)
    assert Path(exec_argv[0]).is_absolute()


@on_freedesktop
def test_icons_are_valid(tmp_path: Path) -> None:
    data_home = tmp_path / "share"
    _, svg, png = install_desktop_entry(
        _fake_executable(tmp_path / "bin"), data_home, refresh_caches=False
    )

    assert _png_size(png) == (256, 256)
    root = ET.parse(svg).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert root.get("viewBox") == "0 0 256 256"
    # the installed icons are the shipped ones, byte for byte
    resources = Path(desktop_entry.__file__).resolve().parent.parent / "resources" / "icons"
    assert svg.read_bytes() == (resources / "desktop-ai.svg").read_bytes()
    assert png.read_bytes() == (resources / "desktop-ai-256.png").read_bytes()


@on_freedesktop
def test_shipped_png_is_small() -> None:
    png = Path(desktop_entry.__file__).resolve().parent.parent / "resources" / "icons" / "desktop-ai-256.png"
    assert png.stat().st_size < 50 * 1024


@on_freedesktop
def test_exec_path_with_spaces_is_quoted(tmp_path: Path) -> None:
    exe = _fake_executable(tmp_path / "my apps" / "bin")
    (desktop, *_) = install_desktop_entry(exe, tmp_path / "share", refresh_caches=False)

    value = _read_desktop(desktop)["Exec"]
    assert value.startswith('"')
    assert shlex.split(value) == [str(exe), "%F"]  # files from "Open with" and launcher drops


@on_freedesktop
def test_reinstall_is_idempotent(tmp_path: Path) -> None:
    exe = _fake_executable(tmp_path / "bin")
    first = install_desktop_entry(exe, tmp_path / "share", refresh_caches=False)
    contents = [p.read_bytes() for p in first]
    second = install_desktop_entry(exe, tmp_path / "share", refresh_caches=False)
    assert second == first
    assert [p.read_bytes() for p in second] == contents
    # no temporary files left behind
    assert sorted(p.name for p in (tmp_path / "share" / "applications").iterdir()) == [
        "desktop-ai.desktop"
    ]


@on_freedesktop
def test_defaults_follow_xdg_and_interpreter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bindir = tmp_path / "env" / "bin"
    exe = _fake_executable(bindir)
    monkeypatch.setattr(sys, "executable", str(bindir / "python"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))

    written = install_desktop_entry(refresh_caches=False)

    assert written == _expected_paths(tmp_path / "xdg")
    assert shlex.split(_read_desktop(written[0])["Exec"])[0] == str(exe)


@on_freedesktop
def test_relative_xdg_data_home_is_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", "relative/share")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))

    written = install_desktop_entry(_fake_executable(tmp_path / "bin"), refresh_caches=False)

    assert written == _expected_paths(tmp_path / "home" / ".local" / "share")


def test_missing_resources_fail_clearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(desktop_entry, "_RESOURCES_DIR", tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="resources"):
        install_desktop_entry(tmp_path / "desktop-ai", tmp_path / "share", refresh_caches=False)
    assert not (tmp_path / "share").exists()


@pytest.mark.parametrize("platform", ["win32", "darwin"])
def test_non_freedesktop_platform_is_refused(
    platform: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "platform", platform)
    with pytest.raises(RuntimeError, match="freedesktop"):
        install_desktop_entry(tmp_path / "desktop-ai", tmp_path / "share", refresh_caches=False)
    assert not (tmp_path / "share").exists()


needs_validator = pytest.mark.skipif(shutil.which("desktop-file-validate") is None,
                                     reason="desktop-file-validate is not installed (Debian: desktop-file-utils)")


@needs_validator
@on_freedesktop
def test_shipped_and_installed_entries_pass_desktop_file_validate(tmp_path: Path) -> None:
    shipped = Path(desktop_entry.__file__).resolve().parent.parent / "resources" / "desktop-ai.desktop"
    (installed, *_) = install_desktop_entry(_fake_executable(tmp_path / "my apps" / "bin"), tmp_path / "share", refresh_caches=False)
    for path in (shipped, installed):
        done = subprocess.run(["desktop-file-validate", str(path)], capture_output=True, text=True)
        assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr


def test_entry_declares_the_files_it_opens() -> None:
    from desktop_ai.engine.tasks.image_files import IMAGE_SUFFIXES

    shipped = Path(desktop_entry.__file__).resolve().parent.parent / "resources" / "desktop-ai.desktop"
    entry = _read_desktop(shipped)
    types = set(filter(None, entry["MimeType"].split(";")))
    assert {"image/jpeg", "image/png", "image/webp", "image/tiff", "audio/wav", "audio/mpeg", "audio/flac", "text/plain"} <= types
    assert len(IMAGE_SUFFIXES) >= 8 and entry["Exec"] == "desktop-ai %F"
