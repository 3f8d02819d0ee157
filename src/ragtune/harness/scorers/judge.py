"""LLM judge: the judge generator grades the answer against the acceptable answers in a strict JSON format.

Judges drift and disagree, so the judge is never THE accuracy; and whatever it writes that is not exactly
``{"verdict": "correct" | "incorrect", "reason": str}`` falls back, deterministically, to ``content.match``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from ragtune.errors import RagtuneError
from ragtune.generation.base import Message
from ragtune.harness.model import Case, Output, Score
from ragtune.harness.scorers.base import ScoringContext, arm_failed, register_scorer
from ragtune.harness.scorers.content import MATCH, match

NAME = "content.judge"

SYSTEM = (
    "You grade an answer to a question against the accepted answers. The answer is correct when it states the "
    "same fact as one accepted answer, in any wording; extra correct detail is fine; a different or missing fact "
    "is incorrect. Reply with exactly one JSON object and nothing else, in this form: "
    '{"verdict": "correct", "reason": "one short sentence"} or {"verdict": "incorrect", "reason": "..."}'
)


@dataclass(frozen=True)
class Verdict:
    verdict: Literal["correct", "incorrect"]
    reason: str


def judge_messages(case: Case, answer: str) -> list[Message]:
    accepted = "\n".join(f"- {a}" for a in case.answers)
    user = f"Question: {case.question}\nAccepted answers:\n{accepted}\nAnswer to grade: {answer}"
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def parse_verdict(text: str) -> Verdict:
    """Read the judge's reply strictly: one JSON object with exactly a verdict and a reason, else ValueError."""
    try:
        obj = json.loads(text.strip())
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg})") from None
    if not isinstance(obj, dict) or set(obj) != {"verdict", "reason"}:
        raise ValueError('not an object with exactly the keys "verdict" and "reason"')
    verdict, reason = obj["verdict"], obj["reason"]
    if verdict == "correct" or verdict == "incorrect":
        if isinstance(reason, str) and reason.strip():
            return Verdict(verdict, reason.strip())
        raise ValueError('"reason" is not a non-empty string')
    raise ValueError(f'"verdict" is {verdict!r}, not "correct" or "incorrect"')


def _fallback(case: Case, output: Output, ctx: ScoringContext, why: str, said: str | None) -> Score:
    by_words = match(case, output, ctx, NAME)
    assert by_words is not None  # the case has answers
    reason = f"{why}; fell back to {MATCH}: {by_words.reason}"
    if by_words.status == "unscored":
        return Score.unscored(NAME, reason, fallback=MATCH, judge_output=said)
    assert by_words.value is not None
    return Score.ok(NAME, by_words.value, reason, fallback=MATCH, judge_output=said)


@register_scorer(NAME)
def judge(case: Case, output: Output, ctx: ScoringContext) -> Score | None:
    """1.0 when the judge says correct; its reply is parsed strictly, anything else falls back to content.match."""
    if not case.answers:
        return None
    if failed := arm_failed(NAME, output):
        return failed
    if ctx.judge is None:
        return Score.unscored(NAME, "no judge generator in the scoring context")
    try:
        (reply,) = ctx.judge.generate(
            [judge_messages(case, output.answer)], max_new_tokens=ctx.settings.judge_max_new_tokens
        )
    except RagtuneError as exc:
        return _fallback(case, output, ctx, f"the judge {ctx.judge.name} failed ({exc})", None)
    try:
        verdict = parse_verdict(reply.text)
    except ValueError as exc:
        cut = " (cut at the token limit)" if reply.finish_reason == "length" else ""
        return _fallback(case, output, ctx, f"the judge's reply was {exc}{cut}", reply.text[:500])
    return Score.ok(
        NAME,
        1.0 if verdict.verdict == "correct" else 0.0,
        f"the judge {ctx.judge.name} says {verdict.verdict}: {verdict.reason}",
        verdict=verdict.verdict,
        judge=ctx.judge.identity(),
    )
