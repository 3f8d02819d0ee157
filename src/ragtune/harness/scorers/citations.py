"""Citation support: does each cited chunk back what the answer says where it cites it?

A citation ``[n]`` supports the answer when the sentence(s) carrying the marker have at least
``settings.citation_min_support`` of their content terms (the index analyzer's stemmed terms) in the cited chunk
(its heading included). When ``[n]`` appears in no sentence (the arm kept its citations apart from the text, or
the sentence holds no content term) the whole answer's terms are used instead. ragtune's own attribution asks
more than this share (ragtune.answer.citations.support), so an ``attributed`` citation
almost always passes it. Value: citation precision.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

from ragtune.answer.citations import MARKER
from ragtune.answer.context import passage_number
from ragtune.harness.model import Case, Output, Score
from ragtune.harness.scorers.base import ScoringContext, arm_failed, register_scorer
from ragtune.harness.scorers.text import strip_markers

NAME = "citations.support"

# A sentence ends at . ! or ? followed by space, or at a line break: '3.5 euros' stays one sentence.
_SPLIT = re.compile(r"(?<=[.!?])\s+|\n+")


def _cited_numbers(group: str) -> list[int]:
    return [int(x) for x in re.split(r"\s*[,;]\s*", group.strip())]


def sentences_citing(answer: str) -> dict[int, list[str]]:
    """The sentences (markers removed) that carry each cited number.

    A marker that opens a sentence belongs to the one before it, as in 'It costs 10 euros. [1] Support is ...'.
    """
    by_n: dict[int, list[str]] = defaultdict(list)
    previous: str | None = None
    for part in _SPLIT.split(answer):
        if not part.strip():
            continue
        text = re.sub(r"\s+([.,;:!?])", r"\1", " ".join(strip_markers(part).split()))
        for m in MARKER.finditer(part):
            opening = not re.search(r"\w", strip_markers(part[: m.start()]))
            owner = previous if opening and previous is not None else text
            for n in _cited_numbers(m.group(1)):
                if owner not in by_n[n]:
                    by_n[n].append(owner)
        if re.search(r"\w", text):
            previous = text
    return dict(by_n)


def _cited_text(case: Case, ctx: ScoringContext, chunk_id: str) -> tuple[str, str] | None:
    """``(heading, text)`` of a cited chunk: from the store, or, for a passage the case carries as text
    (``case-passage#N``, the oracle arm's), from the case itself."""
    n = passage_number(chunk_id)
    if n is not None:
        return ("", case.evidence_texts[n - 1]) if n <= len(case.evidence_texts) else None
    return ctx.chunk_text(chunk_id)


@register_scorer(NAME)
def support(case: Case, output: Output, ctx: ScoringContext) -> Score | None:
    """Citation precision: the share of checkable citations whose chunk supports their sentence(s)."""
    if failed := arm_failed(NAME, output):
        return failed
    if not output.citations:
        return Score.unscored(NAME, "the answer cites nothing")
    if ctx.store is None:
        return Score.unscored(NAME, "no store in the scoring context to read the cited chunks from")
    terms_of = ctx.analyzer.terms
    minimum = ctx.settings.citation_min_support
    by_n = sentences_citing(output.answer)
    whole = set(terms_of(strip_markers(output.answer)))
    rows: list[dict[str, Any]] = []
    for cited in output.citations:
        row: dict[str, Any] = {k: cited.get(k) for k in ("n", "doc_id", "version", "chunk_id", "mode")}
        rows.append(row)
        chunk = _cited_text(case, ctx, str(cited["chunk_id"])) if cited.get("chunk_id") else None
        if chunk is None:
            row |= {"supported": None, "overlap": None, "why": "the cited chunk is not in the store"}
            continue
        n = cited.get("n")
        sentences = by_n.get(n, []) if isinstance(n, int) else []
        terms = {t for sentence in sentences for t in terms_of(sentence)}
        row["basis"] = "sentence" if terms else "answer"
        terms = terms or whole
        if not terms:
            row |= {"supported": None, "overlap": None, "why": "the answer has no content terms to check"}
            continue
        vocab = set(terms_of(f"{chunk[0]} {chunk[1]}"))
        overlap = len(terms & vocab) / len(terms)
        row |= {"supported": overlap >= minimum, "overlap": round(overlap, 3), "missing": sorted(terms - vocab)[:12]}
    checked = [r for r in rows if r["supported"] is not None]
    if not checked:
        return Score.unscored(NAME, f"none of the {len(rows)} citations could be checked: {rows[0]['why']}")
    good = sum(bool(r["supported"]) for r in checked)
    reason = f"{good} of {len(checked)} cited chunks support the answer (≥ {minimum:.0%} of the cited terms)"
    bad = [f"[{r['n']}] {r['chunk_id']} ({r['overlap']:.0%})" for r in checked if not r["supported"]]
    if bad:
        reason += "; unsupported: " + ", ".join(bad)
    if len(checked) < len(rows):
        reason += f"; {len(rows) - len(checked)} not checked (see details)"
    return Score.ok(NAME, good / len(checked), reason, citations=rows)
