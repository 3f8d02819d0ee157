"""Content scorers on hand-made cases: normalized match, SQuAD token F1, numbers, similarity, accuracy."""

from __future__ import annotations

import pytest

from ragtune.harness.scorers import SCORERS, ScoringContext, ScoringSettings
from ragtune.harness.scorers.text import normalize_answer, parse_numbers, token_f1
from tests.harness_scorers.fakes import LetterEmbedder, case, output

CTX = ScoringContext()
PRO = case(answers=["600 requests per minute"])


def run(name: str, c, answer: str, ctx: ScoringContext = CTX, **kw):  # type: ignore[no-untyped-def]
    return SCORERS[name](c, output(answer, **kw), ctx)


# --- normalisation and F1, checked against SQuAD v2's evaluation logic by hand ---------------------------------


@pytest.mark.parametrize(
    ("text", "normalized"),
    [
        ("The Pro plan.", "pro plan"),
        ("  A  cat,  an apple;\tTHE end! ", "cat apple end"),
        ("U.S.A.", "usa"),
        ("theatre anthem", "theatre anthem"),  # articles only as whole words
        ("Café’s naïve", "café’s naïve"),  # SQuAD strips ASCII punctuation only
    ],
)
def test_normalize_answer_is_squads(text: str, normalized: str) -> None:
    assert normalize_answer(text) == normalized


@pytest.mark.parametrize(
    ("prediction", "gold", "f1"),
    [
        # 7 predicted tokens ('the' dropped), 4 gold, 4 shared: P 4/7, R 1, F1 = 2PR/(P+R) = 8/11
        ("The Pro plan allows 600 requests per minute.", "600 requests per minute", 8 / 11),
        ("Denver Broncos", "Broncos", 2 / 3),  # P 1/2, R 1
        ("the the cat", "a cat", 1.0),  # both normalize to 'cat'
        ("cat cat dog", "cat dog dog", 2 / 3),  # bag overlap: min(2,1) + min(1,2) = 2; P = R = 2/3
        ("", "Broncos", 0.0),  # one side empty: 1 only if both are
        ("the", "a", 1.0),  # both empty once normalized
        ("blue whale", "red fox", 0.0),
    ],
)
def test_token_f1_matches_squad_v2_by_hand(prediction: str, gold: str, f1: float) -> None:
    assert token_f1(prediction, gold) == pytest.approx(f1)


def test_f1_scorer_takes_the_best_answer_and_the_threshold() -> None:
    c = case(answers=["Broncos", "Denver Broncos"])
    best = run("content.f1", c, "Denver Broncos")
    assert best.value == 1.0 and best.passed and best.details["best"] == "Denver Broncos"
    low = run("content.f1", case(answers=["Denver Broncos won the game"]), "Broncos")
    assert low.value == pytest.approx(2 * (1 / 1) * (1 / 4) / (1 + 1 / 4)) and not low.passed  # 0.4 < 0.5
    strict = ScoringContext(settings=ScoringSettings(f1_threshold=0.9))
    s = run("content.f1", PRO, "The Pro plan allows 600 requests per minute [1].", strict)
    assert s.value == pytest.approx(8 / 11) and not s.passed and "below the threshold 0.9" in s.reason


# --- match ---------------------------------------------------------------------------------------------------------


def test_match_whole_tokens_after_normalisation() -> None:
    s = run("content.match", PRO, "The Pro plan allows 600 Requests, per minute [1].")
    assert s.passed and s.value == 1.0 and "600 requests per minute" in s.reason
    assert not run("content.match", case(answers=["60 requests per minute"]), "600 requests per minute").passed
    miss = run("content.match", PRO, "It allows 900 requests per minute.")
    assert miss.value == 0.0 and miss.passed is False and "none of the 1 acceptable answers" in miss.reason


def test_match_unscored_and_not_applicable() -> None:
    empty = run("content.match", case(answers=["the", "..."]), "the")
    assert empty.status == "unscored" and "empty once normalized" in empty.reason
    format_only = case(format={"max_words": 5})
    assert all(run(n, format_only, "hi") is None for n in ("content.match", "content.f1", "accuracy"))
    failed = run("content.match", PRO, "", error="generation timed out")
    assert failed.status == "unscored" and "the arm failed" in failed.reason and "timed out" in failed.reason


# --- numbers --------------------------------------------------------------------------------------------------------


def test_parse_numbers_units_separators_and_hyphens() -> None:
    got = [(str(n.value), n.unit) for n in parse_numbers("$1,234.50, 12%, 3.5 million, EUR 10, 10k, -5 [2]")]
    assert got == [("1234.50", "USD"), ("12", "%"), ("3500000.0", ""), ("10", "EUR"), ("10000", ""), ("-5", "")]
    assert [str(n.value) for n in parse_numbers("COVID-19 on 2026-01-05, an H100")] == ["19", "2026", "1", "5"]
    assert [str(n.value) for n in parse_numbers("1,2345 and 45 per cent")] == ["1", "2345", "45"]


@pytest.mark.parametrize(
    ("answer", "passed"),
    [
        ("It costs €1200 a month.", True),
        ("It costs 1.2 thousand euros.", True),
        ("It costs 1,212 euros.", True),  # exactly 1% off
        ("It costs 1,213 euros.", False),
        ("It costs $1,200.", False),  # a different currency
        ("It costs a lot.", False),
    ],
)
def test_numeric_tolerance_and_units(answer: str, passed: bool) -> None:
    s = run("content.numeric", case(answers=["1,200 euros"]), answer)
    assert s.passed is passed and s.value == (1.0 if passed else 0.0)


