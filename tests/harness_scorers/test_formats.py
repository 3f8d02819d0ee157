"""The format scorer: JSON Schema, regex, labels, word limits, and IFEval instructions through if-verifiable."""

from __future__ import annotations

import random
from typing import Any

import pytest

from ragtune.harness.scorers import SCORERS, ScoringContext, ScoringSettings
from ragtune.harness.scorers.ifeval import UNTRAINED_PUNKT_NOTE, punkt_installed
from tests.harness_scorers.fakes import case, output

SCHEMA = {"type": "object", "properties": {"price": {"type": "number"}}, "required": ["price"]}


def fmt(rule: dict[str, Any], answer: str, ctx: ScoringContext | None = None, **kw: Any):  # type: ignore[no-untyped-def]
    return SCORERS["format"](case(format=rule, **kw), output(answer), ctx or ScoringContext())


def ifeval(ids: list[str], kwargs: list[dict[str, Any]], answer: str, **settings: Any):  # type: ignore[no-untyped-def]
    rule = {"ifeval": {"instruction_id_list": ids, "kwargs": kwargs}}
    return fmt(rule, answer, ScoringContext(settings=ScoringSettings(**settings)), question="Write a haiku.")


def test_no_rule_no_score_and_arm_failure() -> None:
    assert SCORERS["format"](case(answers=["x"]), output("x"), ScoringContext()) is None
    failed = SCORERS["format"](case(format={"max_words": 3}), output("", error="oom"), ScoringContext())
    assert failed.status == "unscored" and "the arm failed" in failed.reason


@pytest.mark.parametrize(
    ("answer", "passed", "reason"),
    [
        ('{"price": 10}', True, "JSON read from the answer is valid against the schema"),
        (' \n{"price": 9.5}\n', True, "JSON read from the answer is valid"),
        ('Here you are:\n```json\n{"price": 10}\n```\nAnything else?', True, "read from a ```json fenced block"),
        ('{"price": "ten"}', False, "breaks the schema in 1 place(s); first at $.price: 'ten' is not of type"),
        ("{}", False, "'price' is a required property"),
        ('Sure! {"price": 10}', False, "the answer is not JSON"),
        ('{"price": NaN}', False, "NaN is not JSON"),
        ("```json\n{price: 10}\n```", False, "its ```json block is not JSON"),
    ],
)
def test_json_schema(answer: str, passed: bool, reason: str) -> None:
    s = fmt({"json_schema": SCHEMA}, answer)
    assert s.passed is passed and s.value == float(passed) and reason in s.reason and s.details["rule"] == "json_schema"


def test_json_schema_formats_and_a_broken_schema() -> None:
    dated = {"type": "string", "format": "date"}
    assert fmt({"json_schema": dated}, '"2026-11-24"').passed
    assert not fmt({"json_schema": dated}, '"24/11/2026"').passed
    broken = fmt({"json_schema": {"type": "nope"}}, "{}")
    assert broken.status == "unscored" and broken.reason.startswith("the case's JSON schema is invalid")


def test_regex_fullmatch_after_stripping() -> None:
    rule = {"regex": r"[A-Z]{3}-\d{4}"}
    assert fmt(rule, "  ABC-1234\n").passed
    partial = fmt(rule, "Ticket ABC-1234")
    assert not partial.passed and "does not match /[A-Z]{3}-\\d{4}/ as a whole" in partial.reason


@pytest.mark.parametrize(
    ("answer", "passed"),
    [("positive", True), ("  POSITIVE \n", True), ("Positive.", False), ("positive sentiment", False), ("", False)],
)
def test_labels_exact_after_strip_and_casefold(answer: str, passed: bool) -> None:
    s = fmt({"labels": ["Positive", "Negative"]}, answer)
    assert s.passed is passed
    if passed:
        assert s.details["label"] == "Positive"
    else:
        assert "is not one of 'Positive', 'Negative'" in s.reason


def test_max_words_counts_whitespace_words() -> None:
    assert fmt({"max_words": 3}, "one two\nthree").passed
    over = fmt({"max_words": 3}, "one two three four")
    assert not over.passed and over.reason == "4 words, over the limit of 3" and over.details["words"] == 4
    assert fmt({"max_words": 1}, "   ").passed  # no words is within any limit; content scorers judge emptiness


# --- IFEval --------------------------------------------------------------------------------------------------------


