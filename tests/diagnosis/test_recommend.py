"""The verdict for several failure mixes, and the shares' and fix rates' intervals against reference computations."""

from __future__ import annotations

import numpy as np
import pytest

from ragtune.config import Config
from ragtune.diagnosis.attribute import Attribution
from ragtune.diagnosis.facts import ArmResult, RunData
from ragtune.diagnosis.recommend import recommend
from ragtune.harness.runs import RunInfo


def _data(n_cases: int, arms: list[str], fixed: dict[str, set[int]], failed: set[int]) -> RunData:
    """Cases c0..cN-1; the primary 'rag' fails ``failed``; ``fixed[arm]`` are the cases that arm gets right."""
    info = RunInfo("r", "2026-01-01", "2026-01-01", "cases.jsonl", "x", arms, n_cases, {})
    results: dict[str, dict[str, ArmResult]] = {}
    for i in range(n_cases):
        by: dict[str, ArmResult] = {}
        for arm in arms:
            ok = (i not in failed) if arm == "rag" else (i in fixed.get(arm, set()))
            by[arm] = ArmResult(arm, f"c{i}", i, "x", None, 100.0, 0.0, "correct" if ok else "wrong")
        results[f"c{i}"] = by
    return RunData(info, results, {})


def _attr(i: int, family: str, cause: str, confidence: str = "high") -> Attribution:
    return Attribution(f"c{i}", "rag", family, cause, "what", "why", "next", confidence)  # type: ignore[arg-type]


def _mix(*groups: tuple[int, str, str]) -> list[Attribution]:
    out, i = [], 0
    for count, family, cause in groups:
        for _ in range(count):
            out.append(_attr(i, family, cause))
            i += 1
    return out


def _verdict(attrs: list[Attribution], arms: list[str], fixed: dict[str, set[int]] | None = None, n: int = 40) -> str:
    data = _data(n, arms, fixed or {}, {int(a.case_id[1:]) for a in attrs})
    rec = recommend(data, "rag", attrs, Config(), {})
    return f"{rec.verdict}/{rec.confidence}"


ALL = ["closed-book", "oracle", "rag", "prompts"]


def test_each_verdict() -> None:
    assert _verdict(_mix((2, "retrieval", "miss")), ALL).startswith("NO-CHANGE")
    facts = _mix((10, "retrieval", "miss"), (6, "knowledge", "stale"), (2, "behaviour", "needs_training"))
    assert _verdict(facts, ALL, {"oracle": set(range(16))}).startswith("RAG/")
    assert _verdict(_mix((14, "behaviour", "needs_training"), (2, "retrieval", "miss")), ALL).startswith("FINE-TUNE/")
    assert _verdict(_mix((12, "behaviour", "prompt_fixable"), (4, "behaviour", "style")), ALL).startswith("PROMPT-FIX/")
    both = _mix((8, "knowledge", "stale"), (8, "behaviour", "needs_training"))
    assert _verdict(both, ALL).startswith("HARNESS-FIRST/")
    assert _verdict(both, [*ALL, "hybrid:v1"], {"hybrid:v1": set(range(16))}).startswith("HYBRID/")
    assert _verdict(both, [*ALL, "hybrid:v1"], {"hybrid:v1": {0}}).startswith("HARNESS-FIRST/")  # not measurably
    unclear = _mix((12, "unclear", "contradiction"), (4, "retrieval", "miss"))
    assert _verdict(unclear, ALL).startswith("HARNESS-FIRST/")


def test_confidence_and_what_would_change_it() -> None:
    few = _mix((4, "retrieval", "miss"), (1, "knowledge", "gap"))
    data = _data(10, ALL, {"oracle": set(range(5))}, set(range(5)))
    rec = recommend(data, "rag", few, Config(), {})
    assert rec.verdict == "RAG" and rec.confidence == "low" and "n too small" in rec.confidence_reason
    assert any("add cases" in w for w in rec.would_change)
    assert any("oracle arm's fix rate on fact failures fell below" in w for w in rec.would_change)

    many = _mix((30, "retrieval", "miss"))
    data = _data(40, ALL, {"oracle": set(range(30))}, set(range(30)))
    rec = recommend(data, "rag", many, Config(), {})
    assert (rec.verdict, rec.confidence) == ("RAG", "high")

    # the oracle does not fix the fact failures: evidence in the prompt is not what helps, so RAG is doubtful
    data = _data(40, ALL, {"oracle": set()}, set(range(30)))
    rec = recommend(data, "rag", many, Config(), {})
    assert rec.confidence == "low" and "the oracle fixes only 0%" in rec.confidence_reason

    # FINE-TUNE without a prompts arm: untested whether a prompt would do
    behav = _mix((20, "behaviour", "needs_training"))
    data = _data(40, ["closed-book", "oracle", "rag"], {}, set(range(20)))
    rec = recommend(data, "rag", behav, Config(), {}, {"reingest_s": 2.5})
    assert rec.verdict == "FINE-TUNE" and rec.confidence == "low" and "no prompts arm" in rec.confidence_reason
    assert rec.update_cost["reingest"]["text"] == "2.5 s" and rec.update_cost["retrain"]["text"] == "not measured"
    assert rec.candidate_arm is None and any("adapter:VERSION" in w for w in rec.would_change)


def test_shares_and_fix_rates_match_the_scipy_percentile_bootstrap() -> None:
    stats = pytest.importorskip("scipy.stats")
    attrs = _mix((7, "retrieval", "miss"), (5, "behaviour", "needs_training"), (3, "unclear", "contradiction"))
    data = _data(40, ALL, {"oracle": {0, 1, 2, 3, 4, 5, 9}}, set(range(15)))
    config = Config()
    rec = recommend(data, "rag", attrs, config, {})

    def ref(flags: list[float]) -> list[float]:
        ci = stats.bootstrap((np.array(flags),), np.mean, n_resamples=config.eval.bootstrap_resamples,
                             method="percentile", random_state=np.random.default_rng(config.eval.seed),
                             vectorized=True).confidence_interval  # fmt: skip
        return [ci.low, ci.high]

    retrieval = [1.0 if a.family == "retrieval" else 0.0 for a in attrs]
    assert rec.shares["retrieval"]["value"] == pytest.approx(7 / 15)
    assert rec.shares["retrieval"]["ci95"] == pytest.approx(ref(retrieval), abs=1e-6)
    assert rec.shares["unclear"]["value"] == pytest.approx(3 / 15)
    oracle = rec.fix_rates["oracle"]
    assert oracle["value"] == pytest.approx(7 / 15) and oracle["n"] == 15
    assert oracle["ci95"] == pytest.approx(
        ref([1.0 if i in {0, 1, 2, 3, 4, 5, 9} else 0.0 for i in range(15)]), abs=1e-6
    )
    assert oracle["by_family"]["retrieval"] == {"value": pytest.approx(6 / 7), "n": 7}
    assert set(rec.shares) == {"knowledge", "retrieval", "generation", "behaviour", "operations", "unclear"}
