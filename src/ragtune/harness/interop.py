"""Cases from other evaluation tools' data sets, and results back in their shapes.

Importers turn RAGAS, DeepEval, RAGChecker and IFEval files into cases and say what they left out and why; the
exporters write a run's rows as RAGAS, DeepEval and RAGChecker read them, so their metrics can run on ragtune's
outputs::

    cases, report = IMPORTERS["ragas"](Path("testset.csv"))
    export_ragas(rows, Path("results.csv"))           # rows: list[ExportRow]
"""

from __future__ import annotations

import ast
import csv
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

from pydantic import ValidationError

from ragtune.corpus.loaders import (
    MAX_JSON_DEPTH,
    NotRegularFileError,
    json_depth_over,
    json_problem,
    open_regular,
    surrogate_at,
)
from ragtune.errors import HarnessError
from ragtune.harness.cases import explain_error, ifeval_problems, iter_lines
from ragtune.harness.model import Case, Output


@dataclass
class Skipped:
    """A record not imported, and why."""

    where: str  # "file.csv:12", "file.jsonl:3" or "file.json: record 4"
    reason: str


@dataclass
class Dropped:
    """A source field that no case field holds: in how many imported records it had a value, and why it was left."""

    count: int  # imported records in which the field had a value
    why: str


@dataclass
class ImportReport:
    """What an importer read, imported, skipped (and why), and which source fields no case field holds."""

    format: str
    path: str
    records: int = 0
    imported: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    dropped: dict[str, Dropped] = field(default_factory=dict)

    def skip(self, where: str, reason: str) -> None:
        self.skipped.append(Skipped(where, reason))

    def drop(self, name: str, why: str) -> None:
        self.dropped.setdefault(name, Dropped(0, why)).count += 1

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Imported(NamedTuple):
    """An importer's result: ``cases, report = import_ragas(path)``."""

    cases: list[Case]
    report: ImportReport


Importer = Callable[[Path], Imported]
IMPORTERS: dict[str, Importer] = {}


def register_importer(name: str) -> Callable[[Importer], Importer]:
    """Make ``ragtune cases import --from NAME`` use this function; the built-in formats register the same way."""

    def add(fn: Importer) -> Importer:
        IMPORTERS[name] = fn
        return fn

    return add


@dataclass
class _Record:
    where: str
    number: int  # 1-based position among the file's records: ids such as ragas-3 stay stable when others change
    data: Any  # an object, unless the file holds something else there
    error: str | None = None  # why the record could not be read (a JSONL line that is not JSON)


# Why the usual fields of these formats are left out (anything else: no case field holds it).
_PASSAGES = "passage text: cases name gold documents by id (evidence); ingest the passages and list their ids"
_RETRIEVED = "what a system retrieved for the question, not part of a case"
_RESPONSE = "a system's answer, not a reference (taken as an answer only when graded correct)"
_WHY = {
    "retrieved_contexts": _RETRIEVED,
    "retrieved_context_ids": _RETRIEVED,
    "retrieval_context": _RETRIEVED,
    "retrieved_context": _RETRIEVED,
    "contexts": _RETRIEVED,
    "reference_contexts": _PASSAGES,
    "context": _PASSAGES,
    "response": _RESPONSE,
    "correctness": "a grade of the response, used only to take a passing response as an answer",
    "answer": _RESPONSE,
    "actual_output": _RESPONSE,
    "multi_responses": _RESPONSE,
    "incorrect_answer": "a wrong answer: cases keep acceptable and formerly right answers only",
    "answers (graded wrong)": "a wrong answer: cases keep acceptable and formerly right answers only",
    "metrics": "scores of an earlier run, not part of a case",
}
_OTHER = "no case field holds it"
_DEEPEVAL_DELIMITER = "|"  # how DeepEval's save_as joins a list in a CSV cell (deepeval.dataset.utils.DELIMITER)
_PASS = {"pass", "passed", "true", "1", "yes", "correct"}


