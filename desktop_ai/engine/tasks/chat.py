"""Chat: a saved conversation answered one turn at a time, with the whole conversation in the model's view.

Every turn renders the system prompt and the messages through the model's own chat template. When that no
longer fits the context (less the room kept for the answer), the oldest user/assistant turns are left out of
what the model reads (they stay saved) and the result says so; the system prompt is always kept. The runtime
keeps each conversation's state (llama.cpp's context, transformers' key/value cache) keyed by the conversation
id, so turn 10 reads only what is new since turn 9.

The answer is written to the conversations store while it streams (at most every half second, and at the end),
so a crash loses at most the last moment of it; an answer cut short (Stop, a failure) is kept, marked stopped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from desktop_ai.engine.conversations.store import ConversationStore, Message
from desktop_ai.engine.errors import EngineError, InvalidInputError
from desktop_ai.engine.models.catalogue import TASK_GENERATE
from desktop_ai.engine.models.compression import Compression
from desktop_ai.engine.models.devices import cpu_fallback_notice, is_out_of_memory
from desktop_ai.engine.models.store import ModelStore, ProgressCallback
from desktop_ai.engine.runtimes.causal_lm import RUNTIME_AUTO, CausalLM, SamplingOptions
from desktop_ai.engine.tasks.text_generation import TextGenerator

logger = logging.getLogger(__name__)

ACTIONS = ("send", "regenerate", "edit")
SAVE_EVERY_S = 0.5  # a streaming answer is written at most this often (and at the end)
MIN_PROMPT_ROOM = 16


class ChatModelFailedError(EngineError):
    """The model failed while it answered; the partial answer is saved (marked stopped)."""


@dataclass
class ChatOptions:
    max_new_tokens: int = 256
    temperature: float = 0.7  # 0 is greedy
    top_p: float = 0.9
    top_k: int = 40
    repetition_penalty: float = 1.1
    seed: int | None = None
    reuse_state: bool = True  # False: this turn reads the whole conversation again (the bench's baseline)
    context_limit: int | None = None  # read at most this many tokens even if the model takes more (tests, bench)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ChatOptions:
        """From a job's params; a name it does not know is refused (a typo would otherwise be ignored)."""
        data = dict(data or {})
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise InvalidInputError(f"Unknown chat option(s): {', '.join(unknown)}.")
        for name, value in data.items():  # a window or script sending "ten" gets a message, not a TypeError
            default = cls.__dataclass_fields__[name].default
            if isinstance(default, bool):
                fits = isinstance(value, bool)
            elif isinstance(default, float):
                fits = isinstance(value, (int, float)) and not isinstance(value, bool)
            else:  # whole numbers, some of which may be None (no seed, no limit)
                fits = (value is None and default is None) or (isinstance(value, int) and not isinstance(value, bool))
            if not fits:
                kind = ("true or false" if isinstance(default, bool)
                        else "a number" if isinstance(default, float) else "a whole number")
                raise InvalidInputError(f"The chat option {name} must be {kind}, not {value!r}.")
        return cls(**data)

    def validate(self) -> None:
        self.sampling_options().validate()
        if self.context_limit is not None and self.context_limit < MIN_PROMPT_ROOM + 1:
            raise InvalidInputError(f"The context limit must be at least {MIN_PROMPT_ROOM + 1} tokens.")

    def sampling_options(self) -> SamplingOptions:
        return SamplingOptions(max_new_tokens=self.max_new_tokens, temperature=self.temperature, top_p=self.top_p,
                               top_k=self.top_k, repetition_penalty=self.repetition_penalty, seed=self.seed)


@dataclass
class ChatPrompt:
    """What the model reads this turn: the rendered tokens, and what had to be left out to fit."""

    tokens: list[int]
    messages: list[dict[str, str]]  # as rendered (the system prompt first when there is one)
    context_total: int
    dropped_messages: int = 0
    cut_tokens: int = 0  # tokens cut from a newest message longer than the whole context
    notices: list[str] = field(default_factory=list)


