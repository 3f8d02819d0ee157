"""``ragtune report RUN --html FILE``: one self-contained HTML file (inline SVG plots, inline CSS, a few lines of
script for the case filter; nothing fetched from the network), so it can be mailed or attached to a ticket::

    html = build_report(project, "baseline", diagnosis=diagnose_run(project, "baseline").to_json())
    write_report(Path("report.html"), html)
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragtune import __version__
from ragtune.report import plots
from ragtune.report.data import CaseView, ReportData, load_report_data

if TYPE_CHECKING:
    from ragtune.project import Project

FAILED = ("wrong", "stale", "format")


def _families(data: ReportData, attributed: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Counter[str]]:
    """Per arm, its failed cases by the family the diagnosis gave them ('not attributed' where it gave none)."""
    out: dict[str, Counter[str]] = {arm: Counter() for arm in data.summary["arms"]}
    for view in data.cases:
        for r in view.results:
            if r.label in FAILED:
                entry = attributed.get((view.id, r.arm))
                out.setdefault(r.arm, Counter())[entry["family"] if entry else "not attributed"] += 1
    return out


def _staleness(data: ReportData) -> dict[str, list[tuple[str, float, int]]]:
    """Per arm: (as_of, stale share, n) over the scored cases that have stale answers, by the date they ask at."""
    buckets: dict[str, dict[str, list[int]]] = {}
    for view in data.cases:
        case = view.case
        if case is None or not case.stale_answers:
            continue
        date = case.as_of.isoformat() if case.as_of else "undated"
        for r in view.results:
            if r.label != "unscored":
                buckets.setdefault(r.arm, {}).setdefault(date, []).append(int(r.label == "stale"))
    return {arm: [(d, sum(v) / len(v), len(v)) for d, v in sorted(by_date.items())] for arm, by_date in buckets.items()}


def _case_label(view: CaseView) -> str:
    labels = {r.label for r in view.results}
    return "failed" if labels & set(FAILED) else "correct" if labels == {"correct"} else "mixed"


def build_report(project: Project, run: str, *, diagnosis: dict[str, Any] | None = None) -> str:
    """The report of ``run`` as an HTML string; ``diagnosis`` is ``Diagnosis.to_json()`` (attribution, verdict)."""
    from jinja2 import Environment, PackageLoader

    data = load_report_data(project, run)
    attributed = {(c["id"], c["arm"]): c for c in (diagnosis or {}).get("cases", [])}
    by_case: dict[str, list[dict[str, Any]]] = {}
    for c in (diagnosis or {}).get("cases", []):
        by_case.setdefault(c["id"], []).append(c)
    figures = {
        "families": plots.failure_families(_families(data, attributed)),
        "tradeoff": plots.accuracy_latency_cost(data.summary["arms"], project.config.targets.p95_ms),
        "staleness": plots.staleness_over_time(_staleness(data)),
    }
    env = Environment(
        loader=PackageLoader("ragtune.report", "templates"), autoescape=True
    )  # every answer and chunk is untrusted text
    env.filters["pct"] = lambda v: "–" if v is None else f"{v:.1%}"
    env.filters["num"] = lambda v, unit="": "–" if v is None else f"{v:,.1f}{unit}"
    return env.get_template("report.html.j2").render(
        run=run,
        project=project.config.project.name,
        version=__version__,
        created=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        summary=data.summary,
        cases=data.cases,
        case_note=data.case_file_note,
        case_label=_case_label,
        attribution=by_case,
        recommendation=(diagnosis or {}).get("recommendation"),
        figures=figures,
    )


def write_report(path: Path, html: str) -> None:
    """Write atomically: a reader never sees half a report, and a failed write leaves the old one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; a report is an ordinary file
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(html)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
