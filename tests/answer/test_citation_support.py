"""The support test behind ``attributed`` citations, and the pure logic of bench/citation_agreement.py."""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from ragtune.answer.citations import Evidence, attribute, best_cosines, given_names, support, values
from ragtune.answer.context import Source
from ragtune.index.analyzer import Analyzer
from ragtune.retrieval.search import Hit

A = Analyzer()
PRICING = (
    "The Team plan costs €19 per seat per month. The Team plan allows up to 20 seats. "
    "The Pro plan's API rate limit is 600 requests per minute. Requests are counted over a rolling 60-second window. "
    "Live keys start with `lr_live_`. API version 2 will be switched off on 31 March 2026."
)


def ev(text: str = PRICING, heading: str = "Pricing and plans") -> Evidence:
    return Evidence.of(text, A, heading=heading)


@pytest.mark.parametrize(
    "sentence",
    [
        "The Team plan allows 20 seats.",
        "The Team plan allows twenty seats.",  # number words count as their digits
        "The Team plan costs €19 per seat each month.",
        "The Team plan costs 19 euros per seat per month.",
        "The Pro plan's API rate limit is 600 requests per minute.",
        "Live API keys start with lr_live_.",
        "API version 2 will be switched off on 2026-03-31.",  # an ISO date is the same day
    ],
)
def test_supported(sentence: str) -> None:
    verdict = support(sentence, ev(), A)
    assert verdict.supported, verdict


@pytest.mark.parametrize(
    ("sentence", "why"),
    [
        ("The Team plan allows 25 seats.", "n:25"),  # a wrong number
        ("The Team plan costs $19 per seat per month.", "$:19"),  # the right number in the wrong currency
        ("The Pro plan's API rate limit is 60 requests per minute.", "60 request"),  # 60 is a window, not a rate
        ("API version 2 will be switched off on 31 May 2026.", "month:may"),  # a wrong month
        ("Live API keys start with lr_test_.", "lr_test_"),  # a wrong identifier
        ("The Team plan allows 20 seats in Singapore.", "name:singapor"),  # a name the source never uses
        ("The Team plan includes a free onboarding call with an engineer.", "content terms"),  # too little overlap
        ("Yes.", "fewer than two"),
    ],
)
def test_not_supported(sentence: str, why: str) -> None:
    verdict = support(sentence, ev(), A)
    assert not verdict.supported and why in verdict.reason, verdict


def test_a_number_must_be_said_of_what_the_sentence_says_it_of() -> None:
    chunk = Evidence.of(
        "The current stable API version is 3.4. All 3.x versions share the /v3/ base path. "
        "The Python SDK is at version 2.1.",
        A,
    )
    assert support("The current stable API version is 3.4.", chunk, A).supported
    verdict = support("The current stable API version is 2.1.", chunk, A)  # every word and number is in the chunk
    assert verdict.coverage == 1.0 and not verdict.supported and "n:2.1 in a sentence about this" in verdict.reason
    # the number said there of another named thing
    plans = Evidence.of("The Team plan costs €19 per seat per month. The Pro plan costs €49 per seat per month.", A)
    assert support("The Team plan costs €19 per seat per month.", plans, A).supported
    verdict = support("The Pro plan costs €19 per seat per month.", plans, A)
    assert verdict.coverage == 1.0 and "n:19 in a sentence about this" in verdict.reason
    # a pronoun in the chunk: the sentence before the number counts too
    pronoun = Evidence.of("The Team plan costs €19 per seat per month. It allows up to 20 seats.", A)
    assert support("The Team plan allows 20 seats.", pronoun, A).supported


def test_values_normalise_numbers_amounts_and_dates() -> None:
    assert values("3,000 requests at 07:00 for €1.20, 3.50% and v2.1.3") >= {
        "n:3000",
        "n:7:00",
        "n:1.2",
        "€:1.2",
        "n:3.5",
        "n:2.1.3",
    }
    assert values("2026-01-05, a Monday") == values("5 January 2026, a monday")
    assert "month:may" not in values("you may ask")  # the verb is not the month


def test_a_name_known_to_the_other_sources_is_allowed() -> None:
    sentence = "On Lumen the Team plan allows up to 20 seats."
    assert "name:lumen" in support(sentence, ev(), A).reason
    verdict = support(sentence, ev(), A, known=frozenset({"lumen", "relay"}))
    assert verdict.supported and verdict.coverage < 1  # allowed, but not counted as covered