@dataclass
class ChatTurnResult:
    conversation: str
    turn: int  # 1, 2, ... user turns over the whole conversation
    message_id: int  # the assistant message
    user_message_id: int
    text: str
    stopped: bool
    first_token_ms: float | None  # from the start of the turn (model loading included) to the first text
    tokens_per_second: float
    new_tokens: int
    prompt_tokens: int
    context_used: int  # prompt + answer tokens, of context_total
    context_total: int
    dropped_messages: int
    reused_tokens: int  # prompt tokens whose state the runtime kept from before (not read again)
    runtime: str
    model_id: str
    device: str = ""
    seconds: float = 0.0
    notices: list[str] = field(default_factory=list)
    sources: list[dict[str, Any]] = field(default_factory=list)  # chat over documents: the numbered passages

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def fit_conversation(lm: CausalLM, system_prompt: str, history: list[Message], max_new_tokens: int,
                     context_limit: int | None = None) -> ChatPrompt:
    """Render the conversation with the model's chat template, leaving out the oldest turns until it fits.

    Whole turns go (a user message with the answers after it), oldest first, never the system prompt and never
    the newest user message; if that one alone is too long, its end is kept (with a notice). The messages stay
    saved as they are: only what the model reads this turn is shortened.
    """
    total = min(lm.context_length, context_limit) if context_limit else lm.context_length
    room = total - max_new_tokens
    if room < MIN_PROMPT_ROOM:
        raise InvalidInputError(
            f"Max new tokens ({max_new_tokens}) must leave room for the conversation: this model reads {total} "
            "tokens in all."
        )
    system = [{"role": "system", "content": system_prompt}] if system_prompt.strip() else []
    turns = [{"role": m.role, "content": m.content} for m in history]
    notices: list[str] = []
    if lm.chat_template is None:
        notices.append("This model has no chat template: the conversation was sent to it as plain text.")
    tokens = lm.chat_tokens(system + turns)
    dropped = 0
    while len(tokens) > room and len(turns) > 1:
        cut = 1
        while cut < len(turns) - 1 and turns[cut]["role"] != "user":
            cut += 1  # the user message goes with the answers that followed it
        turns = turns[cut:]
        dropped += cut
        tokens = lm.chat_tokens(system + turns)
    if dropped:
        notices.append(
            f"The conversation no longer fits the model's context ({total} tokens with {max_new_tokens} kept for "
            f"the answer): the oldest {dropped} message{'s' if dropped != 1 else ''} "
            f"{'were' if dropped != 1 else 'was'} left out of what the model read"
            f"{' (the system prompt was kept)' if system else ''}. They are still saved."
        )
    cut_tokens = 0
    if len(tokens) > room:
        if system and len(lm.chat_tokens(system + [{"role": turns[-1]["role"], "content": ""}])) > room:
            raise InvalidInputError(
                f"The system prompt alone is longer than this model's context ({total} tokens with "
                f"{max_new_tokens} kept for the answer): shorten it or lower max new tokens."
            )
        content_tokens = lm.tokenize(turns[-1]["content"])
        over = len(tokens) - room
        while len(tokens) > room and content_tokens:
            content_tokens = content_tokens[over:]
            cut_tokens += over
            turns[-1] = {"role": turns[-1]["role"], "content": lm.detokenize(content_tokens)}
            tokens = lm.chat_tokens(system + turns)
            over = max(len(tokens) - room, 1)
        notices.append(
            f"The message is longer than the model's whole context ({total} tokens with {max_new_tokens} kept for "
            f"the answer): the model read only its last part ({cut_tokens:,} tokens were cut). The message is "
            "saved whole."
        )
    return ChatPrompt(tokens, system + turns, total, dropped, cut_tokens, notices)


