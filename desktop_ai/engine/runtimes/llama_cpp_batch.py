"""Several generations of one llama.cpp model decoded together: one llama_batch holds a token of every running
sequence (each with its own seq_id, position and key/value cells), so one pass over the weights serves them all.
On a CPU the weights' memory traffic, not the arithmetic, bounds a small batch: llama.cpp evaluated 4 tokens at
1.65x the tokens per second of one on 2 cores. A new request joins between two tokens (its prompt is read in the
same batch as the others' next tokens); a finished or cancelled one leaves at once and its cells are freed.

It runs over the weights a LlamaCppLM already loaded (no second copy), in a llama context of its own with one
sequence slot per concurrent request, driven by one decoding thread; callers in any thread block in `stream()`
exactly as with CausalLM.stream, and their `cancel` event is checked at every token.

Each slot keeps the key/value cells of the last sequence it ran, and a new request goes to the free slot that holds
the longest prefix of its prompt and reads only the rest, as llama.cpp's own server does (and as the in-process
Llama does with its one sequence): a chat client resends the whole conversation each turn. The cells are allocated
when the decoder is made (`kv_bytes`), and the engine counts them with the model in its memory budget. Closing the
decoder (the model is unloaded) fails the sequences still running with a clear error after the decode under way
has returned, never while llama.cpp is still reading the weights."""

from __future__ import annotations

import codecs
import ctypes
import logging
import random
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from desktop_ai.engine.errors import InvalidInputError, ModelClosedError
from desktop_ai.engine.runtimes.causal_lm import (
    SamplingOptions,
    StreamResult,
    TextCallback,
    common_prefix_length,
    stop_index,
)

logger = logging.getLogger(__name__)

MAX_BATCH_TOKENS = 512  # prompt tokens read in one decode; a longer prompt is read over several steps
PENALTY_LAST_N = 64  # as llama-cpp-python's own default


@dataclass
class _Sequence:
    prompt: list[int]
    options: SamplingOptions
    on_text: TextCallback | None
    cancel: threading.Event | None
    slot: int = -1
    read: int = 0  # prompt tokens decoded so far (or kept from the slot's previous sequence)
    reused: int = 0  # prompt tokens whose cells were kept from the slot's previous sequence
    position: int = 0
    last_token: int = -1
    logit_index: int = -1  # where this sequence's logits are in the batch just decoded, or -1
    sampler: Any = None
    generated: int = 0
    text: str = ""
    emitted: int = 0
    decoder: Any = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")(errors="replace"))
    started: float = field(default_factory=time.perf_counter)
    first_at: float | None = None
    finished: threading.Event = field(default_factory=threading.Event)
    result: StreamResult | None = None
    error: BaseException | None = None


def kv_cells(context_per_slot: int, slots: int) -> int:
    """The key/value cells a decoder allocates: one full context per slot."""
    return context_per_slot * slots


