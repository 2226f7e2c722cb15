"""POST /v1/audio/transcriptions: a multipart audio file in, its words out (Whisper, or any speech model the app
serves), as json, text, srt, vtt or verbose_json (segments with their times). The file goes to a private temporary
file (the audio readers need a path), which is deleted when the answer is made."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import PlainTextResponse

from desktop_ai.engine.models.catalogue import TASK_TRANSCRIBE
from desktop_ai.server.engine_jobs import ServerEngine
from desktop_ai.server.limits import APIError
from desktop_ai.server.protocol import (
    TRANSCRIPTION_FORMATS,
    ErrorResponse,
    Transcription,
    TranscriptionSegment,
    TranscriptionVerbose,
)

logger = logging.getLogger(__name__)

router = APIRouter(tags=["OpenAI: audio"])
ERRORS: dict[int | str, dict[str, Any]] = {status: {"model": ErrorResponse} for status in (400, 401, 404, 413, 503)}
SUFFIXES = (".wav", ".mp3", ".flac", ".ogg", ".oga", ".opus", ".m4a", ".mp4", ".mpeg", ".mpga", ".webm", ".aac")


@router.post("/v1/audio/transcriptions", response_model=TranscriptionVerbose | Transcription, responses=ERRORS,
             summary="Transcribe an audio file")
async def transcriptions(
    request: Request,
    file: Annotated[UploadFile, File(description="the audio file (wav, mp3, flac, ogg, m4a, webm...)")],
    model: Annotated[str, Form()],
    language: Annotated[str | None, Form()] = None,
    prompt: Annotated[str | None, Form()] = None,
    response_format: Annotated[str, Form()] = "json",
    temperature: Annotated[float, Form()] = 0.0,
) -> Any:
    from desktop_ai.engine.audio.transcript import TranscriptDocument
    from desktop_ai.engine.errors import InvalidInputError
    from desktop_ai.engine.tasks.transcription import FileTranscriber, TranscriptionOptions, make_recognizer

    engine: ServerEngine = request.app.state.engine
    served = engine.resolve(model, TASK_TRANSCRIBE)
    request.state.model = served.id
    if response_format not in TRANSCRIPTION_FORMATS:
        raise APIError(400, f"response_format must be one of {', '.join(TRANSCRIPTION_FORMATS)}.",
                       param="response_format")
    if language is not None and not (language.isalpha() and 2 <= len(language) <= 3):
        raise APIError(400, "language must be an ISO-639-1 code such as en or de.", param="language")
    suffix = Path(file.filename or "").suffix.lower()
    suffix = suffix if suffix in SUFFIXES else ".audio"
    data = await file.read()
    if not data:
        raise APIError(400, "The audio file is empty.", param="file")
    options = TranscriptionOptions(language=language.lower() if language else None, initial_prompt=prompt or None)

    def job() -> Any:
        with tempfile.TemporaryDirectory(prefix="desktop-ai-serve-") as folder:
            path = Path(folder) / f"upload{suffix}"
            path.write_bytes(data)
            recognizer = make_recognizer(engine.workspace.store, None, served.ref, engine.settings.device, "int8",
                                         options)
            cache = engine.workspace.cache if engine.settings.use_cache else None
            try:
                return FileTranscriber(recognizer, cache).run(path)
            except InvalidInputError as error:  # the message names the temporary file, not the client's
                raise APIError(400, f"The file could not be read as audio: {str(error).replace(str(path), 'it')}",
                               param="file") from None

    admission = request.app.state.admission
    await admission.enter()
    try:
        result = await engine.run(job)
    finally:
        admission.leave()
    text = " ".join(segment.text.strip() for segment in result.segments).strip()
    if engine.settings.log_prompts:
        logger.info("Transcription by %s: %s", served.id, text)
    if response_format == "json":
        return Transcription(text=text)
    if response_format == "verbose_json":
        segments = [TranscriptionSegment(id=i, start=round(s.start, 3), end=round(s.end, 3), text=s.text)
                    for i, s in enumerate(result.segments)]
        language_used = options.language or ("en" if served.id.endswith(".en") or "sphinx" in served.id else "")
        return TranscriptionVerbose(language=language_used or "en", duration=round(result.duration_s, 3),
                                    text=text, segments=segments)
    document = TranscriptDocument(phrases=list(result.segments))
    body = {"text": text + "\n", "srt": document.to_srt(), "vtt": document.to_vtt()}[response_format]
    return PlainTextResponse(body, media_type="text/vtt" if response_format == "vtt" else "text/plain")
