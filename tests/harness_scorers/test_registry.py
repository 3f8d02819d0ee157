"""The registry, score_output's contract, and no NaN from any scorer on odd inputs (property-style)."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import ValidationError

from ragtune.errors import HarnessError
from ragtune.harness.model import Case, Output, Score
from ragtune.harness.scorers import BUILTINS, SCORERS, ScoringContext, ScoringSettings, register_scorer, score_output
from tests.harness_scorers.fakes import LetterEmbedder, ScriptedJudge, case, output


@pytest.fixture
def restore_registry() -> Iterator[None]:
    saved = dict(SCORERS)
    yield
    SCORERS.clear()
    SCORERS.update(saved)


def test_builtins_are_registered_in_order() -> None:
    assert list(SCORERS)[:10] == [
        "content.match",
        "content.f1",
        "content.numeric",
        "content.similarity",
        "accuracy",
        "content.judge",
        "staleness",
        "citations.support",
        "format",
        "retrieval",
    ]
    assert BUILTINS[0] == "content"


@pytest.mark.usefixtures("restore_registry")
def test_an_extension_registers_like_a_builtin() -> None:
    @register_scorer("length.chars")
    def chars(c: Case, o: Output, ctx: ScoringContext) -> Score | None:
        return Score.ok("length.chars", min(len(o.answer) / 100, 1.0), f"{len(o.answer)} characters", threshold=0)

    scores = score_output(case(answers=["x"]), output("x " * 25), names=["length.chars", "content.match"])
    assert [(s.scorer, s.value) for s in scores] == [("length.chars", 0.5), ("content.match", 1.0)]
    with pytest.raises(HarnessError, match="already registered; pass replace=True"):
        register_scorer("content.match")(chars)
    register_scorer("content.match", replace=True)(chars)
    assert SCORERS["content.match"] is chars


def test_unknown_names_are_refused() -> None:
    with pytest.raises(HarnessError, match=r"unknown scorer 'nope'; known: content.match, content.f1"):
        score_output(case(answers=["x"]), output("x"), names=["nope"])


@pytest.mark.usefixtures("restore_registry")
def test_a_broken_scorer_is_unscored_with_the_reason() -> None:
    @register_scorer("boom")
    def boom(c: Case, o: Output, ctx: ScoringContext) -> Score | None:
        raise KeyError("chunk_id")

    @register_scorer("nan")
    def nan(c: Case, o: Output, ctx: ScoringContext) -> Score | None:
        return Score.ok("nan", float("nan"), "oops")

    @register_scorer("big")
    def big(c: Case, o: Output, ctx: ScoringContext) -> Score | None:
        return Score.ok("big", 3.0, "oops")

    got = {s.scorer: s for s in score_output(case(answers=["x"]), output("x"), names=["boom", "nan", "big"])}
    assert got["boom"].status == "unscored" and got["boom"].reason == "the scorer raised KeyError: 'chunk_id'"
    assert got["nan"].status == "unscored" and "returned nan, not a value in [0, 1]" in got["nan"].reason
    assert got["big"].status == "unscored" and got["big"].value is None


def test_not_applicable_scorers_are_left_out() -> None:
    names = [s.scorer for s in score_output(case(format={"max_words": 3}), output("one two"))]
    assert names == ["staleness", "citations.support", "format", "retrieval"]  # unscored ones say why; None ones go


def test_settings_are_validated() -> None:
    with pytest.raises(ValidationError):
        ScoringSettings(numeric_tolerance=-0.1)
    with pytest.raises(ValidationError):
        ScoringSettings(ifeval_mode="lenient")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        ScoringSettings(f1_treshold=0.3)  # type: ignore[call-arg]


# --- no NaN, ever --------------------------------------------------------------------------------------------------

ODD = [
    "",
    " ",
    "\n\t ",
    "\u200b",
    "the",
    ".",
    "[1]",
    "[1, 2] [999]",
    "0",
    "-0",
    "0.0",
    "NaN",
    "nan%",
    "inf",
    "Infinity",
    "-1e-400",
    "1e308",
    "9" * 400,
    "1" + ",000" * 200,
    "$" * 50,
    "%%%",
    "€0.00",
    "１２３",
    "٣٤٥",
    "naïve café ß ǅ",
    "😀" * 40,
    "مرحبا بالعالم",
    "Ünïcödé\u0301 tëxt",
    "a" * 5000,
    "word " * 2000,
    '{"price": NaN}',
    "```json\n{}\n```",
    "\x00\x01\x02",
    "1,2,3,4,5,6,7,8,9",
    "-5 − 5 −−5",
]
FORMATS: list[dict[str, Any] | None] = [
    None,
    {"max_words": 1},
    {"labels": ["yes", "no"]},
    {"regex": r"\d+"},
    {"json_schema": {"type": "object"}},
    {"ifeval": {"instruction_id_list": ["punctuation:no_comma", "detectable_format:title"], "kwargs": [{}, {}]}},
]


def odd_cases(rng: random.Random, n: int) -> Iterator[tuple[Case, Output]]:
    for i in range(n):
        answers = rng.sample(ODD, rng.randint(1, 3))
        fmt = rng.choice(FORMATS)
        c = case(
            id=f"odd{i}",
            answers=answers,
            stale_answers=rng.sample(ODD, rng.randint(0, 2)),
            evidence=rng.sample(["a", "b"], rng.randint(0, 2)),
            format=fmt,
        )
        chunks = [{"rank": 1, "doc_id": "a", "chunk_id": "a@1#0", "status": rng.choice(["used", "dropped"])}]
        citations = [{"n": 1, "doc_id": "a", "version": 1, "chunk_id": "a@1#0", "mode": "model"}]
        yield (
            c,
            output(
                rng.choice(ODD) + rng.choice(["", " [1]", " 600", " the end."]),
                chunks=chunks if rng.random() < 0.5 else [],
                citations=citations if rng.random() < 0.5 else [],
                error=None if rng.random() < 0.9 else "boom",
            ),
        )


def test_no_score_is_ever_nan_or_out_of_range() -> None:
    rng = random.Random(20261124)
    judge_replies = ['{"verdict": "correct", "reason": "ok"}', "garbage", "{}", '{"verdict": NaN, "reason": 1}']
    seen = set()
    for c, o in odd_cases(rng, 250):
        ctx = ScoringContext(embedder=LetterEmbedder(), judge=ScriptedJudge(rng.choice(judge_replies)))
        for s in score_output(c, o, ctx):
            seen.add((s.scorer, s.status))
            assert s.reason and not s.reason.startswith("the scorer raised"), (c, o, s)
            if s.status == "scored":
                assert s.value is not None and math.isfinite(s.value) and 0.0 <= s.value <= 1.0, (c, o, s)
                assert isinstance(s.passed, bool)
            else:
                assert s.value is None and s.passed is None
    # every built-in was exercised both ways, or at least scored
    assert {name for name, status in seen if status == "scored"} >= set(SCORERS) - {"citations.support"}
