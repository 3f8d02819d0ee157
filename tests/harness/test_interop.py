"""Importers on the real RAGAS, RAGChecker and IFEval files, a DeepEval fixture, the exporters and round trips."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import BaseModel, ValidationError

from ragtune.cli.cases_cmd import cases_group
from ragtune.errors import HarnessError
from ragtune.harness.cases import load_cases
from ragtune.harness.interop import (
    IMPORTERS,
    RAGAS_LIST_COLUMNS,
    ExportRow,
    Imported,
    export_deepeval,
    export_ragas,
    export_ragchecker,
    import_deepeval,
    import_ifeval,
    import_ragas,
    import_ragchecker,
    register_importer,
)
from ragtune.harness.model import Case, Output
from tests.conftest import SHARED_DATA, write


def shared(relative: str) -> Path:
    path = SHARED_DATA / relative
    if not path.is_file():
        pytest.skip(f"{path} is absent: the shared data sets are not checked out beside the project")
    return path


def test_registry_holds_the_four_formats() -> None:
    assert set(IMPORTERS) >= {"ragas", "deepeval", "ragchecker", "ifeval"}
    assert IMPORTERS["ragas"] is import_ragas and IMPORTERS["ifeval"] is import_ifeval


def test_register_importer_adds_a_format(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ragtune.harness.interop.IMPORTERS", dict(IMPORTERS))
    from ragtune.harness import interop

    @register_importer("mine")
    def import_mine(path: Path) -> Imported:
        return import_ragas(path)

    assert interop.IMPORTERS["mine"] is import_mine


# --- RAGAS ------------------------------------------------------------------------------------------------------


def test_ragas_hotpotqa_json_keeps_source_ids_and_only_correct_answers() -> None:
    path = shared("ragas/hotpotqa_factual.json")
    cases, report = import_ragas(path)
    records = json.loads(path.read_text(encoding="utf-8"))
    assert (report.records, report.imported, report.skipped) == (10, 10, [])
    assert [c.id for c in cases] == [r["id"] for r in records]
    for case, record in zip(cases, records, strict=True):
        right = [a for a, s in zip(record["answers"], record["scores"], strict=True) if s == 1]
        assert case.question == record["question"] and case.answers == right
    assert report.dropped["context"].count == 10 and "evidence" in report.dropped["context"].why
    assert report.dropped["answers (graded wrong)"].count == 10


def test_ragas_wikiqa_csv_maps_every_row() -> None:
    path = shared("ragas/ragas-wikiqa.csv")
    cases, report = import_ragas(path)
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == report.records == report.imported == len(cases) == 232
    assert [c.id for c in cases] == [f"ragas-{n}" for n in range(1, 233)]
    assert [c.answers for c in cases] == [[r["correct_answer"].strip()] for r in rows]
    assert report.dropped["incorrect_answer"].count == 232


def test_ragas_hf_doc_qa_skips_the_row_without_answer_and_the_broken_row() -> None:
    cases, report = import_ragas(shared("ragas/hf_doc_qa_eval.csv"))
    assert (report.records, report.imported) == (66, 64)
    skipped = {s.where.rsplit(":", 1)[1]: s.reason for s in report.skipped}
    assert skipped.keys() == {"100", "102"}
    assert skipped["100"].startswith("no reference answer")
    assert "do not line up with the header" in skipped["102"]  # upstream's broken quote: ase, d",64
    assert cases[0].question == "What architecture is the `tokenizers-linux-x64-musl` binary designed for?"


def test_ragas_graded_responses_become_answers_only_when_they_pass() -> None:
    cases, report = import_ragas(shared("ragas/evaluation_results.csv"))
    assert (report.records, report.imported, len(report.skipped)) == (10, 6, 4)
    assert cases[0].answers == ["Paris is the capital of France."]
    assert all("graded 'fail'" in s.reason for s in report.skipped)
    assert "2+2 equals 5." not in [a for c in cases for a in c.answers]


@pytest.mark.parametrize(("name", "records"), [("annotated_data.json", 21), ("sample_annotated_summary.json", 19)])
def test_ragas_metric_annotations_have_no_reference_so_nothing_imports(name: str, records: int) -> None:
    cases, report = import_ragas(shared(f"ragas/{name}"))
    assert cases == [] and report.records == records == len(report.skipped)
    assert report.skipped[0].reason.startswith("no reference answer")


def test_ragas_testset_and_jsonl_shapes(tmp_path: Path) -> None:
    lines = [
        {
            "user_input": "What is the Pro plan's limit?",
            "reference": "600 requests per minute",
            "reference_contexts": ["The Pro plan allows 600 requests per minute."],
            "reference_context_ids": ["docs/pricing.md"],
            "synthesizer_name": "single_hop_specific_query_synthesizer",
            "persona_name": "Developer",
        },
        {"user_input": [{"content": "hi", "type": "human"}], "reference": "hello"},
        {"question": "Old RAGAS?", "ground_truths": ["yes", "indeed"], "answer": "no", "contexts": ["..."]},
        {"id": "dup", "question": "One", "ground_truth": "1"},
        {"id": "dup", "question": "Two", "ground_truth": "2"},
    ]
    path = write(tmp_path / "testset.jsonl", "\n".join(json.dumps(x) for x in lines) + "\n{broken\n")
    cases, report = import_ragas(path)
    assert [c.id for c in cases] == ["ragas-1", "ragas-3", "dup"]
    first = cases[0]
    assert first.evidence == ["docs/pricing.md"] and first.answers == ["600 requests per minute"]
    assert first.evidence_texts == ["The Pro plan allows 600 requests per minute."]  # gold passages, kept as text
    assert first.tags == ["synthesizer_name:single_hop_specific_query_synthesizer", "persona_name:Developer"]
    assert cases[1].answers == ["yes", "indeed"]
    reasons = {s.where.rsplit(":", 1)[1]: s.reason for s in report.skipped}
    assert reasons["2"] == "no question: user_input/question/query is a conversation (multi-turn sample)"
    assert reasons["5"].startswith("duplicate id 'dup' (first at")
    assert reasons["6"].startswith("not valid JSON")
    assert report.records == 6
    assert set(report.dropped) == {"answer", "contexts"}


# --- RAGChecker, IFEval, DeepEval -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["checking_inputs.json", "checking_outputs.json"])
def test_ragchecker_examples(name: str) -> None:
    path = shared(f"ragchecker/examples/{name}")
    cases, report = import_ragchecker(path)
    results = json.loads(path.read_text(encoding="utf-8"))["results"]
    assert report.records == report.imported == len(results) == 2
    assert [(c.id, c.question, c.answers) for c in cases] == [
        (r["query_id"], r["query"], [r["gt_answer"]]) for r in results
    ]
    assert report.dropped["retrieved_context"].count == 2


def test_ifeval_prompts_become_format_cases(tmp_path: Path) -> None:
    path = shared("ifeval/input_data.jsonl")
    cases, report = import_ifeval(path)
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert report.records == report.imported == len(records) == 372
    for case, record in zip(cases, records, strict=True):
        assert case.id == f"ifeval-{record['key']}" and case.question == record["prompt"] and case.answers == []
        assert case.format is not None and case.format.ifeval is not None
        assert case.format.ifeval.instruction_id_list == record["instruction_id_list"]
        assert case.format.ifeval.kwargs == record["kwargs"]
    out = tmp_path / "ifeval.jsonl"
    out.write_text("".join(c.model_dump_json(exclude_defaults=True) + "\n" for c in cases), encoding="utf-8")
    assert load_cases(out) == cases  # what the importer makes is a valid case file


def test_ifeval_drops_none_kwargs_and_skips_misaligned(tmp_path: Path) -> None:
    lines = [
        {
            "key": 7,
            "prompt": "Answer in lowercase.",
            "instruction_id_list": ["change_case:english_lowercase", "length_constraints:number_words"],
            "kwargs": [{"num_words": None}, {"relation": "less than", "num_words": 50, "num_highlights": None}],
        },
        {"key": 8, "prompt": "Two ids, one kwargs.", "instruction_id_list": ["a:b", "c:d"], "kwargs": [{}]},
        {"prompt": "no instructions", "response": "..."},
    ]
    path = write(tmp_path / "input_data.jsonl", "\n".join(json.dumps(x) for x in lines))
    cases, report = import_ifeval(path)
    assert [c.id for c in cases] == ["ifeval-7"]
    assert cases[0].format and cases[0].format.ifeval
    assert cases[0].format.ifeval.kwargs == [{}, {"relation": "less than", "num_words": 50}]
    assert "kwargs has 1 entries but instruction_id_list has 2" in report.skipped[0].reason
    assert report.skipped[1].reason.startswith("no instruction_id_list")


# Goldens as DeepEval's EvaluationDataset.save_as writes them (deepeval/dataset/dataset.py): JSON is a list of
# objects; CSV has the same columns, with context and retrieval_context joined by "|".
DEEPEVAL_GOLDENS = [
    {
        "input": "What is the Pro plan's rate limit?",
        "actual_output": None,
        "expected_output": "600 requests per minute",
        "retrieval_context": None,
        "context": ["The Pro plan allows 600 requests per minute.", "Limits reset every minute."],
        "name": "pro-limit",
        "comments": None,
        "source_file": "docs/pricing.md",
        "tools_called": None,
        "expected_tools": None,
        "additional_metadata": {"topic": "pricing"},
        "custom_column_key_values": None,
    },
    {
        "input": "Who signs the expense reports?",
        "actual_output": "The CFO.",
        "expected_output": "Team leads sign them.",
        "retrieval_context": ["Expense reports are signed by team leads."],
        "context": None,
        "name": None,
        "comments": None,
        "source_file": None,
        "tools_called": None,
        "expected_tools": None,
        "additional_metadata": None,
        "custom_column_key_values": None,
    },
    {"input": "A golden without an expected output", "expected_output": None, "context": ["..."]},
]


def test_deepeval_json_goldens(tmp_path: Path) -> None:
    path = write(tmp_path / "20240601_120000.json", json.dumps(DEEPEVAL_GOLDENS, indent=4))
    cases, report = import_deepeval(path)
    assert [(c.id, c.question, c.answers) for c in cases] == [
        ("pro-limit", "What is the Pro plan's rate limit?", ["600 requests per minute"]),
        ("deepeval-2", "Who signs the expense reports?", ["Team leads sign them."]),
    ]
    assert report.skipped[0].reason.startswith("no expected_output")
    # DeepEval's context is the ideal passages: kept as the case's gold passages
    assert cases[0].evidence_texts == ["The Pro plan allows 600 requests per minute.", "Limits reset every minute."]
    assert {"retrieval_context", "actual_output", "source_file", "additional_metadata"} <= set(report.dropped)
    assert "context" not in report.dropped


def test_deepeval_csv_goldens(tmp_path: Path) -> None:
    columns = [
        "input",
        "actual_output",
        "expected_output",
        "retrieval_context",
        "context",
        "name",
        "comments",
        "source_file",
        "tools_called",
        "expected_tools",
        "additional_metadata",
        "custom_column_key_values",
    ]
    path = tmp_path / "goldens.csv"
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(columns)
        for golden in DEEPEVAL_GOLDENS:
            cells = {
                k: ("|".join(v) if isinstance(v, list) else json.dumps(v) if isinstance(v, dict) else v)
                for k, v in golden.items()
            }
            writer.writerow([cells.get(c) for c in columns])
    cases, report = import_deepeval(path)
    assert [c.id for c in cases] == ["pro-limit", "deepeval-2"]
    assert cases[0].evidence_texts == ["The Pro plan allows 600 requests per minute.", "Limits reset every minute."]
    assert report.skipped[0].where == f"{path}:4"


# --- errors -----------------------------------------------------------------------------------------------------


def test_file_level_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match=r"nope\.csv: no such file"):
        import_ragas(tmp_path / "nope.csv")
    with pytest.raises(HarnessError, match=r"unsupported file type '\.parquet'"):
        import_ragas(write(tmp_path / "data.parquet", "x"))
    with pytest.raises(HarnessError, match=r"bad\.json:2: not valid JSON"):
        import_ragchecker(write(tmp_path / "bad.json", '{"results": [\n  {,}]}'))
    with pytest.raises(HarnessError, match="expected a JSON array of records"):
        import_ragchecker(write(tmp_path / "scalar.json", "42"))
    (tmp_path / "latin.csv").write_bytes(b"question,reference\ncaf\xe9,x\n")
    with pytest.raises(HarnessError, match=r"latin\.csv: not valid UTF-8"):
        import_ragas(tmp_path / "latin.csv")


# --- exporters and round trips ----------------------------------------------------------------------------------


def rows() -> list[ExportRow]:
    one = Case(
        id="q1",
        question="What is the Pro plan's limit?",
        answers=["600 requests per minute", "600 rpm"],
        evidence=["docs/pricing.md"],
        evidence_texts=['The Pro plan allows 600 requests per minute, "burst" included.'],
    )
    two = Case(id="q2", question='Who signs, "exactly"?\nSecond line, with comma', answers=["Team leads"])
    return [
        ExportRow(
            one,
            Output(case_id="q1", arm="rag", answer="600 requests per minute [1]"),
            [{"doc_id": "docs/pricing.md", "chunk_id": "docs/pricing.md@1#0", "text": "The Pro plan allows 600."}],
            {"exact_match": 1.0, "faithfulness": None},
        ),
        ExportRow(two, Output(case_id="q2", arm="rag", answer="The CFO."), [], {"exact_match": 0.0}),
    ]


def test_export_ragas_jsonl_shape(tmp_path: Path) -> None:
    path = tmp_path / "ragas.jsonl"
    export_ragas(rows(), path)
    first, second = (json.loads(line) for line in path.read_text(encoding="utf-8").splitlines())
    assert first == {
        "id": "q1",
        "user_input": "What is the Pro plan's limit?",
        "retrieved_contexts": ["The Pro plan allows 600."],
        "retrieved_context_ids": ["docs/pricing.md"],
        "response": "600 requests per minute [1]",
        "reference": "600 requests per minute",
        "ground_truths": ["600 requests per minute", "600 rpm"],
        "reference_contexts": ['The Pro plan allows 600 requests per minute, "burst" included.'],
        "reference_context_ids": ["docs/pricing.md"],
        "exact_match": 1.0,
        "faithfulness": None,
    }
    assert second["reference"] == "Team leads" and second["ground_truths"] is None and second["exact_match"] == 0.0


def test_export_ragas_csv_shape(tmp_path: Path) -> None:
    path = tmp_path / "ragas.csv"
    export_ragas(rows(), path)
    with path.open(encoding="utf-8", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert list(table[0])[:6] == [
        "id",
        "user_input",
        "retrieved_contexts",
        "retrieved_context_ids",
        "response",
        "reference",
    ]
    assert json.loads(table[0]["retrieved_contexts"]) == ["The Pro plan allows 600."]
    # a list cell is a JSON array even when empty, so that one json.loads per list column reads every row
    assert (table[0]["exact_match"], table[0]["faithfulness"], table[1]["ground_truths"]) == ("1.0", "", "[]")


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_ragas_round_trip(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"results{suffix}"
    export_ragas(rows(), path)
    cases, report = import_ragas(path)
    assert report.skipped == []
    assert [(c.id, c.question, c.answers, c.evidence, c.evidence_texts) for c in cases] == [
        (r.case.id, r.case.question, r.case.answers, r.case.evidence, r.case.evidence_texts) for r in rows()
    ]


class RagasSingleTurnSample(BaseModel):
    """The fields and types of ragas.dataset_schema.SingleTurnSample (ragas 0.4.3, read from its source; ragas is
    not installed here: docs/decisions.md). Unknown columns are ignored, as pydantic's default does for RAGAS."""

    user_input: str | None = None
    retrieved_contexts: list[str] | None = None
    reference_contexts: list[str] | None = None
    retrieved_context_ids: list[str | int] | None = None
    reference_context_ids: list[str | int] | None = None
    response: str | None = None
    multi_responses: list[str] | None = None
    reference: str | None = None
    rubrics: dict[str, str] | None = None
    persona_name: str | None = None
    query_style: str | None = None
    query_length: str | None = None