@pytest.mark.parametrize(
    ("expected", "answer", "passed"),
    [
        ("1979", "It opened in 1979.", True),
        ("1979", "It opened in 1982.", False),  # within 1%, but a year is exact
        ("in 1979", "in 1980", False),
        ("1,979 cars", "1,990 cars", True),  # a quantity keeps the tolerance
        ("€1979", "€1990", True),  # an amount, not a year
        ("179", "180", True),  # not a year: within 1%
    ],
)
def test_years_compare_exactly(expected: str, answer: str, passed: bool) -> None:
    s = run("content.numeric", case(answers=[expected]), answer)
    assert s.passed is passed


def test_numeric_reasons_settings_and_applicability() -> None:
    s = run("content.numeric", case(answers=["45%"]), "About 45 percent [3].")
    assert s.passed and "45 percent within 1.00% of 45%" in s.reason
    none = run("content.numeric", case(answers=["45%"]), "Most of them.")
    assert none.reason == "the answer contains no number"
    loose = ScoringContext(settings=ScoringSettings(numeric_tolerance=0.1))
    assert run("content.numeric", case(answers=["1,200"]), "1,300", loose).passed
    assert run("content.numeric", case(answers=["weekdays"]), "42") is None  # no number to compare with
    both = run("content.numeric", case(answers=["from 9 to 17"]), "from 9 to 18")
    assert both.value == 0.5 and not both.passed and both.details["expected"] == ["9", "17"]


@pytest.mark.parametrize(
    ("expected", "answer", "passed"),
    [
        ("September 1", "October 1.", False),  # the day alone used to pass
        ("September 1", "March 1, 1999.", False),
        ("September 1", "It starts on 1 September.", True),
        ("September 1", "Sept. 1st, 2024", True),  # the answer may add a year the case does not give
        ("September 1", "1", False),
        ("March 5, 2024", "On 2024-03-05.", True),
        ("March 5, 2024", "March 5, 2023", False),  # a year the case gives must agree
        ("March 2024", "in March of 2023, then March 2024", True),
        ("from 1 May to 30 June", "from 1 May to 30 June", True),
        ("from 1 May to 30 June", "from 1 May to 30 July", False),
    ],
)
def test_dates_compare_as_dates(expected: str, answer: str, passed: bool) -> None:
    s = run("content.numeric", case(answers=[expected]), answer)
    assert s.passed is passed, s.reason


def test_the_day_and_year_of_a_date_are_not_loose_numbers() -> None:
    # "40 euros from 1 May": the 1 of the date is not a number the answer must contain elsewhere
    s = run("content.numeric", case(answers=["40 euros from 1 May"]), "It is 40 EUR, starting May 1st.")
    assert s.passed, s.reason
    assert s.details["expected"] == ["1 May", "40 euros"]


# --- accuracy: match, or numeric as an equivalent ------------------------------------------------------------------


def test_accuracy_names_the_rule_that_passed() -> None:
    c = case(answers=["1,200 euros"])
    words = run("accuracy", c, "The plan costs 1,200 euros.")
    assert words.passed and words.details["rule"] == "content.match" and words.reason.startswith("content.match:")
    number = run("accuracy", c, "The plan costs €1200.")
    assert number.passed and number.details["rule"] == "content.numeric" and number.reason.startswith("content.numeric")
    wrong = run("accuracy", c, "The plan costs €900.")
    assert wrong.value == 0.0 and wrong.details["rule"] is None
    assert "content.match: none" in wrong.reason and "content.numeric: expected" in wrong.reason
    text_only = run("accuracy", case(answers=["weekdays"]), "On weekends.")
    assert text_only.value == 0.0 and "content.numeric" not in text_only.reason


# --- similarity ----------------------------------------------------------------------------------------------------


def test_similarity_with_a_fake_embedder_and_without_one() -> None:
    ctx = ScoringContext(embedder=LetterEmbedder())
    same = run("content.similarity", case(answers=["listen"]), "silent", ctx)
    assert same.value == pytest.approx(1.0, abs=1e-6) and same.passed and "letters" in same.reason
    assert run("content.similarity", case(answers=["abc"]), "xyz", ctx).value == 0.0
    assert run("content.similarity", case(answers=["abc"]), "  [1] ", ctx).reason == "the answer is empty"
    missing = run("content.similarity", PRO, "600 requests per minute")
    assert missing.status == "unscored" and missing.reason == "no embedder in the scoring context"


@pytest.mark.slow
def test_similarity_with_the_real_minilm(embedder) -> None:  # type: ignore[no-untyped-def]
    ctx = ScoringContext(embedder=embedder)
    close = run("content.similarity", PRO, "The Pro plan is limited to 600 requests each minute.", ctx)
    far = run("content.similarity", PRO, "Our office is closed on public holidays.", ctx)
    assert 0.0 <= far.value < close.value <= 1.0 and close.passed and not far.passed  # type: ignore[operator]
    # why similarity is never THE accuracy: it cannot tell a wrong number from the right one (docs/scorers.md)
    wrong = run("content.similarity", PRO, "The Pro plan allows 900 requests per minute.", ctx)
    assert wrong.passed and wrong.value > close.value  # type: ignore[operator]
