"""Runs on a real project (real SQLite, real MiniLM for retrieval) with the scripted generator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ragtune.errors import HarnessError, TuningError
from ragtune.harness.runs import execute_run, list_runs, load_results, summarize_run
from tests.harness_runs.conftest import CASES, write_cases
from tests.harness_runs.fakes import SCRIPT, Scripted


def test_three_arms_stored_scored_and_summarized(handbook: Any, cases_file: Path) -> None:
    gen = Scripted(SCRIPT)
    handbook.generator = gen
    info = execute_run(handbook, cases_file, ["closed-book", "rag", "oracle"], name="r1")
    assert info.finished_at is not None
    results = load_results(handbook.store, "r1")
    assert {arm: [r["case_id"] for r in rows] for arm, rows in results.items()} == {
        arm: [c["id"] for c in CASES] for arm in ("closed-book", "rag", "oracle")
    }
    oracle = {r["case_id"]: r for r in results["oracle"]}
    assert oracle["noevidence"]["error"] == "the case lists no evidence for the oracle"
    assert oracle["noevidence"]["label"] == "unscored"
    assert oracle["rate"]["label"] == "correct"
    rag = {r["case_id"]: r for r in results["rag"]}
    out = json.loads(handbook.store.db.execute(
        "SELECT output FROM run_results WHERE run='r1' AND arm='rag' AND case_id='rate'").fetchone()[0])  # fmt: skip
    assert out["citations"][0]["doc_id"] == "docs/pricing.md"
    assert any(c["status"] == "used" for c in out["chunks"])
    assert rag["rate"]["scores"]["citations.support"][0] == "scored"
    assert rag["fmt"]["label"] == "format"  # right (Paris) but four words where one was asked for

    summary = summarize_run(handbook, "r1")
    oracle_sum = summary["arms"]["oracle"]
    # three cases list no evidence for the oracle: counted as unscored, not averaged in as zeros
    assert (oracle_sum["n"], oracle_sum["unscored"], oracle_sum["errors"]) == (2, 3, 3)
    assert oracle_sum["accuracy"]["value"] == pytest.approx(1 / 2)
    cb = summary["arms"]["closed-book"]
    assert cb["n"] == 5 and cb["accuracy"]["value"] == pytest.approx(3 / 5)
    lo, hi = cb["accuracy"]["ci95"]
    assert 0 <= lo <= 0.6 <= hi <= 1
    assert cb["format_ok"] == {"value": 0.0, "n": 1}
    assert cb["staleness_rate"] == {"value": 0.0, "n": 1}
    # five cases, latency_sample 5: the first warms the model, the four others are timed alone on the wall clock
    # (the generator's own 2.0 ms is not it)
    assert cb["latency_n"] == 4 and cb["p50_ms"] > 0 and cb["p50_ms"] != 2.0 and cb["tokens_per_1k"] > 0
    assert cb["cost_per_1k"] >= 0 and cb["labels"] == {"correct": 2, "wrong": 2, "stale": 0, "format": 1, "unscored": 0}
    assert summary["finished"] and cb["missing"] == 0


def test_rerun_of_a_finished_run_asks_nothing(handbook: Any, cases_file: Path) -> None:
    handbook.generator = Scripted(SCRIPT)
    execute_run(handbook, cases_file, ["closed-book"], name="again")
    gen = Scripted(SCRIPT)
    handbook.generator = gen
    execute_run(handbook, cases_file, ["closed-book"], name="again")
    assert gen.prompts == []
    assert handbook.store.db.execute("SELECT COUNT(*) FROM run_results").fetchone()[0] == len(CASES)


def test_resume_refuses_changed_cases_or_arms(handbook: Any, tmp_path: Path) -> None:
    handbook.generator = Scripted(SCRIPT)
    path = write_cases(tmp_path / "c.jsonl")
    execute_run(handbook, path, ["closed-book"], name="fixed")
    with pytest.raises(HarnessError, match="with arms closed-book, not closed-book,prompts"):
        execute_run(handbook, path, ["closed-book", "prompts"], name="fixed")
    write_cases(path, CASES[:2])
    with pytest.raises(HarnessError, match="different case file"):
        execute_run(handbook, path, ["closed-book"], name="fixed")
    assert [r.run for r in list_runs(handbook.store)] == ["fixed"]


def test_prompts_arm_keeps_every_variant(handbook: Any, cases_file: Path) -> None:
    gen = Scripted(SCRIPT)
    handbook.generator = gen
    execute_run(handbook, cases_file, ["prompts"], name="p")
    assert len(gen.prompts) == 3 * len(CASES)
    row = handbook.store.db.execute("SELECT output FROM run_results WHERE case_id = 'capital'").fetchone()
    assert json.loads(row[0])["variants"] == dict.fromkeys(("plain", "concise", "fewshot"), "Paris is the capital.")
    variants = summarize_run(handbook, "p")["arms"]["prompts"]["variants"]
    assert variants["concise"] == {"accuracy": {"value": 0.6, "n": 5}, "format_ok": {"value": 0.0, "n": 1}}
    fewshot = next(p for p in gen.prompts if len(p) > 2)
    assert [m["role"] for m in fewshot] == ["system", "user", "assistant", "user", "assistant", "user"]


def test_unknown_arms_and_unknown_model_versions_are_one_line_errors(handbook: Any, cases_file: Path) -> None:
    with pytest.raises(HarnessError, match="unknown arm 'bogus'; known: closed-book, rag, oracle, prompts"):
        execute_run(handbook, cases_file, ["bogus"])
    with pytest.raises(TuningError, match=r"no model version or alias 'v1' \(no model versions yet"):
        execute_run(handbook, cases_file, ["closed-book", "adapter:v1"])
    with pytest.raises(HarnessError, match=r"no \[endpoints.prod\] table"):
        execute_run(handbook, cases_file, ["endpoint:prod"])
    assert list_runs(handbook.store) == []  # arms are checked before a run is created


def test_bundled_handbook_cases_are_valid_and_varied() -> None:
    from importlib.resources import files

    from ragtune.harness.cases import load_cases

    path = Path(str(files("ragtune") / "examples" / "handbook" / "cases.jsonl"))
    cases = load_cases(path)
    assert len(cases) >= 60
    assert sum(bool(c.stale_answers) for c in cases) >= 10
    assert sum(c.format is not None for c in cases) >= 8
    assert sum(c.as_of is not None and c.as_of.isoformat() < "2026-02-01" for c in cases) >= 10  # past weeks


def test_the_run_store_interface_reads_what_the_run_wrote(handbook: Any, cases_file: Path) -> None:
    from ragtune.harness.store import RunStore, SqliteRuns, load_arm_results

    handbook.generator = Scripted(SCRIPT)
    execute_run(handbook, cases_file, ["closed-book", "rag"], name="via-store")
    runs: RunStore = SqliteRuns(handbook.store)
    info = runs.get_run("via-store")
    assert info is not None and info.finished_at is not None and info.arms == ["closed-book", "rag"]
    assert [r.run for r in runs.list_runs()] == ["via-store"]
    assert runs.count_results("via-store") == 2 * len(CASES)
    assert runs.stored_case_ids("via-store", "rag") == {c["id"] for c in CASES}
    assert runs.load_results("via-store") == load_results(handbook.store, "via-store")
    rows = runs.result_rows("via-store", "rag")
    assert [r["case_id"] for r in rows] == [c["id"] for c in CASES]
    scores = runs.score_rows("via-store", "rag")
    assert scores and {s["arm"] for s in scores} == {"rag"}
    by_case = load_arm_results(handbook.store, "via-store")
    assert list(by_case) == [c["id"] for c in CASES]
    rate = by_case["rate"]["rag"]
    assert rate.label == "correct" and rate.citations[0]["doc_id"] == "docs/pricing.md"
    assert list(rate.scores) == sorted(rate.scores)
    assert runs.redacted_cases("via-store") == {}
