"""The documents index: one SQLite file under the data folder. Collections name folders and files; each indexed
file keeps its size, modification time and content hash (so Update reads only what changed) and its chunks,
whose words are in an FTS5 table (BM25) and whose vectors are float32 blobs. A file and its chunks are written
in one transaction, so an index killed midway keeps every file it finished and nothing half-written.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from desktop_ai import paths
from desktop_ai.engine.documents.chunking import Chunk
from desktop_ai.engine.errors import InvalidInputError

INDEX_FILE_NAME = "documents.sqlite"
STATUS_INDEXED = "indexed"
STATUS_FAILED = "failed"
SCHEMA = """
CREATE TABLE IF NOT EXISTS collections (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created REAL NOT NULL,
    settings TEXT NOT NULL,          -- JSON: embedding model and chunk window; a change needs a rebuild
    generation INTEGER NOT NULL DEFAULT 0  -- bumped on every change, so searches know their cached vectors are old
);
CREATE TABLE IF NOT EXISTS sources (
    collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    PRIMARY KEY (collection_id, path)
);
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY,
    collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime REAL NOT NULL,
    sha256 TEXT NOT NULL,
    status TEXT NOT NULL,
    reason_kind TEXT NOT NULL DEFAULT '',
    reason TEXT NOT NULL DEFAULT '',
    title TEXT NOT NULL DEFAULT '',
    chunks INTEGER NOT NULL DEFAULT 0,
    words INTEGER NOT NULL DEFAULT 0,
    indexed_at REAL NOT NULL,
    UNIQUE (collection_id, path)
);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY,
    file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    ordinal INTEGER NOT NULL,
    title TEXT NOT NULL,
    heading TEXT NOT NULL,
    page INTEGER,
    text TEXT NOT NULL,
    vector BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_file ON chunks(file_id);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
    title, heading, text, content='chunks', content_rowid='id', tokenize='porter unicode61 remove_diacritics 2'
);
CREATE TRIGGER IF NOT EXISTS chunks_fts_insert AFTER INSERT ON chunks BEGIN
    INSERT INTO chunks_fts(rowid, title, heading, text) VALUES (new.id, new.title, new.heading, new.text);
END;
CREATE TRIGGER IF NOT EXISTS chunks_fts_delete AFTER DELETE ON chunks BEGIN
    INSERT INTO chunks_fts(chunks_fts, rowid, title, heading, text) VALUES ('delete', old.id, old.title, old.heading, old.text);
