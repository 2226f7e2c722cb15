"""Whisper inputs decoded in batches: one encoder pass, one beam search and one word alignment for several 30 s
windows at once.

faster-whisper's transcribe() decodes one window at a time; on a 2-core CPU most of each step's time is
overhead that a batch shares. This is its BatchedInferencePipeline's forward pass (faster_whisper.transcribe, 1.2.1:
generate_segment_batched: text only, no timestamp tokens, the same prompt and suppression) applied to our own
inputs, the voice-activity phrases FileTranscriber joins into windows, followed by one cross-attention alignment
(WhisperModel.find_alignment) that times each word, so FileTranscriber can put every word back in the phrase it was
spoken in. Decoding without timestamp tokens is both cheaper and better here: with them, tiny.en dropped or garbled
whole sentences of full windows (bench long recording: 16.5 % WER with timestamps against 12.6 % without, same
windows). What the library's batched pipeline gives up, ours keeps: a window whose decode looks like a failure
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
PREPENDED = "\"'“¿([{-"  # transcribe()'s defaults: punctuation joined to the next word
APPENDED = "\"'.。,，!！?？:：”)]}、"  # and to the previous one


@dataclass
class WindowWords:
    """One input's words (start, end, text; seconds from the input's start), or a request to decode it alone."""

    words: list[tuple[float, float, str]]
    redo: bool = False  # the batched decode was unsure (Whisper's log-probability check): decode it again
    # Whisper's compression-ratio check failed: a repetition loop, or speech that repeats itself (a window of the
    # same sentence said seven times). FileTranscriber tells the two apart by the words each phrase got.
    repetitive: bool = False


def decode_batch(
    whisper: Any, inputs: list[np.ndarray], language: str | None, beam_size: int, fallback: bool, timestamps: bool = False
) -> list[WindowWords]:
    """Each input (16 kHz float32, at most 30 s) decoded to timed words, all in one batch.

    `whisper` is a faster_whisper.WhisperModel. Inputs are padded to Whisper's 30 s window, as transcribe()
    pads them, so a window decodes to the same words whatever else is in its batch. `timestamps`: decode with
    Whisper's timestamp tokens, as transcribe() does (slower, and it garbles more sentences, but it keeps the decoder
    on track through a window that says the same sentence over and over: FileTranscriber's second try).
    """
    from faster_whisper.audio import pad_or_trim
    from faster_whisper.tokenizer import Tokenizer
    from faster_whisper.transcribe import get_compression_ratio, get_suppressed_tokens, merge_punctuations

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
    prompts = [whisper.get_prompt(t, [], without_timestamps=not timestamps) for t in tokenizers]
    results = whisper.model.generate(
        encoded,
        prompts,
        beam_size=beam_size,
        max_length=whisper.max_length,
        suppress_blank=True,
        suppress_tokens=list(get_suppressed_tokens(tokenizers[0], [-1])),
        return_scores=True,
        return_no_speech_prob=True,
        max_initial_timestamp_index=50,  # transcribe()'s max_initial_timestamp of 1 s (with timestamps only)
    )
    found: list[WindowWords] = []
    texts: list[list[int]] = []
    for tokenizer, result in zip(tokenizers, results):
        ids = result.sequences_ids[0]
        tokens = [t for t in ids if t < tokenizer.eot]
        avg_logprob = result.scores[0] * len(ids) / (len(ids) + 1)
        text = tokenizer.decode(tokens)
        unsure = avg_logprob < LOG_PROB_LIMIT
        silent = result.no_speech_prob > NO_SPEECH_LIMIT and unsure
        repetitive = get_compression_ratio(text) > COMPRESSION_RATIO_LIMIT
        found.append(WindowWords([], redo=fallback and unsure and not silent, repetitive=fallback and repetitive and not silent))
        keep = not found[-1].redo and not silent and any(ch.isalnum() for ch in text)
        # The alignment reads the whole batch's encoder output; a window whose words are not kept is aligned on
        # one token and its words thrown away.
        texts.append(tokens if keep else [])
    frames = [min(3000, int(np.ceil(len(x) / extractor.hop_length))) for x in inputs]
    aligned = whisper.find_alignment(tokenizers[0], [t or tokenizers[0].encode(" .") for t in texts], encoded, frames)
    for window, tokens, words in zip(found, texts, aligned):
        if tokens:
            merge_punctuations(words, PREPENDED, APPENDED)  # "." stays with its word, and so in its phrase
            window.words = [(float(w["start"]), float(w["end"]), w["word"]) for w in words if w["word"]]
    return found