def test_ifeval_share_of_instructions_and_details() -> None:
    ids = ["punctuation:no_comma", "length_constraints:number_words"]
    kwargs: list[dict[str, Any]] = [{}, {"relation": "at least", "num_words": 5}]
    both = ifeval(ids, kwargs, "Old pond and a frog jumps in.")
    assert both.value == 1.0 and both.passed and both.reason == "followed 2 of 2 IFEval instructions (strict)"
    one = ifeval(ids, kwargs, "Old pond, and a frog jumps in.")
    assert one.value == 0.5 and not one.passed
    assert one.reason == "followed 1 of 2 IFEval instructions (strict); not followed: punctuation:no_comma"
    assert one.details["instructions"][0] == {"id": "punctuation:no_comma", "strict": False, "loose": False, "note": ""}
    assert one.details["mode"] == "strict" and one.details["rule"] == "ifeval"


def test_ifeval_strict_and_loose_modes() -> None:
    # IFEval's loose mode also tries the answer without its first line: here, the chatty preamble
    answer = 'Sure, here it is:\n"An old silent pond"'
    strict = ifeval(["startend:quotation"], [{}], answer)
    loose = ifeval(["startend:quotation"], [{}], answer, ifeval_mode="loose")
    assert strict.passed is False and loose.passed is True and "(loose)" in loose.reason
    assert strict.details["instructions"][0]["loose"] is True


def test_ifeval_prompt_comes_from_the_question() -> None:
    kwargs = [{"prompt_to_repeat": "Write a haiku."}]
    assert ifeval(["combination:repeat_prompt"], kwargs, "Write a haiku. An old silent pond.").passed
    assert not ifeval(["combination:repeat_prompt"], kwargs, "An old silent pond.").passed


def test_ifeval_unchecked_instructions_say_why() -> None:
    random_letter = {"letter": "!", "let_frequency": 2, "let_relation": "at least"}
    s = ifeval(["punctuation:no_comma", "keywords:letter_frequency", "made:up"], [{}, random_letter, {}], "No commas.")
    assert s.value == 1.0 and s.passed  # over the one instruction that could be checked
    assert (
        "leave IFEval's checker to pick some at random" in s.reason
        and "made:up (not an IFEval instruction id)" in s.reason
    )
    assert [v["strict"] for v in s.details["instructions"]] == [True, None, None]
    nothing = ifeval(["made:up"], [{}], "x")
    assert nothing.status == "unscored" and "none of the 1 IFEval instructions could be checked" in nothing.reason
    assert nothing.details["instructions"][0]["note"] == "not an IFEval instruction id"
    refused = ifeval(
        ["keywords:letter_frequency"], [{"letter": "a", "let_frequency": 2, "let_relation": "about"}], "aa"
    )
    assert refused.status == "unscored" and "arguments IFEval refuses (ValueError" in refused.reason


def test_ifeval_empty_answer_follows_nothing() -> None:
    s = ifeval(["punctuation:no_comma"], [{}], "   ")
    assert s.value == 0.0 and s.details["instructions"][0]["note"] == "the answer is empty"


SENTENCES = (["length_constraints:number_sentences"], [{"relation": "less than", "num_sentences": 3}])


@pytest.mark.skipif(punkt_installed(), reason="NLTK's punkt_tab is installed here, so no fallback is needed")
def test_ifeval_sentence_counts_without_punkt() -> None:
    s = ifeval(*SENTENCES, "One sentence. Two sentences.")
    assert s.passed and UNTRAINED_PUNKT_NOTE in s.reason
    assert not ifeval(*SENTENCES, "One. Two. Three.").passed
    off = ifeval(*SENTENCES, "One sentence.", punkt_fallback=False)
    assert off.status == "unscored" and "needs NLTK's punkt_tab model" in off.reason
    # the fallback is lent only for the check: if-verifiable's own helpers are left as they were
    from if_verifiable.ifeval import instructions_util

    assert instructions_util.nltk.__name__ == "nltk"


def test_ifeval_leaves_random_and_langdetect_as_it_found_them() -> None:
    import langdetect

    random.seed(7)
    expected = random.random()
    random.seed(7)
    ids = ["language:response_language", "keywords:letter_frequency"]
    s = ifeval(ids, [{"language": "en"}, {"letter": "?"}], "This answer is written in plain English words.")
    assert s.passed and random.random() == expected and langdetect.DetectorFactory.seed is None
