"""Chat over documents in the engine's chat task: the question's passages go into what the model reads, numbered,
with the instruction to cite; the sources (file, page, passage) come back and are saved with the answer; with
nothing relevant the answer says so without asking the model. The embedded SmolLM2 (llama.cpp) checks the
mechanics on a real chat model; the tiny random Llama checks them everywhere."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from desktop_ai.engine.conversations.store import _SCHEMA, ConversationStore
from desktop_ai.engine.documents.grounding import INSTRUCTION, Source, mark_cited
from desktop_ai.engine.documents.indexing import Indexer
from desktop_ai.engine.documents.search import DocumentSearch
from desktop_ai.engine.runtimes import llama_cpp
from desktop_ai.engine.tasks import chat as chat_module
from desktop_ai.engine.tasks.chat import ChatOptions, ChatSession
from document_fixtures import embedder, embedding_store, folder, index, written  # noqa: F401

GREEDY = ChatOptions(max_new_tokens=6, temperature=0.0, repetition_penalty=1.0)


@pytest.fixture
def conversations(tmp_path: Path):
    with ConversationStore(tmp_path / "conversations.sqlite3") as store:
        yield store


@pytest.fixture
def documents(index, embedder, written) -> DocumentSearch:
    Indexer(index, embedder).add("manuals", [written["pdf"], written["docx"], written["epub"]])
    return DocumentSearch(index, embedder)


def _session(workspace, conversations, documents, runtime: str) -> ChatSession:
    return ChatSession(workspace.store, conversations, device="cpu", runtime=runtime, document_search=documents)


def _read_prompts(monkeypatch: pytest.MonkeyPatch) -> list[list]:
    """Every history the chat task renders for the model (the real fit_conversation still runs)."""
    seen: list[list] = []
    real = chat_module.fit_conversation

    def spy(lm, system_prompt, history, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(list(history))
        return real(lm, system_prompt, history, *args, **kwargs)

    monkeypatch.setattr(chat_module, "fit_conversation", spy)
    return seen


def test_the_answer_carries_numbered_sources_that_are_saved(workspace, conversations, documents,
                                                            tiny_causal_lm_dir: Path, monkeypatch) -> None:
    session = _session(workspace, conversations, documents, "transformers")
    prompts = _read_prompts(monkeypatch)
    conversation = conversations.create(model=str(tiny_causal_lm_dir))
    question = "Which pump model circulates the glycol coolant?"
    result = session.send(conversation.id, question, GREEDY, collections=["manuals"])
    first = result.sources[0]
    assert (Path(first["path"]).name, first["page"], first["number"]) == ("handbook.pdf", 2, 1)
    assert "ZX-4471" in first["passage"]
    read = prompts[-1][-1].content
    assert read.startswith(INSTRUCTION) and "[1] handbook.pdf, page 2 (Pumps):" in read and read.endswith(question)
    messages = conversations.messages(conversation.id)
    assert messages[-2].content == question, "the question is saved as typed, without the passages"
    assert conversations.sources(result.message_id) == result.sources
    assert conversations.collections(conversation.id) == ["manuals"]

    second = session.send(conversation.id, "And when should I prune the climbing roses?", GREEDY)
    assert Path(second.sources[0]["path"]).name == "garden.docx", "the conversation keeps its collections"
    assert conversations.sources(result.message_id) == result.sources, "earlier sources stay with their answer"


def test_nothing_relevant_says_so_without_the_model(workspace, conversations, documents, tiny_causal_lm_dir: Path,
                                                    monkeypatch) -> None:
    session = _session(workspace, conversations, documents, "transformers")
    prompts = _read_prompts(monkeypatch)
    conversation = conversations.create(model=str(tiny_causal_lm_dir))
    result = session.send(conversation.id, "Who won the football league in 1954?", GREEDY, collections=["manuals"])
    assert result.text.startswith("I found nothing about this in your documents (manuals)")
    assert result.sources == [] and result.new_tokens == 0 and prompts == [], "the model was not asked"
    assert conversations.messages(conversation.id)[-1].content == result.text


def test_an_unknown_collection_is_refused_before_anything_is_written(workspace, conversations, documents,
                                                                     tiny_causal_lm_dir: Path) -> None:
    session = _session(workspace, conversations, documents, "transformers")
    conversation = conversations.create(model=str(tiny_causal_lm_dir))
    with pytest.raises(Exception, match="no collection named 'recipes'"):
        session.send(conversation.id, "hello", GREEDY, collections=["recipes"])
    assert conversations.messages(conversation.id) == []


def test_citations_in_the_answer_mark_their_sources() -> None:
    sources = [Source(n, "c", f"/x/{n}.pdf", n, "", "text") for n in (1, 2, 3)]
    marked = mark_cited("The valve is Q7 [2], and the pump [3][3].", sources)
    assert [s.cited for s in marked] == [False, True, True]


def test_an_older_conversations_file_gains_the_sources_tables(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:  # a file written before chat over documents existed
        db.executescript(_SCHEMA)
        db.execute("INSERT INTO conversations (id, title, created, updated) VALUES ('old', 'kept', 1, 1)")
        db.execute("INSERT INTO messages (conversation_id, role, content, created) VALUES ('old', 'user', 'hi', 1)")
    with ConversationStore(path) as store:
        assert store.notice is None and [m.content for m in store.messages("old")] == ["hi"]
        message = store.add_message("old", "assistant", "hello [1]")
        store.set_sources(message.id, [{"number": 1, "collection": "c", "path": "/a.pdf", "page": 4, "heading": "",
                                        "passage": "p", "cited": True}])
        assert store.sources(message.id)[0]["page"] == 4


@pytest.mark.skipif(not llama_cpp.available(), reason="llama-cpp-python is not installed")
def test_the_embedded_smollm2_answers_from_the_right_file_and_page(workspace, conversations, documents,
                                                                   monkeypatch) -> None:
    session = _session(workspace, conversations, documents, "auto")
    prompts = _read_prompts(monkeypatch)
    conversation = conversations.create()
    result = session.send(conversation.id, "What must the operator do if the reactor exceeds 340 degrees?",
                          ChatOptions(max_new_tokens=48, temperature=0.0), collections=["manuals"])
    assert result.runtime == "llama.cpp" and result.new_tokens > 0 and result.text.strip()
    first = result.sources[0]
    assert (Path(first["path"]).name, first["page"]) == ("handbook.pdf", 3)
    assert "[1] handbook.pdf, page 3 (Emergency):" in prompts[-1][-1].content
    assert conversations.sources(result.message_id)[0]["path"] == first["path"]
