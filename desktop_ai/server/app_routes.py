"""The app's own routes, for what OpenAI's API has no shape for: classification into labels you give (or
sentiment), translation (opus-mt), and image recognition (ImageNet top-k). Same keys, limits and error shape as
the OpenAI routes; documented with them on the generated OpenAPI page (/docs)."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile

from desktop_ai.engine.models.catalogue import TASK_CLASSIFY, TASK_RECOGNIZE, TASK_TRANSLATE
from desktop_ai.server.engine_jobs import ServerEngine
from desktop_ai.server.limits import APIError
from desktop_ai.server.protocol import (
    Classification,
    ClassifyRequest,
    ClassifyResponse,
    ErrorResponse,
    LabelScore,
    Recognition,
    RecognizeResponse,
    TranslateRequest,
    TranslateResponse,
)

logger = logging.getLogger(__name__)

router = APIRouter(tags=["desktop-ai's own"])
ERRORS: dict[int | str, dict[str, Any]] = {status: {"model": ErrorResponse} for status in (400, 401, 404, 413, 503)}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")


async def _run(request: Request, job: Any) -> Any:
    engine: ServerEngine = request.app.state.engine
    admission = request.app.state.admission
    await admission.enter()
    try:
        return await engine.run(job)
    finally:
        admission.leave()


@router.post("/v1/classifications", response_model=ClassifyResponse, responses=ERRORS,
             summary="Classify texts: sentiment, or zero-shot into your own labels")
async def classify(body: ClassifyRequest, request: Request) -> ClassifyResponse:
    from desktop_ai.engine.tasks.builtin_sentiment import classify_sentiment
    from desktop_ai.engine.tasks.text_classification import TextClassifier

    engine: ServerEngine = request.app.state.engine
    model = engine.resolve(body.model, TASK_CLASSIFY)
    request.state.model = model.id
    texts = body.texts()
    if not texts or any(not text.strip() for text in texts):
        raise APIError(400, "Every input must be a non-empty text.", param="input")
    if body.labels is not None and len({label.strip() for label in body.labels if label.strip()}) < 2:
        raise APIError(400, "Give at least two different labels.", param="labels")

    def job() -> Any:
        cache = engine.workspace.cache if engine.settings.use_cache else None
        if body.labels is None:  # sentiment: the built-in taught classifier when trained, as in the window and CLI
            return classify_sentiment(engine.workspace.store, cache, texts, model.ref, engine.settings.device)
        classifier = TextClassifier(engine.workspace.store, cache, model.ref, engine.settings.device)
        return classifier.run(texts, labels=body.labels)

    batch = await _run(request, job)
    data = [Classification(index=i, text=r.text, label=r.label,
                           scores=[LabelScore(label=s.label, score=s.score) for s in r.scores])
            for i, r in enumerate(batch.results)]
    return ClassifyResponse(model=model.id, data=data)


@router.post("/v1/translations/text", response_model=TranslateResponse, responses=ERRORS,
             summary="Translate text (opus-mt), sentence by sentence, cached by sentence")
async def translate(body: TranslateRequest, request: Request) -> TranslateResponse:
    from desktop_ai.engine.tasks.translation import TranslationOptions, Translator

    engine: ServerEngine = request.app.state.engine
    wanted = body.model or f"opus-mt-{body.source_language}-{body.target_language}"
    model = engine.resolve(wanted, TASK_TRANSLATE)
    request.state.model = model.id
    if not body.input.strip():
        raise APIError(400, "The input is empty.", param="input")

    def job() -> Any:
        cache = engine.workspace.cache if engine.settings.use_cache else None
        translator = Translator(engine.workspace.store, cache, model.ref, body.source_language, body.target_language,
                                engine.settings.device)
        return translator.run(body.input, TranslationOptions(beams=body.beams))

    result = await _run(request, job)
    return TranslateResponse(model=model.id, text=result.text, sentences=result.sentences)


@router.post("/v1/images/recognitions", response_model=RecognizeResponse, responses=ERRORS,
             summary="Recognize what an image shows (ImageNet-1k top-k)")
async def recognize(
    request: Request,
    file: Annotated[UploadFile, File(description="the image (jpeg, png, webp...)")],
    model: Annotated[str | None, Form()] = None,
    top_k: Annotated[int, Form(ge=1, le=1000)] = 5,
) -> RecognizeResponse:
    from desktop_ai.engine.tasks.image_classification import ImageClassifier

    engine: ServerEngine = request.app.state.engine
    served = engine.resolve(model, TASK_RECOGNIZE)
    request.state.model = served.id
    data = await file.read()
    if not data:
        raise APIError(400, "The image file is empty.", param="file")
    suffix = Path(file.filename or "").suffix.lower()
    suffix = suffix if suffix in IMAGE_SUFFIXES else ".img"

    def job() -> Any:
        with tempfile.TemporaryDirectory(prefix="desktop-ai-serve-") as folder:
            path = Path(folder) / f"upload{suffix}"
            path.write_bytes(data)
            cache = engine.workspace.cache if engine.settings.use_cache else None
            classifier = ImageClassifier(engine.workspace.store, cache, served.ref, engine.settings.device)
            return classifier.run([path], top_k=top_k)

    batch = await _run(request, job)
    result = batch.results[0]
    if result.error:
        raise APIError(400, "The file could not be read as an image.", param="file")
    return RecognizeResponse(model=served.id, data=[Recognition(label=p.label, score=p.score)
                                                    for p in result.predictions])