def _records(path: Path) -> Iterator[_Record]:
    """The records of a CSV, JSONL or JSON file (a list, or an object holding lists of records)."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        yield from _csv_records(path)
    elif suffix == ".jsonl":
        number = 0
        for line, text in iter_lines(path):
            if not text.strip():
                continue
            number += 1
            try:
                yield _Record(f"{path}:{line}", number, json.loads(text))
            except (ValueError, RecursionError) as exc:  # also numbers too long and arrays nested too deeply
                yield _Record(f"{path}:{line}", number, None, json_problem(exc))
    elif suffix == ".json":
        for number, data in enumerate(_json_records(path), start=1):
            yield _Record(f"{path}: record {number}", number, data)
    else:
        raise HarnessError(f"{path}: unsupported file type '{suffix}'; importers read .csv, .jsonl and .json")


def _open(path: Path) -> BinaryIO:
    """``path`` opened for reading; a missing file, a FIFO, a device or a folder is a :class:`HarnessError`."""
    try:
        handle = open_regular(path)
    except FileNotFoundError:
        raise HarnessError(f"{path}: no such file; check the path") from None
    except NotRegularFileError as exc:
        raise HarnessError(f"{path}: not a regular file but {exc.kind}; give a data set file") from None
    except OSError as exc:
        raise HarnessError(f"{path}: cannot read ({exc.strerror}); check the file") from None
    return handle


def _read_text(path: Path) -> str:
    try:
        with _open(path) as handle:
            data = handle.read()
    except OSError as exc:
        raise HarnessError(f"{path}: cannot read ({exc.strerror}); check the file") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise HarnessError(
            f"{path}: not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}); convert it to UTF-8"
        ) from None


def _json_records(path: Path) -> list[Any]:
    try:
        data = json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise HarnessError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg} at column {exc.colno})") from None
    except (ValueError, RecursionError) as exc:  # a number too long, or arrays nested too deeply
        raise HarnessError(f"{path}: {json_problem(exc)}; fix the file") from None
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        # {"results": [...]} (RAGChecker), {"helpfulness": [...]} (RAGAS annotations): every list of records
        lists = [v for v in data.values() if isinstance(v, list) and all(isinstance(r, dict) for r in v)]
        if lists:
            return [record for records in lists for record in records]
    raise HarnessError(f"{path}: expected a JSON array of records, or an object holding one (such as 'results')")


def _csv_records(path: Path) -> Iterator[_Record]:
    handle = io.TextIOWrapper(_open(path), encoding="utf-8-sig", newline="")
    with handle:
        reader = csv.DictReader(handle)
        start = 2  # the header is line 1; a quoted cell may span lines, so each row starts after the last one
        try:
            for number, row in enumerate(reader, start=1):
                data = {k: v for k, v in row.items() if isinstance(k, str) and k and v not in (None, "")}
                # a value under an unnamed column (a trailing comma in the header) or beyond the header means the
                # cells do not line up, e.g. a broken quote upstream: importing it would shift text between fields
                stray = [v for k, v in row.items() if not k and v not in (None, "", [])]
                error = (
                    "a value in an unnamed column: the row's cells do not line up with the header" if stray else None
                )
                yield _Record(f"{path}:{start}", number, data, error)
                start = reader.line_num + 1
        except UnicodeDecodeError as exc:
            raise HarnessError(f"{path}: not valid UTF-8 ({exc.reason}); convert it to UTF-8") from None
        except csv.Error as exc:
            raise HarnessError(f"{path}:{reader.line_num}: not valid CSV ({exc})") from None


def _text(value: Any) -> str | None:
    """A non-blank string (numbers too, for ids), stripped; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _texts(value: Any, *, cell_list: bool = False) -> list[str]:
    """Strings from a list or one value; with ``cell_list``, a CSV cell holding a JSON or Python list is parsed
    (pandas writes lists as their repr)."""
    if cell_list and isinstance(value, str) and value.strip().startswith("["):
        for parse in (json.loads, ast.literal_eval):
            try:
                value = parse(value)
                break
            # literal_eval also raises TypeError ({[]: 1}), RecursionError and MemoryError (its parser's stack
            # overflowing, not the machine's memory) on text nested too deeply: the cell is then kept as text
            except (ValueError, SyntaxError, TypeError, RecursionError, MemoryError):
                continue
    items = value if isinstance(value, list) else [value]
    return [t for t in (_text(item) for item in items) if t is not None]


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _import(path: Path, fmt: str, convert: Callable[[_Record, ImportReport], Case | None]) -> Imported:
    report = ImportReport(fmt, str(path))
    cases: list[Case] = []
    first: dict[str, str] = {}
    for record in _records(path):
        report.records += 1
        if record.error or not isinstance(record.data, dict):
            report.skip(record.where, record.error or "not an object")
            continue
        if json_depth_over(record.data, MAX_JSON_DEPTH):
            report.skip(record.where, f"nested more than {MAX_JSON_DEPTH} levels deep")
            continue
        surrogate = surrogate_at(record.data)
        if surrogate is not None:  # no case file, run or report could hold it
            report.skip(record.where, f"contains a lone surrogate ({surrogate}); fix the encoding")
            continue
        case = convert(record, report)
        if case is None:
            continue
        if case.id in first:
            report.skip(record.where, f"duplicate id {case.id!r} (first at {first[case.id]})")
            continue
        first[case.id] = record.where
        cases.append(case)
    report.imported = len(cases)
    return Imported(cases, report)


