"""Retrieval facts: where the gold documents ranked, whether one reached the context, whether they exist at all.

These are the facts diagnosis separates failures by (retrieval miss, ranking or budget, corpus gap). The value is
1.0 when a chunk of a gold document reached the context (status ``used``), else 0.0.
"""

from __future__ import annotations

from typing import Any

from ragtune.harness.model import Case, Output, Score
from ragtune.harness.scorers.base import ScoringContext, register_scorer

NAME = "retrieval"


def _rank(chunk: dict[str, Any], position: int) -> int:
    rank = chunk.get("rank")
    return rank if isinstance(rank, int) and not isinstance(rank, bool) else position


@register_scorer(NAME)
def retrieval(case: Case, output: Output, ctx: ScoringContext) -> Score | None:
    """Gold rank, in-context and existence facts from the trace's chunk log and the store.

    Not guarded by the arm's error: what was retrieved before a generation failure is still a fact.
    """
    if not case.evidence:
        return Score.unscored(NAME, "the case names no gold evidence")
    if not output.chunks:
        return Score.unscored(NAME, "the arm retrieved nothing (closed-book, or an empty search)")
    gold = set(case.evidence)
    hits = [(_rank(c, i), c) for i, c in enumerate(output.chunks, start=1) if c.get("doc_id") in gold]
    rank = min((r for r, _ in hits), default=None)
    in_context = any(c.get("status") == "used" for _, c in hits)
    exists = {doc_id: ctx.document_exists(doc_id) for doc_id in case.evidence}
    known = [e for e in exists.values() if e is not None]
    all_exist = all(known) if known else None

    if in_context:
        reason = f"a gold chunk reached the context (best gold rank {rank})"
    elif rank is not None:
        why = next((c.get("reason") for r, c in hits if r == rank and c.get("reason")), None)
        reason = f"gold retrieved at rank {rank} but dropped before the context" + (f" ({why})" if why else "")
    else:
        reason = f"no gold document among the {len(output.chunks)} retrieved chunks"
    if all_exist is False:
        missing = [d for d, e in exists.items() if e is False]
        reason += f"; not in the current corpus: {', '.join(missing)}"
    elif all_exist is None:
        reason += "; existence not checked (no store)"
    return Score.ok(
        NAME,
        1.0 if in_context else 0.0,
        reason,
        rank=rank,
        in_context=in_context,
        exists=all_exist,
        exists_by_doc=exists,
    )
