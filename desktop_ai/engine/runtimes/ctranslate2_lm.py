"""CTranslate2 for transformers causal LMs whose architecture it converts (Llama, Mistral, Qwen2, Gemma, GPT-2...):
converted once into the user cache, then run with int8 kernels (int8_float32 on a CPU, int8_float16 on a GPU)."""

from __future__ import annotations

import hashlib
import logging
import shutil
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from desktop_ai.engine.errors import CancelledError, ModelUnavailableError
from desktop_ai.engine.models.compression import Compression
from desktop_ai.engine.models.memory import (
    MemoryEstimate,
    gb,
    kv_shape_from_config,
    read_config,
    source_bytes_per_parameter,
    weights_bytes_on_disk,
)
from desktop_ai.engine.runtimes.causal_lm import (
    RUNTIME_CTRANSLATE2,
    IncrementalDecoder,
    SamplingOptions,
    StreamResult,
    TextCallback,
    TokenizerBackedLM,
    physical_cores,
    stop_index,
)

logger = logging.getLogger(__name__)

ProgressCallback = Any  # (message, fraction | None) -> None, as the model store's
# Decoder-only configurations CTranslate2's converter reads (its loaders also cover encoders and seq2seq models).
DECODER_CONFIGS = frozenset({
    "LlamaConfig", "MistralConfig", "Qwen2Config", "Qwen3Config", "GPT2Config", "GemmaConfig", "Gemma2Config",
    "Gemma3TextConfig", "PhiConfig", "Phi3Config", "FalconConfig", "RWConfig", "GPTNeoXConfig", "GPTJConfig",
    "BloomConfig", "CodeGenConfig", "MPTConfig", "OPTConfig", "GPTBigCodeConfig", "MixFormerSequentialConfig",
})
CONVERTED_MARKER = "model.bin"
MAX_CONTEXT_TOKENS = 4096
# Below this many bytes of converted weights a CPU decode step is hundreds of tiny matrix products, and the
# OpenMP barriers between them cost more than a second core gains. On 2 cores, int8: SmolLM2-135M ran at 73
# tokens/s on one thread against 21 on two, a random 320 M Llama at 36 against 22; a random 820 M one (823 MB)
# at 15.3 against 17.5, so larger models are bandwidth-bound and use every core (docs/benchmarks.md, generate).
ONE_THREAD_BELOW_BYTES = 600_000_000


def cpu_threads_for(weights_bytes: int) -> int:
    """CTranslate2's intra-op threads on the CPU for converted weights of this size."""
    return 1 if weights_bytes < ONE_THREAD_BELOW_BYTES else physical_cores()


def supported_config(folder: Path) -> str | None:
    """The folder's config class when CTranslate2 converts it as a decoder-only model, else None."""
    config = read_config(folder)
    model_type = config.get("model_type")
    if not model_type:
        return None
    try:
        from ctranslate2.converters.transformers import _MODEL_LOADERS
        from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES
    except ImportError:
        return None
    name = CONFIG_MAPPING_NAMES.get(model_type)
    return name if name in DECODER_CONFIGS and name in _MODEL_LOADERS else None


def _quantization(compression: Compression) -> str | None:
    """How the converted copy stores weights: int8 when int8 runs, else as the source has them."""
    return {Compression.INT8: "int8", Compression.FP16: "float16"}.get(compression)


def _compute_type(compression: Compression, on_gpu: bool) -> str:
    if compression is Compression.INT8:
        return "int8_float16" if on_gpu else "int8_float32"
    if compression is Compression.FP16 and on_gpu:
        return "float16"
    return "float32"


def converted_folder(cache_root: Path, source: Path, revision: str, compression: Compression) -> Path:
    slug = hashlib.sha256(f"{source.resolve()}:{revision}".encode()).hexdigest()[:16]
    return cache_root / "ctranslate2" / f"{source.name}-{slug}-{_quantization(compression) or 'source'}"


def estimate(title: str, source: Path, compression: Compression, device: str) -> MemoryEstimate:
    """Weights at the size CTranslate2 holds them in, plus a float32 (or float16 on GPU) cache for the context."""
    config = read_config(source)
    on_gpu = device.startswith("cuda")
    parameters = weights_bytes_on_disk(source) // source_bytes_per_parameter(config)
    compute = _compute_type(compression, on_gpu)
    per_parameter = 1 if compute.startswith("int8") else (2 if compute == "float16" else 4)
    shape = kv_shape_from_config(config)
    context = min(shape.context_length, MAX_CONTEXT_TOKENS) if shape else 0
    kv = shape.kv_bytes(context, 2 if on_gpu else 4) if shape else 0
    alternatives = []
    if per_parameter > 1:
        alternatives.append(f"int8 compression (about {gb(parameters + kv)})")
    if not on_gpu:
        alternatives.append("the GPU, if this machine has one with enough memory")
    alternatives.append("a GGUF file of the same model at Q4_K_M (about 0.6 bytes a parameter) on llama.cpp")
    return MemoryEstimate(f"{title} on CTranslate2 ({compute})", parameters * per_parameter, kv, context, device, alternatives)


