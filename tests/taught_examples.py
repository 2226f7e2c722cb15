"""A small real labelled set of English sentences for taught text labels: three topics, twenty sentences each,
written as people write them (news lines, recipe steps, forecasts), none built from a label's own words.

Tests teach with the first few of each topic and check the rest, which the classifier never saw; with three
labels, chance is one in three, and `least_right_beyond_luck` says how many right answers than luck gives once in a million.
"""

from __future__ import annotations

import math

from desktop_ai.bench.teach_texts import TOPICS  # noqa: F401 - the set lives with the bench that uses it too

def split(per_label: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(train, test) as (text, label) pairs: the first `per_label` of each topic, and the rest."""
    train = [(text, label) for label, texts in TOPICS.items() for text in texts[:per_label]]
    test = [(text, label) for label, texts in TOPICS.items() for text in texts[per_label:]]
    return train, test


def least_right_beyond_luck(n: int, chance: float, odds: float = 1e-6) -> int:
    """The smallest k with P(at least k right of n by guessing) < odds (a binomial tail)."""
    for k in range(n + 1):
        tail = sum(math.comb(n, i) * chance**i * (1 - chance) ** (n - i) for i in range(k, n + 1))
        if tail < odds:
            return k
    return n + 1