def test_ragas_csv_loads_the_way_ragas_reads_a_csv(tmp_path: Path) -> None:
    """RAGAS 0.4 has no CSV reader: a CSV reaches EvaluationDataset.from_pandas through pandas.read_csv, which
    leaves list cells as text and empty cells as NaN. With the list columns parsed by json.loads and
    keep_default_na=False (docs/eval.md), every row validates as a SingleTurnSample; without them none does."""
    pd = pytest.importorskip("pandas")
    path = tmp_path / "results.csv"
    export_ragas(rows(), path)
    frame = pd.read_csv(path, keep_default_na=False, converters={c: json.loads for c in RAGAS_LIST_COLUMNS})
    samples = [RagasSingleTurnSample(**record) for record in frame.to_dict(orient="records")]  # from_pandas
    assert samples[0].retrieved_contexts == ["The Pro plan allows 600."]
    assert samples[0].reference_contexts == rows()[0].case.evidence_texts
    assert samples[1].retrieved_contexts == [] and samples[1].reference == "Team leads"
    with pytest.raises(ValidationError, match="retrieved_contexts"):  # read as RAGAS 0.2's from_csv did
        RagasSingleTurnSample(**pd.read_csv(path).to_dict(orient="records")[0])


def test_export_deepeval_writes_llm_test_case_fields(tmp_path: Path) -> None:
    path = tmp_path / "out" / "deepeval.json"
    export_deepeval(rows(), path)
    first, second = json.loads(path.read_text(encoding="utf-8"))
    # the keys add_goldens_from_json_file reads by default, and add_test_cases_from_json_file reads when named
    # (deepeval 4.3.1: tried once in a throwaway virtual environment, docs/decisions.md)
    assert first == {
        "name": "q1",
        "input": "What is the Pro plan's limit?",
        "actual_output": "600 requests per minute [1]",
        "expected_output": "600 requests per minute",
        "context": ['The Pro plan allows 600 requests per minute, "burst" included.'],
        "retrieval_context": ["The Pro plan allows 600."],
        "input_token_count": 0,
        "output_token_count": 0,
        "additional_metadata": {
            "arm": "rag",
            "answers": ["600 requests per minute", "600 rpm"],
            "stale_answers": [],
            "evidence": ["docs/pricing.md"],
            "retrieval_context_ids": ["docs/pricing.md"],
            "tags": [],
            "scores": {"exact_match": 1.0, "faithfulness": None},
            "latency_ms": 0.0,
            "error": None,
        },
    }
    assert second["context"] is None and second["retrieval_context"] == []
    cases, report = import_deepeval(path)  # and back: id, question, first answer, passages
    assert [(c.id, c.question, c.answers, c.evidence_texts) for c in cases] == [
        (r.case.id, r.case.question, r.case.answers[:1], r.case.evidence_texts) for r in rows()
    ]
    assert report.skipped == []
    with pytest.raises(HarnessError, match=r"DeepEval export writes \.json"):
        export_deepeval(rows(), tmp_path / "x.jsonl")


