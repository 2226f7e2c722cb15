"""The result cache: an in-memory LRU in front of an SQLite file, so work done once is never done again.

The file is a convenience, never a risk: a corrupt file is moved aside and rebuilt, a locked one makes the
cache memory-only for the session, and both are logged as warnings while the app keeps working.

Several processes share the file (the window's two lanes, a CLI run beside them): SQLite's WAL mode lets
readers go on while one writer writes, the busy timeout waits for a writer to finish, and a write that still
finds the file locked is retried with back-off before it is kept in memory only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

BUSY_TIMEOUT_S = 5.0  # SQLite waits this long for another process's write before it says "locked"
WRITE_TRIES = 4  # then the write is retried, with back-off, this many times in all

SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    size INTEGER NOT NULL,
    last_used REAL NOT NULL
)
"""


def make_cache_key(
    task: str,
    model_id: str,
    revision: str,
    compression: str,
    options: dict[str, Any],
    input_data: str | bytes,
    *,
    runtime: str = "",
) -> str:
    """A hash of everything that changes the output; the input is hashed as bytes so nothing is normalised away.

    `runtime` (llama.cpp, ctranslate2, transformers...) is part of the key when given: two runtimes may word the
    same answer differently. Without it the key is what it always was, so existing cache entries still match.
    """
    data = input_data.encode("utf-8") if isinstance(input_data, str) else input_data
    fields = {"task": task, "model": model_id, "revision": revision, "compression": compression, "options": options}
    if runtime:
        fields["runtime"] = runtime
    header = json.dumps(
        fields,
        sort_keys=True,
        default=str,
    )
    digest = hashlib.sha256(header.encode("utf-8"))
    digest.update(b"\0")
    digest.update(data)
    return digest.hexdigest()


@dataclass(frozen=True)
class KeySpec:
    """Everything in a result key except the input. A task hands it out so that another process (a cluster job's
    driver, say) keys inputs exactly as the task itself does, without holding the model."""

    task: str
    model_id: str
    revision: str
    compression: str
    options: dict[str, Any]
    runtime: str = ""

    def key(self, input_data: str | bytes) -> str:
        return make_cache_key(self.task, self.model_id, self.revision, self.compression, self.options, input_data,
                              runtime=self.runtime)


def _is_locked(error: sqlite3.Error) -> bool:
    text = str(error).lower()
    return "locked" in text or "busy" in text


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    entries_on_disk: int = 0
    bytes_on_disk: int = 0
    persistent: bool = True

    def describe(self) -> str:
        text = f"cache {self.hits} hits / {self.misses} misses"
        return text if self.persistent else text + " (memory only)"


