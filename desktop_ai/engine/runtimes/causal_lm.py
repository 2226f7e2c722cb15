"""The one interface every causal language model runtime implements, so the Text tab, the CLI and the
benchmark drive llama.cpp, CTranslate2 and transformers the same way."""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from desktop_ai.engine.errors import InvalidInputError

logger = logging.getLogger(__name__)

RUNTIME_LLAMA_CPP = "llama.cpp"
RUNTIME_CTRANSLATE2 = "ctranslate2"
RUNTIME_TRANSFORMERS = "transformers"
RUNTIME_AUTO = "auto"
RUNTIMES = (RUNTIME_LLAMA_CPP, RUNTIME_CTRANSLATE2, RUNTIME_TRANSFORMERS)
RUNTIME_CHOICES = (RUNTIME_AUTO, *RUNTIMES)

Messages = Sequence[dict[str, str]]
TextCallback = Callable[[str], None]


@dataclass
class SamplingOptions:
    """What every runtime understands; temperature 0 is greedy, top_k 0 means no top-k cut."""

    max_new_tokens: int = 200
    min_new_tokens: int = 0
    temperature: float = 0.7
    top_p: float = 0.9
    top_k: int = 40
    repetition_penalty: float = 1.1
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    # OpenAI's penalties and biases (llama.cpp honours them; other runtimes refuse them, see `beyond_basics`)
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: dict[int, float] = field(default_factory=dict)

    @property
    def sampling(self) -> bool:
        return self.temperature > 0

    @property
    def penalized(self) -> bool:
        return self.repetition_penalty != 1.0 or self.presence_penalty != 0.0 or self.frequency_penalty != 0.0

    def beyond_basics(self) -> list[str]:
        """The options set here that only llama.cpp acts on (named as OpenAI's API names them)."""
        return [name for name, value in (("presence_penalty", self.presence_penalty),
                                         ("frequency_penalty", self.frequency_penalty),
                                         ("logit_bias", self.logit_bias)) if value]

    def validate(self) -> None:
        """What the user set, checked before a model loads (the window's and the CLI's settings share these words)."""
        if not 1 <= self.max_new_tokens <= 4096:
            raise InvalidInputError("Max new tokens must be between 1 and 4096.")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise InvalidInputError("Temperature must be 0 or more and top-p between 0 and 1.")
        if self.top_k < 0:
            raise InvalidInputError("Top-k must be 0 (off) or more.")
        if self.repetition_penalty <= 0:
            raise InvalidInputError("Repetition penalty must be more than 0 (1 is none).")


@dataclass
class StreamResult:
    text: str
    new_tokens: int
    first_token_at: float | None  # time.perf_counter() when the first new token came
    seconds: float  # from the start of decoding to the last token
    cancelled: bool = False
    reused_tokens: int = 0  # prompt tokens whose state was kept from the conversation's previous turn (not re-read)
    token_ids: list[int] = field(default_factory=list)  # the new tokens, where the runtime needs them afterwards


class CausalLM(ABC):
    """A loaded causal language model. Implementations keep their library's objects private."""

    runtime: str = ""
    # Whether stream(state_key=...) keeps a conversation's state between turns (CTranslate2 re-reads the prompt).
    keeps_conversation_state: bool = False

    def __init__(self, model_id: str, device: str, compression: str, context_length: int) -> None:
        self.model_id = model_id
        self.device = device
        self.compression = compression  # what the runtime actually runs, e.g. "int8" or "Q4_1 (GGUF)"
        self.context_length = context_length
        self.notices: list[str] = []

    @property
    @abstractmethod
    def chat_template(self) -> str | None:
        """The model's own Jinja chat template, or None when it has none."""

    @abstractmethod
    def tokenize(self, text: str) -> list[int]:
        """Plain text to token ids, with the model's beginning-of-text token when it uses one."""

    @abstractmethod
    def chat_tokens(self, messages: Messages) -> list[int]:
        """Messages rendered with the model's chat template (ready for the assistant's answer), as token ids."""

    @abstractmethod
    def detokenize(self, tokens: Sequence[int]) -> str:
        """Token ids back to text, special tokens left out."""

    @abstractmethod
    def stream(
        self,
        prompt_tokens: Sequence[int],
        options: SamplingOptions,
        on_text: TextCallback | None = None,
        cancel: threading.Event | None = None,
        state_key: str | None = None,
    ) -> StreamResult:
        """Generate after the prompt, sending text to `on_text` as it comes; stops at once when `cancel` is set.

        `state_key` names a conversation: a runtime that keeps state (keeps_conversation_state) holds what it
        computed for that conversation's last turn and reads only the tokens after the longest common prefix,
        reporting how many it reused in StreamResult.reused_tokens. A few conversations are kept (least recently
        used dropped), so switching between them loses nothing."""

    @abstractmethod
    def resident_bytes(self) -> int:
        """Memory the loaded weights hold (memory-mapped files count at their size)."""

    def weights_bytes(self) -> int:
        """The weights alone (without the context's key/value cache), as the runtime holds them."""
        return self.resident_bytes()

    def count_tokens(self, text: str) -> int:
        return len(self.tokenize(text))

    def forget_state(self, state_key: str) -> None:
        """Drop what is kept for this conversation, so its next turn reads the whole prompt again."""

    def state_bytes(self) -> int:
        """Memory the kept conversation states hold besides resident_bytes (snapshots, caches): the store's
        memory budget counts it with the model."""
        return 0

    def state_count(self) -> int:
        """How many conversations' states are kept."""
        return 0

    def close(self) -> None:
        """Free what the library holds; the object is not used afterwards."""


