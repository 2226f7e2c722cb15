"""MarianMT models with random weights, for the tests and for `bench --task translate` where no opus-mt model
can be had (no MarianMT installs from PyPI, and the Hub may be out of reach).

A stand-in goes through the same loading, tokenizing and generate code as opus-mt, so its speed is the
architecture's speed; its translations are nonsense, and the bench and its notes say so. Every stand-in is
marked in its config (`desktop_ai_stand_in`) so that nothing mistakes it for a real model.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

STAND_IN_ATTRIBUTE = "desktop_ai_stand_in"
BUILD = 2  # raise when build_marian changes, so that stand-ins kept in the cache are built again

# A few lines in the scripts a user may paste: the SentencePiece model is trained on these plus any given text.
SAMPLE_LINES = (
    "Hello world.", "This is a test.", "The cat sits on the mat.", "How are you today?",
    "Guten Tag.", "Das ist ein Test.", "Die Katze sitzt auf der Matte.", "Wie geht es dir heute?",
    "Привет, мир.", "这是一个测试。", "A long sentence, with commas, and more words.",
)


@dataclass(frozen=True)
class MarianShape:
    """The sizes that decide a MarianMT model's speed; `vocab_size` is the embedding's, padded past the tokenizer's."""

    name: str
    d_model: int
    layers: int
    heads: int
    ffn_dim: int
    vocab_size: int | None  # None: just the trained SentencePiece vocabulary
    spm_vocab: int
    activation: str = "gelu"
    spm_type: str = "unigram"
    new_tokens: int | None = None  # every sentence generates exactly this many tokens (min = max)


# Tiny: what the tests build, quick enough for hundreds of runs.
TINY = MarianShape("tiny", d_model=32, layers=1, heads=2, ffn_dim=64, vocab_size=None, spm_vocab=120)
# Helsinki-NLP/opus-mt-en-de's config.json: 6 + 6 layers, d_model 512, 8 heads, FFN 2048, swish, 58 101 tokens.
OPUS_MT_EN_DE = MarianShape(
    "opus-mt-en-de", d_model=512, layers=6, heads=8, ffn_dim=2048, vocab_size=58101, spm_vocab=400,
    activation="swish", new_tokens=32, spm_type="word",  # a token a word; opus-mt splits a few more
)
SHAPES = {shape.name: shape for shape in (TINY, OPUS_MT_EN_DE)}


def build_marian(folder: str | Path, shape: MarianShape = TINY, lines: tuple[str, ...] | list[str] = (), seed: int = 0) -> Path:
    """Train a SentencePiece model on SAMPLE_LINES + `lines`, build `shape` with random weights, save_pretrained to `folder`."""
    import sentencepiece as spm
    import torch
    from transformers import MarianConfig, MarianMTModel, MarianTokenizer

    folder = Path(folder)
    with tempfile.TemporaryDirectory(prefix="marian-spm-") as scratch:
        work = Path(scratch)
        corpus = list(SAMPLE_LINES) * 10 + [line for line in lines if line.strip()]
        (work / "corpus.txt").write_text("\n".join(corpus), encoding="utf-8")
        spm.SentencePieceTrainer.train(
            input=str(work / "corpus.txt"), model_prefix=str(work / "sp"), vocab_size=shape.spm_vocab,
            model_type=shape.spm_type, character_coverage=1.0, bos_id=-1, eos_id=-1, unk_id=2, pad_id=-1,
            hard_vocab_limit=False, minloglevel=2,
        )
        shutil.copy(work / "sp.model", work / "source.spm")
        shutil.copy(work / "sp.model", work / "target.spm")
        processor = spm.SentencePieceProcessor(model_file=str(work / "sp.model"))
        # opus-mt's layout: </s> 0, <unk> 1, the pieces, (unused up to vocab_size,) <pad> last, where CTranslate2's
        # Marian converter expects it (it drops the last row: the decoder starts from a zero embedding there)
        vocab = {"</s>": 0, "<unk>": 1}
        for i in range(processor.get_piece_size()):
            vocab.setdefault(processor.id_to_piece(i), len(vocab))
        while shape.vocab_size is not None and len(vocab) < shape.vocab_size - 1:
            vocab[f"<unused{len(vocab)}>"] = len(vocab)
        vocab["<pad>"] = len(vocab)
        (work / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
        tokenizer = MarianTokenizer(str(work / "source.spm"), str(work / "target.spm"), str(work / "vocab.json"),
                                    source_lang="en", target_lang="de")
    pad = vocab["<pad>"]
    config = MarianConfig(
        vocab_size=len(vocab), d_model=shape.d_model, encoder_layers=shape.layers, decoder_layers=shape.layers,
        encoder_attention_heads=shape.heads, decoder_attention_heads=shape.heads, encoder_ffn_dim=shape.ffn_dim,
        decoder_ffn_dim=shape.ffn_dim, activation_function=shape.activation, max_position_embeddings=512,
        pad_token_id=pad, eos_token_id=0, decoder_start_token_id=pad, forced_eos_token_id=0,
    )
    setattr(config, STAND_IN_ATTRIBUTE, f"random weights in {shape.name}'s shape, built by desktop-ai; not a translation model")
    torch.manual_seed(seed)
    model = MarianMTModel(config)
    if shape.new_tokens is None:
        model.generation_config.max_new_tokens = 6
    else:  # random weights seldom pick </s>: fix the length so that every variant does the same work
        model.generation_config.min_new_tokens = shape.new_tokens
        model.generation_config.max_new_tokens = shape.new_tokens
        model.generation_config.bad_words_ids = [[pad]]  # as opus-mt's generation_config.json has it
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    logger.info("Built a %s MarianMT stand-in (random weights) in %s", shape.name, folder)
    return folder


def stand_in_note(config: object) -> str | None:
    """What a stand-in says about itself, or None for a model that is not one."""
    note = getattr(config, STAND_IN_ATTRIBUTE, None)
    return str(note) if note else None