def test_export_ragchecker_shape_and_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "out" / "ragchecker.json"
    export_ragchecker(rows(), path)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["results"][0] == {
        "query_id": "q1",
        "query": "What is the Pro plan's limit?",
        "gt_answer": "600 requests per minute",
        "response": "600 requests per minute [1]",
        "retrieved_context": [{"doc_id": "docs/pricing.md", "text": "The Pro plan allows 600."}],
        "metrics": {"exact_match": 1.0},
    }
    cases, _ = import_ragchecker(path)
    # RAGChecker holds one reference answer: the first one comes back
    assert [(c.id, c.question, c.answers) for c in cases] == [
        (r.case.id, r.case.question, r.case.answers[:1]) for r in rows()
    ]


def test_real_ragchecker_input_round_trips(tmp_path: Path) -> None:
    source = shared("ragchecker/examples/checking_inputs.json")
    results = json.loads(source.read_text(encoding="utf-8"))["results"]
    cases, _ = import_ragchecker(source)
    exported = [
        ExportRow(case, Output(case.id, "rag", r["response"]), r["retrieved_context"])
        for case, r in zip(cases, results, strict=True)
    ]
    path = tmp_path / "again.json"
    export_ragchecker(exported, path)
    assert json.loads(path.read_text(encoding="utf-8")) == {"results": results}


