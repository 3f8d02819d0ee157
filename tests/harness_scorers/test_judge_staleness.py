"""The LLM judge's strict reply format (with a scripted generator) and the staleness scorer."""

from __future__ import annotations

import pytest

from ragtune.harness.scorers import SCORERS, ScoringContext
from ragtune.harness.scorers.judge import parse_verdict
from tests.harness_scorers.fakes import ScriptedJudge, case, model_error, output

PRO = case(answers=["900 requests per minute"], stale_answers=["600 requests per minute"])


def judged(reply: str | Exception, answer: str, **kw: str):  # type: ignore[no-untyped-def]
    judge = ScriptedJudge(reply, **kw)
    return SCORERS["content.judge"](PRO, output(answer), ScoringContext(judge=judge)), judge


def test_a_valid_verdict_is_taken_with_its_reason() -> None:
    s, judge = judged('{"verdict": "correct", "reason": "Same limit, other words."}', "Nine hundred a minute.")
    assert s.value == 1.0 and s.passed and s.reason == "the judge scripted-judge says correct: Same limit, other words."
    assert s.details == {"verdict": "correct", "judge": {"backend": "scripted", "model": "scripted-judge"}}
    prompt = judge.seen[0][1]["content"]
    assert "Nine hundred a minute." in prompt and "- 900 requests per minute" in prompt
    no, _ = judged(' {"verdict": "incorrect", "reason": "Wrong number."}\n', "600.")
    assert no.value == 0.0 and no.passed is False


@pytest.mark.parametrize(
    ("reply", "why"),
    [
        ("Correct!", "not JSON"),
        ('```json\n{"verdict": "correct", "reason": "ok"}\n```', "not JSON"),
        ('{"verdict": "correct"}', 'exactly the keys "verdict" and "reason"'),
        ('{"verdict": "correct", "reason": "ok", "score": 1}', 'exactly the keys "verdict" and "reason"'),
        ('{"verdict": "Correct", "reason": "ok"}', 'not "correct" or "incorrect"'),
        ('{"verdict": "correct", "reason": ""}', '"reason" is not a non-empty string'),
        ('["correct", "ok"]', 'exactly the keys "verdict" and "reason"'),
        ('{"verdict": "correct", "reason": "ok"} trailing', "not JSON"),
    ],
)
def test_anything_else_falls_back_to_match(reply: str, why: str) -> None:
    with pytest.raises(ValueError, match=r".+"):
        parse_verdict(reply)
    right, _ = judged(reply, "It is 900 requests per minute now.")
    assert (
        right.value == 1.0 and right.details["fallback"] == "content.match" and right.details["judge_output"] == reply
    )
    assert why in right.reason and "fell back to content.match: the answer contains" in right.reason
    wrong, _ = judged(reply, "It is 600 requests per minute.")
    assert wrong.value == 0.0 and "fell back to content.match: none of" in wrong.reason


def test_judge_failure_cut_reply_and_no_judge() -> None:
    s, _ = judged(model_error(), "900 requests per minute")
    assert s.passed and "the judge scripted-judge failed (the judge endpoint refused" in s.reason
    cut, _ = judged('{"verdict": "corr', "900 requests per minute", finish_reason="length")
    assert "(cut at the token limit)" in cut.reason and cut.passed
    none = SCORERS["content.judge"](PRO, output("900"), ScoringContext())
    assert none.status == "unscored" and none.reason == "no judge generator in the scoring context"
    assert SCORERS["content.judge"](case(format={"max_words": 3}), output("x"), ScoringContext()) is None


# --- staleness -----------------------------------------------------------------------------------------------------


def stale(answer: str, c=PRO):  # type: ignore[no-untyped-def]
    return SCORERS["staleness"](c, output(answer), ScoringContext())


def test_a_stale_value_is_found_by_words_or_by_number() -> None:
    s = stale("The Pro plan allows 600 requests per minute [1].")
    assert s.passed is False and s.value == 0.0 and s.details["stale_found"] == ["600 requests per minute"]
    assert "stale value '600 requests per minute'" in s.reason
    assert stale("It is 600 req/min.").passed is False  # the number alone gives it away
    fresh = stale("The Pro plan allows 900 requests per minute.")
    assert fresh.passed and fresh.reason == "the answer gives none of the stale values"


def test_a_stale_year_is_exact() -> None:
    moved = case(question="When did the Kestrel line close?", answers=["1994"], stale_answers=["1964"])
    assert stale("It closed in 1964.", moved).passed is False
    assert stale("It closed in 1965.", moved).passed is True  # neither year: not stale (and not right either)


def test_stale_and_current_together_is_not_stale() -> None:
    s = stale("It was raised from 600 to 900 requests per minute.")
    assert s.passed and "also the current '900 requests per minute'" in s.reason


def test_staleness_unscored_without_stale_answers_or_answer() -> None:
    s = stale("600", case(answers=["900"]))
    assert s.status == "unscored" and s.reason == "the case lists no stale answers"
    failed = SCORERS["staleness"](PRO, output("", error="boom"), ScoringContext())
    assert failed.status == "unscored" and "the arm failed" in failed.reason
