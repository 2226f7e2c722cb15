"""Keeping a collection's index current: walk its folders and files, read and embed only what is new or changed
(size and modification time first; the content hash decides), drop what was removed, and list every file that
could not be read with its reason. Each file is committed on its own, so a kill or a quit loses at most the file
being read, and the next Update carries on from there.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from desktop_ai.engine.documents.chunking import WINDOW_TOKENS, Chunk, chunk_document
from desktop_ai.engine.documents.embedding import DocumentEmbedder
from desktop_ai.engine.documents.index import STATUS_FAILED, Collection, DocumentIndex
from desktop_ai.engine.documents.readers import is_supported, read_document
from desktop_ai.engine.documents.readers.document import Document, UnreadableDocumentError
from desktop_ai.engine.documents.vectors import VECTORS
from desktop_ai.engine.errors import CancelledError, InvalidInputError

logger = logging.getLogger(__name__)

HASH_BLOCK = 1 << 20
# Seconds to embed one chunk on a laptop CPU, for the estimate before a rebuild (the bench measures the real rate).
ESTIMATE_S_PER_CHUNK = 0.01


@dataclass
class IndexProgress:
    """Where an Update stands; sent after every file."""

    collection: str
    files_done: int
    files_total: int
    chunks: int
    words: int
    seconds: float
    current: str = ""
    failed: int = 0

    @property
    def chunks_per_second(self) -> float:
        return self.chunks / self.seconds if self.seconds > 0 else 0.0

    @property
    def seconds_left(self) -> float | None:
        if self.files_done == 0 or self.seconds <= 0:
            return None
        return self.seconds / self.files_done * (self.files_total - self.files_done)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["chunks_per_second"] = round(self.chunks_per_second, 2)
        left = self.seconds_left
        data["seconds_left"] = round(left, 1) if left is not None else None
        return data


@dataclass
class FailedFile:
    path: str
    kind: str
    reason: str


@dataclass
class UpdateResult:
    collection: str
    added: int = 0  # files read for the first time
    changed: int = 0  # files read again because their content changed
    unchanged: int = 0
    removed: int = 0
    failed: list[FailedFile] = field(default_factory=list)
    chunks_embedded: int = 0
    words: int = 0
    seconds: float = 0.0
    stopped: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def collection_settings(embedder: DocumentEmbedder) -> dict:
    return {"embedding_model": embedder.model_id, "window_tokens": WINDOW_TOKENS}


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(HASH_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def collect_files(sources: Sequence[str]) -> list[Path]:
    """Every readable-format file under the sources, sorted; hidden files and folders are left out."""
    found: set[Path] = set()
    for source in sources:
        path = Path(source)
        if path.is_file():
            found.add(path)
        elif path.is_dir():
            for folder, dirs, files in os.walk(path):
                dirs[:] = [d for d in dirs if not d.startswith(".")]
                for name in files:
                    candidate = Path(folder) / name
                    if not name.startswith(".") and is_supported(candidate):
                        found.add(candidate)
    return sorted(found)


class Indexer:
    def __init__(self, index: DocumentIndex, embedder: DocumentEmbedder) -> None:
        self.index = index
        self.embedder = embedder

    def add(self, name: str, sources: Sequence[Path], **kwargs: object) -> UpdateResult:
        """Create the collection (or add sources to it) and index it."""
        missing = [str(s) for s in sources if not Path(s).exists()]
        if missing:
            raise InvalidInputError(f"Not found: {', '.join(missing)}.")
        if not sources:
            raise InvalidInputError("Name at least one folder or file to add.")
        self.index.create_collection(name, [Path(s).resolve() for s in sources], collection_settings(self.embedder))
        return self.update(name, **kwargs)  # type: ignore[arg-type]

    def rebuild_needed(self, collection: Collection) -> str | None:
        """A message when the collection was indexed with other settings (another embedding model, another
        window): its vectors cannot be mixed with new ones, so it must be rebuilt, and the message says how big."""
        wanted = collection_settings(self.embedder)
        if collection.settings == wanted or collection.files == 0:
            return None
        minutes = collection.chunks * ESTIMATE_S_PER_CHUNK / 60
        return (f"The collection {collection.name!r} was indexed with {collection.settings} and now needs "
                f"{wanted}: all {collection.files} files ({collection.chunks:,} chunks) must be embedded again, "
                f"about {minutes:.0f} minute(s). Run the update with rebuild to start it.")

    def update(self, name: str, progress: Callable[[IndexProgress], None] | None = None,
               cancel: threading.Event | None = None, rebuild: bool = False) -> UpdateResult:
        collection = self.index.collection(name)
        notice = self.rebuild_needed(collection)
        if notice and not rebuild:
            raise InvalidInputError(notice)
        started = time.perf_counter()
        result = UpdateResult(name)
        known = self.index.files(collection)
        if notice:
            self.index.remove_files(collection, list(known))
            self.index.set_settings(collection, collection_settings(self.embedder))
            known = {}
        on_disk = collect_files(collection.sources)
        present = {str(p) for p in on_disk}
        gone = [path for path in known if path not in present]
        if gone:
            self.index.remove_files(collection, gone)
            result.removed = len(gone)
        state = IndexProgress(name, 0, len(on_disk), 0, 0, 0.0)
        group: list[_ReadFile] = []
        group_chunks = getattr(self.embedder, "group_chunks", 0)  # a cluster embedder takes many files at once

        def report(files: int) -> None:
            state.files_done += files
            state.chunks, state.words = result.chunks_embedded, result.words
            state.failed = len(result.failed)
            state.seconds = time.perf_counter() - started
            if progress is not None:
                progress(replace(state))  # a snapshot: the window may keep it

        for path in on_disk:
            if cancel is not None and cancel.is_set():
                result.stopped = True
                break
            state.current = str(path)
            read = self._read_file(collection, path, known.get(str(path)), result)
            if read is None:
                report(1)
                continue
            group.append(read)
            if sum(len(r.chunks) for r in group) >= group_chunks:
                self._embed_and_store(collection, group, result, cancel)
                report(len(group))
                group = []
                if result.stopped:
                    break
        if group and not result.stopped:
            self._embed_and_store(collection, group, result, cancel)
            report(len(group))
        if self.index.chunk_count(collection) > VECTORS.limit:
            VECTORS.get(self.index, collection.id)  # the approximate index on disk follows this update now
        result.seconds = round(time.perf_counter() - started, 3)
        return result

    def _read_file(self, collection: Collection, path: Path, record, result: UpdateResult) -> _ReadFile | None:  # type: ignore[no-untyped-def]
        """The file read and chunked when it is new or changed; None when there is nothing to embed (unchanged,
        touched, unreadable: those are recorded here)."""
        try:
            stat = path.stat()
        except OSError as error:  # removed between the walk and now
            logger.info("Skipping %s: %s", path, error)
            return None
        if record is not None and record.size == stat.st_size and record.mtime == stat.st_mtime:
            result.unchanged += 1
            if record.status == STATUS_FAILED:
                result.failed.append(FailedFile(str(path), record.reason_kind, record.reason))
            return None
        try:
            digest = file_hash(path)
        except OSError as error:
            self.index.save_failure(collection, str(path), stat.st_size, stat.st_mtime, "", "unreadable", str(error))
            result.failed.append(FailedFile(str(path), "unreadable", str(error)))
            return None
        if record is not None and record.sha256 == digest:  # touched, not changed
            self.index.touch_file(collection, str(path), stat.st_size, stat.st_mtime)
            result.unchanged += 1
            return None
        try:
            document = read_document(path)
        except UnreadableDocumentError as error:
            self.index.save_failure(collection, str(path), stat.st_size, stat.st_mtime, digest, error.kind, str(error))
            result.failed.append(FailedFile(str(path), error.kind, str(error)))
            return None
        return _ReadFile(path, stat.st_size, stat.st_mtime, digest, document, chunk_document(document, self.embedder.tokenizer),
                         record is None)

    def _embed_and_store(self, collection: Collection, group: list[_ReadFile], result: UpdateResult,
                         cancel: threading.Event | None) -> None:
        """Embed the group's chunks in one call, then store each file in its own transaction."""
        texts = [c.embedding_text for read in group for c in read.chunks]
        try:
            vectors = self.embedder.embed(texts, cancel)
        except CancelledError:
            result.stopped = True
            return
        start = 0
        for read in group:
            count = len(read.chunks)
            self.index.save_file(collection, str(read.path), read.size, read.mtime, read.digest, read.document.title,
                                 read.chunks, vectors[start:start + count], read.document.words)
            start += count
            result.chunks_embedded += count
            result.words += read.document.words
            if read.new:
                result.added += 1
            else:
                result.changed += 1


@dataclass
class _ReadFile:
    """A new or changed file, read and chunked, waiting for its vectors."""

    path: Path
    size: int
    mtime: float
    digest: str
    document: Document
    chunks: list[Chunk]
    new: bool