def test_names_the_question_brings_are_not_claims() -> None:
    chunk = Evidence.of("The current stable API version is 3.4.", A, heading="API changelog")
    sentence = "The current stable version of the Lumen Relay API is 3.4."
    assert "name:lumen" in support(sentence, chunk, A).reason  # not in the chunk, nor known
    given = given_names("What is the current stable version of the Lumen Relay API?", A)
    assert given == {"lumen", "relay", "api"}
    assert support(sentence, chunk, A, given=given).supported
    assert not support("The current stable version of the Lumen Relay API is 3.5.", chunk, A, given=given).supported
    srcs = _sources("The current stable API version is 3.4.")
    question = "What is the current stable version of the Lumen Relay API?"
    assert attribute(sentence, srcs).citations == []
    assert attribute(sentence, srcs, question=question).answer == sentence[:-1] + " [1]."
    # but a chunk about another plan does not back the question's plan: its number is said of the Team plan
    team = _sources("The Team plan costs €19 per seat per month. The Team plan allows up to 20 seats.")
    wrong = "The Pro plan costs €19 per seat per month."
    assert attribute(wrong, team, question="How much does the Pro plan cost?").citations == []


def test_the_coverage_threshold_and_the_cosine_gate() -> None:
    sentence = "The Team plan allows 20 seats for small departments."  # team plan allow seat / small depart
    verdict = support(sentence, ev(), A)
    assert verdict.coverage == pytest.approx(4 / 6) and not verdict.supported
    assert support(sentence, ev(), A, min_coverage=0.6).supported
    assert not support("The Team plan allows 20 seats.", ev(), A, cosine=0.2).supported
    assert support("The Team plan allows 20 seats.", ev(), A, cosine=0.9).supported


class BagOfWords:
    """A deterministic fake embedder: L2-normalised word counts over the texts' own vocabulary."""

    name, dim = "bow", 64

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        rows = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                rows[i, hash(word) % self.dim] += 1
        return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-9)

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        return []


def test_best_cosines_takes_the_closest_sentence_of_each_chunk() -> None:
    chunks = ["Red apples. The Team plan allows 20 seats.", "Blue sky only."]
    m = best_cosines(BagOfWords(), ["The Team plan allows 20 seats.", "Blue sky only."], chunks)
    assert m.shape == (2, 2)
    assert m[0, 0] == pytest.approx(1.0, abs=1e-5) and m[1, 1] == pytest.approx(1.0, abs=1e-5)
    assert m[0, 1] < 0.5


def _sources(*texts: str) -> list[Source]:
    return [
        Source(n, Hit(f"d{n}.md", 1, f"d{n}.md@1#0", 1.0, t, title=f"d{n}.md", start=0, end=len(t)), 10)
        for n, t in enumerate(texts, start=1)
    ]


def test_attribution_cites_the_source_that_states_the_value_not_the_one_with_most_words() -> None:
    # source 1 shares every word but states another number; source 2 states the number
    srcs = _sources(
        "The Team plan allows up to 25 seats and the Team plan includes shared automations.",
        "Team plan: up to 20 seats.",
    )
    checked = attribute("The Team plan allows 20 seats.", srcs)
    assert checked.answer == "The Team plan allows 20 seats [2]." and [c.n for c in checked.citations] == [2]
    # with an embedder, the same choice (the cosine only gates)
    assert attribute("The Team plan allows 20 seats.", srcs, embedder=BagOfWords()).answer.endswith("[2].")


def test_attribution_cites_nothing_when_no_source_supports_a_sentence() -> None:
    srcs = _sources("The Team plan allows up to 20 seats.", "Support answers from 08:00 to 18:00 CET.")
    text = "The Team plan allows 30 seats. Support is open around the clock."
    checked = attribute(text, srcs)
    assert checked.answer == text and checked.citations == []


# bench/citation_agreement.py -------------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("citation_agreement", ROOT / "bench" / "citation_agreement.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their annotations through sys.modules
    spec.loader.exec_module(module)
    return module


ca = _bench()


@pytest.mark.parametrize(
    ("question", "answer", "sentence"),
    [
        ("How many seats does the Team plan allow?", "20 seats", "The Team plan allows 20 seats."),
        (
            "What is the Pro plan's API rate limit?",
            "600 requests per minute",
            "The Pro plan's API rate limit is 600 requests per minute.",
        ),
        (
            "How long are activity logs kept in the eu-central region?",
            "90 days",
            "Activity logs are kept in the eu-central region for 90 days.",
        ),
        ("Who is the CEO of Brisecourt Labs?", "Élodie Marchand", "The CEO of Brisecourt Labs is Élodie Marchand."),
        ("How fast is it?", "very", "How fast is it: very."),  # no template: the question and the answer
    ],
)
def test_answer_sentences(question: str, answer: str, sentence: str) -> None:
    assert ca.answer_sentence(question, answer) == sentence