class ChatSession:
    """Answers turns of saved conversations. One session serves any conversation; models come from the store
    (the conversation's own model unless one is given), and stay loaded for the next turn."""

    def __init__(self, store: ModelStore, conversations: ConversationStore, device: str = "auto",
                 compression: Compression | str = Compression.NONE, runtime: str = RUNTIME_AUTO,
                 document_search: Any | None = None) -> None:
        self.store = store
        self.conversations = conversations
        self.device = device
        self.compression = compression
        self.runtime = runtime
        self._generators: dict[str, TextGenerator] = {}
        self._document_search = document_search  # a DocumentSearch, opened at the first documents chat if None

    def generator(self, model: str | None) -> TextGenerator:
        reference = model or self.store.default_model(TASK_GENERATE)
        if reference not in self._generators:
            self._generators[reference] = TextGenerator(self.store, None, reference, self.device, self.compression,
                                                        self.runtime)
        return self._generators[reference]

    def load(self, model: str | None = None, progress: ProgressCallback | None = None,
             cancel: threading.Event | None = None) -> CausalLM:
        return self.generator(model).load(progress, cancel)

    def send(self, conversation_id: str, message: str, options: ChatOptions | None = None, **kwargs: Any) -> ChatTurnResult:
        return self.run(conversation_id, "send", message, options, **kwargs)

    def run(
        self,
        conversation_id: str,
        action: str = "send",
        message: str | None = None,
        options: ChatOptions | None = None,
        on_partial: Callable[[dict[str, Any]], None] | None = None,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
        model: str | None = None,
        collections: Sequence[str] | None = None,
    ) -> ChatTurnResult:
        """send: `message` as a new user turn; regenerate: answer the last user turn again; edit: replace the
        last user message with `message` and answer it. Bad input is refused before anything is written.
        collections: the document collections the conversation answers from from now on (saved with it; [] for
        none, None to keep what it had)."""
        options = options or ChatOptions()
        options.validate()
        if action not in ACTIONS:
            raise InvalidInputError(f"Unknown chat action {action!r}: choose one of {', '.join(ACTIONS)}.")
        if action in ("send", "edit") and (message is None or not message.strip()):
            raise InvalidInputError("The message is empty: type something to send.")
        conversation = self.conversations.get(conversation_id)
        started = time.perf_counter()
        generator = self.generator(model or conversation.model)  # an unknown model is refused before any write
        if collections is not None:
            for name in collections:  # an unknown collection is refused before any write
                self.document_search().index.collection(name)
            self.conversations.set_collections(conversation_id, list(collections))
        user_message = self._user_turn(conversation_id, action, message)
        history = self.conversations.messages(conversation_id)
        turn = sum(1 for m in history if m.role == "user")
        writer = _AnswerWriter(self.conversations, conversation_id, on_partial)
        sources = self._retrieve(conversation_id, user_message.content)
        if sources is not None:
            if not sources:
                return self._nothing_found(conversation_id, turn, user_message, writer, started)
            from desktop_ai.engine.documents.grounding import grounded_question

            history = history[:-1] + [replace(history[-1], content=grounded_question(user_message.content, sources))]
        answer = _Turn(conversation_id, turn, user_message, conversation.system_prompt, history, options, started)
        try:
            return self._with_sources(self._answer(generator.load(progress, cancel), answer, writer, cancel), sources)
        except Exception as error:
            if generator.device.device == "cpu" or not is_out_of_memory(error):
                raise
            logger.warning("Chat: out of GPU memory on %s; answering on the CPU", generator.device.device)
        full = generator.fall_back_to_cpu()  # later turns stay on the CPU: the conversation only grows
        writer.restart()
        result = self._answer(generator.load(progress, cancel), answer, writer, cancel)
        result.notices.append(cpu_fallback_notice(full))
        return self._with_sources(result, sources)

    def document_search(self) -> Any:
        if self._document_search is None:
            from desktop_ai.engine.documents.embedding import DocumentEmbedder
            from desktop_ai.engine.documents.index import DocumentIndex
            from desktop_ai.engine.documents.search import DocumentSearch

            self._document_search = DocumentSearch(DocumentIndex(), DocumentEmbedder(self.store))
        return self._document_search

    def _retrieve(self, conversation_id: str, question: str) -> list[Any] | None:
        """The numbered passages for this question from the conversation's collections (None: it has none)."""
        collections = self.conversations.collections(conversation_id)
        if not collections:
            return None
        from desktop_ai.engine.documents.grounding import sources_from

        return sources_from(self.document_search().search(collections, question, top_k=8))

    def _with_sources(self, result: ChatTurnResult, sources: list[Any] | None) -> ChatTurnResult:
        """Mark which passages the answer cites and save them with the answer."""
        if sources is None:
            return result
        from desktop_ai.engine.documents.grounding import mark_cited

        result.sources = [s.to_dict() for s in mark_cited(result.text, sources)]
        self.conversations.set_sources(result.message_id, result.sources)
        if not any(s["cited"] for s in result.sources):
            result.notices.append("The answer cites none of its sources by number; they are listed with it.")
        return result

    def _nothing_found(self, conversation_id: str, turn: int, user_message: Message, writer: _AnswerWriter,
                       started: float) -> ChatTurnResult:
        """No passage is about the question: say so rather than let the model invent an answer."""
        from desktop_ai.engine.documents.grounding import nothing_found_answer

        collections = self.conversations.collections(conversation_id)
        text = nothing_found_answer(collections)
        writer.add(text)
        message_id = writer.finish(stopped=False, text=text)
        return ChatTurnResult(
            conversation=conversation_id, turn=turn, message_id=message_id, user_message_id=user_message.id,
            text=text, stopped=False, first_token_ms=None, tokens_per_second=0.0, new_tokens=0, prompt_tokens=0,
            context_used=0, context_total=0, dropped_messages=0, reused_tokens=0, runtime="", model_id="",
            seconds=round(time.perf_counter() - started, 3),
            notices=[f"Nothing in {', '.join(collections)} matched the question; the model was not asked."],
        )

    def _answer(self, lm: CausalLM, turn: _Turn, writer: _AnswerWriter, cancel: threading.Event | None) -> ChatTurnResult:
        """Read the fitted conversation and stream the answer into the store. A GPU out of memory is raised as
        it is (the caller answers on the CPU); any other failure keeps the partial answer, marked stopped."""
        options, conversation_id = turn.options, turn.conversation_id
        prompt = fit_conversation(lm, turn.system_prompt, turn.history, options.max_new_tokens, options.context_limit)
        notices = list(lm.notices) + prompt.notices
        if not lm.keeps_conversation_state:
            notices.append(f"{lm.runtime} keeps no conversation state: every turn reads the whole conversation again.")
        if not options.reuse_state:  # read it all this turn; what is computed is still kept for the next
            lm.forget_state(conversation_id)
        if writer.on_partial is not None:
            writer.on_partial({"conversation": conversation_id, "user_message_id": turn.user_message.id,
                               "context": {"used": len(prompt.tokens), "total": prompt.context_total,
                                           "dropped_messages": prompt.dropped_messages, "notices": prompt.notices}})
        try:
            streamed = lm.stream(prompt.tokens, options.sampling_options(), writer.add, cancel, state_key=conversation_id)
        except Exception as error:
            if lm.device != "cpu" and is_out_of_memory(error):
                raise
            if writer.message_id is not None:
                writer.finish(stopped=True)  # the partial answer stays, marked as cut short
            if isinstance(error, EngineError):
                raise
            kept = f" The partial answer ({len(writer.text)} characters) is kept, marked as stopped." if writer.text else ""
            logger.warning("Chat: the model failed mid-answer in %s: %s", conversation_id, error)
            raise ChatModelFailedError(f"The model failed while answering: {error}.{kept}") from error
        started = turn.started
        first_token_ms = round((streamed.first_token_at - started) * 1000, 1) if streamed.first_token_at else None
        speed = round(streamed.new_tokens / streamed.seconds, 2) if streamed.seconds > 0 else 0.0
        text = streamed.text if streamed.text or not writer.text else writer.text
        message_id = writer.finish(stopped=streamed.cancelled, text=text, first_token_ms=first_token_ms,
                                   tokens_per_second=speed)
        if streamed.cancelled:
            notices.append("Stopped: the answer so far is kept.")
        return ChatTurnResult(
            conversation=conversation_id, turn=turn.turn, message_id=message_id, user_message_id=turn.user_message.id,
            text=text, stopped=streamed.cancelled, first_token_ms=first_token_ms,
            tokens_per_second=speed, new_tokens=streamed.new_tokens, prompt_tokens=len(prompt.tokens),
            context_used=len(prompt.tokens) + streamed.new_tokens, context_total=prompt.context_total,
            dropped_messages=prompt.dropped_messages, reused_tokens=streamed.reused_tokens,
            runtime=lm.runtime, model_id=lm.model_id, device=lm.device, seconds=round(time.perf_counter() - started, 3),
            notices=notices,
        )

    def _user_turn(self, conversation_id: str, action: str, message: str | None) -> Message:
        """The user message this turn answers: added, edited, or the last one (what followed it is removed)."""
        if action == "send":
            assert message is not None
            return self.conversations.add_message(conversation_id, "user", message)
        history = self.conversations.messages(conversation_id)
        last_user = next((m for m in reversed(history) if m.role == "user"), None)
        if last_user is None:
            what = "regenerate" if action == "regenerate" else "edit"
            raise InvalidInputError(f"Nothing to {what}: this conversation has no message yet.")
        if action == "edit":
            assert message is not None
            self.conversations.update_message(last_user.id, message, stopped=False)
        for later in history[history.index(last_user) + 1:]:
            self.conversations.delete_message(later.id)
        return self.conversations.message(last_user.id)