def _build(record: _Record, report: ImportReport, used: set[str], *, wrong: int = 0, **fields: Any) -> Case | None:
    """The case, or None with the record skipped; fields of the record not in ``used`` are reported dropped, and
    ``wrong`` answers graded wrong."""
    surrogate = surrogate_at(fields)  # a CSV cell holding a JSON list can spell one: '["\\ud800"]'
    if surrogate is not None:
        report.skip(record.where, f"contains a lone surrogate ({surrogate}); fix the encoding")
        return None
    try:
        case = Case(**fields)
    except ValidationError as exc:
        problems = [f"{f}: {p}" if f else p for f, p in (explain_error(e) for e in exc.errors(include_url=False))]
        report.skip(record.where, "; ".join(problems))
        return None
    unknown = ifeval_problems(case)
    if unknown:
        report.skip(record.where, "; ".join(f"{f}: {p}" for f, p in unknown))
        return None
    for name, value in record.data.items():
        if name not in used and value not in (None, "", [], {}):
            report.drop(name, _WHY.get(name, _OTHER))
    for _ in range(wrong):
        report.drop("answers (graded wrong)", _WHY["answers (graded wrong)"])
    return case


def _first(data: dict[str, Any], names: tuple[str, ...]) -> tuple[str | None, Any]:
    for name in names:
        if data.get(name) not in (None, "", []):
            return name, data[name]
    return None, None


_RAGAS_QUESTION = ("user_input", "question", "query")
_RAGAS_REFERENCE = ("reference", "ground_truth", "ground_truths", "expected_answer", "correct_answer")
_RAGAS_LISTS = {"ground_truths", "reference_context_ids"}  # list-valued: a CSV cell holds the list as text
_RAGAS_TAGS = ("synthesizer_name", "persona_name", "query_style", "query_length")  # RAGAS test-set generator


@register_importer("ragas")
def import_ragas(path: Path) -> Imported:
    """RAGAS data sets (CSV, JSONL or JSON): user_input/question → question; reference, ground_truth(s) → answers;
    reference_context_ids → evidence; reference_contexts → evidence_texts; a response graded correct (correctness=pass, or a score of 1 in
    answers/scores) is an acceptable answer too. Ids: the record's ``id``, else ``ragas-<n>``."""

    def convert(record: _Record, report: ImportReport) -> Case | None:
        data = dict(record.data)
        if isinstance(data.get("metric_input"), dict):  # RAGAS metric annotations: the sample is nested
            data = {**data.pop("metric_input"), **data}
            record = _Record(record.where, record.number, data)
        qname, question = _first(data, _RAGAS_QUESTION)
        if not isinstance(question, str):
            why = "a conversation (multi-turn sample)" if isinstance(question, list) else "missing"
            report.skip(record.where, f"no question: user_input/question/query is {why}")
            return None
        used = {qname or "", "id", "correctness", "scores", "reference_context_ids", "reference_contexts",
                *_RAGAS_REFERENCE, *_RAGAS_TAGS}  # fmt: skip
        answers = [a for name in _RAGAS_REFERENCE for a in _texts(data.get(name), cell_list=name in _RAGAS_LISTS)]
        graded = str(data.get("correctness", "")).strip().lower()
        response = _text(data.get("response"))
        if response and graded in _PASS:
            used.add("response")
            answers.append(response)
        wrong = 0
        if isinstance(data.get("answers"), list) and isinstance(data.get("scores"), list):
            used.add("answers")  # HotpotQA-style: candidate answers, each with a 0/1 correctness score
            for answer, score in zip(data["answers"], data["scores"], strict=False):
                if isinstance(score, int | float) and score >= 0.5 and _text(answer):
                    answers.append(str(_text(answer)))
                else:
                    wrong += 1
        evidence = _texts(data.get("reference_context_ids"), cell_list=True)
        passages = _texts(data.get("reference_contexts"), cell_list=True)
        if not answers and not evidence:
            reason = f"graded {graded!r}" if graded and graded not in _PASS else "none given"
            report.skip(record.where, f"no reference answer ({reason}; looked for {', '.join(_RAGAS_REFERENCE)})")
            return None
        tags = [f"{name}:{_text(data[name])}" for name in _RAGAS_TAGS if _text(data.get(name))]
        return _build(
            record,
            report,
            used,
            id=_text(data.get("id")) or f"ragas-{record.number}",
            question=question.strip(),
            answers=_unique(answers),
            evidence=_unique(evidence),
            evidence_texts=_unique(passages),
            tags=tags,
            wrong=wrong,
        )

    return _import(path, "ragas", convert)


