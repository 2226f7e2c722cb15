"""Which compute type runs a Whisper model fastest here: measured once per processor and model, then remembered.

int8 is not always the fast choice: on one 2-core AVX-512 CPU faster-whisper's batched pipeline ran tiny.en
slower in int8 than in float32 (issue 31), on others int8 wins. So the candidates (int8 and float32 on a CPU,
int8_float16 and float16 on a GPU) are timed on the work file transcription does (a batch of two 30 s windows
encoded, then a few beam-search steps) and the faster one is kept in the cache folder, keyed by the processor's
name, the thread count and the model, so the few seconds it takes are spent once. Choosing a compression in the
window or with --compression skips all of this.
"""

from __future__ import annotations

import json
import logging
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

AUTO = "auto"
CANDIDATES = {"cpu": ("int8", "float32"), "cuda": ("int8_float16", "float16")}
CHOICES_FILE = "whisper-compute-types.json"
MEASURE_WINDOWS = 2  # a small batch, as file transcription decodes
MEASURE_TOKENS = 24  # beam-search steps after the prompt
MEASURE_RUNS = 1  # timed runs after a warm-up (the fastest counts)


@dataclass
class ComputeChoice:
    compute_type: str
    reason: str  # for the status line: which ran and why
    seconds: dict[str, float] = field(default_factory=dict)  # what each candidate took, when measured
    measured_now: bool = False


def processor_name() -> str:
    """The CPU's model name (what the choice depends on), e.g. "Intel(R) Xeon(R) Platinum 8488C"."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown processor"


def choice_key(device: str, model_key: str, threads: int, gpu_name: str | None = None) -> str:
    hardware = gpu_name if device == "cuda" and gpu_name else processor_name()
    return f"{hardware} | {device} | {threads} threads | {model_key}"


def time_compute_type(whisper: Any) -> float:
    """Seconds for the measured work on a loaded faster_whisper.WhisperModel (the faster of MEASURE_RUNS)."""
    from faster_whisper.tokenizer import Tokenizer

    rng = np.random.default_rng(0)
    audio = (rng.normal(0, 0.05, 30 * 16000) * np.sin(np.linspace(0, 900, 30 * 16000))).astype(np.float32)
    features = np.stack([whisper.feature_extractor(audio)[..., :3000]] * MEASURE_WINDOWS)
    tokenizer = Tokenizer(whisper.hf_tokenizer, whisper.model.is_multilingual, task="transcribe", language="en")
    prompt = list(tokenizer.sot_sequence) + [tokenizer.no_timestamps]
    best = float("inf")
    for run in range(MEASURE_RUNS + 1):
        started = time.perf_counter()
        encoded = whisper.encode(features)
        # The end token is suppressed so that every candidate decodes the same number of steps.
        whisper.model.generate(encoded, [prompt] * MEASURE_WINDOWS, beam_size=5, max_length=len(prompt) + MEASURE_TOKENS,
                               suppress_tokens=[tokenizer.eot], suppress_blank=False)
        if run:  # the first run is a warm-up
            best = min(best, time.perf_counter() - started)
    return best


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def choose_compute_type(
    folder: Path, key: str, device: str, load: Callable[[str], Any], measure: Callable[[Any], float] = time_compute_type
) -> ComputeChoice:
    """The remembered choice for `key`, or each candidate loaded with `load(compute_type)`, timed and remembered."""
    from desktop_ai.engine.audio.transcript import write_atomic

    path = Path(folder) / CHOICES_FILE
    candidates = CANDIDATES["cuda" if device == "cuda" else "cpu"]
    known = _read(path).get(key)
    if isinstance(known, dict) and known.get("compute_type") in candidates:
        seconds = {str(k): float(v) for k, v in (known.get("seconds") or {}).items()}
        return ComputeChoice(known["compute_type"], _reason(known["compute_type"], seconds, known.get("measured", "")), seconds)
    seconds = {}
    for compute_type in candidates:
        seconds[compute_type] = round(measure(load(compute_type)), 4)
        logger.info("Whisper %s on %s: %.3f s for the measured batch", compute_type, device, seconds[compute_type])
    fastest = min(seconds, key=lambda c: seconds[c])
    measured = datetime.now().astimezone().isoformat(timespec="seconds")
    entries = _read(path)
    entries[key] = {"compute_type": fastest, "seconds": seconds, "measured": measured}
    try:
        write_atomic(path, json.dumps(entries, indent=1, sort_keys=True).encode("utf-8"))
    except OSError as error:  # a read-only cache folder: the choice still holds for this run
        logger.warning("Could not remember the Whisper compute type in %s: %s", path, error)
    return ComputeChoice(fastest, _reason(fastest, seconds, measured), seconds, measured_now=True)


def _reason(chosen: str, seconds: dict[str, float], measured: str) -> str:
    others = ", ".join(f"{c} {s:.2f} s" for c, s in seconds.items() if c != chosen)
    when = f", measured {measured[:10]}" if measured else ""
    return f"{chosen}: the fastest on this machine ({seconds.get(chosen, float('nan')):.2f} s against {others}{when})"


