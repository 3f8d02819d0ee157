"""Content scorers: is the answer right? Normalized match, token F1, numeric tolerance, embedding similarity, and
``accuracy``, THE accuracy of run summaries: ``content.match`` or, equivalently, ``content.numeric``.

Each applies only to cases with acceptable answers (``None`` otherwise). Citation markers (``[1]``) are removed
from the answer first: they are not part of what it says.
"""

from __future__ import annotations

import math

from ragtune.harness.model import Case, Output, Score
from ragtune.harness.scorers.base import ScoringContext, arm_failed, register_scorer
from ragtune.harness.scorers.text import (
    Date,
    Number,
    close,
    contains_tokens,
    dates_and_numbers,
    normalize_answer,
    strip_markers,
    token_f1,
    tokens,
)

MATCH, F1, NUMERIC, SIMILARITY, ACCURACY = (
    "content.match",
    "content.f1",
    "content.numeric",
    "content.similarity",
    "accuracy",
)


def _short(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def find_match(answer: str, candidates: list[str]) -> tuple[str | None, int]:
    """The first candidate found in ``answer`` as whole normalized tokens, and how many candidates were usable."""
    said = tokens(strip_markers(answer))
    usable = [c for c in candidates if tokens(c)]
    return next((c for c in usable if contains_tokens(said, tokens(c))), None), len(usable)


def match(case: Case, output: Output, ctx: ScoringContext, name: str = MATCH) -> Score | None:
    """1.0 when a normalized acceptable answer occurs in the normalized answer as whole tokens."""
    if not case.answers:
        return None
    if failed := arm_failed(name, output):
        return failed
    found, usable = find_match(output.answer, case.answers)
    if not usable:
        return Score.unscored(name, "every acceptable answer is empty once normalized (only articles or punctuation)")
    if found is not None:
        return Score.ok(name, 1.0, f"the answer contains {_short(found)!r}", matched=found)
    return Score.ok(
        name, 0.0, f"none of the {usable} acceptable answers occurs in the answer (as whole words)", matched=None
    )


@register_scorer(MATCH)
def _match(case: Case, output: Output, ctx: ScoringContext) -> Score | None:
    return match(case, output, ctx)


@register_scorer(F1)
def f1(case: Case, output: Output, ctx: ScoringContext) -> Score | None:
    """Best SQuAD token F1 over the acceptable answers; passes at ``settings.f1_threshold``."""
    if not case.answers:
        return None
    if failed := arm_failed(F1, output):
        return failed
    # as SQuAD v2's evaluation does, answers that normalize to nothing are not gold answers
    usable = [a for a in case.answers if normalize_answer(a)]
    if not usable:
        return Score.unscored(F1, "every acceptable answer is empty once normalized (only articles or punctuation)")
    answer = strip_markers(output.answer)
    best, value = max(((a, token_f1(answer, a)) for a in usable), key=lambda pair: pair[1])
    threshold = ctx.settings.f1_threshold
    verdict = "at or above" if value >= threshold else "below"
    return Score.ok(
        F1,
        value,
        f"token F1 {value:.3f} against {_short(best)!r}, {verdict} the threshold {threshold:g}",
        threshold=threshold,
        best=best,
    )


def numeric(case: Case, output: Output, ctx: ScoringContext, name: str = NUMERIC) -> Score | None:
    """1.0 when every number of some acceptable answer appears in the answer within the relative tolerance, and
    every date in it as a date: the same month, and the same day and year wherever the answer gives them ('October
    1' is not 'September 1', whatever the day)."""
    expected = [(a, *dates_and_numbers(a)) for a in case.answers]
    expected = [(a, dates, nums) for a, dates, nums in expected if dates or nums]
    if not expected:
        return None  # no acceptable answer is a number or a date: this rule does not apply
    if failed := arm_failed(name, output):
        return failed
    found_dates, found = dates_and_numbers(output.answer)
    tol = ctx.settings.numeric_tolerance
    if not found and not found_dates:
        return Score.ok(name, 0.0, "the answer contains no number", expected=[a for a, _, _ in expected], found=[])

    def hits(dates: list[Date], nums: list[Number]) -> list[str | None]:
        """What in the answer stands for each expected date and number (None: nothing does)."""
        return [next((f.text for f in found_dates if f.matches(e)), None) for e in dates] + [
            next((f.text for f in found if close(f, e, tol)), None) for e in nums
        ]

    def share(item: tuple[str, list[Date], list[Number]]) -> float:
        got = hits(item[1], item[2])
        return sum(h is not None for h in got) / len(got)

    best, dates, nums = max(expected, key=share)
    value = share((best, dates, nums))
    wanted = [e.text for e in dates] + [e.text for e in nums]
    seen = [f.text for f in found_dates] + [f.text for f in found]
    if value == 1.0:
        got = [h for h in hits(dates, nums) if h is not None]
        reason = f"{', '.join(got)} within {tol:.2%} of {', '.join(wanted)} (from {_short(best)!r})"
    else:
        reason = (
            f"expected {', '.join(wanted)} (from {_short(best)!r}) within {tol:.2%}; "
            f"the answer's numbers and dates: {_short(', '.join(seen)) or 'none'}"
        )
    return Score.ok(name, value, reason, expected=wanted, found=seen)


@register_scorer(NUMERIC)
def _numeric(case: Case, output: Output, ctx: ScoringContext) -> Score | None:
    return numeric(case, output, ctx)


@register_scorer(SIMILARITY)
def similarity(case: Case, output: Output, ctx: ScoringContext) -> Score | None:
    """Best cosine similarity between the answer's and an acceptable answer's embeddings (negative counts as 0)."""
    if not case.answers:
        return None
    if failed := arm_failed(SIMILARITY, output):
        return failed
    if ctx.embedder is None:
        return Score.unscored(SIMILARITY, "no embedder in the scoring context")
    answer = strip_markers(output.answer).strip()
    threshold = ctx.settings.similarity_threshold
    if not answer:
        return Score.ok(SIMILARITY, 0.0, "the answer is empty", threshold=threshold, best=None)
    vectors = ctx.embedder.encode([answer, *case.answers])
    sims = [float(vectors[0] @ row) for row in vectors[1:]]
    i = max(range(len(sims)), key=sims.__getitem__)
    if not math.isfinite(sims[i]):
        return Score.unscored(SIMILARITY, f"the embedder {ctx.embedder.name} returned a non-finite similarity")
    value = min(max(sims[i], 0.0), 1.0)
    verdict = "at or above" if value >= threshold else "below"
    return Score.ok(
        SIMILARITY,
        value,
        f"cosine {value:.3f} with {_short(case.answers[i])!r} ({ctx.embedder.name}), {verdict} the threshold "
        f"{threshold:g}",
        threshold=threshold,
        best=case.answers[i],
    )


@register_scorer(ACCURACY)
def accuracy(case: Case, output: Output, ctx: ScoringContext) -> Score | None:
    """THE accuracy of run summaries: right when ``content.match`` passes or, failing that, ``content.numeric``.

    A number said another way ('1,200' for '1200', '$5' for '5 dollars') is as right as the words themselves.
    """
    if not case.answers:
        return None
    if failed := arm_failed(ACCURACY, output):
        return failed
    by_words = match(case, output, ctx, ACCURACY)
    assert by_words is not None  # the case has answers and the arm answered
    if by_words.passed:
        return Score.ok(ACCURACY, 1.0, f"{MATCH}: {by_words.reason}", rule=MATCH)
    by_number = numeric(case, output, ctx, ACCURACY)
    if by_number is not None and by_number.passed:
        return Score.ok(ACCURACY, 1.0, f"{NUMERIC}: {by_number.reason}", rule=NUMERIC)
    if by_words.status == "unscored" and by_number is None:
        return by_words
    reasons = [f"{MATCH}: {by_words.reason}"]
    if by_number is not None:
        reasons.append(f"{NUMERIC}: {by_number.reason}")
    return Score.ok(ACCURACY, 0.0, "; ".join(reasons), rule=None)
