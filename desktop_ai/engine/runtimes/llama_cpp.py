"""llama.cpp (through llama-cpp-python) for GGUF files, run as they are: memory-mapped, never dequantized or
converted, one thread per physical core, layers offloaded to a CUDA GPU when the device setting allows it,
and the chat template the GGUF carries in its own metadata."""

from __future__ import annotations

import logging
import random
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from desktop_ai.engine.errors import ModelUnavailableError
from desktop_ai.engine.models.memory import KVShape, MemoryEstimate, gb
from desktop_ai.engine.runtimes.causal_lm import (
    RUNTIME_LLAMA_CPP,
    CausalLM,
    ConversationStates,
    Messages,
    SamplingOptions,
    StreamResult,
    TextCallback,
    common_prefix_length,
    physical_cores,
)

logger = logging.getLogger(__name__)

LLAMA_CPP_VERSION = "0.3.36"
INSTALL_HINT = (
    "For the fast runtime (llama.cpp, several times faster on GGUF files), install llama-cpp-python: "
    f'CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_OPENMP=OFF" pip install llama-cpp-python=={LLAMA_CPP_VERSION} '
    "(it builds from source: it needs a C++ compiler and cmake; `make install` tries it)."
)
MAX_CONTEXT_TOKENS = 4096
KV_BYTES_PER_VALUE = 2  # llama.cpp keeps its key/value cache in float16


def available() -> bool:
    """Whether llama-cpp-python imports here (it is built from source, so it may be missing)."""
    try:
        import llama_cpp  # noqa: F401  (the library, not this module)
    except ImportError:  # also when a test hides it with sys.modules["llama_cpp"] = None
        return False
    except OSError as error:  # the package is there but its shared library does not load
        logger.warning("llama-cpp-python is installed but does not load: %s", error)
        return False
    return True


def read_shape(path: Path) -> KVShape | None:
    """The model's shape from its GGUF metadata, read by llama.cpp without the weights (80 ms for SmolLM2, where the
    gguf package's pure-Python reader takes seconds)."""
    from llama_cpp import Llama
    from llama_cpp._utils import suppress_stdout_stderr

    try:
        with suppress_stdout_stderr(disable=False):  # a vocab-only load warns about its context on stderr
            header = Llama(model_path=str(path), vocab_only=True, verbose=False)
    except Exception as error:  # the real load reports an unreadable file to the user
        logger.debug("llama.cpp could not read the header of %s: %s", path, error)
        return None
    try:
        meta = header.metadata
        arch = meta.get("general.architecture", "")

        def number(name: str) -> int | None:
            value = meta.get(f"{arch}.{name}")
            try:
                return int(float(value)) if value is not None else None
            except ValueError:
                return None

        layers, heads, hidden = number("block_count"), number("attention.head_count"), number("embedding_length")
        if not (layers and heads and hidden):
            return None
        kv_heads = number("attention.head_count_kv") or heads
        head_dim = number("attention.key_length") or hidden // heads
        return KVShape(layers, kv_heads, head_dim, number("context_length") or 2048)
    finally:
        header.close()


def context_for(shape: KVShape | None) -> int:
    return min(shape.context_length if shape else 2048, MAX_CONTEXT_TOKENS)


def estimate(title: str, path: Path, device: str, shape: KVShape | None = None) -> MemoryEstimate:
    """The file is memory-mapped, so the weights take its size; plus a float16 cache for the context."""
    shape = shape or read_shape(path)
    context = context_for(shape)
    kv = shape.kv_bytes(context, KV_BYTES_PER_VALUE) if shape else 0
    size = path.stat().st_size
    alternatives = [f"a smaller quantization of the same model (Q4_K_M takes about half of a Q8_0's {gb(size)})"
                    if size > 0 else "a smaller quantization"]
    if not device.startswith("cuda"):
        alternatives.append("the GPU (device setting cuda), if this machine has one with enough memory")
    alternatives.append("a model with fewer parameters")
    return MemoryEstimate(f"{title} on llama.cpp", size, kv, context, device, alternatives)