@register_importer("deepeval")
def import_deepeval(path: Path) -> Imported:
    """DeepEval goldens as ``EvaluationDataset.save_as`` writes them (JSON list, JSONL or CSV): input → question,
    expected_output → answers, context (the ideal passages) → evidence_texts. Ids: the golden's ``name``, else
    ``deepeval-<n>``."""
    csv_file = path.suffix.lower() == ".csv"

    def convert(record: _Record, report: ImportReport) -> Case | None:
        data = record.data
        question, answer = _text(data.get("input")), _text(data.get("expected_output"))
        if question is None or not isinstance(data.get("input"), str):
            report.skip(record.where, "no input (the question)")
            return None
        if answer is None:
            report.skip(record.where, "no expected_output (nothing to score against)")
            return None
        case_id = _text(data.get("name")) or f"deepeval-{record.number}"
        # save_as writes a CSV cell's list joined by DeepEval's delimiter '|'; JSON keeps it a list
        context = data.get("context")
        if isinstance(context, str) and csv_file:
            context = context.split(_DEEPEVAL_DELIMITER)
        return _build(
            record, report, {"input", "expected_output", "name", "context"},
            id=case_id, question=question, answers=[answer], evidence_texts=_unique(_texts(context, cell_list=True)),
        )  # fmt: skip

    return _import(path, "deepeval", convert)


@register_importer("ragchecker")
def import_ragchecker(path: Path) -> Imported:
    """RAGChecker input or output JSON (``{"results": [...]}``): query_id → id, query → question,
    gt_answer → answers."""

    def convert(record: _Record, report: ImportReport) -> Case | None:
        data = record.data
        question, answer = _text(data.get("query")), _text(data.get("gt_answer"))
        if question is None:
            report.skip(record.where, "no query")
            return None
        if answer is None:
            report.skip(record.where, "no gt_answer (nothing to score against)")
            return None
        case_id = _text(data.get("query_id")) or f"ragchecker-{record.number}"
        return _build(
            record, report, {"query_id", "query", "gt_answer"}, id=case_id, question=question, answers=[answer]
        )

    return _import(path, "ragchecker", convert)


@register_importer("ifeval")
def import_ifeval(path: Path) -> Imported:
    """IFEval prompts (input_data.jsonl: key, prompt, instruction_id_list, kwargs) as format-only cases with
    ``format.ifeval``; None-valued kwargs are dropped, as IFEval does before building an instruction."""

    def convert(record: _Record, report: ImportReport) -> Case | None:
        data = record.data
        kwargs = data.get("kwargs")
        if isinstance(kwargs, list):
            kwargs = [{k: v for k, v in kw.items() if v is not None} if isinstance(kw, dict) else kw for kw in kwargs]
        for name in ("prompt", "instruction_id_list"):
            if data.get(name) in (None, "", []):
                report.skip(
                    record.where, f"no {name} (IFEval input_data.jsonl has key, prompt, instruction_id_list, kwargs)"
                )
                return None
        key = _text(data.get("key"))
        return _build(
            record,
            report,
            {"key", "prompt", "instruction_id_list", "kwargs"},
            id=f"ifeval-{key or record.number}",
            question=data.get("prompt"),
            format={"ifeval": {"instruction_id_list": data.get("instruction_id_list"), "kwargs": kwargs}},
        )

    return _import(path, "ifeval", convert)


@dataclass
class ExportRow:
    """One case's result as other tools read it: the case, an arm's output, the passages it saw, its scores::

    row = ExportRow(case, output, [{"doc_id": "faq.md", "text": "The Pro plan allows ..."}], {"exact": 1.0})
    export_ragas([row], Path("results.csv"))
    """

    case: Case
    output: Output
    contexts: list[dict[str, str]] = field(default_factory=list)  # doc_id and/or chunk_id, and text
    scores: dict[str, float | None] = field(default_factory=dict)


def _context_id(context: dict[str, str]) -> str:
    return context.get("doc_id") or context.get("chunk_id") or ""


RAGAS_LIST_COLUMNS = ("retrieved_contexts", "retrieved_context_ids", "ground_truths", "reference_contexts",
                      "reference_context_ids")  # fmt: skip
"""The columns of :func:`export_ragas` that hold lists: in CSV, each cell is a JSON array."""