def convert(source: Path, target: Path, compression: Compression, title: str,
            progress: ProgressCallback | None, cancel: threading.Event | None) -> Path:
    """Convert once; a finished copy is reused, a half-written one (a crash, a stop) is redone."""
    if (target / CONVERTED_MARKER).is_file():
        return target
    if cancel is not None and cancel.is_set():
        raise CancelledError("Stopped before the model was converted.")
    from ctranslate2.converters import TransformersConverter

    if progress:
        progress(f"Converting {title} for CTranslate2 (first use only; the copy is kept in the cache)", None)
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        TransformersConverter(str(source), low_cpu_mem_usage=True).convert(
            str(partial), quantization=_quantization(compression), force=True
        )
    except Exception as error:
        shutil.rmtree(partial, ignore_errors=True)
        raise ModelUnavailableError(
            f"{title} could not be loaded from {source} to convert it for CTranslate2: {error}. "
            "The files may be incomplete or corrupt: download it again or pick another folder."
        ) from error
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    logger.info("Converted %s for CTranslate2 into %s in %.1f s", source, target, time.perf_counter() - started)
    if progress:
        progress(f"Converted {title} for CTranslate2 in {time.perf_counter() - started:.1f} s", 1.0)
    return target


class CTranslate2LM(TokenizerBackedLM):
    runtime = RUNTIME_CTRANSLATE2

    def __init__(self, model_id: str, title: str, source: Path, converted: Path, device: str,
                 compression: Compression) -> None:
        import ctranslate2
        from transformers import AutoTokenizer

        on_gpu = device.startswith("cuda")
        compute = _compute_type(compression, on_gpu)
        index = int(device.split(":")[1]) if ":" in device else 0
        self._generator_args = dict(
            model_path=str(converted), device="cuda" if on_gpu else "cpu", device_index=index, compute_type=compute,
            intra_threads=0 if on_gpu else cpu_threads_for(weights_bytes_on_disk(converted / CONVERTED_MARKER)),
        )
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(source)
            self._generator = ctranslate2.Generator(**self._generator_args)
        except Exception as error:
            raise ModelUnavailableError(f"{title} could not be loaded by CTranslate2 from {converted}: {error}") from error
        config = read_config(source)
        shape = kv_shape_from_config(config)
        context = min(shape.context_length if shape else 2048, MAX_CONTEXT_TOKENS)
        reported = {"int8_float32": "int8", "int8_float16": "int8", "float16": "fp16"}.get(compute, "none")
        super().__init__(model_id, device, reported, context)
        if compression is Compression.FP16 and not on_gpu:
            self.notices.append("Half precision needs a GPU (it is slower than fp32 on a CPU); kept fp32.")
        self.compute_type = compute
        self.threads = int(self._generator_args["intra_threads"])
        self._bytes = weights_bytes_on_disk(converted / CONVERTED_MARKER)
        if compute == "float32" and _quantization(compression) is not None:
            self._bytes *= 4
        self._end_tokens = self._end_token_names(source)

    def _end_token_names(self, source: Path) -> list[str]:
        ids: list[int] = []
        try:
            from transformers import GenerationConfig

            eos = GenerationConfig.from_pretrained(source).eos_token_id
            ids.extend(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        except Exception:  # many folders have no generation_config.json
            pass
        if self._tokenizer.eos_token_id is not None:
            ids.append(self._tokenizer.eos_token_id)
        return list(dict.fromkeys(self._tokenizer.convert_ids_to_tokens(ids)))

    def stream(self, prompt_tokens: Sequence[int], options: SamplingOptions, on_text: TextCallback | None = None,
               cancel: threading.Event | None = None, state_key: str | None = None) -> StreamResult:
        """Reads the whole prompt every turn: state_key is accepted and nothing is kept (keeps_conversation_state
        is False, and the chat says so). generate_tokens' static_prompt would keep only a fixed system prompt."""
        import ctranslate2

        if options.sampling and options.seed is not None:
            # CTranslate2 seeds each worker thread's random generator once, when the thread starts; a fixed seed
            # therefore needs fresh workers (a reload from the converted folder, which the OS has cached).
            ctranslate2.set_random_seed(options.seed)
            self._generator = None
            self._generator = ctranslate2.Generator(**self._generator_args)
        decoder = IncrementalDecoder(self.detokenize, on_text)
        prompt = self._tokenizer.convert_ids_to_tokens(list(prompt_tokens))
        started = time.perf_counter()
        cancelled = False
        steps = self._generator.generate_tokens(
            prompt,
            max_length=options.max_new_tokens,
            min_length=min(options.min_new_tokens, options.max_new_tokens),
            sampling_topk=(options.top_k or 0) if options.sampling else 1,
            sampling_topp=options.top_p if options.sampling else 1.0,
            sampling_temperature=options.temperature if options.sampling else 1.0,
            repetition_penalty=options.repetition_penalty,
            end_token=self._end_tokens or None,
        )
        try:
            for step in steps:
                if cancel is not None and cancel.is_set():
                    cancelled = True
                    break
                if step.is_last and step.token in self._end_tokens:
                    break
                decoder.add(step.token_id)
                if options.stop and stop_index(decoder.text, options.stop) is not None:
                    break
        finally:
            steps.close()
        text = decoder.finish()
        cut = stop_index(text, options.stop)
        return StreamResult(text[:cut] if cut is not None else text, len(decoder.tokens), decoder.first_token_at,
                            time.perf_counter() - started, cancelled)

    def close(self) -> None:
        self._generator = None
