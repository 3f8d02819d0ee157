"""The owner of stored runs: the tables ``runs``, ``run_results``, ``run_scores`` and ``run_docs``.

Every other module reads and writes runs through this one (``tests/test_table_owners.py`` checks it), so a second
backend implements :class:`RunStore` and nothing else changes. Writes that belong to a caller's larger transaction
(forget's hooks) take the connection the caller holds; the rest open their own transaction::

    info = load_run(store, "baseline")
    for arm, rows in load_results(store, "baseline").items(): ...
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ragtune.errors import HarnessError
from ragtune.harness.model import Output, Score
from ragtune.harness.summary import failure_label
from ragtune.store.db import Store, utcnow


class RunStore(Protocol):
    """What the harness, diagnosis, the report and the exports need of stored runs."""

    def get_run(self, name: str) -> RunInfo | None: ...
    def list_runs(self) -> list[RunInfo]: ...
    def insert_run(self, info: RunInfo) -> None: ...
    def finish_run(self, name: str) -> None: ...
    def count_results(self, run: str) -> int: ...
    def stored_case_ids(self, run: str, arm: str) -> set[str]: ...
    def load_results(self, run: str) -> dict[str, list[dict[str, Any]]]: ...
    def result_rows(self, run: str, arm: str | None = None) -> list[sqlite3.Row]: ...
    def score_rows(self, run: str, arm: str | None = None) -> list[sqlite3.Row]: ...
    def redacted_cases(self, run: str) -> dict[str, list[str]]: ...


class SqliteRuns:
    """:class:`RunStore` over the project's SQLite file; each method is the module function of the same name."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def get_run(self, name: str) -> RunInfo | None:
        return get_run(self.store, name)

    def list_runs(self) -> list[RunInfo]:
        return list_runs(self.store)

    def insert_run(self, info: RunInfo) -> None:
        return insert_run(self.store, info)

    def finish_run(self, name: str) -> None:
        return finish_run(self.store, name)

    def count_results(self, run: str) -> int:
        return count_results(self.store, run)

    def stored_case_ids(self, run: str, arm: str) -> set[str]:
        return stored_case_ids(self.store, run, arm)

    def load_results(self, run: str) -> dict[str, list[dict[str, Any]]]:
        return load_results(self.store, run)

    def result_rows(self, run: str, arm: str | None = None) -> list[sqlite3.Row]:
        return result_rows(self.store, run, arm)

    def score_rows(self, run: str, arm: str | None = None) -> list[sqlite3.Row]:
        return score_rows(self.store, run, arm)

    def redacted_cases(self, run: str) -> dict[str, list[str]]:
        return redacted_cases(self.store, run)


@dataclass
class ScoreRow:
    """One stored scorer verdict."""

    status: str
    value: float | None
    passed: bool | None
    reason: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def scored(self) -> bool:
        return self.status == "scored"


@dataclass
class ArmResult:
    """One arm's stored result for one case, with its scores by scorer name."""

    arm: str
    case_id: str
    position: int
    answer: str
    error: str | None
    latency_ms: float | None
    """What the request waited for when it was timed alone; None when it was answered in a batch."""
    cost_usd: float
    label: str
    chunks: list[dict[str, Any]] = field(default_factory=list)
    variants: dict[str, str] = field(default_factory=dict)
    trace_id: str | None = None
    scores: dict[str, ScoreRow] = field(default_factory=dict)
    citations: list[dict[str, Any]] = field(default_factory=list)

    @property
    def correct(self) -> bool:
        return self.label == "correct"

    @property
    def content_right(self) -> bool:
        """Right content whatever the form: correct, or only the format rule broken."""
        return self.label in ("correct", "format")

    @property
    def content_wrong(self) -> bool:
        return self.label in ("wrong", "stale")

    def score(self, name: str) -> ScoreRow | None:
        row = self.scores.get(name)
        return row if row is not None and row.scored else None

    def variant_formatted(self, variant: str) -> bool | None:
        """Whether a prompt variant's answer follows the case's format rule (None: no rule was scored)."""
        check = self.score(f"variant.{variant}.format")
        return None if check is None else bool(check.passed)

    def variant_right(self, variant: str) -> bool | None:
        """Whether a prompt variant's answer is right and well-formed (None: nothing about it was scored)."""
        checks = [self.score(f"variant.{variant}.{s}") for s in ("accuracy", "format")]
        scored = [c for c in checks if c is not None]
        return all(bool(c.passed) for c in scored) if scored else None