class TokenizerBackedLM(CausalLM):
    """A runtime whose text side is a transformers tokenizer (CTranslate2 and transformers): its chat template,
    tokens and decoding. Subclasses set `_tokenizer` and `_bytes` when they load."""

    _tokenizer: Any
    _bytes: int

    @property
    def chat_template(self) -> str | None:
        template = getattr(self._tokenizer, "chat_template", None)
        return template if isinstance(template, str) else None

    def tokenize(self, text: str) -> list[int]:
        return list(self._tokenizer(text).input_ids)

    def chat_tokens(self, messages: Messages) -> list[int]:
        encoded = self._tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=True, return_dict=True)
        ids = encoded["input_ids"]
        return list(ids[0] if ids and isinstance(ids[0], list) else ids)

    def detokenize(self, tokens: Sequence[int]) -> str:
        return self._tokenizer.decode(list(tokens), skip_special_tokens=True)

    def resident_bytes(self) -> int:
        return self._bytes


class IncrementalDecoder:
    """Turns a growing list of token ids into text pieces, holding back a split multi-byte character."""

    def __init__(self, detokenize: Callable[[Sequence[int]], str], on_text: TextCallback | None) -> None:
        self._detokenize = detokenize
        self._on_text = on_text
        self.tokens: list[int] = []
        self.text = ""
        self.first_token_at: float | None = None

    def add(self, token: int) -> None:
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()
        self.tokens.append(token)
        text = self._detokenize(self.tokens)
        if text.endswith("\ufffd"):
            return
        self._emit(text)

    def finish(self) -> str:
        self._emit(self._detokenize(self.tokens))
        return self.text

    def _emit(self, text: str) -> None:
        if text.startswith(self.text):
            piece = text[len(self.text):]
        else:  # a tokenizer that rewrites earlier text (rare): send only what is new by length
            piece = text[len(self.text):] if len(text) > len(self.text) else ""
        self.text = text
        if piece and self._on_text is not None:
            self._on_text(piece)


def common_prefix_length(held: Sequence[int], prompt: Sequence[int]) -> int:
    """How many leading tokens two sequences share."""
    n = 0
    for a, b in zip(held, prompt):
        if a != b:
            break
        n += 1
    return n


MAX_STATE_BYTES = 512 * 1024**2  # per loaded model: the kept conversations' snapshots/caches together


class ConversationStates:
    """A small LRU of per-conversation runtime states (a llama.cpp snapshot, a transformers cache), by key.

    Bounded twice: at most `capacity` conversations and `max_bytes` in all (`size_of` measures one state), the
    least recently used dropped first; a state larger than the whole cap is not kept. Their bytes are reported
    (CausalLM.state_bytes) so the memory budget counts them with the model they belong to."""

    def __init__(self, capacity: int = 4, max_bytes: int = MAX_STATE_BYTES,
                 size_of: Callable[[Any], int] = lambda state: 0) -> None:
        self.capacity = capacity
        self.max_bytes = max_bytes
        self.size_of = size_of
        self._states: OrderedDict[str, tuple[Any, int]] = OrderedDict()
        self.lock = threading.RLock()  # one turn at a time on a runtime's conversation state
        self.dropped = 0  # states let go to stay within the bounds
        self._bytes = 0  # a running total, read without the lock (a turn holds it while it streams)

    def take(self, key: str) -> Any | None:
        with self.lock:
            kept = self._states.pop(key, None)
            if kept is None:
                return None
            self._bytes -= kept[1]
            return kept[0]

    def put(self, key: str, state: Any) -> None:
        with self.lock:
            self.forget(key)
            size = int(self.size_of(state))
            self._states[key] = (state, size)
            self._bytes += size
            while self._states and (len(self._states) > self.capacity or self._bytes > self.max_bytes):
                dropped, (_, size) = self._states.popitem(last=False)
                self._bytes -= size
                self.dropped += 1
                logger.debug("Conversation state for %s (%d bytes) dropped (least recently used)", dropped, size)

    def forget(self, key: str) -> None:
        with self.lock:
            self.take(key)

    def keys(self) -> list[str]:
        with self.lock:
            return list(self._states)

    def __len__(self) -> int:
        """Without the lock, as `bytes` (the memory budget reads both while a turn streams)."""
        return len(self._states)

    @property
    def bytes(self) -> int:
        return self._bytes


def stop_index(text: str, stops: Sequence[str]) -> int | None:
    """Where the earliest stop string starts in `text`, or None."""
    found = [text.find(stop) for stop in stops if stop and stop in text]
    return min(found) if found else None


def physical_cores() -> int:
    import psutil

    return psutil.cpu_count(logical=False) or psutil.cpu_count() or 1
