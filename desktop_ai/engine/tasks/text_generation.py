"""Text generation: a prompt in, tokens streamed out as they come, stoppable at any token."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

from desktop_ai.engine.cache import ResultCache, make_cache_key
from desktop_ai.engine.models.catalogue import KIND_CAUSAL_LM, TASK_GENERATE
from desktop_ai.engine.models.compression import Compression
from desktop_ai.engine.models.devices import pick_device
from desktop_ai.engine.errors import InvalidInputError, ModelUnavailableError
from desktop_ai.engine.models.loading import LoadedModel, run_with_cpu_fallback
from desktop_ai.engine.models.store import ModelLocation, ModelStore, ProgressCallback

logger = logging.getLogger(__name__)

MAX_PROMPT_CHARS = 400_000
MAX_CONTEXT_TOKENS = 8192


@dataclass
class GenerationOptions:
    max_new_tokens: int = 200
    min_new_tokens: int = 0  # the benchmark fixes the length so runs compare
    temperature: float = 0.7  # 0 means greedy
    top_p: float = 0.9
    repetition_penalty: float = 1.1
    seed: int | None = None
    use_chat_template: bool = True

    @property
    def sampling(self) -> bool:
        return self.temperature > 0

    @property
    def cacheable(self) -> bool:
        """Sampling without a seed is meant to differ each time, so it is never cached."""
        return not self.sampling or self.seed is not None

    def validate(self) -> None:
        if not 1 <= self.max_new_tokens <= 4096:
            raise InvalidInputError("Max new tokens must be between 1 and 4096.")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise InvalidInputError("Temperature must be 0 or more and top-p between 0 and 1.")


@dataclass
class GenerationResult:
    text: str
    model_id: str
    device: str
    compression: str
    prompt_tokens: int
    new_tokens: int
    seconds: float
    first_token_seconds: float | None
    stopped: bool = False
    from_cache: bool = False
    notices: list[str] = field(default_factory=list)

    @property
    def tokens_per_second(self) -> float:
        return self.new_tokens / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["tokens_per_second"] = round(self.tokens_per_second, 2)
        return data


class _CallbackStreamer:
    """transformers' TextStreamer, sending finished words to a callback and timing the first token."""

    def __init__(self, tokenizer: Any, on_text: Callable[[str], None] | None) -> None:
        from transformers import TextStreamer

        outer = self

        class Streamer(TextStreamer):
            def put(self, value: torch.Tensor) -> None:
                if not self.next_tokens_are_prompt and outer.first_token_at is None:
                    outer.first_token_at = time.perf_counter()
                super().put(value)

            def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
                if text:
                    outer.pieces.append(text)
                    if on_text is not None:
                        on_text(text)

        self.first_token_at: float | None = None
        self.pieces: list[str] = []
        self.streamer = Streamer(tokenizer, skip_prompt=True, skip_special_tokens=True)


def _stop_criteria(cancel: threading.Event | None) -> Any:
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class StopWhenCancelled(StoppingCriteria):
        def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.Tensor:
            stop = cancel is not None and cancel.is_set()
            return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([StopWhenCancelled()])