@dataclass
class RunInfo:
    """A run's header row."""

    run: str
    created_at: str
    finished_at: str | None
    cases_path: str
    cases_digest: str
    arms: list[str]
    n_cases: int
    settings: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def get_run(store: Store, name: str) -> RunInfo | None:
    row = store.db.execute("SELECT * FROM runs WHERE run = ?", (name,)).fetchone()
    if row is None:
        return None
    return RunInfo(
        row["run"],
        row["created_at"],
        row["finished_at"],
        row["cases_path"],
        row["cases_digest"],
        json.loads(row["arms"]),
        row["n_cases"],
        json.loads(row["settings"]),
    )


def load_run(store: Store, name: str) -> RunInfo:
    info = get_run(store, name)
    if info is None:
        known = [r.run for r in list_runs(store)[:5]]
        hint = f" (recent: {', '.join(known)})" if known else " (no runs yet; `ragtune eval CASES` makes one)"
        raise HarnessError(f"no run named {name!r}{hint}")
    return info


def list_runs(store: Store) -> list[RunInfo]:
    names = [r[0] for r in store.db.execute("SELECT run FROM runs ORDER BY created_at DESC, run")]
    return [info for n in names if (info := get_run(store, n)) is not None]


def stored_case_ids(store: Store, run: str, arm: str) -> set[str]:
    rows = store.db.execute("SELECT case_id FROM run_results WHERE run = ? AND arm = ?", (run, arm))
    return {r[0] for r in rows}


def store_result(
    store: Store,
    run: str,
    position: int,
    output: Output,
    scores: Sequence[Score],
    cpu_s: float,
    cost: float,
    documents: Sequence[str] = (),
    *,
    request_ms: float | None = None,
) -> bool:
    """One result and its scores in one transaction; False when it was already stored (another copy won).
    ``documents`` are what it came from (:func:`result_documents`): forget redacts the result when one goes.
    ``output.latency_ms`` is stored as the batch's share; ``request_ms`` is the request's own time, when it was timed
    alone (or the arm times every request)."""
    extra = {
        "citations": output.citations,
        "chunks": output.chunks,
        "variants": output.variants,
        "trace_id": output.trace_id,
    }
    with store.transaction() as db:
        cur = db.execute(
            "INSERT INTO run_results (run, arm, case_id, position, answer, error, latency_ms, request_ms, tokens_in, "
            "tokens_out, cpu_s, cost_usd, label, output, created_at, cached) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run, arm, case_id) DO NOTHING",
            (
                run,
                output.arm,
                output.case_id,
                position,
                output.answer,
                output.error,
                output.latency_ms,
                request_ms,
                output.tokens_in,
                output.tokens_out,
                cpu_s,
                cost,
                failure_label(scores),
                json.dumps(extra, ensure_ascii=False, default=str),
                utcnow(),
                int(output.cached),
            ),
        )
        if cur.rowcount == 0:
            return False
        db.executemany(
            "INSERT INTO run_scores (run, arm, case_id, scorer, status, value, passed, reason, details) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    run,
                    output.arm,
                    output.case_id,
                    s.scorer,
                    s.status,
                    s.value,
                    None if s.passed is None else int(s.passed),
                    s.reason,
                    json.dumps(s.details, ensure_ascii=False, default=str),
                )
                for s in scores
            ],
        )
        db.executemany(
            "INSERT OR IGNORE INTO run_docs (run, arm, case_id, doc_id) VALUES (?, ?, ?, ?)",
            [(run, output.arm, output.case_id, d) for d in documents],
        )
    return True


