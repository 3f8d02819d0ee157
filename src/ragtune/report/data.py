"""What the report shows, read from the store: the run's summary, every (arm, case) result with its scores and
chunks, and the cases themselves (from the run's case file, when it still has the digest the run recorded)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragtune.harness.cases import load_cases
from ragtune.harness.model import Case
from ragtune.harness.runs import summarize_run
from ragtune.harness.store import ArmResult, file_digest, load_arm_results, load_run

if TYPE_CHECKING:
    from ragtune.project import Project


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
    views: dict[str, CaseView] = {}
    order = {arm: i for i, arm in enumerate(info.arms)}
    for case_id, by_arm in load_arm_results(store, run).items():
        view = views.setdefault(case_id, CaseView(case_id, cases.get(case_id)))
        view.results = sorted(by_arm.values(), key=lambda r: order.get(r.arm, 99))
    return ReportData(run, summary, list(views.values()), note)
