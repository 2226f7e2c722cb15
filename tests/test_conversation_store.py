"""The conversations store on real SQLite: what the window lists, what a streaming answer writes, export and
import, two processes writing at once, and a corrupt file moved aside."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from desktop_ai.engine.conversations.store import (
    FILE_NAME,
    ConversationNotFoundError,
    ConversationStore,
    title_from,
)
from desktop_ai.engine.errors import InvalidInputError


@pytest.fixture
def store(tmp_path: Path):
    s = ConversationStore(tmp_path / "chats.sqlite3")
    yield s
    s.close()


def test_default_path_is_under_the_user_data_dir(_isolated_home: Path) -> None:
    with ConversationStore() as s:
        assert s.path == _isolated_home / "data" / FILE_NAME
        assert s.path.exists()
        assert s.notice is None


def test_create_get_list_rename(store: ConversationStore) -> None:
    first = store.create(system_prompt="Be brief.", model="smollm2")
    second = store.create(title="  Second  ")
    assert first.id != second.id and len(first.id) == 12
    assert store.get(first.id).system_prompt == "Be brief."
    assert store.get(first.id).model == "smollm2"
    assert store.get(second.id).title == "Second"
    assert [c.id for c in store.list()] == [second.id, first.id]  # newest updated first
    store.rename(first.id, "Renamed")
    assert store.get(first.id).title == "Renamed"
    assert [c.id for c in store.list()] == [first.id, second.id]  # renaming bumps it to the top
    store.set_system_prompt(second.id, "You are a pirate.")
    store.set_model(second.id, None)
    got = store.get(second.id)
    assert got.system_prompt == "You are a pirate." and got.model is None


def test_unknown_id_is_a_clear_error(store: ConversationStore) -> None:
    with pytest.raises(ConversationNotFoundError, match="No conversation with id 'nope'.*chat --list"):
        store.get("nope")
    for call in (lambda: store.rename("nope", "x"), lambda: store.messages("nope"),
                 lambda: store.add_message("nope", "user", "hi"), lambda: store.export_json("nope")):
        with pytest.raises(ConversationNotFoundError):
            call()
    assert issubclass(ConversationNotFoundError, InvalidInputError)


def test_messages_in_order_with_count_and_title_from_the_first_user_message(store: ConversationStore) -> None:
    c = store.create()
    assert c.title == ""
    long = "Tell me   everything about the\nhistory of the Roman empire, please, in detail"
    u1 = store.add_message(c.id, "user", long)
    a1 = store.add_message(c.id, "assistant", "It began...")
    u2 = store.add_message(c.id, "user", "And then?")
    got = store.messages(c.id)
    assert [m.id for m in got] == [u1.id, a1.id, u2.id]
    assert [m.role for m in got] == ["user", "assistant", "user"]
    assert got[0].content == long  # the message itself is kept exactly
    conversation = store.get(c.id)
    assert conversation.message_count == 3
    assert conversation.title == title_from(long)
    assert conversation.title.startswith("Tell me everything about the")
    assert len(conversation.title) <= 41 and "\n" not in conversation.title
    named = store.create(title="Kept")
    store.add_message(named.id, "user", "something else")
    assert store.get(named.id).title == "Kept"  # a title the user gave is not replaced


def test_bad_role_is_refused(store: ConversationStore) -> None:
    c = store.create()
    with pytest.raises(InvalidInputError, match="role"):
        store.add_message(c.id, "system", "x")


def test_streaming_update_message(store: ConversationStore) -> None:
    c = store.create()
    store.add_message(c.id, "user", "hi")
    answer = store.add_message(c.id, "assistant", "Hel")
    before = store.get(c.id).updated
    store.update_message(answer.id, "Hello the", stopped=False)
    assert store.message(answer.id).content == "Hello the"
    store.update_message(answer.id, "Hello there", stopped=True, first_token_ms=12.5, tokens_per_second=30.0)
    final = store.messages(c.id)[-1]
    assert (final.content, final.stopped, final.first_token_ms, final.tokens_per_second) == (
        "Hello there", True, 12.5, 30.0)
    assert store.get(c.id).updated >= before
    store.update_message(answer.id, "Hello there!", stopped=False)  # speed figures kept when not given
    assert store.message(answer.id).first_token_ms == 12.5
    with pytest.raises(InvalidInputError, match="No message with id 99999"):
        store.update_message(99999, "x", stopped=False)
    store.delete_message(answer.id)
    assert [m.role for m in store.messages(c.id)] == ["user"]


def test_search_title_or_message_text_case_insensitive(store: ConversationStore) -> None:
    a = store.create(title="Grocery list")
    b = store.create()
    store.add_message(b.id, "user", "What is a Quokka?")
    store.add_message(b.id, "assistant", "A small marsupial from ÄUSTRALIEN.")
    store.create(title="Other")
    assert [c.id for c in store.list("grocery")] == [a.id]
    assert [c.id for c in store.list("QUOKKA")] == [b.id]
    assert [c.id for c in store.list("äustralien")] == [b.id]  # not only ASCII folds
    assert store.list("zebra") == []
    assert len(store.list("")) == 3
    assert [c.id for c in store.list("%")] == []  # no LIKE wildcards


def test_delete_restore_and_purge(store: ConversationStore) -> None:
    keep = store.create(title="keep")
    gone = store.create(title="gone")
    store.add_message(gone.id, "user", "hello")
    store.delete(gone.id)
    assert [c.id for c in store.list()] == [keep.id]
    with pytest.raises(ConversationNotFoundError):
        store.get(gone.id)
    store.restore(gone.id)
    assert {c.id for c in store.list()} == {keep.id, gone.id}
    assert [m.content for m in store.messages(gone.id)] == ["hello"]
    store.delete(gone.id)
    assert store.purge_deleted() == 1
    with pytest.raises(ConversationNotFoundError):
        store.restore(gone.id)
    assert [c.id for c in store.list()] == [keep.id]
    db = sqlite3.connect(store.path)
    assert db.execute("SELECT count(*) FROM messages").fetchone()[0] == 0  # its messages went with it
    db.close()


def test_export_markdown(store: ConversationStore) -> None:
    c = store.create(system_prompt="Answer in rhymes.")
    store.add_message(c.id, "user", "Why is the sky blue?")
    answer = store.add_message(c.id, "assistant", "- light\n- scatters")
    store.update_message(answer.id, "- light\n- scatters | and", stopped=True)
    text = store.export_markdown(c.id)
    assert text.startswith("# Why is the sky blue?\n")
    assert "## System prompt\n\nAnswer in rhymes." in text
    assert text.index("## User\n\nWhy is the sky blue?") < text.index("## Assistant\n\n- light\n- scatters | and")
    assert "stopped" in text


def test_export_json_and_import_round_trip(store: ConversationStore, tmp_path: Path) -> None:
    c = store.create(system_prompt="sys", model="some-model")
    store.add_message(c.id, "user", "one")
    a = store.add_message(c.id, "assistant", "two")
    store.update_message(a.id, "two!", stopped=True, first_token_ms=5.0, tokens_per_second=9.0)
    exported = store.export_json(c.id)
    text = json.dumps(exported)  # it is plain JSON
    with ConversationStore(tmp_path / "other.sqlite3") as other:
        imported = other.import_json(json.loads(text))
        assert imported.id != c.id
        assert (imported.title, imported.system_prompt, imported.model, imported.message_count) == (
            "one", "sys", "some-model", 2)
        back = other.messages(imported.id)
        assert [(m.role, m.content, m.stopped) for m in back] == [("user", "one", False), ("assistant", "two!", True)]
        assert back[1].first_token_ms == 5.0 and back[1].tokens_per_second == 9.0
        again = other.export_json(imported.id)
        assert again["messages"] == exported["messages"]


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ([1, 2], "JSON object"),
        ({"title": "x"}, "messages"),
        ({"messages": [{"role": "bot", "content": "x"}]}, r"messages\[0\]\.role"),
        ({"messages": [{"role": "user", "content": "ok"}, {"role": "user", "content": 3}]}, r"messages\[1\]\.content"),
        ({"messages": [], "format": "something-else"}, "format"),
        ({"messages": [], "title": 5}, "title must be text"),
        ({"messages": [{"role": "user", "content": "x", "stopped": "yes"}]}, "stopped"),
    ],
)
def test_import_refuses_bad_json(store: ConversationStore, data: object, says: str) -> None:
    with pytest.raises(InvalidInputError, match=says):
        store.import_json(data)  # type: ignore[arg-type]
    assert store.list() == []  # nothing half-imported


def _write_many(path: str, conversation_id: str, tag: str, count: int) -> None:
    s = ConversationStore(Path(path))
    for n in range(count):
        message = s.add_message(conversation_id, "user" if n % 2 == 0 else "assistant", f"{tag}-{n}")
        s.update_message(message.id, f"{tag}-{n}", stopped=False)
    s.close()


def test_two_processes_writing_at_once_lose_nothing(store: ConversationStore) -> None:
    c = store.create()
    context = multiprocessing.get_context("spawn")
    count = 150
    workers = [context.Process(target=_write_many, args=(str(store.path), c.id, tag, count)) for tag in ("a", "b")]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
        assert w.exitcode == 0
    contents = [m.content for m in store.messages(c.id)]
    assert len(contents) == 2 * count
    for tag in ("a", "b"):
        mine = [text for text in contents if text.startswith(tag + "-")]
        assert mine == [f"{tag}-{n}" for n in range(count)]  # each writer's messages complete and in order
    assert store.get(c.id).message_count == 2 * count


def test_a_corrupt_file_is_moved_aside_and_a_new_store_works(tmp_path: Path) -> None:
    path = tmp_path / "chats.sqlite3"
    garbage = b"this is not a database at all \x00\xff" * 200
    path.write_bytes(garbage)
    with ConversationStore(path) as s:
        assert s.notice is not None and "damaged" in s.notice and "moved aside" in s.notice
        aside = [p for p in tmp_path.glob("chats.sqlite3.corrupt-*") if not p.name.endswith(("-wal", "-shm"))]
        assert len(aside) == 1
        assert aside[0].read_bytes() == garbage  # the user's old file is kept, not deleted
        assert aside[0].name in s.notice
        assert s.list() == []
        c = s.create()
        s.add_message(c.id, "user", "fresh start")
    with ConversationStore(path) as reopened:
        assert reopened.notice is None
        assert [m.content for m in reopened.messages(c.id)] == ["fresh start"]


def test_a_damaged_page_inside_a_real_database_is_caught(tmp_path: Path) -> None:
    path = tmp_path / "chats.sqlite3"
    with ConversationStore(path) as s:
        c = s.create()
        for n in range(300):
            s.add_message(c.id, "user", f"message {n} " + "x" * 200)
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    data = bytearray(path.read_bytes())
    page = 4096
    data[page * 3: page * 6] = b"\xde\xad\xbe\xef" * (page * 3 // 4)  # smash pages past the header
    path.write_bytes(bytes(data))
    with ConversationStore(path) as s:
        assert s.notice is not None
        assert s.list() == []