def test_export_refuses_clashing_score_names_and_unknown_extensions(tmp_path: Path) -> None:
    row = rows()[1]
    row.scores = {"response": 1.0}
    with pytest.raises(HarnessError, match="clashes with a RAGAS column"):
        export_ragas([row], tmp_path / "x.jsonl")
    with pytest.raises(HarnessError, match=r"writes \.jsonl or \.csv"):
        export_ragas(rows(), tmp_path / "x.parquet")


# --- the command line (the group is registered in cli/main.py) ---------------------------------------------------


def test_cli_validate(tmp_path: Path) -> None:
    runner = CliRunner()
    good = write(tmp_path / "good.jsonl", '{"id": "a", "question": "q", "format": {"regex": "[0-9]+"}}\n')
    result = runner.invoke(cases_group, ["validate", str(good)])
    assert result.exit_code == 0 and "1 cases, all valid (format rules: 1 regex)" in result.stdout
    bad = write(tmp_path / "bad.jsonl", '{"id": "a", "question": "q", "format": {"regex": "("}}\n{"id": "a"}\n')
    result = runner.invoke(cases_group, ["validate", str(bad)])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [  # each problem once, then the summary
        f"{bad}:1: format.regex: not a valid regular expression (missing ), unterminated subpattern at position 0)",
        f"{bad}:2: question: required field is missing",
        f"{bad}:2: id: duplicate id 'a' (first on line 1)",
        f"error: {bad}: 2 bad lines; fix them and run again",
    ]
    result = runner.invoke(cases_group, ["validate", str(bad), "--json"])
    report = json.loads(result.stdout)
    assert result.exit_code == 1 and report["ok"] is False and report["bad_lines"] == 2
    assert report["problems"][0] == {
        "path": str(bad),
        "line": 1,
        "field": "format.regex",
        "problem": "not a valid regular expression (missing ), unterminated subpattern at position 0)",
    }