REDACTED = "[redacted: forgotten document]"


def redact_results(db: sqlite3.Connection, doc_ids: Sequence[str], receipt_id: str) -> dict[str, Any]:
    """Within forget's transaction: blank the answer, output and score reasons of every result that came from
    one of ``doc_ids``; labels, scores and figures stay, so a run's summary says which cases were redacted rather
    than silently changing. Returns ``{"runs": [{run, rows, cases}], "rows": n}``."""
    keys: dict[tuple[str, str, str], set[str]] = {}
    for i in range(0, len(doc_ids), 500):
        part = list(doc_ids[i : i + 500])
        marks = ",".join("?" * len(part))
        for run, arm, case_id, doc_id in db.execute(
            f"SELECT run, arm, case_id, doc_id FROM run_docs WHERE doc_id IN ({marks})", part
        ):
            keys.setdefault((run, arm, case_id), set()).add(doc_id)
    return _redact(db, keys, receipt_id)


def _redact(db: sqlite3.Connection, keys: dict[tuple[str, str, str], set[str]], receipt_id: str) -> dict[str, Any]:
    by_run: dict[str, dict[str, Any]] = {}
    for (run, arm, case_id), docs in sorted(keys.items()):
        row = db.execute(
            "SELECT redacted FROM run_results WHERE run = ? AND arm = ? AND case_id = ?", (run, arm, case_id)
        ).fetchone()
        if row is None:
            continue
        earlier = json.loads(row[0]) if row[0] else {}
        stamp = {
            "receipts": [*earlier.get("receipts", []), receipt_id],
            "documents": sorted(set(earlier.get("documents", [])) | docs),
            "at": utcnow(),
        }
        db.execute(
            "UPDATE run_results SET answer = ?, output = ?, redacted = ? WHERE run = ? AND arm = ? AND case_id = ?",
            (REDACTED, json.dumps({"redacted": True}), json.dumps(stamp), run, arm, case_id),
        )
        db.execute(
            "UPDATE run_scores SET reason = ?, details = '{}' WHERE run = ? AND arm = ? AND case_id = ?",
            (REDACTED, run, arm, case_id),
        )
        entry = by_run.setdefault(run, {"run": run, "rows": 0, "cases": []})
        entry["rows"] += 1
        if case_id not in entry["cases"]:
            entry["cases"].append(case_id)
    runs = list(by_run.values())
    return {"runs": runs, "rows": sum(r["rows"] for r in runs)}


def redacted_cases(store: Store, run: str) -> dict[str, list[str]]:
    """arm -> the case ids whose stored text forget redacted (their labels and figures still count)."""
    out: dict[str, list[str]] = {}
    for arm, case_id in store.db.execute(
        "SELECT arm, case_id FROM run_results WHERE run = ? AND redacted IS NOT NULL ORDER BY position", (run,)
    ):
        out.setdefault(arm, []).append(case_id)
    return out


def load_results(store: Store, run: str) -> dict[str, list[dict[str, Any]]]:
    """Every stored result of a run by arm, in case-file order, each with ``scores``: scorer -> (status, value)."""
    scores: dict[tuple[str, str], dict[str, tuple[str, float | None]]] = {}
    for row in store.db.execute("SELECT arm, case_id, scorer, status, value FROM run_scores WHERE run = ?", (run,)):
        scores.setdefault((row[0], row[1]), {})[row[2]] = (row[3], row[4])
    out: dict[str, list[dict[str, Any]]] = {}
    rows = store.db.execute(
        "SELECT arm, case_id, position, answer, error, latency_ms, request_ms, tokens_in, tokens_out, cpu_s, cost_usd, "
        "label, cached FROM run_results WHERE run = ? ORDER BY position",
        (run,),
    )
    for row in rows:
        result = _row(row)
        result["scores"] = scores.get((row["arm"], row["case_id"]), {})
        out.setdefault(row["arm"], []).append(result)
    return out


