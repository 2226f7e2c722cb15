"""POST /v1/embeddings: the sentence-embedding models (the embedded MiniLM, any sentence-transformers folder the
user added); a text or a list; float vectors or base64 (little-endian float32, as OpenAI sends them)."""

from __future__ import annotations

import base64
import logging
from typing import Any

import numpy as np
from fastapi import APIRouter, Request

from desktop_ai.server.engine_jobs import TASK_EMBEDDINGS, ServerEngine
from desktop_ai.server.limits import APIError
from desktop_ai.server.protocol import Embedding, EmbeddingList, EmbeddingRequest, EmbeddingUsage, ErrorResponse

logger = logging.getLogger(__name__)

router = APIRouter(tags=["OpenAI: embeddings"])
ERRORS: dict[int | str, dict[str, Any]] = {status: {"model": ErrorResponse} for status in (400, 401, 404, 413, 503)}


@router.post("/v1/embeddings", response_model=EmbeddingList, responses=ERRORS, summary="Embed texts as unit vectors")
async def embeddings(body: EmbeddingRequest, request: Request) -> EmbeddingList:
    from desktop_ai.engine.tasks.text_embedding import TextEmbedder

    engine: ServerEngine = request.app.state.engine
    model = engine.resolve(body.model, TASK_EMBEDDINGS)
    request.state.model = model.id
    texts = body.texts()
    if body.dimensions is not None:
        raise APIError(400, "dimensions is not supported: these models have a fixed size.", param="dimensions")
    if not texts or any(not text.strip() for text in texts):
        raise APIError(400, "Every input must be a non-empty text.", param="input")
    if engine.settings.log_prompts:
        logger.info("Embedding for %s: %s", model.id, texts)

    def job() -> Any:
        cache = engine.workspace.cache if engine.settings.use_cache else None
        return TextEmbedder(engine.workspace.store, cache, model.ref, engine.settings.device).run(texts)

    admission = request.app.state.admission
    await admission.enter()
    try:
        batch = await engine.run(job)
    finally:
        admission.leave()
    request.state.tokens = batch.tokens
    data = []
    for index, vector in enumerate(batch.vectors):
        value: list[float] | str = vector
        if body.encoding_format == "base64":
            value = base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
        data.append(Embedding(index=index, embedding=value))
    return EmbeddingList(data=data, model=model.id, usage=EmbeddingUsage(prompt_tokens=batch.tokens,
                                                                        total_tokens=batch.tokens))