END;
"""


@dataclass
class Collection:
    id: int
    name: str
    created: float
    settings: dict
    generation: int
    sources: list[str] = field(default_factory=list)
    files: int = 0
    indexed: int = 0
    failed: int = 0
    chunks: int = 0
    words: int = 0

    def to_dict(self) -> dict:
        return {"name": self.name, "sources": self.sources, "files": self.files, "indexed": self.indexed,
                "failed": self.failed, "chunks": self.chunks, "words": self.words, "settings": self.settings,
                "created": self.created}


@dataclass
class FileRecord:
    id: int
    path: str
    size: int
    mtime: float
    sha256: str
    status: str
    reason_kind: str
    reason: str
    title: str
    chunks: int
    words: int

    def to_dict(self) -> dict:
        return {"path": self.path, "status": self.status, "reason_kind": self.reason_kind, "reason": self.reason,
                "title": self.title, "chunks": self.chunks, "words": self.words, "size": self.size}


def default_index_path() -> Path:
    return paths.data_dir() / INDEX_FILE_NAME


class DocumentIndex:
    """One connection per thread or process; SQLite's WAL lets the window search while the engine indexes."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_index_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> DocumentIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # collections

    def create_collection(self, name: str, sources: Sequence[Path], settings: dict) -> Collection:
        name = name.strip()
        if not name:
            raise InvalidInputError("A collection needs a name.")
        with self.transaction():
            row = self.db.execute("SELECT id FROM collections WHERE name = ?", (name,)).fetchone()
            if row is None:
                cursor = self.db.execute("INSERT INTO collections(name, created, settings) VALUES (?, ?, ?)",
                                         (name, time.time(), json.dumps(settings, sort_keys=True)))
                collection_id = cursor.lastrowid
            else:
                collection_id = row[0]
            for source in sources:
                self.db.execute("INSERT OR IGNORE INTO sources(collection_id, path) VALUES (?, ?)",
                                (collection_id, str(source)))
        return self.collection(name)

    def collection(self, name: str) -> Collection:
        row = self.db.execute("SELECT id, name, created, settings, generation FROM collections WHERE name = ?",
                              (name,)).fetchone()
        if row is None:
            known = ", ".join(self.collection_names()) or "none yet"
            raise InvalidInputError(f"There is no collection named {name!r} (collections: {known}).")
        collection = Collection(row[0], row[1], row[2], json.loads(row[3]), row[4])
        collection.sources = [r[0] for r in self.db.execute(
            "SELECT path FROM sources WHERE collection_id = ? ORDER BY path", (collection.id,))]
        stats = self.db.execute(
            "SELECT COUNT(*), SUM(status = ?), SUM(status = ?), COALESCE(SUM(chunks), 0), COALESCE(SUM(words), 0) "
            "FROM files WHERE collection_id = ?", (STATUS_INDEXED, STATUS_FAILED, collection.id)).fetchone()
        collection.files, collection.indexed, collection.failed = stats[0], stats[1] or 0, stats[2] or 0
        collection.chunks, collection.words = stats[3], stats[4]
        return collection

    def collection_id(self, name: str) -> int:
        """The id alone (a search needs no counts): the same error as collection() for an unknown name."""
        row = self.db.execute("SELECT id FROM collections WHERE name = ?", (name,)).fetchone()
        return row[0] if row is not None else self.collection(name).id

    def collection_names(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT name FROM collections ORDER BY name")]

    def collections(self) -> list[Collection]:
        return [self.collection(name) for name in self.collection_names()]

    def remove_collection(self, name: str) -> Collection:
        collection = self.collection(name)
        with self.transaction():
            self.db.execute("DELETE FROM chunks WHERE file_id IN (SELECT id FROM files WHERE collection_id = ?)",
                            (collection.id,))
            self.db.execute("DELETE FROM collections WHERE id = ?", (collection.id,))
        return collection

    def set_settings(self, collection: Collection, settings: dict) -> None:
        self.db.execute("UPDATE collections SET settings = ? WHERE id = ?",
                        (json.dumps(settings, sort_keys=True), collection.id))

    def generation(self, collection_id: int) -> int:
        row = self.db.execute("SELECT generation FROM collections WHERE id = ?", (collection_id,)).fetchone()
        return row[0] if row else -1

    # files

    def files(self, collection: Collection) -> dict[str, FileRecord]:
        rows = self.db.execute(
            "SELECT id, path, size, mtime, sha256, status, reason_kind, reason, title, chunks, words FROM files "
            "WHERE collection_id = ?", (collection.id,))
        return {r[1]: FileRecord(*r) for r in rows}

    def failed_files(self, collection: Collection) -> list[FileRecord]:
        return sorted((f for f in self.files(collection).values() if f.status == STATUS_FAILED), key=lambda f: f.path)

    def save_file(self, collection: Collection, path: str, size: int, mtime: float, sha256: str, title: str,
                  chunks: Sequence[Chunk], vectors: np.ndarray, words: int) -> None:
        """The file's row and all its chunks in one transaction (replacing what it had)."""
        with self.transaction():
            self._drop_file(collection.id, path)
            file_id = self.db.execute(
                "INSERT INTO files(collection_id, path, size, mtime, sha256, status, title, chunks, words, indexed_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (collection.id, path, size, mtime, sha256, STATUS_INDEXED, title, len(chunks), words, time.time()),
            ).lastrowid
            self.db.executemany(
                "INSERT INTO chunks(file_id, ordinal, title, heading, page, text, vector) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(file_id, c.ordinal, c.title, c.heading, c.page, c.text, vectors[i].astype(np.float32).tobytes())
                 for i, c in enumerate(chunks)],
            )
            self._bump(collection.id)

    def save_failure(self, collection: Collection, path: str, size: int, mtime: float, sha256: str, kind: str,
                     reason: str) -> None:
        with self.transaction():
            self._drop_file(collection.id, path)
            self.db.execute(
                "INSERT INTO files(collection_id, path, size, mtime, sha256, status, reason_kind, reason, indexed_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (collection.id, path, size, mtime, sha256, STATUS_FAILED, kind, reason, time.time()),
            )
            self._bump(collection.id)

    def touch_file(self, collection: Collection, path: str, size: int, mtime: float) -> None:
        """Same content under a new modification time: remember it so the next Update need not hash it."""
        self.db.execute("UPDATE files SET size = ?, mtime = ? WHERE collection_id = ? AND path = ?",
                        (size, mtime, collection.id, path))

    def remove_files(self, collection: Collection, paths_: Sequence[str]) -> None:
        with self.transaction():
            for path in paths_:
                self._drop_file(collection.id, path)
            self._bump(collection.id)

    def _drop_file(self, collection_id: int, path: str) -> None:
        self.db.execute("DELETE FROM chunks WHERE file_id IN (SELECT id FROM files WHERE collection_id = ? AND path = ?)",
                        (collection_id, path))
        self.db.execute("DELETE FROM files WHERE collection_id = ? AND path = ?", (collection_id, path))

    def _bump(self, collection_id: int) -> None:
        self.db.execute("UPDATE collections SET generation = generation + 1 WHERE id = ?", (collection_id,))

    # chunks

    def chunk_count(self, collection: Collection, path: str | None = None) -> int:
        sql = "SELECT COUNT(*) FROM chunks JOIN files ON files.id = chunks.file_id WHERE files.collection_id = ?"
        args: tuple = (collection.id,)
        if path is not None:
            sql += " AND files.path = ?"
            args += (path,)
        return self.db.execute(sql, args).fetchone()[0]

    def chunk_stamps(self, collection_id: int) -> tuple[np.ndarray, np.ndarray]:
        """(chunk ids in order, their files' indexing times): what the vector store diffs to stay current."""
        rows = self.db.execute("SELECT chunks.id, files.indexed_at FROM chunks JOIN files ON files.id = chunks.file_id "
                               "WHERE files.collection_id = ? ORDER BY chunks.id", (collection_id,)).fetchall()
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        stamps = np.fromiter((r[1] for r in rows), dtype=np.float64, count=len(rows))
        return ids, stamps

    def vectors_of(self, chunk_ids: np.ndarray) -> np.ndarray:
        """The vectors of these chunks, in the order given, as one float32 matrix."""
        found: dict[int, bytes] = {}
        listed = [int(i) for i in chunk_ids]
        for start in range(0, len(listed), 900):  # SQLite's bound-parameter limit
            part = listed[start:start + 900]
            marks = ",".join("?" * len(part))
            found.update(self.db.execute(f"SELECT id, vector FROM chunks WHERE id IN ({marks})", part).fetchall())
        if not listed:
            return np.zeros((0, 0), dtype=np.float32)
        return np.frombuffer(b"".join(found[i] for i in listed), dtype=np.float32).reshape(len(listed), -1).copy()
