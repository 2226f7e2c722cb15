"""Saved conversations: one SQLite file that the window and an engine lane write at the same time.

Every message is written as it arrives (and an answer while it streams), so a crash or a power cut loses
at most the last moment of an answer. WAL mode lets a reader go on while another process writes, the busy
timeout waits for that writer, and a write that still finds the file locked is retried with back-off.
A corrupt file is moved aside (never deleted: it is the user's history) and a new one is started; `notice`
says so, for the window to show.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

from desktop_ai import paths
from desktop_ai.engine.errors import InvalidInputError

logger = logging.getLogger(__name__)

FILE_NAME = "conversations.sqlite3"
BUSY_TIMEOUT_S = 5.0
WRITE_TRIES = 5
TITLE_CHARS = 40
ROLES = ("user", "assistant")
EXPORT_FORMAT = "desktop-ai.conversation"
EXPORT_VERSION = 1
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL DEFAULT '',
    system_prompt TEXT NOT NULL DEFAULT '',
    model TEXT,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    deleted REAL
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    content TEXT NOT NULL,
    created REAL NOT NULL,
    stopped INTEGER NOT NULL DEFAULT 0,
    first_token_ms REAL,
    tokens_per_second REAL
);
CREATE INDEX IF NOT EXISTS messages_by_conversation ON messages (conversation_id, id);
"""

