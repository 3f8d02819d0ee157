"""What the report shows, read from the store: the run's summary, every (arm, case) result with its scores and
chunks, and the cases themselves (from the run's case file, when it still has the digest the run recorded)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragtune.harness.cases import load_cases
from ragtune.harness.model import Case
from ragtune.harness.runs import file_digest, load_run, summarize_run

if TYPE_CHECKING:
    from ragtune.project import Project


@dataclass
class ArmResult:
    """One arm's answer to one case, as stored, with its scores (name -> status, value, reason)."""

    arm: str
    answer: str
    label: str
    error: str | None
    latency_ms: float | None  # timed alone; None when answered in a batch
    cost_usd: float
    citations: list[dict[str, Any]]
    chunks: list[dict[str, Any]]
    variants: dict[str, str]
    scores: list[dict[str, Any]]


@dataclass
class CaseView:
    """A case and every arm's result for it, in run order."""

    id: str
    case: Case | None
    results: list[ArmResult] = field(default_factory=list)


@dataclass
class ReportData:
    run: str
    summary: dict[str, Any]
    cases: list[CaseView]
    case_file_note: str | None  # why the questions are missing, when they are


def load_report_data(project: Project, run: str) -> ReportData:
    store = project.store
    info = load_run(store, run)
    summary = summarize_run(project, run)
    cases: dict[str, Case] = {}
    note = None
    path = Path(info.cases_path)
    if not path.is_file():
        note = f"the case file {path} is gone: questions and expected answers are not shown"
    elif file_digest(path) != info.cases_digest:
        note = f"the case file {path} changed since the run: questions and expected answers are not shown"
    else:
        cases = {c.id: c for c in load_cases(path)}
    scores: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in store.db.execute(
        "SELECT arm, case_id, scorer, status, value, passed, reason FROM run_scores WHERE run = ? "
        "ORDER BY arm, case_id, scorer",
        (run,),
    ):
        scores.setdefault((row["arm"], row["case_id"]), []).append(
            {k: row[k] for k in ("scorer", "status", "value", "passed", "reason")}
        )
    views: dict[str, CaseView] = {}
    order = {arm: i for i, arm in enumerate(info.arms)}
    rows = store.db.execute(
        "SELECT arm, case_id, position, answer, error, request_ms, cost_usd, label, output FROM run_results "
        "WHERE run = ? ORDER BY position",
        (run,),
    ).fetchall()
    for row in sorted(rows, key=lambda r: (r["position"], order.get(r["arm"], 99))):
        extra = json.loads(row["output"])
        view = views.setdefault(row["case_id"], CaseView(row["case_id"], cases.get(row["case_id"])))
        view.results.append(
            ArmResult(
                arm=row["arm"],
                answer=row["answer"],
                label=row["label"],
                error=row["error"],
                latency_ms=row["request_ms"],
                cost_usd=row["cost_usd"],
                citations=extra.get("citations") or [],
                chunks=extra.get("chunks") or [],
                variants=extra.get("variants") or {},
                scores=scores.get((row["arm"], row["case_id"]), []),
            )
        )
    return ReportData(run, summary, list(views.values()), note)
