"""Settings persist in an INI file in the platform's config dir (not the registry), so they are easy to find."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QSettings

from desktop_ai import paths

SETTINGS_FILE_NAME = "settings.ini"


def app_settings() -> QSettings:
    return QSettings(str(paths.config_dir() / SETTINGS_FILE_NAME), QSettings.Format.IniFormat)


def read(settings: QSettings, key: str, default: Any, kind: type = str) -> Any:
    """QSettings hands back strings from INI files; convert and survive a hand-edited file."""
    value = settings.value(key, default)
    if value is None:
        return default
    try:
        if kind is bool:
            return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")
        return kind(value)
    except (TypeError, ValueError):
        return default
