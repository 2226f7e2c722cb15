"""Request and response models, shaped as OpenAI's API reference gives them, so the official clients work unchanged;
and the app's own routes (classify, translate, recognize), which OpenAI's API has no shape for.

Fields a client may send that the app does not act on (user...) are accepted and ignored, as
vLLM and llama.cpp's server do; ones whose answer would be wrong without them (n > 1, logprobs) are refused."""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class OpenAIModel(BaseModel):
    model_config = ConfigDict(extra="ignore")


# --- errors and models -----------------------------------------------------------------------------------------
class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "desktop-ai"
    # the app's own: what the model does (generate, classify, translate, recognize, transcribe) and its name
    task: str
    title: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


# --- chat and completions --------------------------------------------------------------------------------------
class TextPart(OpenAIModel):
    type: Literal["text"]
    text: str


class ChatMessage(OpenAIModel):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class StreamOptions(OpenAIModel):
    include_usage: bool = False


class SamplingRequest(OpenAIModel):
    """What chat and completions share. Defaults are OpenAI's (temperature 1, top_p 1, no penalty)."""

    model: str
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    n: int = Field(default=1, ge=1, le=1, description="only 1: one answer per request")
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    logit_bias: dict[str, float] | None = Field(default=None, description="token id -> bias from -100 to 100, "
                                                "added to the token's logit before sampling")
    user: str | None = None
    # extensions that vLLM and llama.cpp's server also take
    top_k: int = Field(default=0, ge=0, description="sample from the K most likely tokens; 0 is off")
    repetition_penalty: float = Field(default=1.0, gt=0.0)
    min_tokens: int = Field(default=0, ge=0, description="hold the end of the answer until this many tokens")

    def logit_bias_ids(self) -> dict[int, float]:
        """OpenAI's logit_bias, its keys read as token ids (checked against the model's vocabulary later)."""
        biases: dict[int, float] = {}
        for key, bias in (self.logit_bias or {}).items():
            if not key.strip().isdigit():
                raise ValueError(f"logit_bias keys are token ids (whole numbers); '{key}' is not one")
            if not -100.0 <= bias <= 100.0:
                raise ValueError(f"logit_bias values are from -100 to 100; {bias:g} is not")
            biases[int(key)] = float(bias)
        return biases

    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop)
        return [stop for stop in stops if stop]

    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class ChatCompletionRequest(SamplingRequest):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    logprobs: bool = False

    def token_limit(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens


class CompletionRequest(SamplingRequest):
    prompt: str | list[str]
    echo: bool = False
    logprobs: int | None = None
    max_tokens: int | None = Field(default=16, ge=1)  # OpenAI's default for completions

    def prompt_text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else "".join(self.prompt)


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop", "length"]
    logprobs: None = None


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def now() -> int:
    return int(time.time())


class ChatCompletion(BaseModel):
    id: str = Field(default_factory=lambda: new_id("chatcmpl"))
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=now)
    model: str
    choices: list[ChatChoice]
    usage: Usage
    system_fingerprint: str | None = None


class ChunkDelta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    index: int = 0
    delta: ChunkDelta
    finish_reason: Literal["stop", "length"] | None = None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None


class CompletionChoice(BaseModel):
    index: int = 0
    text: str
    finish_reason: Literal["stop", "length"] | None = None
    logprobs: None = None


class Completion(BaseModel):
    id: str = Field(default_factory=lambda: new_id("cmpl"))
    object: Literal["text_completion"] = "text_completion"
    created: int = Field(default_factory=now)
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None


# --- embeddings --------------------------------------------------------------------------------------------------
class EmbeddingRequest(OpenAIModel):
    model: str
    input: str | list[str] = Field(description="a text or a list of texts (token arrays are not taken)")
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None
    user: str | None = None

    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage


# --- audio -------------------------------------------------------------------------------------------------------
TRANSCRIPTION_FORMATS = ("json", "text", "srt", "verbose_json", "vtt")


class TranscriptionSegment(BaseModel):
    id: int
    seek: int = 0
    start: float
    end: float
    text: str
    tokens: list[int] = Field(default_factory=list)
    temperature: float = 0.0
    avg_logprob: float = 0.0
    compression_ratio: float = 0.0
    no_speech_prob: float = 0.0


class Transcription(BaseModel):
    text: str


class TranscriptionVerbose(BaseModel):
    task: Literal["transcribe"] = "transcribe"
    language: str
    duration: float
    text: str
    segments: list[TranscriptionSegment]


# --- the app's own routes ----------------------------------------------------------------------------------------
class ClassifyRequest(OpenAIModel):
    model: str | None = Field(default=None, description="a classify model id (default: the app's default)")
    input: str | list[str]
    labels: list[str] | None = Field(default=None, description="your own labels (at least two); none: sentiment")

    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


class LabelScore(BaseModel):
    label: str
    score: float


class Classification(BaseModel):
    index: int
    text: str
    label: str
    scores: list[LabelScore]


class ClassifyResponse(BaseModel):
    object: Literal["list"] = "list"
    model: str
    data: list[Classification]


class TranslateRequest(OpenAIModel):
    model: str | None = Field(default=None, description="a translation model id (default: opus-mt for the pair)")
    input: str
    source_language: str = "en"
    target_language: str = "de"
    beams: int = Field(default=4, ge=1, le=16)


class TranslateResponse(BaseModel):
    object: Literal["translation"] = "translation"
    model: str
    text: str
    sentences: int


class Recognition(BaseModel):
    label: str
    score: float


class RecognizeResponse(BaseModel):
    object: Literal["image.recognition"] = "image.recognition"
    model: str
    data: list[Recognition]


def error_body(message: str, type_: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return ErrorResponse(error=ErrorDetail(message=message, type=type_, param=param, code=code)).model_dump()
