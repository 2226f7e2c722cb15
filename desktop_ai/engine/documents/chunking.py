"""Chunks sized in the embedding model's own tokens, so no chunk is cut off silently past the model's window.

Each chunk is embedded as "title / heading" followed by its text; the window (256 tokens for all-MiniLM-L6-v2,
less its two special tokens) holds both, so the text's budget is what the header leaves. Sections are cut at the
last sentence or line end inside the budget where there is one, with a small overlap, and a chunk never spans
two pages or two headings: each carries its own page and heading for citations.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from desktop_ai.engine.documents.readers.document import Document

WINDOW_TOKENS = 256  # all-MiniLM-L6-v2 was trained on at most 256 word pieces
SPECIAL_TOKENS = 2  # [CLS] and [SEP]
OVERLAP_TOKENS = 24
MIN_TEXT_TOKENS = 48  # a header too long to leave this much is shortened instead
_BOUNDARY = re.compile(r"[.!?;:]['\")\]]?\s|\n")


@dataclass
class Chunk:
    text: str
    title: str
    heading: str
    page: int | None
    ordinal: int  # its place in the document, from 0
    tokens: int  # of embedding_text, special tokens included

    @property
    def embedding_text(self) -> str:
        return header(self.title, self.heading) + self.text


def header(title: str, heading: str) -> str:
    parts = [p for p in (title, heading) if p]
    if len(parts) == 2 and parts[0].casefold() == parts[1].casefold():
        parts = parts[:1]
    return " / ".join(parts) + "\n" if parts else ""


def chunk_document(document: Document, tokenizer: Any, window: int = WINDOW_TOKENS,
                   overlap: int = OVERLAP_TOKENS) -> list[Chunk]:
    """Split every section into chunks whose embedding text fits `window` tokens of `tokenizer`."""
    chunks: list[Chunk] = []
    for section in document.sections:
        head = header(document.title, section.heading)
        head_tokens = len(tokenizer(head, add_special_tokens=False)["input_ids"]) if head else 0
        budget = window - SPECIAL_TOKENS - head_tokens
        if budget < MIN_TEXT_TOKENS:  # a very long heading: keep its start, the text matters more
            head_ids = tokenizer(head, add_special_tokens=False)["input_ids"][: window // 4]
            head = tokenizer.decode(head_ids).strip() + "\n"
            head_tokens = len(tokenizer(head, add_special_tokens=False)["input_ids"])
            budget = window - SPECIAL_TOKENS - head_tokens
        for start, end, count in _windows(section.text, tokenizer, budget, overlap):
            text = section.text[start:end].strip()
            if text:
                chunks.append(Chunk(text, document.title, section.heading, section.page, len(chunks),
                                    count + head_tokens + SPECIAL_TOKENS))
    return chunks


def _windows(text: str, tokenizer: Any, budget: int, overlap: int) -> list[tuple[int, int, int]]:
    """(start char, end char, tokens) of each piece; pieces end at a sentence or line end where one is near."""
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    if len(offsets) <= budget:
        return [(0, len(text), len(offsets))] if offsets else []
    pieces: list[tuple[int, int, int]] = []
    first = 0
    while first < len(offsets):
        last = min(first + budget, len(offsets))  # exclusive token index
        if last < len(offsets):
            window_start, window_end = offsets[first][0], offsets[last - 1][1]
            cut = None
            for match in _BOUNDARY.finditer(text, window_start + (window_end - window_start) // 2, window_end):
                cut = match.end()
            if cut is not None:
                while last > first + 1 and offsets[last - 1][1] > cut:
                    last -= 1
        start_char = offsets[first][0]
        end_char = offsets[last - 1][1]
        pieces.append((start_char, end_char, last - first))
        if last >= len(offsets):
            break
        next_first = max(last - overlap, first + 1)
        while next_first < last and next_first > first + 1 and not _starts_word(text, offsets, next_first):
            next_first += 1  # do not start a chunk in the middle of a word
        first = next_first
    return pieces


def _starts_word(text: str, offsets: list[tuple[int, int]], index: int) -> bool:
    start = offsets[index][0]
    return start == 0 or not text[start - 1].isalnum()