# Chat over documents (added after version 1; CREATE IF NOT EXISTS adds them to older files as they open): the
# collections a conversation answers from, and the numbered passages each answer was given, with file and page.
_DOCUMENTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversation_collections (
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    collection TEXT NOT NULL,
    PRIMARY KEY (conversation_id, collection)
);
CREATE TABLE IF NOT EXISTS message_sources (
    message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    number INTEGER NOT NULL,
    collection TEXT NOT NULL,
    path TEXT NOT NULL,
    page INTEGER,
    heading TEXT NOT NULL DEFAULT '',
    passage TEXT NOT NULL,
    cited INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (message_id, number)
);
"""

_CONVERSATION_COLUMNS = (
    "c.id, c.title, c.system_prompt, c.model, c.created, c.updated,"
    " (SELECT count(*) FROM messages m WHERE m.conversation_id = c.id)"
)
_MESSAGE_COLUMNS = "id, conversation_id, role, content, created, stopped, first_token_ms, tokens_per_second"

T = TypeVar("T")


@dataclass
class Conversation:
    id: str
    title: str
    system_prompt: str
    model: str | None  # a model reference (catalogue id or path); None = the default model
    created: float
    updated: float
    message_count: int  # user + assistant messages

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Message:
    id: int
    conversation_id: str
    role: str  # "user" or "assistant"
    content: str
    created: float
    stopped: bool  # an answer cut short (Stop, a crash, a failure); the partial text is kept
    first_token_ms: float | None = None
    tokens_per_second: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ConversationNotFoundError(InvalidInputError):
    def __init__(self, conversation_id: str) -> None:
        super().__init__(f"No conversation with id {conversation_id!r}. `desktop-ai chat --list` shows them.")
        self.conversation_id = conversation_id


def title_from(text: str) -> str:
    """The first words of a message, on one line, cut at a word near TITLE_CHARS characters."""
    line = " ".join(text.split())
    if len(line) <= TITLE_CHARS:
        return line
    cut = line[:TITLE_CHARS]
    space = cut.rfind(" ")
    if space >= TITLE_CHARS // 2:
        cut = cut[:space]
    return cut.rstrip() + "…"


def _contains(haystack: str | None, needle: str | None) -> int:
    """Case-insensitive for every script (SQLite's LIKE folds ASCII only)."""
    if haystack is None or needle is None:
        return 0
    return int(needle.casefold() in haystack.casefold())


def _is_locked(error: sqlite3.Error) -> bool:
    text = str(error).lower()
    return "locked" in text or "busy" in text


def default_path() -> Path:
    return paths.data_dir() / FILE_NAME


class ConversationStore:
    """The conversations database. Safe to share between threads (one lock) and processes (SQLite)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_path()
        self.notice: str | None = None
        self._lock = threading.RLock()
        self._db = self._open()

    # --- the file ------------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, check_same_thread=False, isolation_level=None)
        try:
            db.create_function("contains_text", 2, _contains, deterministic=True)
            db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA foreign_keys=ON")
            row = db.execute("PRAGMA quick_check").fetchone()
            if not row or row[0] != "ok":
                raise sqlite3.DatabaseError(f"integrity check failed: {row[0] if row else 'no answer'}")
            db.executescript(_SCHEMA)
            db.executescript(_DOCUMENTS_SCHEMA)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            db.execute("SELECT count(*) FROM conversations").fetchone()
        except sqlite3.Error:
            db.close()
            raise
        return db

    def _open(self) -> sqlite3.Connection:
        try:
            return self._connect()
        except sqlite3.OperationalError as error:
            if _is_locked(error):
                raise InvalidInputError(
                    f"The conversations file {self.path} is locked by another program ({error}); try again."
                ) from error
            reason = error
        except sqlite3.DatabaseError as error:
            reason = error
        aside = self._move_aside()
        self.notice = (
            f"The conversations file was damaged ({reason}). It was moved aside to {aside.name} and a new, "
            "empty one was started."
        )
        logger.warning("Conversations file %s is corrupt (%s); moved it to %s", self.path, reason, aside)
        return self._connect()

    def _move_aside(self) -> Path:
        aside = self.path.with_name(f"{self.path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
        n = 1
        while aside.exists():
            n += 1
            aside = self.path.with_name(f"{self.path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}-{n}")
        for suffix in ("", "-wal", "-shm"):
            candidate = Path(str(self.path) + suffix)
            if candidate.exists():
                candidate.replace(Path(str(aside) + suffix))
        return aside

    def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """One transaction, retried with back-off while another process holds the write lock."""
        with self._lock:
            for attempt in range(1, WRITE_TRIES + 1):
                try:
                    self._db.execute("BEGIN IMMEDIATE")
                    try:
                        value = work(self._db)
                    except BaseException:
                        self._db.execute("ROLLBACK")
                        raise
                    self._db.execute("COMMIT")
                    return value
                except sqlite3.OperationalError as error:
                    if _is_locked(error) and attempt < WRITE_TRIES:
                        logger.info("Conversations file busy (%s); retrying (%d of %d)", error, attempt + 1, WRITE_TRIES)
                        time.sleep(0.05 * 2**attempt)
                        continue
                    raise
            raise AssertionError("unreachable")

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # --- conversations ---------------------------------------------------------------------------
    def create(self, title: str = "", system_prompt: str = "", model: str | None = None) -> Conversation:
        conversation_id = uuid.uuid4().hex[:12]
        now = time.time()
        self._write(lambda db: db.execute(
            "INSERT INTO conversations (id, title, system_prompt, model, created, updated) VALUES (?, ?, ?, ?, ?, ?)",
            (conversation_id, title.strip(), system_prompt, model or None, now, now),
        ))
        return Conversation(conversation_id, title.strip(), system_prompt, model or None, now, now, 0)

    def get(self, conversation_id: str) -> Conversation:
        rows = self._read(
            f"SELECT {_CONVERSATION_COLUMNS} FROM conversations c WHERE c.id = ? AND c.deleted IS NULL",
            (conversation_id,),
        )
        if not rows:
            raise ConversationNotFoundError(conversation_id)
        return Conversation(*rows[0])

    def list(self, search: str | None = None) -> list[Conversation]:
        """Newest first; `search` matches the title or any message's text, whatever the case."""
        sql = f"SELECT {_CONVERSATION_COLUMNS} FROM conversations c WHERE c.deleted IS NULL"
        args: tuple[Any, ...] = ()
        needle = (search or "").strip()
        if needle:
            sql += (" AND (contains_text(c.title, ?) OR EXISTS (SELECT 1 FROM messages m"
                    " WHERE m.conversation_id = c.id AND contains_text(m.content, ?)))")
            args = (needle, needle)
        sql += " ORDER BY c.updated DESC, c.created DESC"
        return [Conversation(*row) for row in self._read(sql, args)]

    def _update_conversation(self, conversation_id: str, sql: str, args: tuple[Any, ...],
                             include_deleted: bool = False) -> None:
        where = "id = ?" if include_deleted else "id = ? AND deleted IS NULL"

        def work(db: sqlite3.Connection) -> None:
            if db.execute(f"UPDATE conversations SET {sql} WHERE {where}", (*args, conversation_id)).rowcount == 0:
                raise ConversationNotFoundError(conversation_id)

        self._write(work)

    def rename(self, conversation_id: str, title: str) -> None:
        self._update_conversation(conversation_id, "title = ?, updated = ?", (title.strip(), time.time()))

    def set_system_prompt(self, conversation_id: str, text: str) -> None:
        self._update_conversation(conversation_id, "system_prompt = ?, updated = ?", (text, time.time()))

    def set_model(self, conversation_id: str, model: str | None) -> None:
        self._update_conversation(conversation_id, "model = ?, updated = ?", (model or None, time.time()))

    def delete(self, conversation_id: str) -> None:
        """Soft: hidden from list() and get() at once, back with restore() until purge_deleted()."""
        self._update_conversation(conversation_id, "deleted = ?", (time.time(),))

    def restore(self, conversation_id: str) -> None:
        self._update_conversation(conversation_id, "deleted = NULL", (), include_deleted=True)

    def purge_deleted(self) -> int:
        return self._write(lambda db: db.execute("DELETE FROM conversations WHERE deleted IS NOT NULL").rowcount)

    # --- messages --------------------------------------------------------------------------------
    def messages(self, conversation_id: str) -> list[Message]:
        self.get(conversation_id)
        rows = self._read(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ? ORDER BY id", (conversation_id,)
        )
        return [_message(row) for row in rows]

    def message(self, message_id: int) -> Message:
        rows = self._read(f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE id = ?", (message_id,))
        if not rows:
            raise InvalidInputError(f"No message with id {message_id}.")
        return _message(rows[0])

    def add_message(self, conversation_id: str, role: str, content: str, stopped: bool = False) -> Message:
        """Appends a message; the first user message names a conversation that has no title yet.

        A soft-deleted conversation still takes messages: an answer streaming when the user pressed Delete
        finishes into it, and Undo brings it back whole.
        """
        if role not in ROLES:
            raise InvalidInputError(f"A message's role is 'user' or 'assistant', not {role!r}.")
        now = time.time()

        def work(db: sqlite3.Connection) -> int:
            row = db.execute("SELECT title FROM conversations WHERE id = ?", (conversation_id,)).fetchone()
            if row is None:
                raise ConversationNotFoundError(conversation_id)
            cursor = db.execute(
                "INSERT INTO messages (conversation_id, role, content, created, stopped) VALUES (?, ?, ?, ?, ?)",
                (conversation_id, role, content, now, int(stopped)),
            )
            title = row[0] or (title_from(content) if role == "user" else "")
            db.execute("UPDATE conversations SET updated = ?, title = ? WHERE id = ?", (now, title, conversation_id))
            return int(cursor.lastrowid)

        message_id = self._write(work)
        return Message(message_id, conversation_id, role, content, now, stopped)

    def update_message(self, message_id: int, content: str, stopped: bool, first_token_ms: float | None = None,
                       tokens_per_second: float | None = None) -> None:
        """The streaming write: the answer so far (and, at the end, its speed); bumps the conversation."""
        def work(db: sqlite3.Connection) -> None:
            row = db.execute("SELECT conversation_id FROM messages WHERE id = ?", (message_id,)).fetchone()
            if row is None:
                raise InvalidInputError(f"No message with id {message_id}.")
            db.execute(
                "UPDATE messages SET content = ?, stopped = ?, first_token_ms = coalesce(?, first_token_ms),"
                " tokens_per_second = coalesce(?, tokens_per_second) WHERE id = ?",
                (content, int(stopped), first_token_ms, tokens_per_second, message_id),
            )
            db.execute("UPDATE conversations SET updated = ? WHERE id = ?", (time.time(), row[0]))

        self._write(work)

    def delete_message(self, message_id: int) -> None:
        def work(db: sqlite3.Connection) -> None:
            row = db.execute("SELECT conversation_id FROM messages WHERE id = ?", (message_id,)).fetchone()
            if row is None:
                raise InvalidInputError(f"No message with id {message_id}.")
            db.execute("DELETE FROM messages WHERE id = ?", (message_id,))
            db.execute("UPDATE conversations SET updated = ? WHERE id = ?", (time.time(), row[0]))

        self._write(work)

    # --- export and import -------------------------------------------------------------------------
    def export_markdown(self, conversation_id: str) -> str:
        conversation = self.get(conversation_id)
        lines = [f"# {conversation.title or 'Untitled conversation'}", ""]
        if conversation.model:
            lines += [f"Model: `{conversation.model}`", ""]
        if conversation.system_prompt.strip():
            lines += ["## System prompt", "", conversation.system_prompt.strip(), ""]
        for message in self.messages(conversation_id):
            lines += [f"## {message.role.capitalize()}", "", message.content.rstrip(), ""]
            if message.stopped:
                lines += ["*(answer stopped before it was finished)*", ""]
        return "\n".join(lines).rstrip() + "\n"

    def export_json(self, conversation_id: str) -> dict[str, Any]:
        conversation = self.get(conversation_id)
        return {
            "format": EXPORT_FORMAT,
            "version": EXPORT_VERSION,
            "id": conversation.id,
            "title": conversation.title,
            "system_prompt": conversation.system_prompt,
            "model": conversation.model,
            "created": conversation.created,
            "updated": conversation.updated,
            "messages": [
                {key: value for key, value in message.to_dict().items() if key not in ("id", "conversation_id")}
                for message in self.messages(conversation_id)
            ],
        }

    def import_json(self, data: Any) -> Conversation:
        """A conversation from export_json's shape, under a new id; what is wrong with bad data is said."""
        checked = _checked_import(data)
        conversation_id = uuid.uuid4().hex[:12]
        now = time.time()

        def work(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO conversations (id, title, system_prompt, model, created, updated)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (conversation_id, checked["title"], checked["system_prompt"], checked["model"],
                 checked["created"] or now, now),
            )
            for m in checked["messages"]:
                db.execute(
                    "INSERT INTO messages (conversation_id, role, content, created, stopped, first_token_ms,"
                    " tokens_per_second) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (conversation_id, m["role"], m["content"], m["created"] or now, int(m["stopped"]),
                     m["first_token_ms"], m["tokens_per_second"]),
                )

        self._write(work)
        return self.get(conversation_id)

    # --- chat over documents -----------------------------------------------------------------------
    def set_collections(self, conversation_id: str, collections: list[str]) -> None:
        """The document collections this conversation answers from (an empty list: none)."""
        self.get(conversation_id)

        def work(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM conversation_collections WHERE conversation_id = ?", (conversation_id,))
            db.executemany("INSERT OR IGNORE INTO conversation_collections (conversation_id, collection) VALUES (?, ?)",
                           [(conversation_id, name) for name in collections])

        self._write(work)

    def collections(self, conversation_id: str) -> list[str]:
        return [r[0] for r in self._read(
            "SELECT collection FROM conversation_collections WHERE conversation_id = ? ORDER BY collection",
            (conversation_id,))]

    def set_sources(self, message_id: int, sources: list[dict[str, Any]]) -> None:
        """The passages an answer was given (dicts with number, collection, path, page, heading, passage, cited)."""
        def work(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM message_sources WHERE message_id = ?", (message_id,))
            db.executemany(
                "INSERT INTO message_sources (message_id, number, collection, path, page, heading, passage, cited)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(message_id, s["number"], s["collection"], s["path"], s.get("page"), s.get("heading") or "",
                  s["passage"], int(bool(s.get("cited")))) for s in sources],
            )

        self._write(work)

    def sources(self, message_id: int) -> list[dict[str, Any]]:
        rows = self._read("SELECT number, collection, path, page, heading, passage, cited FROM message_sources"
                          " WHERE message_id = ? ORDER BY number", (message_id,))
        return [{"number": r[0], "collection": r[1], "path": r[2], "page": r[3], "heading": r[4], "passage": r[5],
                 "cited": bool(r[6])} for r in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> ConversationStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _message(row: tuple[Any, ...]) -> Message:
    values = list(row)
    values[5] = bool(values[5])
    return Message(*values)


def _text_field(data: dict[str, Any], key: str, where: str, default: str = "") -> str:
    value = data.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise InvalidInputError(f"Cannot import: {where}{key} must be text, not {type(value).__name__}.")
    return value


def _number_field(data: dict[str, Any], key: str, where: str) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInputError(f"Cannot import: {where}{key} must be a number, not {type(value).__name__}.")
    return float(value)


def _checked_import(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise InvalidInputError(
            f"Cannot import: a conversation is a JSON object (as `chat --export ID --format json` writes), "
            f"not {type(data).__name__}."
        )
    if data.get("format", EXPORT_FORMAT) != EXPORT_FORMAT:
        raise InvalidInputError(f"Cannot import: the format is {data.get('format')!r}, not {EXPORT_FORMAT!r}.")
    messages = data.get("messages")
    if not isinstance(messages, list):
        raise InvalidInputError("Cannot import: the conversation has no \"messages\" list.")
    checked_messages = []
    for n, message in enumerate(messages):
        where = f"messages[{n}]."
        if not isinstance(message, dict):
            raise InvalidInputError(f"Cannot import: messages[{n}] must be an object with role and content.")
        role = message.get("role")
        if role not in ROLES:
            raise InvalidInputError(f"Cannot import: {where}role must be 'user' or 'assistant', not {role!r}.")
        if not isinstance(message.get("content"), str):
            raise InvalidInputError(f"Cannot import: {where}content must be text.")
        stopped = message.get("stopped", False)
        if not isinstance(stopped, bool):
            raise InvalidInputError(f"Cannot import: {where}stopped must be true or false.")
        checked_messages.append({
            "role": role,
            "content": message["content"],
            "created": _number_field(message, "created", where),
            "stopped": stopped,
            "first_token_ms": _number_field(message, "first_token_ms", where),
            "tokens_per_second": _number_field(message, "tokens_per_second", where),
        })
    model = data.get("model")
    if model is not None and not isinstance(model, str):
        raise InvalidInputError("Cannot import: model must be text or null.")
    title = _text_field(data, "title", "")
    if not title:
        first_user = next((m["content"] for m in checked_messages if m["role"] == "user"), "")
        title = title_from(first_user)
    return {
        "title": re.sub(r"\s+", " ", title).strip(),
        "system_prompt": _text_field(data, "system_prompt", ""),
        "model": model or None,
        "created": _number_field(data, "created", ""),
        "messages": checked_messages,
    }