def export_ragas(rows: list[ExportRow], path: Path) -> None:
    """Rows as a RAGAS evaluation data set, JSONL or CSV by ``path``'s extension: id, user_input,
    retrieved_contexts, response, reference (the first answer), then optional columns and one column per score.

    A case's further answers go to ``ground_truths`` and its evidence to ``reference_context_ids``; RAGAS ignores
    columns it does not know, and :func:`import_ragas` reads them all back.
    """
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".csv"):
        raise HarnessError(f"{path}: RAGAS export writes .jsonl or .csv, not '{suffix}'")
    base = ["id", "user_input", "retrieved_contexts", "retrieved_context_ids", "response", "reference"]
    records: list[dict[str, Any]] = []
    for row in rows:
        case = row.case
        record: dict[str, Any] = {
            "id": case.id,
            "user_input": case.question,
            "retrieved_contexts": [c.get("text", "") for c in row.contexts],
            "retrieved_context_ids": [_context_id(c) for c in row.contexts],
            "response": row.output.answer,
            "reference": case.answers[0] if case.answers else None,
        }
        if len(case.answers) > 1:
            record["ground_truths"] = list(case.answers)
        if case.evidence_texts:
            record["reference_contexts"] = list(case.evidence_texts)
        if case.evidence:
            record["reference_context_ids"] = list(case.evidence)
        clash = set(row.scores) & (set(record) | set(RAGAS_LIST_COLUMNS))
        if clash:
            raise HarnessError(f"score name {sorted(clash)[0]!r} clashes with a RAGAS column; rename the scorer")
        records.append(record | row.scores)
    columns = list(dict.fromkeys([*base, *(name for record in records for name in record)]))
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as out:
        if suffix == ".jsonl":
            for record in records:
                out.write(json.dumps({c: record.get(c) for c in columns}, ensure_ascii=False) + "\n")
            return
        writer = csv.writer(out)
        writer.writerow(columns)
        for record in records:
            # a list column's cell is always a JSON array, [] when empty, so one json.loads per list column reads
            # every row (pandas' converters=, before RAGAS's from_pandas)
            writer.writerow([_cell([] if c in RAGAS_LIST_COLUMNS and record.get(c) is None else record.get(c)) for c in columns])  # fmt: skip


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return json.dumps(value, ensure_ascii=False)  # also a valid Python literal, for ast.literal_eval readers
    return str(value)


def export_deepeval(rows: list[ExportRow], path: Path) -> None:
    """Rows as DeepEval test cases: a JSON list whose keys are ``LLMTestCase``'s own field names, so that
    ``EvaluationDataset.add_goldens_from_json_file(path)`` reads every field with its defaults, and
    ``add_test_cases_from_json_file`` reads it given those names (docs/eval.md). ``expected_output`` is the first
    answer; ``context`` the case's passages (evidence_texts); ragtune's ids, answers, evidence and scores go to
    ``additional_metadata``."""
    if path.suffix.lower() != ".json":
        raise HarnessError(f"{path}: DeepEval export writes .json (a list of test cases), not '{path.suffix}'")
    records: list[dict[str, Any]] = []
    for row in rows:
        case, output = row.case, row.output
        records.append(
            {
                "name": case.id,
                "input": case.question,
                "actual_output": output.answer,
                "expected_output": case.answers[0] if case.answers else None,
                "context": list(case.evidence_texts) or None,
                "retrieval_context": [c.get("text", "") for c in row.contexts],
                "input_token_count": output.tokens_in,
                "output_token_count": output.tokens_out,
                "additional_metadata": {
                    "arm": output.arm,
                    "answers": list(case.answers),
                    "stale_answers": list(case.stale_answers),
                    "evidence": list(case.evidence),
                    "retrieval_context_ids": [_context_id(c) for c in row.contexts],
                    "tags": list(case.tags),
                    "scores": dict(row.scores),
                    "latency_ms": output.latency_ms,
                    "error": output.error,
                },
            }
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def export_ragchecker(rows: list[ExportRow], path: Path) -> None:
    """Rows as RAGChecker's input JSON: ``{"results": [{query_id, query, gt_answer, response,
    retrieved_context: [{doc_id, text}]}]}``; gt_answer is the case's first answer, and scores that were given go
    to the result's ``metrics`` (RAGChecker adds its own beside them)."""
    results: list[dict[str, Any]] = []
    for row in rows:
        result: dict[str, Any] = {
            "query_id": row.case.id,
            "query": row.case.question,
            "gt_answer": row.case.answers[0] if row.case.answers else "",
            "response": row.output.answer,
            "retrieved_context": [{"doc_id": _context_id(c), "text": c.get("text", "")} for c in row.contexts],
        }
        scores = {name: value for name, value in row.scores.items() if value is not None}
        if scores:
            result["metrics"] = scores
        results.append(result)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"results": results}, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
