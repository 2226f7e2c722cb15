"""`desktop-ai bench`: our engine against a plain Hugging Face (or torchvision) baseline, on the same model,
in the same process, interleaved run by run so that a busy machine slows both alike. Numbers are medians.

One module per task (generate, chat, classify, recognize, translate, transcribe); what they share is in report.py.
The chat bench has no outside baseline: it compares keeping a conversation's state with resetting it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from desktop_ai.bench.chat import bench_chat
from desktop_ai.bench.classify import bench_classify
from desktop_ai.bench.dictate_anywhere import TASK_DICTATE_ANYWHERE, bench_dictate_anywhere
from desktop_ai.bench.documents import bench_documents
from desktop_ai.bench.generate import bench_generate
from desktop_ai.bench.recognize import bench_recognize
from desktop_ai.bench.report import BenchReport
from desktop_ai.bench.serve import bench_serve
from desktop_ai.bench.transcribe import BENCH_SPEECH, bench_transcribe
from desktop_ai.bench.translate import bench_translate
from desktop_ai.bench.voice import TASK_VOICE, bench_voice
from desktop_ai.engine.models.catalogue import TASK_CLASSIFY, TASK_GENERATE, TASK_RECOGNIZE, TASK_TRANSCRIBE, TASK_TRANSLATE
from desktop_ai.engine.models.compression import Compression
from desktop_ai.engine.models.devices import pick_device
from desktop_ai.engine.models.store import ModelStore

TASK_CHAT = "chat"  # not a model task of the catalogue: it runs the generate task's models
TASK_TEACH = "teach"  # taught labels: few-shot curves, training time, prediction cost
BENCH_TASKS = (TASK_GENERATE, TASK_CHAT, TASK_CLASSIFY, TASK_RECOGNIZE, TASK_TRANSLATE, TASK_TRANSCRIBE, TASK_TEACH)
BENCH_TASKS += (TASK_DICTATE_ANYWHERE,)
BENCH_TASKS += (TASK_VOICE,)
TASK_SERVE = "serve"  # the local API server (desktop_ai/server), on the generate task's GGUF models
BENCH_TASKS += (TASK_SERVE,)
TASK_DOCUMENTS = "documents"  # indexing and search of the user's documents (the classify task's MiniLM)
BENCH_TASKS += (TASK_DOCUMENTS,)

logger = logging.getLogger(__name__)


def run_benchmark(
    task: str,
    *,
    model: str | None = None,
    device: str = "auto",
    compressions: list[str] | None = None,
    max_new_tokens: int = 64,
    repeats: int = 3,
    texts: int = 256,
    progress: Callable[[str], None] | None = None,
    store: ModelStore | None = None,
    images: list[str] | None = None,
    arch: str | None = None,
    labels: str | None = None,
    beams: int = 4,
    audio: list[str] | None = None,
    sentences: int | None = None,
    stand_in: str | None = None,
    cluster: str | None = None,
    workers: list[int] | None = None,
) -> BenchReport:
    from desktop_ai import paths

    store = store or ModelStore(paths.cache_dir() / "converted-models")
    say = progress or (lambda message: logger.info(message))
    choice = pick_device(device)
    if compressions is None:
        first = ["none", "int8"] if task in (TASK_TRANSLATE, TASK_TRANSCRIBE, TASK_DICTATE_ANYWHERE) else ["none", "int8", "prune"]
        compressions = first + (["fp16"] if choice.is_gpu else [])
    methods = [Compression.parse(c) for c in compressions]
    if task == TASK_GENERATE:
        return bench_generate(store, model or store.default_model(TASK_GENERATE), device, methods, max_new_tokens, repeats, say)
    if task == TASK_CHAT:
        return bench_chat(store, model or store.default_model(TASK_GENERATE), device, max_new_tokens, repeats, say)
    if task == TASK_VOICE:
        return bench_voice(model, repeats, say)
    if task == TASK_TEACH:
        from desktop_ai.bench.teach import bench_teach

        return bench_teach(store, device, repeats, say)
    if task == TASK_SERVE:
        return bench_serve(store, model or store.default_model(TASK_GENERATE), device, max_new_tokens, repeats, say)
    if task == TASK_DOCUMENTS:
        return bench_documents(store, device, repeats, texts, say)
    if task == TASK_CLASSIFY:
        return bench_classify(store, model or store.default_model(TASK_CLASSIFY), device, methods, texts, repeats, say)
    if cluster is not None:
        if task != TASK_RECOGNIZE:
            raise ValueError("bench --cluster measures --task recognize only.")
        from desktop_ai.bench.cluster import bench_cluster_recognize

        return bench_cluster_recognize(cluster, workers or [1, 2], images, repeats, say=say)
    if task == TASK_RECOGNIZE:
        return bench_recognize(store, model, device, methods, images, arch, labels, repeats, say)
    if task == TASK_TRANSLATE:
        return bench_translate(store, model, device, methods, beams, repeats, stand_in, say)
    if task == TASK_DICTATE_ANYWHERE:
        return bench_dictate_anywhere(store, model, device, methods, repeats, say)
    if task == TASK_TRANSCRIBE:
        spoken = BENCH_SPEECH[: sentences] if sentences else BENCH_SPEECH
        return bench_transcribe(store, model, device, methods, audio, spoken, repeats, say)
    raise ValueError(f"Unknown bench task {task!r}: choose one of {', '.join(BENCH_TASKS)}.")