class BatchedLlamaDecoder:
    def __init__(self, lm: Any, slots: int = 4, context_per_slot: int | None = None) -> None:
        import llama_cpp

        # Weakly: the store unloads a model by dropping it, and LlamaCppLM closes this decoder (weakref.finalize)
        # before its weights go; each step holds the model strongly while llama.cpp reads them.
        self._lm = weakref.ref(lm)
        self.slots = slots
        self.context_per_slot = context_per_slot or lm.context_length
        llm = lm._llm  # the loaded Llama: its weights, vocabulary and end-of-generation tokens are shared
        self._model = llm._model.model
        self._vocab = llama_cpp.llama_model_get_vocab(self._model)
        self._n_vocab = llm.n_vocab()
        self._eog = lm._end_of_generation_ids()
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = kv_cells(self.context_per_slot, slots)
        params.n_batch = MAX_BATCH_TOKENS + slots
        params.n_ubatch = MAX_BATCH_TOKENS + slots
        params.n_seq_max = slots
        params.n_threads = lm.threads
        params.n_threads_batch = lm.threads
        params.flash_attn_type = getattr(llama_cpp, "LLAMA_FLASH_ATTN_TYPE_ENABLED", 1)
        params.kv_unified = False  # each sequence its own cells: a long one cannot crowd out the others
        params.no_perf = True
        self._ctx = llama_cpp.llama_init_from_model(self._model, params)
        if not self._ctx:
            raise InvalidInputError("llama.cpp could not make a context for batched decoding.")
        self._memory = llama_cpp.llama_get_memory(self._ctx)
        self._batch = llama_cpp.llama_batch_init(MAX_BATCH_TOKENS + slots, 0, 1)
        self._piece = ctypes.create_string_buffer(256)
        self._held: list[list[int]] = [[] for _ in range(slots)]  # the tokens whose cells each slot holds
        self._condition = threading.Condition()
        self._waiting: list[_Sequence] = []
        self._running: list[_Sequence] = []
        self._closed = False
        self.decodes = 0  # llama_decode calls, and the sequences they carried: the tests and the bench read them
        self.sequences_decoded = 0
        self.most_together = 0
        self.reused_tokens = 0
        self._thread = threading.Thread(target=self._loop, name="llama-batch", daemon=True)
        self._thread.start()

    # --- the callers' side -------------------------------------------------------------------------------------
    def stream(self, prompt_tokens: Sequence[int], options: SamplingOptions, on_text: TextCallback | None = None,
               cancel: threading.Event | None = None) -> StreamResult:
        options.validate()
        prompt = list(prompt_tokens)
        if not prompt:
            raise InvalidInputError("The prompt is empty.")
        if len(prompt) + options.max_new_tokens > self.context_per_slot:
            raise InvalidInputError(f"The prompt ({len(prompt)} tokens) and max new tokens ({options.max_new_tokens}) "
                                    f"do not fit this model's context of {self.context_per_slot} tokens.")
        sequence = _Sequence(prompt, options, on_text, cancel)
        with self._condition:
            if self._closed:
                raise ModelClosedError("The model was unloaded; send the request again.")
            self._waiting.append(sequence)
            self._condition.notify_all()
        sequence.finished.wait()
        if sequence.error is not None:
            raise sequence.error
        assert sequence.result is not None
        return sequence.result

    @property
    def lm(self) -> Any:
        return self._lm()

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Stop decoding: the sequences running or waiting fail with a clear error once the decode under way has
        returned (a decode is never interrupted: llama.cpp would read freed memory). Safe to call twice."""
        import llama_cpp

        with self._condition:
            if self._closed and self._ctx is None:
                return
            self._closed = True
            self._condition.notify_all()
        if self._thread is not threading.current_thread():
            self._thread.join()  # one decode at most (a few hundred ms); the weights must outlive it
        with self._condition:
            if self._ctx is not None:
                llama_cpp.llama_batch_free(self._batch)
                llama_cpp.llama_free(self._ctx)
                self._ctx = None

    # --- the decoding thread -----------------------------------------------------------------------------------
    def _loop(self) -> None:
        import llama_cpp

        while True:
            with self._condition:
                while not self._closed and not self._waiting and not self._running:
                    self._condition.wait()
                if self._closed:
                    failed = self._waiting + self._running
                    self._waiting, self._running = [], []
                    for sequence in failed:
                        if sequence.sampler is not None:
                            llama_cpp.llama_sampler_free(sequence.sampler)
                            sequence.sampler = None
                        sequence.error = ModelClosedError("The model was unloaded while it answered; send the "
                                                          "request again.")
                        sequence.finished.set()
                    return
                while self._waiting and len(self._running) < self.slots:  # join between two tokens
                    sequence = self._waiting.pop(0)
                    try:
                        self._admit(llama_cpp, sequence)
                    except BaseException as error:
                        sequence.error = error
                        sequence.finished.set()
                        continue
                    self._running.append(sequence)
            lm = self._lm()
            if lm is None:  # unloaded without close(): the weights may be gone, so nothing more is decoded
                with self._condition:
                    self._closed = True
                continue
            try:
                self._step(llama_cpp)
            except BaseException as error:  # a failed decode fails the sequences in it, not the thread
                logger.exception("Batched llama.cpp decoding failed")
                for sequence in list(self._running):
                    sequence.error = error
                    self._finish(sequence, cancelled=False)
                llama_cpp.llama_memory_clear(self._memory, True)  # what the failed batch left is unknown
                self._held = [[] for _ in range(self.slots)]
            finally:
                del lm  # the last reference, when the model was unloaded meanwhile: close() runs here

    def _admit(self, llama_cpp: Any, sequence: _Sequence) -> None:
        """Give the sequence the free slot holding the longest prefix of its prompt, keep those cells, drop the
        rest; at least the prompt's last token is read again, for its logits."""
        used = {s.slot for s in self._running}
        free = [slot for slot in range(self.slots) if slot not in used]
        slot = max(free, key=lambda k: (common_prefix_length(self._held[k], sequence.prompt), -len(self._held[k])))
        keep = min(common_prefix_length(self._held[slot], sequence.prompt), len(sequence.prompt) - 1)
        if not llama_cpp.llama_memory_seq_rm(self._memory, slot, keep, -1):
            llama_cpp.llama_memory_seq_rm(self._memory, slot, -1, -1)
            keep = 0
        del self._held[slot][keep:]
        sequence.slot = slot
        sequence.read = sequence.position = sequence.reused = keep
        self.reused_tokens += keep
        sequence.sampler = self._make_sampler(sequence)

    def _step(self, llama_cpp: Any) -> None:
        batch = self._batch
        count = 0
        for sequence in list(self._running):
            if sequence.cancel is not None and sequence.cancel.is_set():
                self._finish(sequence, cancelled=True)
        carried = 0
        for sequence in self._running:  # the next token of every sequence that is generating
            sequence.logit_index = -1
            if sequence.read == len(sequence.prompt):
                self._add(batch, count, sequence.last_token, sequence.position, sequence.slot, True)
                self._held[sequence.slot].append(sequence.last_token)
                sequence.logit_index = count
                sequence.position += 1
                count += 1
                carried += 1
        room = MAX_BATCH_TOKENS + self.slots - count
        for sequence in self._running:  # then as much of the new prompts as fits
            if sequence.read == len(sequence.prompt) or room <= 0:
                continue
            take = min(room, len(sequence.prompt) - sequence.read)
            self._held[sequence.slot].extend(sequence.prompt[sequence.read:sequence.read + take])
            for offset in range(take):
                last = sequence.read + offset == len(sequence.prompt) - 1
                self._add(batch, count, sequence.prompt[sequence.read + offset], sequence.position, sequence.slot, last)
                if last:
                    sequence.logit_index = count
                sequence.position += 1
                count += 1
            sequence.read += take
            room -= take
            carried += 1
        if count == 0:
            return
        batch.n_tokens = count
        status = llama_cpp.llama_decode(self._ctx, batch)
        if status != 0:
            raise RuntimeError(f"llama_decode returned {status}")
        self.decodes += 1
        self.sequences_decoded += carried
        self.most_together = max(self.most_together, carried)
        for sequence in list(self._running):
            if sequence.logit_index >= 0:
                self._sample(llama_cpp, sequence)

    @staticmethod
    def _add(batch: Any, index: int, token: int, position: int, slot: int, logits: bool) -> None:
        batch.token[index] = token
        batch.pos[index] = position
        batch.n_seq_id[index] = 1
        batch.seq_id[index][0] = slot
        batch.logits[index] = 1 if logits else 0

    def _make_sampler(self, sequence: _Sequence) -> Any:
        import llama_cpp

        options = sequence.options
        chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        if options.logit_bias:  # first, as in llama.cpp's own sampler chain
            biases = (llama_cpp.llama_logit_bias * len(options.logit_bias))(
                *(llama_cpp.llama_logit_bias(token, bias) for token, bias in options.logit_bias.items()))
            llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_logit_bias(
                self._n_vocab, len(biases), biases))
        if options.penalized:
            # The arguments exactly as Llama's own sampler passes them (llama-cpp-python 0.3.36 declares n_vocab
            # first), so a penalty acts the same here as in LlamaCppLM.stream: on the tokens generated so far.
            llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_penalties(
                self._n_vocab, PENALTY_LAST_N, options.repetition_penalty, options.frequency_penalty,
                options.presence_penalty))
        if options.sampling:
            if options.top_k > 0:
                llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_top_k(options.top_k))
            if options.top_p < 1.0:
                llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_top_p(options.top_p, 1))
            llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_temp(options.temperature))
            seed = options.seed if options.seed is not None else random.getrandbits(31)
            llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_dist(seed & 0xFFFFFFFF))
        else:
            llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_greedy())
        return chain

    def _sample(self, llama_cpp: Any, sequence: _Sequence) -> None:
        if sequence.generated < sequence.options.min_new_tokens and self._eog:
            logits = llama_cpp.llama_get_logits_ith(self._ctx, sequence.logit_index)
            for token in self._eog:
                logits[token] = float("-inf")
        token = llama_cpp.llama_sampler_sample(sequence.sampler, self._ctx, sequence.logit_index)
        if llama_cpp.llama_vocab_is_eog(self._vocab, token):
            self._finish(sequence, cancelled=False)
            return
        sequence.generated += 1
        sequence.last_token = token
        if sequence.first_at is None:
            sequence.first_at = time.perf_counter()
        size = llama_cpp.llama_token_to_piece(self._vocab, token, self._piece, len(self._piece), 0, False)
        sequence.text += sequence.decoder.decode(self._piece.raw[:max(size, 0)])
        stops = sequence.options.stop
        found = stop_index(sequence.text, stops) if stops else None
        if found is not None:
            sequence.text = sequence.text[:found]
            self._emit(sequence, len(sequence.text))
            self._finish(sequence, cancelled=False)
            return
        self._emit(sequence, len(sequence.text) - _held_back(sequence.text, stops))
        if sequence.generated >= sequence.options.max_new_tokens:
            self._finish(sequence, cancelled=False)
        elif sequence.cancel is not None and sequence.cancel.is_set():
            self._finish(sequence, cancelled=True)

    @staticmethod
    def _emit(sequence: _Sequence, upto: int) -> None:
        if upto > sequence.emitted:
            piece = sequence.text[sequence.emitted:upto]
            sequence.emitted = upto
            if sequence.on_text is not None:
                sequence.on_text(piece)

    def _finish(self, sequence: _Sequence, cancelled: bool) -> None:
        import llama_cpp

        if sequence not in self._running:
            return
        if sequence.error is None:
            self._emit(sequence, len(sequence.text))
        self._running.remove(sequence)  # its cells stay: the slot's next sequence may share their prefix
        if sequence.sampler is not None:
            llama_cpp.llama_sampler_free(sequence.sampler)
            sequence.sampler = None
        sequence.result = StreamResult(sequence.text, sequence.generated, sequence.first_at,
                                       time.perf_counter() - sequence.started, cancelled, reused_tokens=sequence.reused)
        sequence.finished.set()


def _held_back(text: str, stops: Sequence[str]) -> int:
    """How many characters at the end of the text could be the start of a stop string (not sent yet)."""
    held = 0
    for stop in stops:
        for length in range(min(len(stop) - 1, len(text)), held, -1):
            if text.endswith(stop[:length]):
                held = length
                break
    return held
