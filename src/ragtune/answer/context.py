"""Context assembly: from ranked hits to the numbered sources that go into the prompt, within a token budget.

Every hit considered ends up either used (with its source number) or dropped with a reason, so a trace can show
exactly why a gold passage that was retrieved never reached the model.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ragtune.retrieval.search import Hit

_WORD = re.compile(r"\w+")

CASE_PASSAGE = "case-passage"
"""The doc_id of a passage a question carries as text (a case's ``evidence_texts``) rather than naming a document.
Its chunk ids are ``case-passage#N``: without an ``@``, no stored chunk's id (``doc@version#n``) can be one."""


def passage_hits(texts: Sequence[str]) -> list[Hit]:
    """Passages given as text, as hits in their given order: ``case-passage#1``, ``case-passage#2``..."""
    return [
        Hit(CASE_PASSAGE, 0, f"{CASE_PASSAGE}#{n}", 1.0, text, title=f"Reference passage {n}")
        for n, text in enumerate(texts, start=1)
    ]


def passage_number(chunk_id: str) -> int | None:
    """N of a carried passage's chunk id ``case-passage#N`` (1-based); None for any other chunk id."""
    prefix = f"{CASE_PASSAGE}#"
    number = chunk_id[len(prefix) :] if chunk_id.startswith(prefix) else ""
    return int(number) if number.isdigit() and int(number) > 0 else None


@dataclass
class Source:
    """A hit that made it into the prompt as ``[n]``."""

    n: int
    hit: Hit
    tokens: int


@dataclass
class Dropped:
    """A hit left out of the prompt, and why: ``duplicate`` (of ``of``) or ``budget``."""

    hit: Hit
    reason: str
    detail: str
    of: str | None = None


@dataclass
class Context:
    sources: list[Source]
    dropped: list[Dropped]
    tokens: int
    budget: int


def _words(text: str) -> frozenset[str]:
    return frozenset(w.lower() for w in _WORD.findall(text))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def assemble(hits: Sequence[Hit], budget: int, count_tokens: Callable[[str], int], overlap: float = 0.8) -> Context:
    """Keep hits in rank order, skip near-duplicates of a better-ranked hit, and stop filling at the budget.

    A hit that does not fit is dropped, but a shorter one ranked below it may still fit: the budget is filled
    greedily in rank order, never reordered.
    """
    sources: list[Source] = []
    dropped: list[Dropped] = []
    kept_words: list[tuple[Hit, frozenset[str]]] = []
    used = 0
    for hit in hits:
        words = _words(hit.text)
        twin = next((h for h, w in kept_words if h.chunk_id == hit.chunk_id or jaccard(w, words) >= overlap), None)
        if twin is not None:
            dropped.append(
                Dropped(
                    hit, "duplicate", f"overlaps {twin.chunk_id} (ranked higher) by >= {overlap:.0%}", twin.chunk_id
                )
            )
            continue
        tokens = count_tokens(source_block(len(sources) + 1, hit))
        if used + tokens > budget:
            dropped.append(Dropped(hit, "budget", f"needs {tokens} tokens, {budget - used} of {budget} left"))
            continue
        used += tokens
        sources.append(Source(len(sources) + 1, hit, tokens))
        kept_words.append((hit, words))
    return Context(sources, dropped, used, budget)


_SPECIAL = re.compile(r"<\|[^|>]{0,40}\|>|<s>|</s>")


def neutralise(text: str) -> str:
    """Retrieved text is data: chat-template control tokens inside it are defused, so a document cannot open
    a new system or assistant turn (``<|im_start|>system``) in the prompt."""
    return _SPECIAL.sub(lambda m: m.group(0).replace("<", "‹").replace(">", "›"), text)


def source_block(n: int, hit: Hit) -> str:
    head = f"[{n}] {hit.title}" + (f" — {hit.heading}" if hit.heading and hit.heading != hit.title else "")
    return f"{head}\n{neutralise(hit.text.strip())}"