@dataclass
class _Turn:
    """What one turn answers, fixed before the model runs (so a retry on the CPU answers the same)."""

    conversation_id: str
    turn: int
    user_message: Message
    system_prompt: str
    history: list[Message]
    options: ChatOptions
    started: float


class _AnswerWriter:
    """The assistant message as it streams: created at the first text, saved at most every SAVE_EVERY_S.

    Until the last write the row says stopped=True: if the process dies mid-answer (a crash, a power cut,
    the window killed) what is saved is already the partial answer marked as cut short. The last write
    sets what really happened."""

    def __init__(self, conversations: ConversationStore, conversation_id: str,
                 on_partial: Callable[[dict[str, Any]], None] | None) -> None:
        self.conversations = conversations
        self.conversation_id = conversation_id
        self.on_partial = on_partial
        self.text = ""
        self.message_id: int | None = None
        self._saved_at = 0.0

    def add(self, piece: str) -> None:
        self.text += piece
        now = time.monotonic()
        if self.message_id is None:
            self.message_id = self.conversations.add_message(self.conversation_id, "assistant", self.text,
                                                             stopped=True).id
            self._saved_at = now
        elif now - self._saved_at >= SAVE_EVERY_S:
            self.conversations.update_message(self.message_id, self.text, stopped=True)
            self._saved_at = now
        if self.on_partial is not None:
            self.on_partial({"conversation": self.conversation_id, "message_id": self.message_id, "text": piece})

    def restart(self) -> None:
        """The answer begins again (after a GPU ran out of memory mid-answer): the row, if there is one, is
        emptied and kept, and the window is told with a partial {"message_id", "text": "", "restarted": True}."""
        self.text = ""
        if self.message_id is None:
            return
        self.conversations.update_message(self.message_id, "", stopped=True)
        self._saved_at = time.monotonic()
        if self.on_partial is not None:
            self.on_partial({"conversation": self.conversation_id, "message_id": self.message_id, "text": "",
                             "restarted": True})

    def finish(self, stopped: bool, text: str | None = None, first_token_ms: float | None = None,
               tokens_per_second: float | None = None) -> int:
        """The last write. An answer that never began gets its (empty) message too, so each turn has one."""
        if text is not None:
            self.text = text
        if self.message_id is None:
            self.message_id = self.conversations.add_message(self.conversation_id, "assistant", self.text, stopped).id
        self.conversations.update_message(self.message_id, self.text, stopped, first_token_ms, tokens_per_second)
        return self.message_id
