"""Where user data lives: platformdirs decides, DESKTOP_AI_HOME overrides (tests, portable installs)."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

from desktop_ai import APP_NAME


def _root_override() -> Path | None:
    value = os.environ.get("DESKTOP_AI_HOME")
    return Path(value) if value else None


def _dir(kind: str) -> Path:
    root = _root_override()
    if root is not None:
        path = root / kind
    else:
        path = Path(getattr(platformdirs, f"user_{kind}_dir")(APP_NAME, appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path


def config_dir() -> Path:
    return _dir("config")


def cache_dir() -> Path:
    return _dir("cache")


def data_dir() -> Path:
    return _dir("data")


def log_dir() -> Path:
    return _dir("log")
