"""Load a data set in BEIR layout for a retrieval benchmark.

The layout is ``corpus.jsonl`` (``_id``, ``title``, ``text``), ``queries.jsonl`` (``_id``, ``text``, optional
``metadata``) and ``qrels/{split}.tsv`` (header ``query-id  corpus-id  score``). Every problem in those files is
a :class:`~ragtune.errors.BenchmarkError` naming the file, and the line where there is one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragtune.errors import BenchmarkError

_QRELS_HEADER = ("query-id", "corpus-id", "score")


@dataclass(frozen=True)
class BeirData:
    """A BEIR split, reduced to the queries that can be scored.

    >>> data = load_beir(Path("squad_v2_dev_half/beir_format"))
    >>> title, text = data.corpus[next(iter(data.qrels["q1"]))]
    """

    corpus: dict[str, tuple[str, str]]  # doc id -> (title, text)
    queries: dict[str, str]  # query id -> text; only queries with a positive qrel
    qrels: dict[str, dict[str, int]]  # query id -> doc id -> graded relevance, same keys as ``queries``


def load_beir(folder: Path, split: str = "test", answerable_only: bool = True) -> BeirData:
    """Read ``folder`` and keep the queries of ``split`` that have at least one positive judgement.

    With ``answerable_only``, a query whose metadata says ``"is_impossible": true`` (SQuAD v2 style) is dropped
    even if it has qrels: no passage answers it, so it would only measure noise in a retrieval benchmark.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise BenchmarkError(
            f"{folder}: no such folder; pass the folder that holds corpus.jsonl, queries.jsonl and qrels/"
        )
    corpus = _read_corpus(folder / "corpus.jsonl")
    queries, impossible = _read_queries(folder / "queries.jsonl")
    qrels = _read_qrels(folder / "qrels" / f"{split}.tsv", queries)

    kept_qrels = {
        qid: judged
        for qid, judged in qrels.items()
        if any(rel > 0 for rel in judged.values()) and not (answerable_only and qid in impossible)
    }
    if not kept_qrels:
        raise BenchmarkError(
            f"{folder / 'qrels' / f'{split}.tsv'}: no query has a positive judgement"
            + (" and is answerable" if answerable_only else "")
            + "; check the split name and the qrels scores"
        )
    # Qrels whose doc id is absent from the corpus are kept, as BEIR's own evaluation keeps them: they lower
    # recall for every system alike rather than silently making the benchmark easier.
    return BeirData(
        corpus=corpus,
        queries={qid: queries[qid] for qid in kept_qrels},
        qrels=kept_qrels,
    )


def _read_corpus(path: Path) -> dict[str, tuple[str, str]]:
    corpus: dict[str, tuple[str, str]] = {}
    for where, record in _jsonl(path):
        doc_id = _id_field(record, where)
        if doc_id in corpus:
            raise BenchmarkError(f"{where}: duplicate _id {doc_id!r}; document ids must be unique")
        title = _str_field(record, "title", where, required=False)
        corpus[doc_id] = (title, _str_field(record, "text", where, required=True))
    if not corpus:
        raise BenchmarkError(f"{path}: no documents; the corpus needs at least one JSON line")
    return corpus


def _read_queries(path: Path) -> tuple[dict[str, str], set[str]]:
    """Return every query's text, and the ids of those marked impossible."""
    queries: dict[str, str] = {}
    impossible: set[str] = set()
    for where, record in _jsonl(path):
        qid = _id_field(record, where)
        if qid in queries:
            raise BenchmarkError(f"{where}: duplicate _id {qid!r}; query ids must be unique")
        queries[qid] = _str_field(record, "text", where, required=True)
        metadata = record.get("metadata")
        if metadata is not None and not isinstance(metadata, dict):
            raise BenchmarkError(f"{where}: 'metadata' must be a JSON object; fix or drop that field")
        if metadata and metadata.get("is_impossible") is True:
            impossible.add(qid)
    return queries, impossible


def _read_qrels(path: Path, queries: dict[str, str]) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    for lineno, line in _lines(path):
        fields = line.rstrip("\r\n").split("\t")
        if lineno == 1 and tuple(f.strip() for f in fields) == _QRELS_HEADER:
            continue
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        if len(fields) != 3:
            raise BenchmarkError(
                f"{where}: expected 3 tab-separated fields (query-id, corpus-id, score), got {len(fields)}"
            )
        qid, doc_id, raw_score = (f.strip() for f in fields)
        try:
            score = int(raw_score)
        except ValueError as err:
            raise BenchmarkError(
                f"{where}: score {raw_score!r} is not an integer; use graded relevance 0, 1, 2…"
            ) from err
        if qid not in queries:
            raise BenchmarkError(f"{where}: query-id {qid!r} is not in queries.jsonl; add the query or drop the row")
        judged = qrels.setdefault(qid, {})
        if doc_id in judged:
            raise BenchmarkError(f"{where}: ({qid!r}, {doc_id!r}) is judged twice; keep one row per pair")
        judged[doc_id] = score
    return qrels


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield (1-based line number, line), turning I/O and decoding failures into BenchmarkError."""
    if not path.is_file():
        raise BenchmarkError(f"{path}: file not found; a BEIR folder needs corpus.jsonl, queries.jsonl, qrels/")
    try:
        with path.open(encoding="utf-8") as handle:
            yield from enumerate(handle, start=1)
    except UnicodeDecodeError as err:
        raise BenchmarkError(f"{path}: not UTF-8 ({err.reason}); re-encode the file as UTF-8") from err
    except OSError as err:
        raise BenchmarkError(f"{path}: cannot read ({err.strerror}); check its permissions") from err


def _jsonl(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ("file:line", object) for each non-blank line."""
    for lineno, line in _lines(path):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise BenchmarkError(f"{where}: not valid JSON ({err.msg}); fix or remove that line") from err
        if not isinstance(record, dict):
            raise BenchmarkError(f"{where}: expected a JSON object, got {type(record).__name__}")
        yield where, record


def _id_field(record: dict[str, Any], where: str) -> str:
    value = record.get("_id")
    # Some BEIR exports write numeric ids; qrels are text, so compare them as text.
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        raise BenchmarkError(f"{where}: missing or empty '_id'; every line needs a string id")
    return str(value)


def _str_field(record: dict[str, Any], name: str, where: str, *, required: bool) -> str:
    value = record.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise BenchmarkError(f"{where}: '{name}' must be a string; fix that line")
    return value
