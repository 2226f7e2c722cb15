"""The search bench's corpus: 100,000 distinct passages of real English text that every install has offline.

Where the text comes from, in this order: installed packages' long descriptions (their READMEs), then the
docstrings and comment blocks of the Python standard library's and the installed packages' source files, walked
in sorted order. The text is cut into windows of PASSAGE_WORDS words (about 130 to 180 MiniLM tokens, the size of
our chunks), and a window seen before is skipped, so no two passages are the same (an earlier bench repeated 256
chunks ~390 times, which gave BM25 posting lists no real collection has).

Vectors: embedding 100,000 passages would take hours on a 2-core machine, so each passage's vector is a mix of
two real MiniLM embeddings (of chunks the bench embedded) plus noise, normalised: clustered and anisotropic like
real embeddings, which matters for an approximate index's recall, and the same for every run (seeded).
"""

from __future__ import annotations

import os
import re
import sysconfig
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import numpy as np

PASSAGE_WORDS = 90
_DOCSTRING = re.compile(r'"""(.*?)"""|\'\'\'(.*?)\'\'\'|((?:^[ \t]*#[^\n]*\n){3,})', re.S | re.M)
MIN_PIECE_WORDS = 12  # shorter docstrings ("Return x.") are not prose


def _descriptions() -> Iterator[str]:
    for dist in sorted(metadata.distributions(), key=lambda d: (d.metadata.get("Name") or "").lower()):
        body = dist.metadata.get_payload() if hasattr(dist.metadata, "get_payload") else ""  # type: ignore[attr-defined]
        yield str(body or dist.metadata.get("Description") or "")


def _source_prose() -> Iterator[str]:
    roots = dict.fromkeys(Path(sysconfig.get_paths()[key]) for key in ("stdlib", "purelib"))
    for root in roots:
        for folder, dirs, names in os.walk(root):
            dirs.sort()
            for name in sorted(names):
                if not name.endswith(".py"):
                    continue
                try:
                    text = (Path(folder) / name).read_text(encoding="utf-8", errors="ignore")
                except OSError:
                    continue
                for match in _DOCSTRING.finditer(text):
                    yield match.group(1) or match.group(2) or (match.group(3) or "").replace("#", " ")


def passages(count: int) -> list[tuple[str, str]]:
    """(source label, passage) for `count` distinct passages of PASSAGE_WORDS words."""
    seen: set[str] = set()
    found: list[tuple[str, str]] = []
    for label, pieces in (("package description", _descriptions()), ("docstring or comment", _source_prose())):
        words: list[str] = []
        for piece in pieces:
            piece_words = piece.split()
            if len(piece_words) < MIN_PIECE_WORDS:
                continue
            words.extend(piece_words)
            while len(words) >= PASSAGE_WORDS:
                passage = " ".join(words[:PASSAGE_WORDS])
                del words[:PASSAGE_WORDS]
                if passage not in seen:
                    seen.add(passage)
                    found.append((label, passage))
                    if len(found) >= count:
                        return found
    return found


def mixed_vectors(base: np.ndarray, count: int, seed: int = 0, noise: float = 0.03) -> np.ndarray:
    """`count` unit vectors, each a random mix of two of `base`'s real embeddings plus Gaussian noise."""
    rng = np.random.default_rng(seed)
    first = rng.integers(0, len(base), count)
    second = rng.integers(0, len(base), count)
    share = rng.uniform(0.5, 1.0, (count, 1)).astype(np.float32)
    vectors = share * base[first] + (1 - share) * base[second]
    vectors += rng.normal(0, noise, vectors.shape).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float32)
