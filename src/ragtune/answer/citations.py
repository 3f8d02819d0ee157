"""Citations: find ``[n]`` markers in an answer, check each against the numbered sources, map them to
doc@version, chunk and span, and, when the model cited nothing, attribute sentences to the source that supports
them best (marked ``attributed``, never passed off as the model's own)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ragtune.answer.context import Source
from ragtune.index.analyzer import Analyzer

MARKER = re.compile(r"\[(\d{1,3}(?:\s*[,;]\s*\d{1,3})*)\]")
_SENTENCE = re.compile(r"[^.!?\n]*(?:[.!?]+[ \t]*|\n+|$)")

# An attributed citation needs this share of the sentence's content terms to appear in the source.
ATTRIBUTION_MIN_SUPPORT = 0.5


@dataclass
class Citation:
    n: int
    doc_id: str
    version: int
    chunk_id: str
    start: int
    end: int
    title: str
    mode: str  # "model": the model wrote [n]; "attributed": ragtune matched the sentence to the source

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CitationCheck:
    answer: str
    citations: list[Citation]
    invalid: list[int]  # numbers the model cited that no source carries; removed from the answer


def _numbers(group: str) -> list[int]:
    return [int(x) for x in re.split(r"\s*[,;]\s*", group.strip())]


def _cite(source: Source, mode: str) -> Citation:
    h = source.hit
    return Citation(source.n, h.doc_id, h.version, h.chunk_id, h.start, h.end, h.title, mode)


def check_citations(answer: str, sources: Sequence[Source]) -> CitationCheck:
    """Validate the model's markers: a number with no source is invalid and is struck from the answer."""
    by_n = {s.n: s for s in sources}
    cited: dict[int, Citation] = {}
    invalid: list[int] = []

    def fix(match: re.Match[str]) -> str:
        good = []
        for n in _numbers(match.group(1)):
            if n in by_n:
                good.append(n)
                cited.setdefault(n, _cite(by_n[n], "model"))
            elif n not in invalid:
                invalid.append(n)
        return "[" + ", ".join(str(n) for n in good) + "]" if good else ""

    cleaned = MARKER.sub(fix, answer)
    cleaned = re.sub(r"[ \t]+([.,;:!?])", r"\1", cleaned).strip() if invalid else cleaned
    return CitationCheck(cleaned, sorted(cited.values(), key=lambda c: c.n), invalid)


def attribute(answer: str, sources: Sequence[Source], analyzer: Analyzer | None = None) -> CitationCheck:
    """Append ``[n]`` to each sentence whose content terms the best-matching source mostly contains."""
    analyzer = analyzer or Analyzer()
    source_terms = [(s, set(analyzer.terms(s.hit.text + " " + s.hit.heading))) for s in sources]
    cited: dict[int, Citation] = {}
    parts: list[str] = []
    for match in _SENTENCE.finditer(answer):
        sentence = match.group(0)
        if not sentence:
            continue
        terms = set(analyzer.terms(sentence))
        best, support = None, 0.0
        for source, vocab in source_terms:
            share = len(terms & vocab) / len(terms) if terms else 0.0
            if share > support:
                best, support = source, share
        if best is not None and support >= ATTRIBUTION_MIN_SUPPORT and len(terms) >= 2:
            cited.setdefault(best.n, _cite(best, "attributed"))
            stripped = sentence.rstrip()
            end = len(stripped) - len(stripped.rstrip(".!?"))
            core, stop = (stripped[:-end], stripped[-end:]) if end else (stripped, "")
            parts.append(f"{core} [{best.n}]{stop}" + sentence[len(stripped) :])
        else:
            parts.append(sentence)
    text = "".join(parts) if parts else answer
    return CitationCheck(text, sorted(cited.values(), key=lambda c: c.n), [])


def cite(answer: str, sources: Sequence[Source], *, attribute_missing: bool = True) -> CitationCheck:
    """Check the model's citations; when it made none (valid or not), attribute them if allowed."""
    checked = check_citations(answer, sources)
    if checked.citations or checked.invalid or not attribute_missing or not sources:
        return checked
    return attribute(checked.answer, sources)
