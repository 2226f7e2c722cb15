"""Answers from the user's documents: the passages found for a question go into what the model reads, numbered,
with the instruction to answer from them and cite them as [1], [2]; the sources come back with the answer (and
are saved with it). When no passage is about the question, the answer says so instead of asking a model that
would invent one."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from desktop_ai.engine.documents.search import Passage, SearchResult

PASSAGES_PER_QUESTION = 4
INSTRUCTION = (
    "Answer the question using only the numbered sources below. After each fact, cite its source as [1], [2] and "
    "so on. If the sources do not contain the answer, say that the documents do not say."
)
_CITATION = re.compile(r"\[(\d{1,2})\]")


@dataclass
class Source:
    """One numbered passage given to the model for an answer; `cited` when the answer names its number."""

    number: int
    collection: str
    path: str
    page: int | None
    heading: str
    passage: str
    cited: bool = False

    @property
    def label(self) -> str:
        where = Path(self.path).name + (f", page {self.page}" if self.page else "")
        return f"{where} ({self.heading})" if self.heading else where

    def to_dict(self) -> dict:
        return asdict(self)


def sources_from(result: SearchResult, limit: int = PASSAGES_PER_QUESTION) -> list[Source]:
    return [Source(n, p.collection, p.path, p.page, p.heading, p.text)
            for n, p in enumerate(result.relevant[:limit], 1)]


def grounded_question(question: str, sources: Sequence[Source]) -> str:
    """What the model reads in place of the user's question this turn (the question itself is saved as typed)."""
    blocks = [f"[{s.number}] {s.label}:\n{' '.join(s.passage.split())}" for s in sources]
    return f"{INSTRUCTION}\n\nSources:\n" + "\n\n".join(blocks) + f"\n\nQuestion: {question}"


def mark_cited(answer: str, sources: Sequence[Source]) -> list[Source]:
    cited = {int(n) for n in _CITATION.findall(answer)}
    for source in sources:
        source.cited = source.number in cited
    return list(sources)


def nothing_found_answer(collections: Sequence[str]) -> str:
    names = ", ".join(collections)
    return (f"I found nothing about this in your documents ({names}), so I cannot answer it from them. "
            "Try other words, or check that the collection has the files you mean.")


__all__ = ["Passage", "Source", "grounded_question", "mark_cited", "nothing_found_answer", "sources_from"]
