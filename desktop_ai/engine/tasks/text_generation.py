"""Text generation: a prompt in, tokens streamed out as they come, stoppable at any token.

The model runs on the runtime its format calls for (llama.cpp for GGUF, CTranslate2 for the transformers
architectures it converts, transformers for the rest), or the one the user forced; the result says which.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from desktop_ai.engine.cache import ResultCache, make_cache_key
from desktop_ai.engine.errors import InvalidInputError, ModelUnavailableError
from desktop_ai.engine.models.catalogue import KIND_CAUSAL_LM, TASK_GENERATE
from desktop_ai.engine.models.compression import Compression
from desktop_ai.engine.models.devices import DeviceChoice, cpu_fallback_notice, is_out_of_memory, pick_device, release_gpu_memory
from desktop_ai.engine.models.store import ModelLocation, ModelStore, ProgressCallback
from desktop_ai.engine.runtimes.causal_lm import RUNTIME_AUTO, CausalLM, SamplingOptions
from desktop_ai.engine.runtimes.choice import choose_runtime, open_causal_lm, parse_runtime

logger = logging.getLogger(__name__)

MAX_PROMPT_CHARS = 400_000


@dataclass
class GenerationOptions:
    max_new_tokens: int = 200
    min_new_tokens: int = 0  # the benchmark fixes the length so runs compare
    temperature: float = 0.7  # 0 means greedy
    top_p: float = 0.9
    top_k: int = 40  # 0 turns the top-k cut off
    repetition_penalty: float = 1.1
    seed: int | None = None
    use_chat_template: bool = True
    stop: list[str] = field(default_factory=list)  # generation ends before any of these strings

    @property
    def sampling(self) -> bool:
        return self.temperature > 0

    @property
    def cacheable(self) -> bool:
        """Sampling without a seed is meant to differ each time, so it is never cached."""
        return not self.sampling or self.seed is not None

    def validate(self) -> None:
        self.sampling_options().validate()

    def sampling_options(self) -> SamplingOptions:
        return SamplingOptions(
            max_new_tokens=self.max_new_tokens, min_new_tokens=self.min_new_tokens, temperature=self.temperature,
            top_p=self.top_p, top_k=self.top_k, repetition_penalty=self.repetition_penalty, seed=self.seed,
            stop=list(self.stop),
        )


@dataclass
class GenerationResult:
    text: str
    model_id: str
    device: str
    compression: str
    prompt_tokens: int
    new_tokens: int
    seconds: float  # from the request to the last token (or to the cached answer): the time the user waited
    first_token_seconds: float | None  # from the same start as `seconds`, so never larger than it
    stopped: bool = False
    from_cache: bool = False
    notices: list[str] = field(default_factory=list)
    runtime: str = ""
    decode_seconds: float = 0.0  # the model's own work, from the prompt's evaluation to the last token

    @property
    def tokens_per_second(self) -> float | None:
        """The model's speed; None for a cached answer, since reading the cache is not a speed."""
        if self.from_cache:
            return None
        return self.new_tokens / self.decode_seconds if self.decode_seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        speed = self.tokens_per_second
        data["tokens_per_second"] = None if speed is None else round(speed, 2)
        return data


