"""Resume guards on scorers and models, the LLM judge wired from [eval] judge, and `runs export`."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ragtune.cli.main import cli
from ragtune.config import EndpointSection
from ragtune.errors import HarnessError
from ragtune.harness.export import export_rows
from ragtune.harness.runs import execute_run, list_runs, load_results
from tests.harness_runs.conftest import CASES, write_cases
from tests.harness_runs.fakes import SCRIPT, Scripted
from tests.harness_runs.test_endpoint_arm import server  # noqa: F401  (fixture: a real HTTP endpoint on loopback)

VERDICT = '{"verdict": "correct", "reason": "the same fact"}'


class _Renamed(Scripted):
    def identity(self) -> dict[str, str]:
        return {"backend": "scripted", "model": "another"}


def test_resume_refuses_changed_scorers_or_model_but_not_batch_size(handbook: Any, cases_file: Path) -> None:
    handbook.generator = Scripted(SCRIPT)
    handbook.config.eval.batch_size = 2
    execute_run(handbook, cases_file, ["closed-book"], name="guarded")
    handbook.config.eval.batch_size = 3  # speed, not answers: resuming is fine
    execute_run(handbook, cases_file, ["closed-book"], name="guarded")
    handbook.config.eval.scorers = ["accuracy"]
    with pytest.raises(HarnessError, match=r"different \[eval\] scorers \(accuracy, content.f1.*; now accuracy\)"):
        execute_run(handbook, cases_file, ["closed-book"], name="guarded")
    handbook.config.eval.scorers = [
        "accuracy", "content.f1", "staleness", "citations.support", "format", "retrieval"
    ]  # fmt: skip
    handbook.generator = _Renamed(SCRIPT)
    with pytest.raises(HarnessError, match=r"different model or settings for arm closed-book .*another"):
        execute_run(handbook, cases_file, ["closed-book"], name="guarded")
    assert handbook.store.db.execute("SELECT COUNT(*) FROM run_results").fetchone()[0] == len(CASES)


def test_judge_is_the_project_generator_when_configured(handbook: Any, cases_file: Path) -> None:
    gen = Scripted({"Answer to grade": VERDICT} | SCRIPT)  # the judge's prompt quotes the question too
    handbook.generator = gen
    handbook.config.eval.scorers = ["accuracy", "content.judge"]
    handbook.config.eval.judge = "generator"
    execute_run(handbook, cases_file, ["closed-book"], name="judged")
    rows = {r["case_id"]: r for r in load_results(handbook.store, "judged")["closed-book"]}
    assert rows["capital"]["scores"]["content.judge"] == ("scored", 1.0)
    reason = handbook.store.db.execute(
        "SELECT reason FROM run_scores WHERE run='judged' AND case_id='capital' AND scorer='content.judge'"
    ).fetchone()[0]
    assert reason == "the judge scripted says correct: the same fact"
    graded = [p for p in gen.prompts if "Answer to grade" in p[-1]["content"]]
    assert len(graded) == len(CASES)  # every case has acceptable answers, so every one was sent to the judge
    settings = list_runs(handbook.store)[0].settings
    assert settings["judge"] == {"backend": "scripted", "model": "scripted"}


def test_judge_without_a_configured_model_stays_unscored(handbook: Any, cases_file: Path) -> None:
    handbook.generator = Scripted(SCRIPT)
    handbook.config.eval.scorers = ["content.judge"]
    execute_run(handbook, cases_file, ["closed-book"], name="nojudge")
    rows = load_results(handbook.store, "nojudge")["closed-book"]
    assert {r["scores"]["content.judge"] for r in rows} == {("unscored", None)}


def test_judge_naming_an_unknown_endpoint_fails_before_the_run(handbook: Any, cases_file: Path) -> None:
    handbook.config.eval.scorers = ["content.judge"]
    handbook.config.eval.judge = "grader"
    with pytest.raises(HarnessError, match=r"\[eval\] judge = 'grader': no \[endpoints.grader\] table"):
        execute_run(handbook, cases_file, ["closed-book"], name="x")
    assert list_runs(handbook.store) == []


def test_judge_endpoint_over_http_falls_back_on_a_non_json_reply(
    handbook: Any,
    cases_file: Path,
    server: str,  # noqa: F811
) -> None:
    handbook.generator = Scripted({"rate limit": "600 requests per minute"})
    handbook.config.endpoints["grader"] = EndpointSection(base_url=server, model="grader")
    handbook.config.eval.scorers = ["content.judge"]
    handbook.config.eval.judge = "grader"
    execute_run(handbook, cases_file, ["closed-book"], name="http-judge")
    row = handbook.store.db.execute(
        "SELECT status, value, reason, details FROM run_scores WHERE run='http-judge' AND case_id='rate'"
    ).fetchone()
    # the endpoint replies "600 requests per minute [1]." (not a verdict): content.match decides, and says so
    assert (row["status"], row["value"]) == ("scored", 1.0)
    assert row["reason"].startswith("the judge's reply was not JSON")
    details = json.loads(row["details"])
    assert details["fallback"] == "content.match" and details["judge_output"].startswith("600 requests")
    france = handbook.store.db.execute(
        "SELECT reason FROM run_scores WHERE run='http-judge' AND case_id='capital'"
    ).fetchone()[0]
    assert "failed" in france and "fell back to content.match" in france  # the endpoint answers 500 for France


def test_export_writes_ragas_and_ragchecker_with_context_text(handbook: Any, cases_file: Path, tmp_path: Path) -> None:  # fmt: skip
    handbook.generator = Scripted(SCRIPT)
    execute_run(handbook, cases_file, ["closed-book", "rag"], name="ex")
    rows = export_rows(handbook.store, "ex", "rag")
    assert [r.case.id for r in rows] == [c["id"] for c in CASES]
    rate = next(r for r in rows if r.case.id == "rate")
    assert any("600 requests per minute" in c["text"] for c in rate.contexts)
    assert rate.scores["accuracy"] == 1.0

    runner = CliRunner()
    base = ["--project", str(handbook.root), "runs", "export", "ex", "--arm", "rag"]
    out = tmp_path / "ex.csv"
    result = runner.invoke(cli, [*base, "--to", "ragas", "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"run": "ex", "arm": "rag", "format": "ragas", "rows": 5, "path": str(out)}
    with out.open(newline="") as handle:
        table = list(csv.DictReader(handle))
    assert table[0]["user_input"] == CASES[0]["question"] and "600 requests" in table[0]["retrieved_contexts"]
    checker = tmp_path / "ex.json"
    assert runner.invoke(cli, [*base, "--to", "ragchecker", "-o", str(checker)]).exit_code == 0
    results = json.loads(checker.read_text())["results"]
    assert results[0]["query_id"] == "rate" and results[0]["retrieved_context"][0]["doc_id"] == "docs/pricing.md"
    refused = runner.invoke(cli, [*base, "--to", "ragchecker", "-o", str(checker)])
    assert refused.exit_code != 0 and "exists; pass --force" in str(refused.exception or refused.output)

    write_cases(cases_file, CASES[:2])
    with pytest.raises(HarnessError, match="the case file changed since run 'ex'"):
        export_rows(handbook.store, "ex", "rag")
    with pytest.raises(HarnessError, match="run 'ex' has no arm 'oracle'; its arms: closed-book, rag"):
        export_rows(handbook.store, "ex", "oracle")


def test_similarity_scorer_gets_the_project_embedder_in_a_run(handbook: Any, cases_file: Path) -> None:
    handbook.generator = Scripted(SCRIPT)
    handbook.config.eval.scorers = ["content.similarity"]
    execute_run(handbook, cases_file, ["closed-book"], name="sim")
    rows = {r["case_id"]: r for r in load_results(handbook.store, "sim")["closed-book"]}
    status, value = rows["capital"]["scores"]["content.similarity"]
    assert status == "scored" and value is not None and value > 0.5  # "Paris is the capital." vs "Paris" (MiniLM)
    assert rows["noevidence"]["scores"]["content.similarity"][1] < value  # "I don't know." vs "Ada"
