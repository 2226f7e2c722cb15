"""The shared state of one app process: the model store (loaded models) and the result cache.

The window, the CLI and the benchmark each open one, so every tab and command shares loaded models.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from desktop_ai import paths
from desktop_ai.engine.cache import ResultCache
from desktop_ai.engine.models.store import ModelStore

CACHE_FILE_NAME = "results.sqlite"


@dataclass
class Workspace:
    store: ModelStore
    cache: ResultCache

    def close(self) -> None:
        self.cache.close()
        self.store.loaded.clear()


def open_workspace(cache_path: Path | None = None, use_disk_cache: bool = True) -> Workspace:
    root = paths.cache_dir()
    store = ModelStore(converted_dir=root / "converted-models")
    cache = ResultCache((cache_path or root / CACHE_FILE_NAME) if use_disk_cache else None)
    return Workspace(store, cache)