class TextGenerator:
    def __init__(
        self,
        store: ModelStore,
        cache: ResultCache | None = None,
        model: str | None = None,
        device: str = "auto",
        compression: Compression | str = Compression.NONE,
        runtime: str = RUNTIME_AUTO,
    ) -> None:
        self.store = store
        self.cache = cache
        self.entry = store.resolve_entry(model or store.default_model(TASK_GENERATE), TASK_GENERATE)
        if self.entry.kind != KIND_CAUSAL_LM:
            raise ModelUnavailableError(f"{self.entry.title} cannot generate text.")
        self.device = pick_device(device)
        self.compression = Compression.parse(compression)
        self.requested_runtime = parse_runtime(runtime)
        self._choice: tuple[str, list[str]] | None = None

    def runtime_for(self, location: ModelLocation) -> tuple[str, list[str]]:
        """The runtime this model runs on (decided once per generator), and what the user should know about it."""
        if self._choice is None:
            self._choice = choose_runtime(location, self.requested_runtime, self.compression)
        return self._choice

    def load(self, progress: ProgressCallback | None = None, cancel: threading.Event | None = None) -> CausalLM:
        location = self.store.locate(self.entry, progress, cancel)
        runtime, _ = self.runtime_for(location)
        return open_causal_lm(self.store, location, runtime, self.device, self.compression, progress, cancel)

    def fall_back_to_cpu(self) -> str:
        """After the GPU ran out of memory: drop this model's copies there, free the GPU's cache, and load on the
        CPU from now on (fp16 is a GPU precision, so it becomes none). Returns the device that ran out."""
        full = self.device.device
        self.store.loaded.drop(lambda k: k[0] == self.entry.id and k[3] == full)
        release_gpu_memory()
        self.device = DeviceChoice("cpu", self.device.dtype, "GPU out of memory")
        if self.compression is Compression.FP16:
            self.compression = Compression.NONE
        return full

    def prepare(self, lm: CausalLM, prompt: str, options: GenerationOptions) -> tuple[list[int], list[str]]:
        """Tokenize with the chat template when the model has one; keep the end of a prompt that is too long."""
        notices: list[str] = []
        if len(prompt) > MAX_PROMPT_CHARS:
            notices.append(f"The prompt had {len(prompt):,} characters; only the last {MAX_PROMPT_CHARS:,} were read.")
            prompt = prompt[-MAX_PROMPT_CHARS:]
        if options.use_chat_template and lm.chat_template:
            ids = lm.chat_tokens([{"role": "user", "content": prompt}])
        else:
            ids = lm.tokenize(prompt)
        context = lm.context_length
        room = context - options.max_new_tokens
        if room < 16:
            raise InvalidInputError(f"Max new tokens must leave room for the prompt: this model reads {context} tokens in all.")
        if len(ids) > room:
            notices.append(
                f"The prompt was {len(ids):,} tokens, more than this model can read with {options.max_new_tokens} "
                f"new tokens; it was truncated to its last {room:,} tokens."
            )
            ids = ids[-room:]
        return ids, notices

    def cache_key(self, location: ModelLocation, prompt: str, options: GenerationOptions) -> str:
        runtime, _ = self.runtime_for(location)
        return make_cache_key(TASK_GENERATE, location.entry.id, location.revision, self.compression.value,
                              asdict(options), prompt, runtime=runtime)

    def run(
        self,
        prompt: str,
        options: GenerationOptions | None = None,
        on_partial: Callable[[str], None] | None = None,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> GenerationResult:
        """A cached answer is looked up before the model is loaded, so it comes back at once even after a restart."""
        options = options or GenerationOptions()
        options.validate()
        if not prompt or not prompt.strip():
            raise InvalidInputError("The prompt is empty: type something for the model to answer.")
        started = time.perf_counter()
        location = self.store.locate(self.entry, progress, cancel)
        runtime, choice_notices = self.runtime_for(location)
        key = None
        if self.cache is not None and options.cacheable:
            key = self.cache_key(location, prompt, options)
            hit = self.cache.get(key)
            if hit is not None:
                result = GenerationResult(**{k: v for k, v in hit.items() if k in GenerationResult.__dataclass_fields__})
                result.from_cache = True
                result.seconds = time.perf_counter() - started
                result.first_token_seconds = result.seconds
                result.decode_seconds = 0.0
                result.notices = []
                if on_partial is not None:
                    on_partial(result.text)
                return result
        device = self.device
        notices = list(choice_notices)
        try:
            lm = open_causal_lm(self.store, location, runtime, device, self.compression, progress, cancel)
            notices += lm.notices
            result = self._generate(lm, prompt, options, on_partial, cancel, started)
        except Exception as error:
            if device.device == "cpu" or not is_out_of_memory(error):
                raise
            logger.warning("Out of GPU memory running %s on %s; retrying on the CPU", self.entry.id, device.device)
            self.store.loaded.drop(lambda k: k[0] == self.entry.id and k[3] == device.device)
            release_gpu_memory()
            cpu = DeviceChoice("cpu", device.dtype, "GPU out of memory")
            compression = Compression.NONE if self.compression is Compression.FP16 else self.compression
            lm = open_causal_lm(self.store, location, runtime, cpu, compression, progress, cancel)
            notices += lm.notices + [cpu_fallback_notice(device.device)]
            result = self._generate(lm, prompt, options, on_partial, cancel, started)
        result.notices = notices + result.notices
        if key is not None and not result.stopped:
            self.cache.put(key, result.to_dict())
        return result

    def _generate(
        self,
        lm: CausalLM,
        prompt: str,
        options: GenerationOptions,
        on_partial: Callable[[str], None] | None,
        cancel: threading.Event | None,
        started: float,
    ) -> GenerationResult:
        ids, notices = self.prepare(lm, prompt, options)
        streamed = lm.stream(ids, options.sampling_options(), on_partial, cancel)
        stopped = streamed.cancelled
        return GenerationResult(
            text=streamed.text,
            model_id=lm.model_id,
            device=lm.device,
            compression=lm.compression,
            prompt_tokens=len(ids),
            new_tokens=streamed.new_tokens,
            seconds=time.perf_counter() - started,
            first_token_seconds=(streamed.first_token_at - started) if streamed.first_token_at else None,
            decode_seconds=streamed.seconds,
            stopped=stopped,
            notices=notices + (["Stopped: the text so far is kept."] if stopped else []),
            runtime=lm.runtime,
        )
