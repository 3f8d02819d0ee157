"""The BEIR loader on tiny folders written per test, and on the packaged SQuAD v2 benchmark set."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from ragtune.bench.beir import BeirData, load_beir
from ragtune.errors import BenchmarkError

SQUAD_V2_HALF = Path(__file__).resolve().parents[3] / "shared" / "data" / "squad_v2_dev_half" / "beir_format"

CORPUS: list[dict[str, Any]] = [
    {"_id": "d1", "title": "Normans", "text": "The Normans gave their name to Normandy."},
    {"_id": "d2", "title": "", "text": "Computational complexity theory classifies problems."},
    {"_id": "d3", "text": "A passage with no title field."},
]
QUERIES: list[dict[str, Any]] = [
    {"_id": "q1", "text": "Where is Normandy?", "metadata": {"is_impossible": False}},
    {"_id": "q2", "text": "What does complexity theory do?"},
    {"_id": "q3", "text": "Who invented Normandy cheese?", "metadata": {"is_impossible": True}},
    {"_id": "q4", "text": "A query judged non-relevant only"},
    {"_id": "q5", "text": "A query from another split"},
]
QRELS = "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t2\nq2\td3\t0\nq3\td1\t1\nq4\td3\t0\n"


def _write(folder: Path, corpus: str | None = None, queries: str | None = None, qrels: str | None = QRELS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "corpus.jsonl").write_text(corpus if corpus is not None else _jsonl(CORPUS), encoding="utf-8")
    (folder / "queries.jsonl").write_text(queries if queries is not None else _jsonl(QUERIES), encoding="utf-8")
    if qrels is not None:
        (folder / "qrels").mkdir(exist_ok=True)
        (folder / "qrels" / "test.tsv").write_text(qrels, encoding="utf-8")
    return folder


def _jsonl(records: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def test_loads_a_good_folder(tmp_path: Path) -> None:
    data = load_beir(_write(tmp_path / "set"))
    assert isinstance(data, BeirData)
    assert data.corpus == {
        "d1": ("Normans", "The Normans gave their name to Normandy."),
        "d2": ("", "Computational complexity theory classifies problems."),
        "d3": ("", "A passage with no title field."),
    }
    # q3 is unanswerable, q4 has no positive judgement, q5 has no qrels in this split.
    assert data.queries == {"q1": "Where is Normandy?", "q2": "What does complexity theory do?"}
    assert data.qrels == {"q1": {"d1": 1}, "q2": {"d2": 2, "d3": 0}}


def test_unanswerable_queries_kept_on_request(tmp_path: Path) -> None:
    data = load_beir(_write(tmp_path / "set"), answerable_only=False)
    assert set(data.queries) == {"q1", "q2", "q3"}
    assert data.qrels["q3"] == {"d1": 1}


def test_bad_json_line_names_file_and_line(tmp_path: Path) -> None:
    corpus = json.dumps(CORPUS[0]) + "\n" + '{"_id": "d2", "text": \n'
    with pytest.raises(BenchmarkError, match=r"corpus\.jsonl:2: not valid JSON"):
        load_beir(_write(tmp_path / "set", corpus=corpus))


def test_missing_text_names_the_line(tmp_path: Path) -> None:
    queries = _jsonl([QUERIES[0], {"_id": "q2"}])
    with pytest.raises(BenchmarkError, match=r"queries\.jsonl:2: 'text' must be a string"):
        load_beir(_write(tmp_path / "set", queries=queries))


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(BenchmarkError, match="no such folder"):
        load_beir(tmp_path / "absent")


def test_missing_qrels_file(tmp_path: Path) -> None:
    with pytest.raises(BenchmarkError, match=r"qrels/test\.tsv: file not found"):
        load_beir(_write(tmp_path / "set", qrels=None))


def test_missing_split(tmp_path: Path) -> None:
    with pytest.raises(BenchmarkError, match=r"qrels/dev\.tsv: file not found"):
        load_beir(_write(tmp_path / "set"), split="dev")


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ("q1\td1\n", "expected 3 tab-separated fields"),
        ("q1\td1\thigh\n", "'high' is not an integer"),
        ("q9\td1\t1\n", "'q9' is not in queries.jsonl"),
        ("q1\td1\t1\n", "judged twice"),
    ],
)
def test_bad_qrels_row_names_file_and_line(tmp_path: Path, row: str, problem: str) -> None:
    qrels = "query-id\tcorpus-id\tscore\nq1\td1\t1\n" + row
    with pytest.raises(BenchmarkError, match=rf"qrels/test\.tsv:3: .*{re.escape(problem)}"):
        load_beir(_write(tmp_path / "set", qrels=qrels))


def test_no_scorable_query_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(BenchmarkError, match="no query has a positive judgement"):
        load_beir(_write(tmp_path / "set", qrels="query-id\tcorpus-id\tscore\nq4\td3\t0\n"))


def test_duplicate_doc_id(tmp_path: Path) -> None:
    with pytest.raises(BenchmarkError, match=r"corpus\.jsonl:2: duplicate _id 'd1'"):
        load_beir(_write(tmp_path / "set", corpus=_jsonl([CORPUS[0], CORPUS[0]])))


def test_not_utf8(tmp_path: Path) -> None:
    folder = _write(tmp_path / "set")
    (folder / "corpus.jsonl").write_bytes(b'{"_id": "d1", "text": "caf\xe9"}\n')
    with pytest.raises(BenchmarkError, match=r"corpus\.jsonl: not UTF-8"):
        load_beir(folder)


def test_squad_v2_dev_half() -> None:
    if not SQUAD_V2_HALF.is_dir():
        pytest.skip(f"benchmark data not present at {SQUAD_V2_HALF}")
    data = load_beir(SQUAD_V2_HALF)
    assert len(data.corpus) == 646
    assert len(data.queries) == 2910
    assert data.qrels.keys() == data.queries.keys()
    assert all(doc in data.corpus for judged in data.qrels.values() for doc in judged)
