"""Staleness: does the answer give a value that used to be right (``case.stale_answers``) instead of a current one?

A value is 'given' by the same rule as accuracy: its normalized words occur in the answer, or its numbers do within
the numeric tolerance. An answer that gives a stale value and also a current one ('raised from 600 to 900 a
minute') is not stale: it knows both.
"""

from __future__ import annotations

from ragtune.harness.model import Case, Output, Score
from ragtune.harness.scorers.base import ScoringContext, arm_failed, register_scorer
from ragtune.harness.scorers.text import close, contains_tokens, parse_numbers, strip_markers, tokens

NAME = "staleness"


def gives(answer: str, value: str, tolerance: float) -> bool:
    """Whether ``answer`` gives ``value``: as whole normalized words, or as all of its numbers."""
    said = tokens(strip_markers(answer))
    if tokens(value) and contains_tokens(said, tokens(value)):
        return True
    expected = parse_numbers(value)
    if not expected:
        return False
    found = parse_numbers(answer)
    return all(any(close(f, e, tolerance) for f in found) for e in expected)


@register_scorer(NAME)
def staleness(case: Case, output: Output, ctx: ScoringContext) -> Score | None:
    """Passed (1.0) when the answer is NOT stale; 0.0 when it gives a stale value and no current one."""
    if not case.stale_answers:
        return Score.unscored(NAME, "the case lists no stale answers")
    if failed := arm_failed(NAME, output):
        return failed
    tol = ctx.settings.numeric_tolerance
    stale = [s for s in case.stale_answers if gives(output.answer, s, tol)]
    current = next((a for a in case.answers if gives(output.answer, a, tol)), None)
    if stale and current is None:
        return Score.ok(NAME, 0.0, f"the answer gives the stale value {stale[0]!r}", stale_found=stale, current=None)
    if stale:
        return Score.ok(
            NAME,
            1.0,
            f"the answer mentions the stale value {stale[0]!r} but also the current {current!r}",
            stale_found=stale,
            current=current,
        )
    return Score.ok(NAME, 1.0, "the answer gives none of the stale values", stale_found=[], current=current)