class TextGenerator:
    def __init__(
        self,
        store: ModelStore,
        cache: ResultCache | None = None,
        model: str | None = None,
        device: str = "auto",
        compression: Compression | str = Compression.NONE,
    ) -> None:
        self.store = store
        self.cache = cache
        self.entry = store.resolve_entry(model or store.default_model(TASK_GENERATE), TASK_GENERATE)
        if self.entry.kind != KIND_CAUSAL_LM:
            raise ModelUnavailableError(f"{self.entry.title} cannot generate text.")
        self.device = pick_device(device)
        self.compression = Compression.parse(compression)

    def load(self, progress: ProgressCallback | None = None, cancel: threading.Event | None = None) -> LoadedModel:
        from transformers import AutoModelForCausalLM
        from desktop_ai.engine.models.loading import load_pretrained

        return load_pretrained(self.store, self.entry, AutoModelForCausalLM, self.device, self.compression, progress, cancel)

    def prepare(self, loaded: LoadedModel, prompt: str, options: GenerationOptions) -> tuple[torch.Tensor, list[str]]:
        """Tokenize with the chat template when the model has one; keep the end of a prompt that is too long."""
        notices: list[str] = []
        tokenizer = loaded.tokenizer
        if len(prompt) > MAX_PROMPT_CHARS:
            notices.append(f"The prompt had {len(prompt):,} characters; only the last {MAX_PROMPT_CHARS:,} were read.")
            prompt = prompt[-MAX_PROMPT_CHARS:]
        if options.use_chat_template and getattr(tokenizer, "chat_template", None):
            encoded = tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], add_generation_prompt=True, return_tensors="pt", return_dict=True
            )
            ids = encoded["input_ids"]
        else:
            ids = tokenizer(prompt, return_tensors="pt").input_ids
        context = min(getattr(loaded.model.config, "max_position_embeddings", MAX_CONTEXT_TOKENS) or MAX_CONTEXT_TOKENS, MAX_CONTEXT_TOKENS)
        room = context - options.max_new_tokens
        if room < 16:
            raise InvalidInputError(f"Max new tokens must leave room for the prompt: this model reads {context} tokens in all.")
        if ids.shape[1] > room:
            notices.append(
                f"The prompt was {ids.shape[1]:,} tokens, more than this model can read with {options.max_new_tokens} "
                f"new tokens; it was truncated to its last {room:,} tokens."
            )
            ids = ids[:, -room:]
        return ids, notices

    def cache_key(self, location: ModelLocation, prompt: str, options: GenerationOptions) -> str:
        return make_cache_key(TASK_GENERATE, location.entry.id, location.revision, self.compression.value, asdict(options), prompt)

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
        from transformers import AutoModelForCausalLM

        started = time.perf_counter()
        key = None
        if self.cache is not None and options.cacheable:
            key = self.cache_key(self.store.locate(self.entry, progress, cancel), prompt, options)
            hit = self.cache.get(key)
            if hit is not None:
                result = GenerationResult(**{k: v for k, v in hit.items() if k in GenerationResult.__dataclass_fields__})
                result.from_cache = True
                result.seconds = time.perf_counter() - started
                result.first_token_seconds = result.seconds
                result.notices = []
                if on_partial is not None:
                    on_partial(result.text)
                return result

        def job(loaded: LoadedModel) -> GenerationResult:
            return self._generate(loaded, prompt, options, on_partial, cancel, started)

        result, loaded, notices = run_with_cpu_fallback(
            self.store, self.entry, AutoModelForCausalLM, self.device, self.compression, job, progress, cancel
        )
        result.notices = notices + result.notices
        if key is not None and not result.stopped:
            self.cache.put(key, result.to_dict())
        return result

    def _generate(
        self,
        loaded: LoadedModel,
        prompt: str,
        options: GenerationOptions,
        on_partial: Callable[[str], None] | None,
        cancel: threading.Event | None,
        started: float,
    ) -> GenerationResult:
        import torch

        ids, notices = self.prepare(loaded, prompt, options)
        ids = ids.to(loaded.device)
        tokenizer = loaded.tokenizer
        streamer = _CallbackStreamer(tokenizer, on_partial)
        kwargs: dict[str, Any] = {
            "max_new_tokens": options.max_new_tokens,
            "min_new_tokens": min(options.min_new_tokens, options.max_new_tokens),
            "do_sample": options.sampling,
            "repetition_penalty": options.repetition_penalty,
            "streamer": streamer.streamer,
            "stopping_criteria": _stop_criteria(cancel),
            "attention_mask": torch.ones_like(ids),
            "pad_token_id": tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
        }
        if options.sampling:
            kwargs.update(temperature=options.temperature, top_p=options.top_p)
            if options.seed is not None:
                torch.manual_seed(options.seed)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        gen_started = time.perf_counter()
        with torch.inference_mode():
            output = loaded.model.generate(ids, **kwargs)
        finished = time.perf_counter()
        new_ids = output[0, ids.shape[1]:]
        text = tokenizer.decode(new_ids, skip_special_tokens=True)
        stopped = cancel is not None and cancel.is_set()
        return GenerationResult(
            text=text,
            model_id=loaded.model_id,
            device=loaded.device,
            compression=loaded.compression.method,
            prompt_tokens=int(ids.shape[1]),
            new_tokens=int(new_ids.shape[0]),
            seconds=finished - gen_started,
            first_token_seconds=(streamer.first_token_at - started) if streamer.first_token_at else None,
            stopped=stopped,
            notices=notices + (["Stopped: the text so far is kept."] if stopped else []),
        )