class ResultCache:
    def __init__(
        self,
        path: Path | None,
        memory_items: int = 512,
        max_disk_bytes: int = 256 * 1024 * 1024,
    ) -> None:
        self.path = path
        self.memory_items = memory_items
        self.max_disk_bytes = max_disk_bytes
        self._memory: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.RLock()
        self._db: sqlite3.Connection | None = None
        self.hits = 0
        self.misses = 0
        if path is not None:
            self._open()

    # --- the file --------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        row = db.execute("PRAGMA quick_check").fetchone()
        if not row or row[0] != "ok":
            db.close()
            raise sqlite3.DatabaseError(f"integrity check failed: {row}")
        db.execute(SCHEMA)
        db.execute("SELECT count(*) FROM results").fetchone()
        return db

    def _open(self) -> None:
        try:
            self._db = self._connect()
            return
        except sqlite3.OperationalError as error:
            if "locked" in str(error).lower() or "busy" in str(error).lower():
                logger.warning("Result cache %s is locked by another process (%s); caching in memory only", self.path, error)
                self._db = None
                return
            logger.warning("Result cache %s cannot be opened (%s); rebuilding it", self.path, error)
        except sqlite3.DatabaseError as error:
            logger.warning("Result cache %s is corrupt (%s); rebuilding it", self.path, error)
        self._rebuild()

    def _rebuild(self) -> None:
        assert self.path is not None
        aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
        for suffix in ("", "-wal", "-shm"):
            candidate = Path(str(self.path) + suffix)
            if candidate.exists():
                try:
                    candidate.replace(Path(str(aside) + suffix))
                except OSError:
                    candidate.unlink(missing_ok=True)
        try:
            self._db = self._connect()
        except sqlite3.Error as error:
            logger.warning("Result cache could not be rebuilt at %s (%s); caching in memory only", self.path, error)
            self._db = None

    def _disk_failed(self, error: sqlite3.Error) -> None:
        if isinstance(error, sqlite3.OperationalError) and _is_locked(error):
            logger.warning("Result cache file is locked (%s); this result stays in memory only", error)
            return
        logger.warning("Result cache file failed (%s); rebuilding it", error)
        if self._db is not None:
            try:
                self._db.close()
            except sqlite3.Error:
                pass
        self._rebuild()

    # --- the cache ---------------------------------------------------------------------------
    @property
    def persistent(self) -> bool:
        return self._db is not None

    def get(self, key: str) -> Any | None:
        with self._lock:
            if key in self._memory:
                self._memory.move_to_end(key)
                self.hits += 1
                return self._memory[key]
            value = self._disk_get(key)
            if value is None:
                self.misses += 1
                return None
            self.hits += 1
            self._remember(key, value)
            return value

    def _disk_get(self, key: str) -> Any | None:
        if self._db is None:
            return None
        try:
            row = self._db.execute("SELECT value FROM results WHERE key = ?", (key,)).fetchone()
            if row is None:
                return None
            self._db.execute("UPDATE results SET last_used = ? WHERE key = ?", (time.time(), key))
            return json.loads(row[0])
        except sqlite3.Error as error:
            self._disk_failed(error)
        except ValueError as error:
            logger.warning("Result cache entry %s is unreadable (%s); ignoring it", key[:12], error)
        return None

    def put(self, key: str, value: Any) -> None:
        """Values must be JSON-serialisable (results are dataclasses turned into dicts)."""
        text = json.dumps(value)
        with self._lock:
            self._remember(key, json.loads(text))
            for attempt in range(1, WRITE_TRIES + 1):
                if self._db is None:
                    return
                try:
                    with self._db:  # one transaction: the row and the trim land together or not at all
                        self._db.execute("BEGIN IMMEDIATE")
                        self._db.execute(
                            "INSERT OR REPLACE INTO results (key, value, size, last_used) VALUES (?, ?, ?, ?)",
                            (key, text, len(text), time.time()),
                        )
                        self._trim()
                    return
                except sqlite3.OperationalError as error:
                    if _is_locked(error) and attempt < WRITE_TRIES:
                        logger.info("Result cache busy (%s); retrying the write (%d of %d)", error, attempt + 1, WRITE_TRIES)
                        time.sleep(0.05 * 2**attempt)
                        continue
                    self._disk_failed(error)
                    return
                except sqlite3.Error as error:
                    self._disk_failed(error)
                    return

    def _remember(self, key: str, value: Any) -> None:
        self._memory[key] = value
        self._memory.move_to_end(key)
        while len(self._memory) > self.memory_items:
            self._memory.popitem(last=False)

    def _trim(self) -> None:
        assert self._db is not None
        total = self._db.execute("SELECT coalesce(sum(size), 0) FROM results").fetchone()[0]
        if total <= self.max_disk_bytes:
            return
        target = int(self.max_disk_bytes * 0.9)
        removed = 0
        for key, size in self._db.execute("SELECT key, size FROM results ORDER BY last_used ASC").fetchall():
            if total <= target:
                break
            self._db.execute("DELETE FROM results WHERE key = ?", (key,))
            total -= size
            removed += 1
        logger.info("Result cache trimmed %d old entries to stay under %d bytes", removed, self.max_disk_bytes)

    def clear(self) -> None:
        with self._lock:
            self._memory.clear()
            if self._db is not None:
                try:
                    self._db.execute("DELETE FROM results")
                except sqlite3.Error as error:
                    self._disk_failed(error)

    def forget_memory(self) -> None:
        """Drop the in-memory level only (a restart, as far as the disk level is concerned)."""
        with self._lock:
            self._memory.clear()

    def stats(self) -> CacheStats:
        with self._lock:
            entries = size = 0
            if self._db is not None:
                try:
                    entries, size = self._db.execute("SELECT count(*), coalesce(sum(size), 0) FROM results").fetchone()
                except sqlite3.Error:
                    pass
            return CacheStats(self.hits, self.misses, entries, size, self.persistent)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
