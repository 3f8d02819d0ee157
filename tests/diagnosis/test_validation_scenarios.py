"""The pure logic of bench/diagnosis_validation.py: value changes, near-duplicates, expected verdicts, reuse."""

from __future__ import annotations

import importlib.util
import random
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import pytest

from ragtune.generation.base import Generation, Message
from ragtune.harness.scorers.staleness import gives

ROOT = Path(__file__).resolve().parents[2]
SQUAD = ROOT.parent / "shared" / "data" / "squad_v2_dev_half"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("diagnosis_validation", ROOT / "bench" / "diagnosis_validation.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their annotations through sys.modules
    spec.loader.exec_module(module)
    return module


dv = _load()

PARAGRAPH = (
    "The Normans conquered England in 1016. Their leader was William. "
    "By 1072 William had invaded Scotland, and 3 bishops went with him."
)


def test_change_number_moves_a_year_outside_the_numeric_tolerance() -> None:
    change = dv.change_number(PARAGRAPH, ["1072", "in 1072"])
    assert change is not None
    assert (change.old, change.new) == ("1072", "1102")
    assert change.answers == ("1102", "in 1102") and change.stale_answers == ("1072", "in 1072")
    assert "By 1102 William" in change.text and "1016" in change.text  # only that fact changed
    assert not gives(change.text, "1072", 0.01)


def test_change_number_doubles_counts_and_refuses_ambiguous_numbers() -> None:
    change = dv.change_number(PARAGRAPH, ["3 bishops"])
    assert change is not None and change.new == "7" and change.answers == ("7 bishops",)
    assert dv.change_number(PARAGRAPH, ["William"]) is None  # no number to change
    assert dv.change_number("In 1066 and again in 1066.", ["1066"]) is None  # twice in the paragraph
    assert dv.change_number(PARAGRAPH, ["from 1066 to 1072"]) is None  # two numbers in the answer
    assert dv.change_number("The 10th century.", ["10th"]) is None  # ordinals are left alone


def test_shifted_values_are_never_within_one_percent() -> None:
    for value in (0, 1, 7, 99, 1000, 1066, 1999, 2010, 2100, 12_000):
        new = dv.shifted(value)
        assert abs(new - value) > 0.01 * max(abs(value), abs(new))


def test_near_duplicates_alter_the_answer_in_every_copy() -> None:
    copies = dv.near_duplicates(PARAGRAPH, ["William"], ["Harold", "Edgar", "Malcolm", "Canute"])
    assert copies is not None and len(copies) == 4
    for copy in copies:
        assert "William" not in copy
    assert copies[0].count("Harold") == 2  # a whole copy less one other sentence
    assert "1016" not in copies[0] and "1072" in copies[0]
    assert copies[1].startswith("Their leader was Edgar.")  # an excerpt around the answer's sentence


def test_near_duplicates_refuse_copies_that_still_state_the_answer() -> None:
    assert dv.near_duplicates(PARAGRAPH, ["Rollo"], ["Harold"]) is None  # the answer is not in the text
    # the alternative repeats the answer's number: the copy would still state it
    assert dv.near_duplicates(PARAGRAPH, ["3 bishops"], ["3 priests"]) is None


def test_alternatives_have_the_answer_shape_and_differ_from_it() -> None:
    pool = ["Harold", "Edgar", "william", "1066", "King Harold", "Canute", "William"]
    alts = dv.alternatives_for(["William"], pool, 3, random.Random(0))
    assert sorted(alts) == ["Canute", "Edgar", "Harold"]
    # a value within the numeric tolerance states the answer; a year is exact
    assert dv.alternatives_for(["10,720"], ["10,730", "15,000", "Harold"], 5, random.Random(0)) == ["15,000"]
    assert sorted(dv.alternatives_for(["1072"], ["1073", "1500", "Harold"], 5, random.Random(0))) == ["1073", "1500"]


@pytest.mark.parametrize(
    ("n", "injected", "verdict"),
    [
        (30, {"facts": 30}, "RAG"),
        (5, {"prompt": 5}, "PROMPT-FIX"),
        (5, {"training": 5}, "FINE-TUNE"),
        (10, {"facts": 5, "training": 5}, "HARNESS-FIRST"),
        (21, {"facts": 1}, "NO-CHANGE"),
        (70, {"facts": 30, "prompt": 5, "training": 5}, "RAG"),
        (4, {"prompt": 2, "facts": 2}, "PROMPT-FIX"),  # a tie goes to the cheaper change
    ],
)
def test_expected_verdict_follows_the_documented_rules(n: int, injected: dict[str, int], verdict: str) -> None:
    assert dv.expected_verdict(n, Counter(injected)) == verdict


def test_judge_scores_family_and_the_causes_the_injection_determines() -> None:
    assert dv.judge("gap", ("knowledge", "gap"))
    assert not dv.judge("gap", ("knowledge", "missing"))
    assert dv.judge("retrieval", ("retrieval", "ranking")) and not dv.judge("retrieval", ("retrieval", "stale_index"))
    # behaviour cases are screened so that a prompt variant fixes the bare value and none fixes JSON
    assert dv.judge("format-regex", ("behaviour", "prompt_fixable"))
    assert not dv.judge("format-regex", ("behaviour", "needs_training"))
    assert dv.judge("format-json", ("behaviour", "needs_training"))
    assert not dv.judge("format-json", ("behaviour", "prompt_fixable"))
    assert not dv.judge("stale", ("unclear", "contradiction")) and not dv.judge("stale", None)
    assert dv.judge("control", None) and not dv.judge("stale-before", ("knowledge", "stale"))


class _Counting:
    name = "counting"
    context_window = 8192

    def __init__(self) -> None:
        self.asked: list[str] = []

    def identity(self) -> dict[str, str]:
        return {"backend": "counting"}

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def count_prompt(self, messages: Sequence[Message]) -> int:
        return sum(self.count_tokens(m["content"]) for m in messages)

    def generate(
        self, batch: Sequence[Sequence[Message]], *, max_new_tokens: int | None = None, progress: bool = False
    ) -> list[Generation]:
        self.asked += [m[-1]["content"] for m in batch]
        return [Generation(f"answer to {m[-1]['content']}", 1, 1, "stop", 0.0) for m in batch]


def test_reused_generations_generate_each_conversation_once() -> None:
    inner = _Counting()
    gen = dv.ReusedGenerations(inner)
    ask = [[{"role": "user", "content": q}] for q in ("a", "b", "a")]
    assert [g.text for g in gen.generate(ask)] == ["answer to a", "answer to b", "answer to a"]
    assert [g.text for g in gen.generate([*ask[1:], [{"role": "user", "content": "c"}]])] == [
        "answer to b",
        "answer to a",
        "answer to c",
    ]
    assert inner.asked == ["a", "b", "c"] and (gen.generated, gen.reused) == (3, 3)
    gen.generate(ask[:1], max_new_tokens=5)  # another limit is another conversation
    assert inner.asked[-1] == "a"


@pytest.mark.skipif(not SQUAD.is_dir(), reason="needs ../shared/data/squad_v2_dev_half")
def test_candidate_pools_on_the_real_data_are_disjoint_and_well_formed() -> None:
    paragraphs, questions = dv.read_squad(SQUAD)
    subset = dict(list(paragraphs.items())[:300])
    pools = dv.candidates(subset, [q for q in questions if q.pid in subset], 0, 8)
    taken = {role: [next(pools[role]) for _ in range(10)] for role in pools}
    pids = [c.paragraph.pid for cs in taken.values() for c in cs]
    assert len(pids) == len(set(pids))  # each paragraph in one role only
    for c in taken["stale"]:
        assert c.change is not None and dv.states(c.change.text, c.change.answers)
    for c in taken["gap"]:
        assert not any(dv.states(p.text, c.question.answers) for pid, p in subset.items() if pid != c.paragraph.pid)
    for c in taken["retrieval"]:
        assert len(c.copies) == 8 and not any(dv.states(t, c.question.answers) for t in c.copies)
    case = taken["format-json"][0].case("x")
    assert case["question"].startswith("Text: ") and "json_schema" in case["format"]


def test_prompt_variants_are_a_valid_config_with_the_extract_variant(tmp_path: Path) -> None:
    from ragtune.config import load_config, render_template
    from ragtune.harness.arms import BUILTIN_VARIANTS, variant_messages

    path = tmp_path / "ragtune.toml"
    path.write_text(render_template() + dv.prompt_variants(), encoding="utf-8")
    prompts = load_config(path).eval.prompts
    assert list(prompts) == ["plain", "concise", "fewshot", "extract"]  # plain first: the arm's scored answer
    assert prompts["fewshot"] == BUILTIN_VARIANTS["fewshot"]
    messages = variant_messages(prompts["extract"], "Text: It opened in 1931.\n\nQuestion: When did it open?")
    assert [m["content"] for m in messages[2::2]] == [a for _, a in dv.EXTRACT_EXAMPLES]
    assert messages[-1]["content"].endswith(dv.EXTRACT_INSTRUCTION)


def _prompts(formatted: dict[str, bool]) -> object:
    from ragtune.diagnosis.facts import ArmResult, ScoreRow

    scores = {f"variant.{v}.format": ScoreRow("scored", float(ok), ok, "") for v, ok in formatted.items()}
    return ArmResult("prompts", "c", 0, "", None, 0.0, 0.0, "format", variants=dict.fromkeys(formatted, "x"),
                     scores=scores)  # fmt: skip


def test_behaviour_roles_need_what_the_prompt_variants_did_to_the_form() -> None:
    paragraph = dv.Paragraph("p1", "T", PARAGRAPH)
    question = dv.Question("q1", "Who led them?", ("William",), "p1")
    regex, json_ = (dv.Candidate(role, question, paragraph) for role in ("format-regex", "format-json"))
    one, none = _prompts({"plain": False, "extract": True}), _prompts({"plain": False, "extract": False})
    assert dv.fixes_form(regex, one) is None
    assert dv.fixes_form(regex, none) == "no prompt variant gives a bare value"
    assert dv.fixes_form(json_, none) is None
    assert dv.fixes_form(json_, one) == "prompt variant extract gives JSON"
