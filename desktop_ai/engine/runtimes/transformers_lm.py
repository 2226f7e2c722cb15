"""transformers + torch: the reference and baseline, the runtime for architectures neither llama.cpp nor CTranslate2
reads, and the one that prunes or quantizes with torch.ao. A GGUF forced onto it is dequantized into a float32
copy once (slow, and large: only when the user asks for this runtime)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from desktop_ai.engine.models.loading import LoadedModel
from desktop_ai.engine.runtimes.causal_lm import (
    RUNTIME_TRANSFORMERS,
    ConversationStates,
    IncrementalDecoder,
    SamplingOptions,
    StreamResult,
    TextCallback,
    TokenizerBackedLM,
    common_prefix_length,
    stop_index,
)

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

MAX_CONTEXT_TOKENS = 8192


class TransformersLM(TokenizerBackedLM):
    runtime = RUNTIME_TRANSFORMERS
    keeps_conversation_state = True

    def __init__(self, loaded: LoadedModel, size_bytes: int) -> None:
        config = loaded.model.config
        context = getattr(config, "max_position_embeddings", None) or MAX_CONTEXT_TOKENS
        super().__init__(loaded.model_id, loaded.device, loaded.compression.method, min(context, MAX_CONTEXT_TOKENS))
        self.loaded = loaded
        self.notices = list(loaded.notices)
        self._tokenizer = loaded.tokenizer
        self._bytes = size_bytes
        # Per conversation: the tokens whose keys and values a DynamicCache holds, and that cache.
        self._states = ConversationStates(size_of=lambda state: cache_bytes(state[1]))

    def forget_state(self, state_key: str) -> None:
        self._states.forget(state_key)

    def state_bytes(self) -> int:
        """The kept key/value caches: not in resident_bytes (the weights), so counted here."""
        return self._states.bytes

    def state_count(self) -> int:
        return len(self._states)

    def _cache_for(self, state_key: str, prompt_tokens: Sequence[int]) -> tuple[Any, int]:
        """The conversation's cache cut back to the prefix it shares with this prompt (at least one prompt token
        is left to read, so generate has logits to start from); a new cache when nothing is shared."""
        from transformers import DynamicCache
        from transformers.cache_utils import DynamicLayer

        kept = self._states.take(state_key)
        if kept is not None:
            tokens, cache = kept
            shared = min(common_prefix_length(tokens, prompt_tokens), len(prompt_tokens) - 1)
            plain = all(type(layer) is DynamicLayer for layer in getattr(cache, "layers", []))
            if shared > 0 and plain:  # sliding-window layers cannot be cut back to an earlier length
                held = cache.get_seq_length()
                if held > shared:
                    cache.crop(shared - held)  # a negative count removes that many tokens from the end
                return cache, shared
        return DynamicCache(config=self.loaded.model.config), 0

    def stream(self, prompt_tokens: Sequence[int], options: SamplingOptions, on_text: TextCallback | None = None,
               cancel: threading.Event | None = None, state_key: str | None = None) -> StreamResult:
        if state_key is None:
            return self._stream(prompt_tokens, options, on_text, cancel, None)
        with self._states.lock:
            cache, reused = self._cache_for(state_key, prompt_tokens)
            result = self._stream(prompt_tokens, options, on_text, cancel, cache)  # a failure drops the cache
            tokens = list(prompt_tokens) + result.token_ids
            self._states.put(state_key, (tokens[: cache.get_seq_length()], cache))
        result.reused_tokens = reused
        return result

    def _stream(self, prompt_tokens: Sequence[int], options: SamplingOptions, on_text: TextCallback | None,
                cancel: threading.Event | None, cache: Any) -> StreamResult:
        import torch

        model = self.loaded.model
        decoder = IncrementalDecoder(self.detokenize, on_text)
        ids = torch.tensor([list(prompt_tokens)], dtype=torch.long, device=self.loaded.device)
        stopped_by_text = threading.Event()
        tokenizer = self._tokenizer
        kwargs: dict[str, Any] = {
            "max_new_tokens": options.max_new_tokens,
            "min_new_tokens": min(options.min_new_tokens, options.max_new_tokens),
            "do_sample": options.sampling,
            "repetition_penalty": options.repetition_penalty,
            "streamer": _Streamer(decoder, options.stop, stopped_by_text),
            "stopping_criteria": _stop_criteria(cancel, stopped_by_text),
            "attention_mask": torch.ones_like(ids),
            "pad_token_id": tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
        }
        if options.sampling:
            kwargs.update(temperature=options.temperature, top_p=options.top_p, top_k=options.top_k or None)
            if options.seed is not None:
                torch.manual_seed(options.seed)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        if cache is not None:
            kwargs["past_key_values"] = cache
        started = time.perf_counter()
        with torch.inference_mode():
            output = model.generate(ids, **kwargs)
        finished = time.perf_counter()
        generated = output[0, ids.shape[1]:].tolist()
        new_ids = list(generated)
        eos = tokenizer.eos_token_id
        while new_ids and new_ids[-1] in (eos, tokenizer.pad_token_id) and eos is not None:
            new_ids.pop()
        text = self.detokenize(new_ids)
        cut = stop_index(text, options.stop)
        return StreamResult(text[:cut] if cut is not None else text, len(new_ids), decoder.first_token_at,
                            finished - started, cancel is not None and cancel.is_set(), token_ids=generated)


def cache_bytes(cache: Any) -> int:
    """What a transformers cache's key and value tensors take."""
    total = 0
    for layer in getattr(cache, "layers", []):
        for tensor in (getattr(layer, "keys", None), getattr(layer, "values", None)):
            if tensor is not None and hasattr(tensor, "nbytes"):
                total += int(tensor.nbytes)
    return total


class _Streamer:
    """transformers' streamer protocol (put/end): the first call is the prompt, then one token at a time."""

    def __init__(self, decoder: IncrementalDecoder, stops: Sequence[str], stopped: threading.Event) -> None:
        self.decoder = decoder
        self.stops = list(stops)
        self.stopped = stopped
        self.prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        for token in value.reshape(-1).tolist():
            self.decoder.add(int(token))
        if self.stops and stop_index(self.decoder.text, self.stops) is not None:
            self.stopped.set()

    def end(self) -> None:
        pass


def _stop_criteria(cancel: threading.Event | None, stopped: threading.Event) -> Any:
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class StopWhenCancelled(StoppingCriteria):
        def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.Tensor:
            stop = (cancel is not None and cancel.is_set()) or stopped.is_set()
            return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([StopWhenCancelled()])