def gpu_offload_supported() -> bool:
    import llama_cpp

    return bool(llama_cpp.llama_supports_gpu_offload())


@dataclass
class _Snapshot:
    """What llama.cpp holds for one conversation: the tokens it has read and its context state (the key/value
    cache of those tokens). Llama.save_state would also copy the logits of up to 512 positions (about 100 MB for
    a 49k vocabulary); they are not needed, because the next turn always decodes at least one new token."""

    tokens: Any  # numpy int array
    data: bytes


class LlamaCppLM(CausalLM):
    runtime = RUNTIME_LLAMA_CPP
    keeps_conversation_state = True

    def __init__(self, model_id: str, title: str, path: Path, device: str, shape: KVShape | None = None) -> None:
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        shape = shape or read_shape(path)
        context = context_for(shape)
        notices: list[str] = []
        gpu_layers = 0
        if device.startswith("cuda"):
            if gpu_offload_supported():
                gpu_layers = -1
            else:
                notices.append("This llama-cpp-python was built without GPU support, so the model ran on the CPU; "
                               'rebuild it with CMAKE_ARGS="-DGGML_CUDA=on" to use the GPU.')
                device = "cpu"
        threads = physical_cores()
        try:
            self._llm = Llama(
                model_path=str(path), n_ctx=context, n_threads=threads, n_threads_batch=threads,
                n_gpu_layers=gpu_layers, use_mmap=True, verbose=False,
                # one fused attention operator instead of several per layer: fewer thread-pool barriers per token
                # (SmolLM2-135M on 2 cores: 72 against 66 tokens/s, interleaved); llama.cpp's own default is "auto"
                flash_attn=True,
                main_gpu=int(device.split(":")[1]) if ":" in device else 0,
            )
        except Exception as error:  # llama-cpp-python raises ValueError for files it cannot read
            raise ModelUnavailableError(
                f"{path} could not be read as a GGUF model by llama.cpp: {error}. The file may be incomplete, or its architecture "
                "too new for this llama-cpp-python; try --runtime transformers."
            ) from error
        file_type = self._llm.metadata.get("general.file_type")
        super().__init__(model_id, device, _quant_name(path, file_type), self._llm.n_ctx())
        self.notices = notices
        self.path = path
        self.threads = threads
        self.gpu_layers = gpu_layers
        self._kv_bytes = shape.kv_bytes(context, KV_BYTES_PER_VALUE) if shape else 0
        self._kv_bytes_per_token = shape.kv_bytes(1, KV_BYTES_PER_VALUE) if shape else 0
        self._decoder: Any = None  # the BatchedLlamaDecoder over these weights, made on first use (the server's)
        self._decoder_lock = threading.Lock()
        model = self._llm._model
        eos_id, bos_id = self._llm.token_eos(), self._llm.token_bos()
        self._eos = model.token_get_text(eos_id) if eos_id != -1 else ""
        self._bos = model.token_get_text(bos_id) if bos_id != -1 else ""
        self._add_bos = bool(model.add_bos_token()) and bos_id != -1
        template = self._llm.metadata.get("tokenizer.chat_template")
        self._template = template or None
        self._formatter = Jinja2ChatFormatter(template, self._eos, self._bos) if template else None
        self._eog: list[int] | None = None
        # The Llama object holds one token sequence (and reuses its longest common prefix with the next prompt,
        # in Llama.generate); the other conversations' states wait here until their next turn.
        self._states = ConversationStates(size_of=lambda snapshot: len(snapshot.data) + snapshot.tokens.nbytes)
        self._held_key: str | None = None
        logger.info("llama.cpp: %s, %d threads, %s GPU layers, context %d", path.name, threads, gpu_layers, context)

    @property
    def chat_template(self) -> str | None:
        return self._template

    def tokenize(self, text: str) -> list[int]:
        return self._llm.tokenize(text.encode("utf-8"), add_bos=self._add_bos, special=False)

    def chat_tokens(self, messages: Messages) -> list[int]:
        if self._formatter is None:
            text = "\n".join(m["content"] for m in messages)
            return self.tokenize(text)
        rendered = self._formatter(messages=list(messages))
        # The template writes the special tokens itself (added_special), so none are added around it.
        return self._llm.tokenize(rendered.prompt.encode("utf-8"), add_bos=not rendered.added_special, special=True)

    def vocab_size(self) -> int:
        return int(self._llm.n_vocab())

    def detokenize(self, tokens: Sequence[int]) -> str:
        return self._llm.detokenize(list(tokens)).decode("utf-8", errors="replace")

    def resident_bytes(self) -> int:
        return self.path.stat().st_size + self._kv_bytes

    def weights_bytes(self) -> int:
        return self.path.stat().st_size

    def stream(self, prompt_tokens: Sequence[int], options: SamplingOptions, on_text: TextCallback | None = None,
               cancel: threading.Event | None = None, state_key: str | None = None) -> StreamResult:
        with self._states.lock:  # one Llama object: one generation at a time
            self._switch_to(state_key)
            reused = self._prefix_llama_reuses(prompt_tokens)
            try:
                result = self._stream(prompt_tokens, options, on_text, cancel)
            except BaseException:
                self._llm.reset()  # what it holds is unknown now: the next turn reads its prompt again
                self._held_key = None
                raise
            self._held_key = state_key
        result.reused_tokens = reused
        return result

    def state_bytes(self) -> int:
        """The snapshots of the conversations the Llama object does not hold (the one it holds is in its context,
        counted in resident_bytes), and the batched decoder's key/value cells when the server made one."""
        return self._states.bytes + self.batched_decoder_bytes()

    def batched_decoder_bytes(self, slots: int | None = None) -> int:
        """What a batched decoder's key/value cells take: the one made (slots None), or one of `slots` slots."""
        from desktop_ai.engine.runtimes.llama_cpp_batch import kv_cells

        if slots is None:
            decoder = self._decoder
            if decoder is None or decoder.closed:
                return 0
            slots = decoder.slots
        return kv_cells(self.context_length, slots) * self._kv_bytes_per_token

    def batched_decoder(self, slots: int) -> Any:
        """Several generations at once over these weights (runtimes/llama_cpp_batch.py): made once, and closed
        with the model, before its weights are freed."""
        from desktop_ai.engine.runtimes.llama_cpp_batch import BatchedLlamaDecoder

        with self._decoder_lock:
            if self._llm is None:
                from desktop_ai.engine.errors import ModelClosedError

                raise ModelClosedError("The model was unloaded; send the request again.")
            if self._decoder is None or self._decoder.closed or self._decoder.slots != slots:
                if self._decoder is not None:
                    self._decoder.close()
                self._decoder = BatchedLlamaDecoder(self, slots=slots)
                weakref.finalize(self, self._decoder.close)  # unloaded by being dropped: closed before the weights
            return self._decoder

    def next_token_logits(self, prefix: Sequence[int], continuations: Sequence[Sequence[int]], candidates: Sequence[int],
                          cancel: threading.Event | None = None) -> np.ndarray:
        """The logits of the `candidates` tokens after prefix + each continuation (rows: continuations).

        The prefix is decoded once and kept: each continuation then costs only its own tokens (a taught classifier's
        prompt of labelled examples, then one text). The conversation the Llama object held is kept aside first."""
        import llama_cpp as llama_lib

        from desktop_ai.engine.errors import CancelledError

        rows = np.zeros((len(continuations), len(candidates)), np.float32)
        with self._states.lock:
            self._switch_to(None)
            llm = self._llm
            try:
                llm.reset()
                llm.eval(list(prefix))
                kept = llm.n_tokens
                room = llm.n_ctx() - kept - 1
                for row, tokens in enumerate(continuations):
                    if cancel is not None and cancel.is_set():
                        raise CancelledError("Stopped.")
                    llm.n_tokens = kept  # eval() drops the cache past n_tokens: the prefix stays decoded
                    llm.eval(list(tokens)[-room:])
                    logits = np.ctypeslib.as_array(llama_lib.llama_get_logits_ith(llm._ctx.ctx, -1),
                                                   shape=(llm.n_vocab(),))
                    rows[row] = logits[list(candidates)]
            finally:
                llm.reset()  # the next generation reads its prompt afresh (nothing of a text to classify leaks)
        return rows

    def state_count(self) -> int:
        return len(self._states) + (1 if self._held_key is not None else 0)

    def forget_state(self, state_key: str) -> None:
        """The next turn of this conversation reads everything from the start: its snapshot goes, and the Llama
        object is emptied (the conversation it held is kept as a snapshot first), so no prefix is shared."""
        with self._states.lock:
            self._states.forget(state_key)
            if self._held_key not in (None, state_key) and self._llm.n_tokens > 0:
                self._states.put(self._held_key, self._snapshot())
            self._llm.reset()
            self._held_key = None

    def _switch_to(self, state_key: str | None) -> None:
        """Keep the state of the conversation the Llama object holds, and bring back the one about to run."""
        if state_key == self._held_key:
            return
        if self._held_key is not None and self._llm.n_tokens > 0:
            self._states.put(self._held_key, self._snapshot())
        self._held_key = None
        snapshot = self._states.take(state_key) if state_key is not None else None
        if snapshot is not None:
            self._restore(snapshot)

    def _snapshot(self) -> _Snapshot:
        import ctypes

        import llama_cpp

        ctx = self._llm._ctx.ctx
        size = llama_cpp.llama_state_get_size(ctx)
        buffer = (ctypes.c_uint8 * int(size))()
        written = llama_cpp.llama_state_get_data(ctx, buffer, size)
        return _Snapshot(self._llm.input_ids[: self._llm.n_tokens].copy(), bytes(memoryview(buffer)[:written]))

    def _restore(self, snapshot: _Snapshot) -> None:
        import ctypes

        import llama_cpp

        data = (ctypes.c_uint8 * len(snapshot.data)).from_buffer_copy(snapshot.data)
        if llama_cpp.llama_state_set_data(self._llm._ctx.ctx, data, len(snapshot.data)) != len(snapshot.data):
            logger.warning("llama.cpp did not take back a conversation's state; its next turn reads it all again")
            self._llm.reset()
            return
        n = len(snapshot.tokens)
        self._llm.input_ids[:n] = snapshot.tokens
        self._llm.n_tokens = n
        self._llm._requires_eval = True  # as Llama.load_state: the logits are not restored, so decode first

    def _prefix_llama_reuses(self, prompt_tokens: Sequence[int]) -> int:
        """The prompt tokens Llama.generate will not decode again (its own rule: the longest common prefix with
        what it holds, less one when that is the whole prompt, so that there is a token to decode)."""
        if self._llm.n_tokens == 0:
            return 0
        shared = common_prefix_length(self._llm.input_ids[: self._llm.n_tokens].tolist(), list(prompt_tokens))
        return shared - 1 if shared == len(prompt_tokens) else shared

    def _stream(self, prompt_tokens: Sequence[int], options: SamplingOptions, on_text: TextCallback | None,
                cancel: threading.Event | None) -> StreamResult:
        from llama_cpp import StoppingCriteriaList

        sampled = 0

        def count_and_check(_ids: Any, _logits: Any) -> bool:
            nonlocal sampled
            sampled += 1
            return cancel is not None and cancel.is_set()

        kwargs: dict[str, Any] = {}
        eog = self._end_of_generation_ids()
        processor = _logits_processor(eog if options.min_new_tokens > 0 else [], len(prompt_tokens),
                                      options.min_new_tokens, options.logit_bias)
        if processor is not None:
            kwargs["logits_processor"] = processor
        started = time.perf_counter()
        first_at: float | None = None
        pieces: list[str] = []
        finish = None
        chunks = self._llm.create_completion(
            prompt=list(prompt_tokens),
            max_tokens=options.max_new_tokens,
            temperature=options.temperature if options.sampling else 0.0,
            top_p=options.top_p,
            top_k=options.top_k,
            min_p=0.0,
            repeat_penalty=options.repetition_penalty,
            presence_penalty=options.presence_penalty,
            frequency_penalty=options.frequency_penalty,
            seed=options.seed if options.seed is not None else random.getrandbits(31),
            stop=list(options.stop) or None,
            stream=True,
            stopping_criteria=StoppingCriteriaList([count_and_check]),
            **kwargs,
        )
        try:
            for chunk in chunks:
                choice = chunk["choices"][0]
                piece = choice.get("text") or ""
                finish = choice.get("finish_reason") or finish
                if piece:
                    if first_at is None:
                        first_at = time.perf_counter()
                    pieces.append(piece)
                    if on_text is not None:
                        on_text(piece)
                if cancel is not None and cancel.is_set():
                    break
        finally:
            chunks.close()
        cancelled = cancel is not None and cancel.is_set()
        # The end-of-text token is sampled (and counted) but is not part of the answer; at the length limit the
        # library samples one token past it before it stops.
        new_tokens = sampled - (1 if finish == "stop" and not options.stop and not cancelled else 0)
        new_tokens = min(new_tokens, options.max_new_tokens)
        return StreamResult("".join(pieces), max(new_tokens, 1 if pieces else 0), first_at, time.perf_counter() - started, cancelled)

    def _end_of_generation_ids(self) -> list[int]:
        """Every token that ends generation (end of text, end of turn...), found once by asking llama.cpp."""
        if self._eog is None:
            import llama_cpp

            vocab = self._llm._model.vocab
            self._eog = [t for t in range(self._llm.n_vocab()) if llama_cpp.llama_vocab_is_eog(vocab, t)]
        return self._eog

    def close(self) -> None:
        """The batched decoder goes first: its decode under way ends (its sequences fail with a clear error) before
        the weights it reads are freed."""
        with self._decoder_lock:
            decoder, self._decoder = self._decoder, None
            if decoder is not None:
                decoder.close()
            with self._states.lock:  # a generation of the Llama object itself finishes first, too
                llm, self._llm = self._llm, None
        if llm is not None:
            llm.close()


