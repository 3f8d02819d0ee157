"""Other tools' data sets through a run: a RAGAS test set with reference contexts answered by the oracle arm, and
`runs export --to deepeval`."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from ragtune.cli.eval_cmd import runs_export
from ragtune.cli.main import cli
from ragtune.corpus.ingest import ingest_paths
from ragtune.corpus.loaders import Defaults
from ragtune.harness.cases import load_cases
from ragtune.harness.export import EXPORTERS, export_rows
from ragtune.harness.runs import execute_run, load_results
from tests.conftest import write
from tests.harness_runs.fakes import Scripted

PASSAGE = "Refunds are paid back within 30 days of the request."
# a RAGAS test set as its generator writes one: ids of its own knowledge-graph nodes, not ragtune document ids
TESTSET = [
    {"user_input": "How long do refunds take?", "reference": "30 days", "reference_contexts": [PASSAGE],
     "reference_context_ids": ["7f3c9a52-node"], "synthesizer_name": "single_hop_specific_query_synthesizer"},
    {"user_input": "What is the Pro plan's rate limit?", "reference": "600 requests per minute",
     "reference_contexts": ["The Pro plan's API rate limit is 600 requests per minute."]},
]  # fmt: skip
SCRIPT = {"refunds take": "Refunds take 30 days [1].", "rate limit": "600 requests per minute [1]."}


def write_testset(path: Path) -> Path:
    """The test set as RAGAS's own ``EvaluationDataset.to_csv`` writes one: list cells as Python reprs."""
    columns = sorted({k for row in TESTSET for k in row})
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=columns)
        writer.writeheader()
        writer.writerows({k: str(v) if isinstance(v, list) else v for k, v in row.items()} for row in TESTSET)
    return path


def test_oracle_answers_an_imported_ragas_testset_from_its_reference_contexts(handbook: Any, tmp_path: Path) -> None:
    cases_path = tmp_path / "cases.jsonl"
    imported = CliRunner().invoke(
        cli, ["cases", "import", "--from", "ragas", str(write_testset(tmp_path / "testset.csv")), "-o", str(cases_path)]
    )
    assert imported.exit_code == 0, imported.output
    cases = load_cases(cases_path)
    assert cases[0].evidence_texts == [PASSAGE] and cases[0].evidence == ["7f3c9a52-node"]

    generator = Scripted(SCRIPT)
    handbook.generator = generator
    execute_run(handbook, cases_path, ["oracle"], name="ragas-oracle")
    results = {r["case_id"]: r for r in load_results(handbook.store, "ragas-oracle")["oracle"]}
    assert all(r["error"] is None for r in results.values())
    assert results["ragas-1"]["label"] == "correct" and results["ragas-2"]["label"] == "correct"
    prompts = ["\n".join(m["content"] for m in prompt) for prompt in generator.prompts]
    assert any(PASSAGE in p for p in prompts)  # the passage from the case file reached the model as a source
    support = handbook.store.db.execute(
        "SELECT value, reason FROM run_scores WHERE run = 'ragas-oracle' AND case_id = 'ragas-1' "
        "AND scorer = 'citations.support'"
    ).fetchone()
    assert support is not None and support[0] == 1.0, support  # checked against the case's passage

    rows = {r.case.id: r for r in export_rows(handbook.store, "ragas-oracle", "oracle")}
    assert rows["ragas-1"].contexts == [{"doc_id": "case-passage", "chunk_id": "case-passage#1", "text": PASSAGE}]
    out = tmp_path / "oracle.json"
    runner = CliRunner()
    base = ["--project", str(handbook.root), "runs", "export", "ragas-oracle", "--arm", "oracle"]
    result = runner.invoke(cli, [*base, "--to", "deepeval", "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {
        "run": "ragas-oracle", "arm": "oracle", "format": "deepeval", "rows": 2, "path": str(out),
    }  # fmt: skip
    first = json.loads(out.read_text(encoding="utf-8"))[0]
    assert (first["name"], first["context"], first["retrieval_context"]) == ("ragas-1", [PASSAGE], [PASSAGE])
    assert first["additional_metadata"]["scores"]["accuracy"] == 1.0

    bad = runner.invoke(cli, [*base, "--to", "deepeval", "-o", str(tmp_path / "oracle.csv")])
    assert bad.exit_code != 0 and not (tmp_path / "oracle.csv").exists()
    assert "deepeval export writes .json, not '.csv'" in str(bad.exception or bad.output)


def test_oracle_keeps_the_askers_groups_for_corpus_evidence_but_not_for_the_case_authors_passages(
    handbook: Any, docs: Path, tmp_path: Path
) -> None:
    secret = write(docs / "payroll.md", "# Payroll\n\nSalaries are paid on the 25th of each month.\n")
    ingest_paths(handbook, [secret], Defaults(groups=("hr",)))
    case = {"id": "pay", "question": "When are salaries paid?", "answers": ["25th"], "evidence": ["docs/payroll.md"],
            "evidence_texts": ["Pay day is the 25th."], "groups": ["sales"]}  # fmt: skip
    cases = [case, case | {"id": "pay-hr", "groups": ["hr"]}]
    cases_path = write(tmp_path / "cases.jsonl", "".join(json.dumps(c) + "\n" for c in cases))
    generator = Scripted({"salaries": "On the 25th [1]."})
    handbook.generator = generator
    execute_run(handbook, cases_path, ["oracle"], name="groups")
    sales, hr = ("\n".join(m["content"] for m in prompt) for prompt in generator.prompts)
    assert "Pay day is the 25th." in sales  # the case author's own data
    assert "Salaries are paid" not in sales  # a document of a group the asker is not in never reaches the model
    assert "Salaries are paid" in hr and "Pay day is the 25th." in hr  # the asker in hr sees both


def test_export_formats_are_the_commands_choices() -> None:
    to = next(p for p in runs_export.params if p.name == "fmt")
    assert list(getattr(to.type, "choices", [])) == list(EXPORTERS)