def test_cli_import(tmp_path: Path) -> None:
    runner = CliRunner()
    source = write(
        tmp_path / "results.json",
        json.dumps(
            {
                "results": [
                    {
                        "query_id": "7",
                        "query": "Longest river?",
                        "gt_answer": "The Nile",
                        "response": "Nile",
                        "retrieved_context": [],
                    }
                ]
            }
        ),
    )
    out = tmp_path / "cases.jsonl"
    result = runner.invoke(cases_group, ["import", "--from", "ragchecker", str(source), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "imported 1 of 1 records" in result.stdout and "left out 'response' in 1 cases" in result.stdout
    assert [c.id for c in load_cases(out)] == ["7"]
    result = runner.invoke(cases_group, ["import", "--from", "ragchecker", str(source), "-o", str(out)])
    assert result.exit_code == 1 and "already exists; pass --force" in str(result.exception)
    result = runner.invoke(
        cases_group, ["import", "--from", "ragchecker", str(source), "-o", str(out), "--force", "--json"]
    )
    assert json.loads(result.stdout)["imported"] == 1
    result = runner.invoke(cases_group, ["import", "--from", "ragchecker", str(source)])
    assert json.loads(result.stdout)["id"] == "7" and "imported 1 of 1" in result.stderr  # cases on stdout
    nothing = write(tmp_path / "nothing.jsonl", '{"prompt": "x"}\n')
    result = runner.invoke(cases_group, ["import", "--from", "ifeval", str(nothing)])
    assert result.exit_code == 1 and "no case could be imported" in str(result.exception)
    result = runner.invoke(cases_group, ["import", "--from", "nope", str(nothing)])
    assert result.exit_code == 2 and "'nope' is not one of" in result.stderr
