"""Chat turns with real models: the embedded SmolLM2 GGUF on llama.cpp and a tiny random Llama on transformers.

What is proved: the conversation goes through the model's chat template; the runtime keeps each conversation's
state (reused_tokens grows turn by turn, survives switching conversations, and the answer is the same as one
read from scratch); the oldest turns leave the context first and the system prompt stays; the answer is in the
store while it streams; Stop and a model failing mid-answer keep the partial answer, marked stopped.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from desktop_ai.engine.conversations.store import ConversationNotFoundError, ConversationStore
from desktop_ai.engine.errors import InvalidInputError
from desktop_ai.engine.models.catalogue import TASK_GENERATE
from desktop_ai.engine.process import JOB_KINDS, _run_job
from desktop_ai.engine.tasks.chat import ChatModelFailedError, ChatOptions, ChatSession, fit_conversation
from llama_cpp_gate import needs_llama_cpp

GREEDY = dict(temperature=0.0, repetition_penalty=1.0)


@pytest.fixture
def conversations(tmp_path: Path):
    store = ConversationStore(tmp_path / "conversations.sqlite3")
    yield store
    store.close()


@pytest.fixture
def gguf_chat(workspace, conversations) -> ChatSession:
    session = ChatSession(workspace.store, conversations, device="cpu")
    assert workspace.store.default_model(TASK_GENERATE) == "smollm2-135m-instruct-q4"
    return session


@pytest.fixture
def tiny_chat(workspace, conversations, tiny_causal_lm_dir: Path) -> ChatSession:
    session = ChatSession(workspace.store, conversations, device="cpu", runtime="transformers")
    session.default = str(tiny_causal_lm_dir)
    return session


def _tiny_conversation(session: ChatSession, system_prompt: str = "") -> str:
    return session.conversations.create(system_prompt=system_prompt, model=session.default).id


# --- the chat template -------------------------------------------------------------------------------

@needs_llama_cpp
def test_the_gguf_chat_template_renders_every_role(gguf_chat: ChatSession, conversations: ConversationStore) -> None:
    lm = gguf_chat.load()
    c = conversations.create(system_prompt="Answer in one word.")
    conversations.add_message(c.id, "user", "Which planet is red?")
    conversations.add_message(c.id, "assistant", "Mars.")
    conversations.add_message(c.id, "user", "And the largest?")
    prompt = fit_conversation(lm, c.system_prompt, conversations.messages(c.id), max_new_tokens=32)
    im_start = lm._llm.tokenize(b"<|im_start|>", add_bos=False, special=True)
    assert len(im_start) == 1  # one special token, not the characters
    assert prompt.tokens.count(im_start[0]) == 5  # system, user, assistant, user, and the answer's own opening
    rendered = lm._llm.detokenize(prompt.tokens, special=True).decode()
    assert "<|im_start|>system\nAnswer in one word.<|im_end|>" in rendered
    assert "<|im_start|>user\nWhich planet is red?<|im_end|>" in rendered
    assert "<|im_start|>assistant\nMars.<|im_end|>" in rendered
    assert rendered.rstrip().endswith("<|im_start|>assistant")
    assert prompt.dropped_messages == 0 and prompt.notices == []


def test_the_transformers_chat_template_is_applied(tiny_chat: ChatSession, tiny_causal_lm_dir: Path) -> None:
    from transformers import AutoTokenizer

    cid = _tiny_conversation(tiny_chat, "the lazy dog")
    result = tiny_chat.send(cid, "hello there", ChatOptions(max_new_tokens=4, **GREEDY))
    assert result.runtime == "transformers"
    lm = tiny_chat.load(tiny_chat.default)
    prompt = fit_conversation(lm, "the lazy dog", tiny_chat.conversations.messages(cid), 4)
    tokenizer = AutoTokenizer.from_pretrained(tiny_causal_lm_dir)
    rendered = tokenizer.decode(prompt.tokens)  # the tiny word-level tokenizer puts spaces between tokens
    assert prompt.tokens.count(tokenizer.convert_tokens_to_ids("<|im_start|>")) == 4  # system, user, assistant, next
    assert rendered.startswith("<|im_start|> system the lazy dog <|im_end|> <|im_start|> user hello there <|im_end|>")
    first = lm.chat_tokens([{"role": "system", "content": "the lazy dog"}, {"role": "user", "content": "hello there"}])
    assert result.prompt_tokens == len(first)


# --- state kept between turns ----------------------------------------------------------------------

@needs_llama_cpp
def test_ten_turns_reuse_the_conversation_state(gguf_chat: ChatSession, conversations: ConversationStore) -> None:
    c = conversations.create(system_prompt="You are brief.")
    options = ChatOptions(max_new_tokens=12, **GREEDY)
    results = [gguf_chat.send(c.id, f"Tell me fact number {n} about the sea.", options) for n in range(1, 11)]
    assert [r.turn for r in results] == list(range(1, 11))
    assert results[0].reused_tokens == 0
    for before, after in zip(results, results[1:]):
        assert after.prompt_tokens > before.prompt_tokens
        assert after.reused_tokens > before.reused_tokens  # it grows with the conversation
        assert after.reused_tokens >= before.prompt_tokens  # the whole earlier prompt was not read again
        assert after.reused_tokens < after.prompt_tokens  # the new message was read
    stored = conversations.messages(c.id)
    assert [m.role for m in stored] == ["user", "assistant"] * 10
    assert [m.content for m in stored[1::2]] == [r.text for r in results]
    assert all(r.runtime == "llama.cpp" and r.text for r in results)


@needs_llama_cpp
def test_switching_conversations_keeps_each_ones_state(gguf_chat: ChatSession, conversations: ConversationStore) -> None:
    a, b = conversations.create(system_prompt="You talk about cats."), conversations.create()
    options = ChatOptions(max_new_tokens=10, **GREEDY)
    a1 = gguf_chat.send(a.id, "Describe a cat.", options)
    b1 = gguf_chat.send(b.id, "What is two plus two?", options)
    a2 = gguf_chat.send(a.id, "And its tail?", options)
    b2 = gguf_chat.send(b.id, "And three plus three?", options)
    assert a2.reused_tokens >= a1.prompt_tokens  # back to A: its state came back from the snapshot
    assert b2.reused_tokens >= b1.prompt_tokens
    assert (a2.turn, b2.turn) == (2, 2)
    fresh = gguf_chat.run(b.id, "regenerate", options=ChatOptions(max_new_tokens=10, reuse_state=False, **GREEDY))
    assert fresh.reused_tokens == 0 and fresh.text
    assert conversations.messages(b.id)[-1].content == fresh.text  # regenerate replaced the answer
    assert len(conversations.messages(b.id)) == 4


@needs_llama_cpp
def test_a_restored_state_answers_exactly_as_the_state_that_never_left(gguf_chat: ChatSession,
                                                                       conversations: ConversationStore) -> None:
    """The same two turns twice: once without a switch, once with another conversation between them (so the
    second turn runs on a snapshot brought back). Each first turn reads from scratch, so both second turns decode
    the same new tokens on the same state: greedy answers must be identical, token for token."""
    first, second = "Name three rivers.", "Which is the longest?"
    greedy = ChatOptions(max_new_tokens=16, **GREEDY)
    scratch = ChatOptions(max_new_tokens=16, reuse_state=False, **GREEDY)
    stay = conversations.create(system_prompt="You know geography.")
    gguf_chat.send(stay.id, first, scratch)
    stayed = gguf_chat.send(stay.id, second, greedy)
    away, other = conversations.create(system_prompt="You know geography."), conversations.create()
    gguf_chat.send(away.id, first, scratch)
    gguf_chat.send(other.id, "Something else entirely: what is a violin?", scratch)
    came_back = gguf_chat.send(away.id, second, greedy)
    assert came_back.reused_tokens == stayed.reused_tokens > 0
    assert came_back.text == stayed.text


def test_transformers_keeps_past_key_values_per_conversation(tiny_chat: ChatSession) -> None:
    a, b = _tiny_conversation(tiny_chat, "alpha"), _tiny_conversation(tiny_chat)
    options = ChatOptions(max_new_tokens=6, **GREEDY)
    a1 = tiny_chat.send(a, "the quick brown fox", options)
    a2 = tiny_chat.send(a, "jumps over the dog", options)
    b1 = tiny_chat.send(b, "local models run", options)
    a3 = tiny_chat.send(a, "please translate this", options)
    assert a1.reused_tokens == 0 and b1.reused_tokens == 0
    assert 0 < a2.reused_tokens < a3.reused_tokens < a3.prompt_tokens
    assert a3.reused_tokens >= a2.prompt_tokens
    fresh = tiny_chat.run(a, "regenerate", options=ChatOptions(max_new_tokens=6, reuse_state=False, **GREEDY))
    assert fresh.reused_tokens == 0
    assert fresh.text == a3.text  # the cropped, reused cache gives what a full read gives


def test_ctranslate2_says_it_reads_the_conversation_again(workspace, conversations, tiny_causal_lm_dir: Path) -> None:
    session = ChatSession(workspace.store, conversations, device="cpu", runtime="ctranslate2")
    c = conversations.create(model=str(tiny_causal_lm_dir))
    session.send(c.id, "hello", ChatOptions(max_new_tokens=4, **GREEDY))
    second = session.send(c.id, "again", ChatOptions(max_new_tokens=4, **GREEDY))
    assert second.runtime == "ctranslate2"
    assert second.reused_tokens == 0
    assert any("reads the whole conversation again" in n for n in second.notices)


# --- fitting the context ------------------------------------------------------------------------------

def test_the_oldest_turns_leave_a_small_context_and_the_system_prompt_stays(tiny_chat: ChatSession,
                                                                            tiny_causal_lm_dir: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_causal_lm_dir)
    lines = ["the quick brown fox jumps over the lazy dog", "the cat sat on the mat and looked out of the window",
             "stocks fell sharply after the central bank raised rates", "the team won the match in the final minute",
             "scientists found water on a distant planet", "parliament voted on the new budget last night"]
    cid = _tiny_conversation(tiny_chat, "please translate this sentence")
    options = ChatOptions(max_new_tokens=8, context_limit=120, **GREEDY)
    results = [tiny_chat.send(cid, f"{line} and the weather today is sunny with a light breeze", options)
               for line in lines]
    last = results[-1]
    assert results[0].dropped_messages == 0
    assert last.dropped_messages > 0 and last.dropped_messages % 2 == 0  # whole user/assistant pairs
    assert last.prompt_tokens <= 120 - 8
    assert last.context_total == 120
    assert any("oldest" in n and "system prompt was kept" in n for n in last.notices)
    lm = tiny_chat.load(tiny_chat.default)
    prompt = fit_conversation(lm, "please translate this sentence", tiny_chat.conversations.messages(cid)[:-1], 8, 120)
    rendered = tokenizer.decode(prompt.tokens)
    assert rendered.startswith("<|im_start|> system please translate this sentence <|im_end|>")
    assert "quick brown fox" not in rendered and "parliament voted" in rendered
    assert prompt.messages[1]["role"] == "user"  # the first kept message opens a turn
    assert len(tiny_chat.conversations.messages(cid)) == 12  # all still saved


def test_a_message_longer_than_the_whole_context_is_cut_with_a_notice(tiny_chat: ChatSession) -> None:
    cid = _tiny_conversation(tiny_chat)
    long = " ".join(["the quick brown fox jumps over the lazy dog"] * 60)
    result = tiny_chat.send(cid, long, ChatOptions(max_new_tokens=8, **GREEDY))
    assert result.prompt_tokens <= result.context_total - 8
    assert result.context_total == 256  # the tiny Llama's own context
    assert any("longer than the model's whole context" in n for n in result.notices)
    assert tiny_chat.conversations.messages(cid)[0].content == long  # what the user typed is kept whole
    assert result.new_tokens >= 1


def test_max_new_tokens_must_leave_room(tiny_chat: ChatSession) -> None:
    cid = _tiny_conversation(tiny_chat)
    with pytest.raises(InvalidInputError, match="leave room"):
        tiny_chat.send(cid, "hi", ChatOptions(max_new_tokens=250))


# --- streaming into the store, Stop, failures -----------------------------------------------------------

@needs_llama_cpp
def test_the_answer_is_in_the_store_while_it_streams(gguf_chat: ChatSession, conversations: ConversationStore) -> None:
    c = conversations.create()
    partials: list[dict] = []
    seen_in_store: list[str] = []
    reader = ConversationStore(conversations.path)  # another connection, as the window has

    def on_partial(payload: dict) -> None:
        partials.append(payload)
        if "message_id" in payload and len(seen_in_store) == 0:
            streaming = reader.messages(c.id)[-1]
            seen_in_store.append(streaming.content)
            assert streaming.stopped  # marked cut short until the last write: a crash now leaves it so

    result = gguf_chat.send(c.id, "Write two sentences about rain.", ChatOptions(max_new_tokens=30, **GREEDY),
                            on_partial=on_partial)
    reader.close()
    assert partials[0]["conversation"] == c.id and partials[0]["user_message_id"] == result.user_message_id
    assert partials[0]["context"]["total"] == result.context_total
    pieces = [p for p in partials[1:]]
    assert all(p["message_id"] == result.message_id for p in pieces)
    assert "".join(p["text"] for p in pieces) == result.text
    assert seen_in_store and seen_in_store[0] and result.text.startswith(seen_in_store[0])
    stored = conversations.messages(c.id)[-1]
    assert (stored.id, stored.content, stored.stopped) == (result.message_id, result.text, False)
    assert stored.first_token_ms == result.first_token_ms and stored.tokens_per_second == result.tokens_per_second
    assert result.first_token_ms > 0 and result.tokens_per_second > 0
    assert conversations.get(c.id).title == "Write two sentences about rain."


@needs_llama_cpp
def test_stop_keeps_the_partial_answer_marked_stopped(gguf_chat: ChatSession, conversations: ConversationStore) -> None:
    c = conversations.create()
    cancel = threading.Event()
    pieces: list[str] = []

    def on_partial(payload: dict) -> None:
        if "text" in payload:
            pieces.append(payload["text"])
            if len(pieces) == 3:
                cancel.set()

    result = gguf_chat.send(c.id, "Tell me a long story about a dragon.", ChatOptions(max_new_tokens=200, **GREEDY),
                            on_partial=on_partial, cancel=cancel)
    assert result.stopped
    assert result.text and result.new_tokens < 200
    assert any("Stopped" in n for n in result.notices)
    stored = conversations.messages(c.id)[-1]
    assert (stored.role, stored.content, stored.stopped) == ("assistant", result.text, True)
    again = gguf_chat.send(c.id, "Go on.", ChatOptions(max_new_tokens=8, **GREEDY))  # the next turn still works
    assert again.turn == 2 and again.reused_tokens > 0


def test_a_model_failing_mid_answer_keeps_the_partial_answer(tiny_chat: ChatSession, monkeypatch) -> None:
    cid = _tiny_conversation(tiny_chat)
    lm = tiny_chat.load(tiny_chat.default)
    real_stream = lm.stream

    def failing_stream(prompt_tokens, options, on_text=None, cancel=None, state_key=None):
        count = 0

        def fail_after_three(piece: str) -> None:
            nonlocal count
            on_text(piece)
            count += 1
            if count == 3:
                raise RuntimeError("CUDA error: an illegal memory access was encountered")

        return real_stream(prompt_tokens, options, fail_after_three, cancel, state_key=state_key)

    monkeypatch.setattr(lm, "stream", failing_stream)
    options = ChatOptions(max_new_tokens=20, **GREEDY)
    with pytest.raises(ChatModelFailedError, match="illegal memory access.*partial answer.*kept"):
        tiny_chat.send(cid, "tell me a story", options)
    stored = tiny_chat.conversations.messages(cid)
    assert [m.role for m in stored] == ["user", "assistant"]
    assert stored[1].stopped and stored[1].content  # the partial answer, marked stopped
    monkeypatch.undo()
    after = tiny_chat.send(cid, "try again", ChatOptions(max_new_tokens=4, **GREEDY))
    assert after.turn == 2 and not after.stopped


# --- bad input -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("message", ["", "   \n\t "])
def test_an_empty_message_is_refused_and_nothing_is_written(tiny_chat: ChatSession, message: str) -> None:
    cid = _tiny_conversation(tiny_chat)
    with pytest.raises(InvalidInputError, match="message is empty"):
        tiny_chat.send(cid, message)
    assert tiny_chat.conversations.messages(cid) == []


def test_unknown_conversation_and_nothing_to_regenerate(tiny_chat: ChatSession) -> None:
    with pytest.raises(ConversationNotFoundError, match="No conversation with id 'missing'"):
        tiny_chat.send("missing", "hello")
    cid = _tiny_conversation(tiny_chat)
    with pytest.raises(InvalidInputError, match="Nothing to regenerate"):
        tiny_chat.run(cid, "regenerate")
    with pytest.raises(InvalidInputError, match="Unknown chat action"):
        tiny_chat.run(cid, "shout", "x")


def test_edit_replaces_the_last_user_message_and_what_followed(tiny_chat: ChatSession) -> None:
    cid = _tiny_conversation(tiny_chat)
    options = ChatOptions(max_new_tokens=4, **GREEDY)
    tiny_chat.send(cid, "first question", options)
    tiny_chat.send(cid, "secnd question", options)
    edited = tiny_chat.run(cid, "edit", "second question", options)
    stored = tiny_chat.conversations.messages(cid)
    assert [m.content for m in stored[::2]] == ["first question", "second question"]
    assert len(stored) == 4 and stored[-1].id == edited.message_id
    assert edited.turn == 2


# --- the engine process's job -------------------------------------------------------------------------

def test_the_chat_job_kind_streams_and_returns_the_turn(workspace, conversations, tiny_causal_lm_dir: Path) -> None:
    assert "chat" in JOB_KINDS
    c = conversations.create(model=str(tiny_causal_lm_dir))
    sent: list[tuple] = []
    params = {"conversation": c.id, "action": "send", "message": "hello there", "model": None, "device": "cpu",
              "runtime": "transformers", "options": {"max_new_tokens": 5, "temperature": 0.0},
              "store": str(conversations.path)}
    _run_job(sent.append, threading.Event(), workspace, 7, "chat", params)
    kinds = [m[0] for m in sent]
    assert kinds[-1] == "finished", sent[-1]
    result = sent[-1][2]
    assert result["conversation"] == c.id and result["turn"] == 1 and result["runtime"] == "transformers"
    partials = [m[2] for m in sent if m[0] == "partial"]
    assert partials[0]["user_message_id"] == result["user_message_id"]
    assert "".join(p.get("text", "") for p in partials[1:]) == result["text"]
    assert conversations.messages(c.id)[-1].content == result["text"]
    sent.clear()
    _run_job(sent.append, threading.Event(), workspace, 8, "chat", {**params, "conversation": "nope"})
    assert sent[-1][0] == "failed" and "No conversation with id 'nope'" in sent[-1][2]
    sent.clear()
    _run_job(sent.append, threading.Event(), workspace, 9, "chat", {**params, "options": {"max_tokens": 3}})
    assert sent[-1][0] == "failed" and "Unknown chat option" in sent[-1][2]


# --- the GPU out of memory ---------------------------------------------------------------------------------

def test_a_gpu_out_of_memory_mid_answer_answers_on_the_cpu_and_says_so(tiny_chat: ChatSession, monkeypatch) -> None:
    """As tests/test_devices.py does: the "meta" device stands in for a GPU (the model really loads there), and
    its answer, having begun, runs out of memory as a full GPU does. The turn is answered again on the CPU,
    into the same message, with a notice; the copy on the full device is dropped, and later turns stay on the CPU."""
    import torch

    from desktop_ai.engine.models.devices import DeviceChoice, cpu_fallback_notice

    cid = _tiny_conversation(tiny_chat)
    generator = tiny_chat.generator(tiny_chat.default)
    generator.device = DeviceChoice("meta", torch.float32, "test")
    on_meta = tiny_chat.load(tiny_chat.default)
    assert on_meta.device == "meta" and next(on_meta.loaded.model.parameters()).device.type == "meta"

    def out_of_memory_after_a_piece(prompt_tokens, options, on_text=None, cancel=None, state_key=None):
        on_text("half an ans")
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(on_meta, "stream", out_of_memory_after_a_piece)
    partials: list[dict] = []
    result = tiny_chat.send(cid, "hello there", ChatOptions(max_new_tokens=5, **GREEDY), on_partial=partials.append)
    assert result.device == "cpu" and result.text and not result.stopped
    assert result.notices[-1] == cpu_fallback_notice("meta")
    texts = [p for p in partials if "message_id" in p]
    assert texts[0]["text"] == "half an ans"
    assert texts[1] == {"conversation": cid, "message_id": result.message_id, "text": "", "restarted": True}
    assert "".join(p["text"] for p in texts[2:]) == result.text
    stored = tiny_chat.conversations.messages(cid)
    assert [m.role for m in stored] == ["user", "assistant"]  # one answer, not the cut one and another
    assert (stored[1].id, stored[1].content, stored[1].stopped) == (result.message_id, result.text, False)
    assert [key[3] for key in tiny_chat.store.loaded._items] == ["cpu"]  # the full device's copy was dropped
    after = tiny_chat.send(cid, "again", ChatOptions(max_new_tokens=4, **GREEDY))
    assert after.device == "cpu" and after.reused_tokens > 0
    assert cpu_fallback_notice("meta") not in after.notices


@pytest.mark.gpu
def test_a_real_cuda_out_of_memory_mid_answer_answers_on_the_cpu(workspace, conversations, tiny_causal_lm_dir: Path,
                                                                 monkeypatch) -> None:
    """On a real GPU: the answer, having begun on CUDA, asks for 16 TiB there (a real CUDA out of memory)."""
    import torch

    from desktop_ai.engine.models.devices import cpu_fallback_notice

    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    session = ChatSession(workspace.store, conversations, device="cuda", runtime="transformers")
    c = conversations.create(model=str(tiny_causal_lm_dir))
    on_gpu = session.load(str(tiny_causal_lm_dir))
    assert on_gpu.device.startswith("cuda")
    real_stream = on_gpu.stream

    def runs_out(prompt_tokens, options, on_text=None, cancel=None, state_key=None):
        def piece_then_out_of_memory(piece: str) -> None:
            on_text(piece)
            torch.empty(2**44, dtype=torch.uint8, device=on_gpu.device)

        return real_stream(prompt_tokens, options, piece_then_out_of_memory, cancel, state_key=state_key)

    monkeypatch.setattr(on_gpu, "stream", runs_out)
    result = session.send(c.id, "hello there", ChatOptions(max_new_tokens=5, **GREEDY))
    assert result.device == "cpu" and result.notices[-1] == cpu_fallback_notice("cuda")
    assert conversations.messages(c.id)[-1].content == result.text and not result.stopped


def test_a_gpu_out_of_memory_on_the_cpu_is_a_failure_not_a_retry(tiny_chat: ChatSession, monkeypatch) -> None:
    """On the CPU there is nowhere to fall back to: the partial answer is kept and the error says so."""
    import torch

    cid = _tiny_conversation(tiny_chat)
    lm = tiny_chat.load(tiny_chat.default)
    calls: list[int] = []

    def out_of_memory(prompt_tokens, options, on_text=None, cancel=None, state_key=None):
        calls.append(1)
        on_text("some")
        raise torch.OutOfMemoryError("out of memory")

    monkeypatch.setattr(lm, "stream", out_of_memory)
    with pytest.raises(ChatModelFailedError, match="partial answer"):
        tiny_chat.send(cid, "hello", ChatOptions(max_new_tokens=5, **GREEDY))
    assert calls == [1]
    assert tiny_chat.conversations.messages(cid)[1].stopped


# --- kept states and the memory budget -------------------------------------------------------------------

def test_kept_caches_are_capped_in_bytes_least_recently_used_dropped(tiny_chat: ChatSession) -> None:
    from desktop_ai.engine.runtimes.transformers_lm import cache_bytes

    a, b = _tiny_conversation(tiny_chat), _tiny_conversation(tiny_chat)
    options = ChatOptions(max_new_tokens=6, **GREEDY)
    lm = tiny_chat.load(tiny_chat.default)
    tiny_chat.send(a, "the quick brown fox", options)
    one = lm.state_bytes()
    (tokens, cache) = lm._states.take(a)
    assert one == cache_bytes(cache) > 0  # the key/value tensors themselves
    lm._states.put(a, (tokens, cache))
    lm._states.max_bytes = int(one * 1.5)  # room for one conversation's cache, not two
    tiny_chat.send(b, "local models run fast", options)
    assert lm._states.keys() == [b] and lm._states.dropped == 1  # A, least recently used, went
    assert 0 < lm.state_bytes() <= lm._states.max_bytes
    back = tiny_chat.send(a, "jumps over the dog", options)
    assert back.reused_tokens == 0  # A reads its conversation again
    lm._states.max_bytes = one // 4  # a cap smaller than one cache keeps none
    tiny_chat.send(a, "and again", options)
    assert lm.state_bytes() == 0 and lm.state_count() == 0


def test_the_memory_budget_counts_the_kept_states_with_their_model(tiny_chat: ChatSession) -> None:
    cid = _tiny_conversation(tiny_chat)
    lm = tiny_chat.load(tiny_chat.default)
    tiny_chat.send(cid, "the quick brown fox jumps over the lazy dog", ChatOptions(max_new_tokens=8, **GREEDY))
    loaded = tiny_chat.store.loaded
    size, states = lm.resident_bytes(), lm.state_bytes()
    assert states > 2
    (described,) = loaded.describe()
    assert (described["states"], described["states_mb"]) == (1, round(states / 1e6, 1))
    assert described["mb"] == round((size + states) / 1e6, 1)
    # A model that fits beside the weights alone, but not beside the weights and the kept cache: loading it
    # unloads the chat model, because its states count against the budget.
    loaded.budget_bytes = size + states + 1000
    loaded.get_or_load(("another model", "r", "x", "cpu", "none"), lambda: (bytearray(8), 8),
                       estimate_bytes=1000 + states // 2)
    assert [m["model"] for m in loaded.describe()] == ["another model"]
    assert loaded.unloads == 1


@needs_llama_cpp
def test_llama_cpp_snapshots_are_counted(gguf_chat: ChatSession, conversations: ConversationStore) -> None:
    a, b = conversations.create(), conversations.create()
    options = ChatOptions(max_new_tokens=4, **GREEDY)
    gguf_chat.send(a.id, "Name a colour.", options)
    lm = gguf_chat.load()
    assert lm.state_bytes() == 0 and lm.state_count() == 1  # A is in the context itself, counted in its size
    gguf_chat.send(b.id, "Name a fruit.", options)
    assert lm.state_bytes() > 0 and lm.state_count() == 2  # A waits as a snapshot
    (described,) = gguf_chat.store.loaded.describe()
    assert described["states"] == 2 and described["states_mb"] == round(lm.state_bytes() / 1e6, 1)


def test_an_unknown_model_is_refused_before_anything_is_written(tiny_chat: ChatSession) -> None:
    from desktop_ai.engine.errors import ModelUnavailableError

    cid = _tiny_conversation(tiny_chat)
    with pytest.raises(ModelUnavailableError, match="Unknown model 'no-such-model'"):
        tiny_chat.send(cid, "hello", model="no-such-model")
    assert tiny_chat.conversations.messages(cid) == []


@pytest.mark.parametrize(("options", "needle"), [({"max_new_tokens": "ten"}, "max_new_tokens must be a whole number"),
                                                 ({"temperature": "hot"}, "temperature must be a number"),
                                                 ({"reuse_state": 1}, "reuse_state must be true or false"),
                                                 ({"seed": 1.5}, "seed must be a whole number")])
def test_chat_options_of_the_wrong_type_are_one_clear_message(options: dict, needle: str) -> None:
    with pytest.raises(InvalidInputError, match=needle):
        ChatOptions.from_dict(options)
    assert ChatOptions.from_dict({"temperature": 0, "seed": None, "context_limit": 64}).temperature == 0
