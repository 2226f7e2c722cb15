"""Whisper inputs decoded in batches: one encoder pass and one beam search for several 30 s windows at once.

faster-whisper's transcribe() decodes one window at a time; on a 2-core CPU most of each step's time is
overhead that a batch shares (measured: its BatchedInferencePipeline runs at about half the cost of its plain
transcribe on the same speech). This is that pipeline's forward pass (faster_whisper.transcribe, 1.2.1:
generate_segment_batched, then add_word_timestamps) applied to our own inputs, the voice-activity phrases
FileTranscriber joins into groups, so the phrase cuts, the word-to-phrase mapping and the no-speech rule stay
ours. What the library's batched pipeline gives up, ours keeps: a window whose decode looks like a failure
(Whisper's own thresholds) is decoded again on its own, with the temperature fallback.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

BATCH_SIZE = 8  # windows per batch, as in BatchedInferencePipeline's default
# Whisper's rules (faster-whisper's defaults): a decode this repetitive or this unsure is retried at a higher
# temperature; one that is unsure and likely silence is dropped.
COMPRESSION_RATIO_LIMIT = 2.4
LOG_PROB_LIMIT = -1.0
NO_SPEECH_LIMIT = 0.6


@dataclass
class WindowWords:
    """One input's words (start, end, text; seconds from the input's start), or a request to decode it alone."""

    words: list[tuple[float, float, str]]
    redo: bool = False  # the batched decode failed Whisper's checks or stopped short of the window's end


def decode_batch(
    whisper: Any, inputs: list[np.ndarray], language: str | None, beam_size: int, fallback: bool
) -> list[WindowWords]:
    """Each input (16 kHz float32, at most 30 s) decoded with word timestamps, all in one batch.

    `whisper` is a faster_whisper.WhisperModel. Inputs are padded to Whisper's 30 s window, as transcribe()
    pads them, so a window decodes to the same words whatever else is in its batch.
    """
    from faster_whisper.audio import pad_or_trim
    from faster_whisper.tokenizer import Tokenizer
    from faster_whisper.transcribe import get_compression_ratio, get_suppressed_tokens

    if not inputs:
        return []
    extractor = whisper.feature_extractor
    features = np.stack([pad_or_trim(extractor(np.asarray(x, dtype=np.float32))[..., :-1]) for x in inputs])
    encoded = whisper.encode(features)
    multilingual = whisper.model.is_multilingual
    languages = [language or "en"] * len(inputs)
    if language is None and multilingual:
        languages = [found[0][0][2:-2] for found in whisper.model.detect_language(encoded)]  # "<|de|>" -> "de"
    tokenizers = [Tokenizer(whisper.hf_tokenizer, multilingual, task="transcribe", language=lang) for lang in languages]
    # With timestamp tokens, as transcribe() decodes: without them tiny.en skips whole sentences of a joined
    # input (measured on the bench's long recording: one sentence in 60 lost).
    prompts = [whisper.get_prompt(t, [], without_timestamps=False) for t in tokenizers]
    results = whisper.model.generate(
        encoded,
        prompts,
        beam_size=beam_size,
        max_length=whisper.max_length,
        suppress_blank=True,
        suppress_tokens=list(get_suppressed_tokens(tokenizers[0], [-1])),
        return_scores=True,
        return_no_speech_prob=True,
        max_initial_timestamp_index=50,  # transcribe()'s max_initial_timestamp of 1 s
    )
    found: list[WindowWords] = []
    segments: list[list[dict[str, Any]]] = []
    for samples, tokenizer, result in zip(inputs, tokenizers, results):
        ids = result.sequences_ids[0]
        tokens = [t for t in ids if t < tokenizer.eot]
        avg_logprob = result.scores[0] * len(ids) / (len(ids) + 1)
        text = tokenizer.decode(tokens)
        failed = get_compression_ratio(text) > COMPRESSION_RATIO_LIMIT or avg_logprob < LOG_PROB_LIMIT
        silent = result.no_speech_prob > NO_SPEECH_LIMIT and avg_logprob < LOG_PROB_LIMIT
        duration = len(samples) / extractor.sampling_rate
        # transcribe() decodes a window again from its last timestamp when the decode stopped short of the end
        # (Whisper ends early on repeated sentences: 7 of 17 phrases came back from one pass). Such a window is
        # decoded alone, as transcribe() would.
        stamps = [t for t in ids if t >= tokenizer.timestamp_begin]
        single_ending = len(ids) >= 2 and ids[-2] < tokenizer.timestamp_begin <= ids[-1]
        short = bool(stamps) and not single_ending and (stamps[-1] - tokenizer.timestamp_begin) * 0.02 < duration - 1.0
        found.append(WindowWords([], redo=(fallback and failed) or (short and not silent)))
        keep = not found[-1].redo and not silent and any(ch.isalnum() for ch in text)
        # Every window of the batch goes through the alignment (it reads the batch's encoder output); a window
        # whose words are not kept is aligned on one token and its words thrown away.
        segments.append([{"tokens": tokens or tokenizer.encode(" ."), "start": 0.0, "end": duration, "seek": 0, "keep": keep}])
    # One alignment pass (cross-attention) for the whole batch, as BatchedInferencePipeline.forward does.
    frames = [min(3000, int(np.ceil(len(x) / extractor.hop_length))) for x in inputs]
    whisper.add_word_timestamps(segments, tokenizers[0], encoded, frames, "\"'“¿([{-", "\"'.。,，!！?？:：”)]}、", 0.0)
    for window, segment in zip(found, segments):
        if segment[0]["keep"]:
            window.words = [(w["start"], w["end"], w["word"]) for w in segment[0].get("words") or []]
    return found