def _row(row: sqlite3.Row) -> dict[str, Any]:
    return {key: row[key] for key in row.keys()}  # noqa: SIM118  (sqlite3.Row iterates values, not keys)


def redact_arms_of_adapters(db: sqlite3.Connection, adapters: Sequence[str], receipt_id: str) -> dict[str, Any]:
    """Within forget's transaction: redact every result of an arm answered by one of these adapter folders (a
    fine-tune trained on a forgotten document, tainted by the registry's hook), in every run."""
    keys: list[tuple[str, str, str]] = []
    for run, settings in db.execute("SELECT run, settings FROM runs"):
        for arm, identity in (json.loads(settings).get("arms") or {}).items():
            adapter = str(((identity or {}).get("model") or {}).get("adapter") or "")
            if adapter and any(Path(adapter).as_posix().endswith(a) for a in adapters):
                keys += [(run, arm, c) for (c,) in db.execute(
                    "SELECT case_id FROM run_results WHERE run = ? AND arm = ?", (run, arm))]  # fmt: skip
    return _redact(db, {k: set() for k in keys}, receipt_id)


def insert_run(store: Store, info: RunInfo) -> None:
    """A new run's header row."""
    with store.transaction() as db:
        db.execute(
            "INSERT INTO runs (run, created_at, cases_path, cases_digest, arms, n_cases, settings) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (info.run, info.created_at, info.cases_path, info.cases_digest, json.dumps(info.arms), info.n_cases,
             json.dumps(info.settings)),
        )  # fmt: skip


def finish_run(store: Store, name: str) -> None:
    """Mark a run finished, now."""
    with store.transaction() as db:
        db.execute("UPDATE runs SET finished_at = ? WHERE run = ?", (utcnow(precise=True), name))


def count_results(store: Store, run: str) -> int:
    """How many results a run has stored, over all its arms."""
    return int(store.db.execute("SELECT COUNT(*) FROM run_results WHERE run = ?", (run,)).fetchone()[0])


_RESULT_COLUMNS = (
    "arm, case_id, position, answer, error, latency_ms, request_ms, tokens_in, tokens_out, cpu_s, cost_usd, label, "
    "output, redacted, cached"
)


def result_rows(store: Store, run: str, arm: str | None = None) -> list[sqlite3.Row]:
    """Every stored result of a run (or of one of its arms) with its output, in case-file order."""
    where, args = ("run = ? AND arm = ?", (run, arm)) if arm is not None else ("run = ?", (run,))
    return store.db.execute(
        f"SELECT {_RESULT_COLUMNS} FROM run_results WHERE {where} ORDER BY position", args
    ).fetchall()


def score_rows(store: Store, run: str, arm: str | None = None) -> list[sqlite3.Row]:
    """Every stored score of a run (or of one of its arms), prompt variants' included."""
    where, args = ("run = ? AND arm = ?", (run, arm)) if arm is not None else ("run = ?", (run,))
    return store.db.execute(
        f"SELECT arm, case_id, scorer, status, value, passed, reason, details FROM run_scores WHERE {where} "
        "ORDER BY arm, case_id, scorer",
        args,
    ).fetchall()


def stored_scores(store: Store, run: str) -> dict[tuple[str, str], list[Score]]:
    """(arm, case id) -> the scores stored for that result."""
    out: dict[tuple[str, str], list[Score]] = {}
    for r in score_rows(store, run):
        passed = None if r["passed"] is None else bool(r["passed"])
        score = Score(r["scorer"], r["status"], r["value"], passed, r["reason"], json.loads(r["details"] or "{}"))
        out.setdefault((r["arm"], r["case_id"]), []).append(score)
    return out


