"""Keyword analysis: lower-cased word tokens, English stop words removed, Snowball-stemmed (PyStemmer).

The same choices as bm25s's English pipeline, so that keyword quality can be compared with it like for like.
"""

from __future__ import annotations

import re
from functools import lru_cache

TOKEN = re.compile(r"(?u)\b\w\w+\b")

# The English stop-word list bm25s and scikit-learn's ancestors use (short, function words only).
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "for",
        "if",
        "in",
        "into",
        "is",
        "it",
        "no",
        "not",
        "of",
        "on",
        "or",
        "such",
        "that",
        "the",
        "their",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "was",
        "will",
        "with",
    ]
)


@lru_cache(maxsize=1)
def _stemmer():  # type: ignore[no-untyped-def]
    import Stemmer

    return Stemmer.Stemmer("english")


class Analyzer:
    """Turns text into keyword terms; stems are memoised, as the vocabulary of a corpus is small."""

    def __init__(self) -> None:
        self._stem = _stemmer().stemWord
        self._cache: dict[str, str] = {}

    def terms(self, text: str) -> list[str]:
        cache = self._cache
        out = []
        for word in TOKEN.findall(text.lower()):
            if word in STOPWORDS:
                continue
            stem = cache.get(word)
            if stem is None:
                stem = cache[word] = self._stem(word)
            out.append(stem)
        return out