def test_pairs_of_a_tiny_case_and_the_checks_side_by_side() -> None:
    gold = ca.Chunk(
        "pricing@1#1",
        "## Team\n\nThe Team plan costs €19 per seat per month.\n\nThe Team plan allows up to 20 seats.\n\nThe Starter plan allows up to 3 seats.",
        "Team",
    )
    other = ca.Chunk("support@1#0", "Support answers tickets from 08:00 to 18:00 CET on weekdays.", "Hours")
    cases = [
        {"id": "seats-week1", "question": "How many seats does the Team plan allow?", "answers": ["20 seats"]},
        {"id": "seats-now", "question": "How many seats does the Team plan allow?", "answers": ["25 seats"]},
        {"id": "starter", "question": "How many seats does the Starter plan allow?", "answers": ["3 seats"]},
        {"id": "ceo", "question": "Who is the CEO?", "answers": ["Élodie Marchand"]},
    ]
    pairs = ca.case_pairs(cases[0], gold, other, cases, [gold, other])
    got = {(p.kind, p.form): (p.sentence, p.chunk.chunk_id, p.label) for p in pairs}
    assert got == {
        ("positive", "answer"): ("The Team plan allows 20 seats.", "pricing@1#1", True),
        ("positive", "evidence"): ("The Team plan allows up to 20 seats.", "pricing@1#1", True),
        ("changed", "answer"): ("The Team plan allows 25 seats.", "pricing@1#1", False),  # the other week's value
        ("changed", "evidence"): ("The Team plan allows up to 25 seats.", "pricing@1#1", False),
        ("swapped", "answer"): ("The Team plan allows 3 seats.", "pricing@1#1", False),  # stated, for Starter
        ("swapped", "evidence"): ("The Team plan allows up to 3 seats.", "pricing@1#1", False),
        ("distractor", "answer"): ("The Team plan allows 20 seats.", "support@1#0", False),
        ("distractor", "evidence"): ("The Team plan allows up to 20 seats.", "support@1#0", False),
    }
    assert all(p.chunk not in p.context for p in pairs)
    result = ca.evaluate(pairs, ca.checks(A))
    old, new = result["checks"]["old: 50% term overlap"], result["checks"]["new: values + 75% content terms"]
    assert (old["tp"], old["fp"]) == (2, 4)  # the old rule passes every sentence about the Team plan's seats
    assert (new["tp"], new["fp"], new["fn"]) == (2, 2, 0)  # the new one is fooled only by the swapped value
    assert result["by_kind"]["new: values + 75% content terms"]["changed"]["agree"] == 1.0


def test_shifted_numbers_and_wrong_values_are_not_stated_by_the_chunk() -> None:
    assert ca.shifted("20 seats", "up to 20 seats, or 40") == "21 seats"  # 40 is stated: the next candidate
    assert ca.shifted("3,000 requests per minute", "3,000") == "6,000 requests per minute"
    assert ca.shifted("08:00 to 18:00 CET", "08:00") == "16:00 to 18:00 CET"
    assert ca.shifted("Lyon, France", "Lyon") is None
    pool = [{"id": "a", "answers": ["Lyon, France"]}, {"id": "b", "answers": ["Brisecourt Labs SAS"]}]
    chunk = ca.Chunk("c", "The company is based in Lyon, France.")
    assert ca.changed_value(pool[0], "Lyon, France", chunk, pool) == "Brisecourt Labs SAS"


def test_agreement_matches_scikit_learn() -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    labels = [True, True, False, False, True, False, True, False, False, False]
    predicted = [True, False, False, True, True, False, True, False, True, False]
    got = ca.agreement(labels, predicted)
    assert got["kappa"] == pytest.approx(metrics.cohen_kappa_score(labels, predicted), abs=1e-4)
    assert got["precision"] == pytest.approx(metrics.precision_score(labels, predicted), abs=1e-4)
    assert got["recall"] == pytest.approx(metrics.recall_score(labels, predicted), abs=1e-4)
    assert got["accuracy"] == pytest.approx(metrics.accuracy_score(labels, predicted), abs=1e-4)
    assert ca.agreement([True, False], [True, False])["kappa"] == 1.0