def copy_run(store: Store, info: RunInfo, new: str, settings: dict[str, Any], scored: Iterable[tuple[str, str, list[Score]]]) -> None:  # fmt: skip
    """A new run copied from ``info``: its results with new labels, the given new scores and the same documents
    (so that forget reaches the copies), in one transaction."""
    now = utcnow(precise=True)
    scored = list(scored)
    with store.transaction() as db:
        db.execute(
            "INSERT INTO runs (run, created_at, finished_at, cases_path, cases_digest, arms, n_cases, settings) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (new, utcnow(), now, info.cases_path, info.cases_digest, json.dumps(info.arms), info.n_cases,
             json.dumps(settings)),
        )  # fmt: skip
        db.execute(
            "INSERT INTO run_results (run, arm, case_id, position, answer, error, latency_ms, request_ms, tokens_in, "
            "tokens_out, cpu_s, cost_usd, label, output, created_at, redacted, cached) "
            "SELECT ?, arm, case_id, position, answer, error, latency_ms, request_ms, tokens_in, tokens_out, cpu_s, "
            "cost_usd, label, output, created_at, redacted, cached FROM run_results WHERE run = ?",
            (new, info.run),
        )
        db.executemany(
            "UPDATE run_results SET label = ? WHERE run = ? AND arm = ? AND case_id = ?",
            [(failure_label(scores), new, arm, case_id) for arm, case_id, scores in scored],
        )
        db.executemany(
            "INSERT INTO run_scores (run, arm, case_id, scorer, status, value, passed, reason, details) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (new, arm, case_id, s.scorer, s.status, s.value, None if s.passed is None else int(s.passed), s.reason,
                 json.dumps(s.details, ensure_ascii=False, default=str))
                for arm, case_id, scores in scored
                for s in scores
            ],
        )  # fmt: skip
        db.execute(
            "INSERT INTO run_docs (run, arm, case_id, doc_id) SELECT ?, arm, case_id, doc_id FROM run_docs WHERE run = ?",
            (new, info.run),
        )


def checked_case_file(info: RunInfo, doing: str) -> Path:
    """The run's case file, refused when it is gone or changed since the run: ``doing`` says what needs it
    ("rescore it", "export the run")."""
    path = Path(info.cases_path)
    if not path.is_file():
        raise HarnessError(f"{path}: the case file of run {info.run!r} is gone; restore it to {doing}")
    if file_digest(path) != info.cases_digest:
        raise HarnessError(
            f"{path}: the case file changed since run {info.run!r} (sha256 {info.cases_digest[:12]}); restore the "
            f"version it ran on to {doing}, or evaluate the changed cases with `ragtune eval`"
        )
    return path


def load_arm_results(store: Store, run: str) -> dict[str, dict[str, ArmResult]]:
    """A run's results as ``case_id -> arm -> result``, in case-file order, each with its scores by name
    (sorted)."""
    scores: dict[tuple[str, str], dict[str, ScoreRow]] = {}
    for row in score_rows(store, run):
        passed = None if row["passed"] is None else bool(row["passed"])
        scores.setdefault((row["arm"], row["case_id"]), {})[row["scorer"]] = ScoreRow(
            row["status"], row["value"], passed, row["reason"], json.loads(row["details"] or "{}")
        )
    results: dict[str, dict[str, ArmResult]] = {}
    for row in result_rows(store, run):
        extra = json.loads(row["output"] or "{}")
        results.setdefault(row["case_id"], {})[row["arm"]] = ArmResult(
            arm=row["arm"],
            case_id=row["case_id"],
            position=row["position"],
            answer=row["answer"],
            error=row["error"],
            latency_ms=row["request_ms"],
            cost_usd=row["cost_usd"],
            label=row["label"],
            chunks=list(extra.get("chunks") or []),
            variants=dict(extra.get("variants") or {}),
            trace_id=extra.get("trace_id"),
            scores=scores.get((row["arm"], row["case_id"]), {}),
            citations=list(extra.get("citations") or []),
        )
    return results