def _logits_processor(eog: list[int], prompt_length: int, minimum: int, bias: dict[int, float]) -> Any:
    """One logits processor for the logit bias (OpenAI's logit_bias: added to the token's logit) and for forbidding
    the end before `minimum` new tokens (the benchmark fixes lengths). Llama's own `logit_bias` argument is not
    used: with another processor beside it, llama-cpp-python 0.3.36 drops both (LogitsProcessorList.extend
    returns None)."""
    from llama_cpp import LogitsProcessorList

    if not bias and not (eog and minimum > 0):
        return None
    biased = np.fromiter(bias.keys(), dtype=np.intc, count=len(bias))
    amounts = np.fromiter(bias.values(), dtype=np.single, count=len(bias))

    def process(input_ids: Any, scores: Any) -> Any:
        if len(biased):
            scores[biased] += amounts
        if eog and len(input_ids) - prompt_length < minimum:
            scores[eog] = -float("inf")
        return scores

    return LogitsProcessorList([process])


_FILE_TYPES = {0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K", 11: "Q3_K_S",
               12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K",
               32: "BF16"}


def _quant_name(path: Path, file_type: str | None) -> str:
    """The GGUF's own quantization (from its metadata, else its file name), as the result reports it."""
    try:
        name = _FILE_TYPES.get(int(file_type)) if file_type is not None else None
    except ValueError:
        name = None
    if name is None:
        stem = path.stem.upper()
        name = next((q for q in sorted(_FILE_TYPES.values(), key=len, reverse=True) if q in stem), "quantized")
    return f"{name} (GGUF)"
