"""The release gate: a candidate model version is compared with the version an alias points to on the harness,
arm by arm, and refused where it regresses past the ``[registry]`` thresholds::

    result = gate(project, "v3", "v2")      # Gate(ok, reasons, comparison)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ragtune.errors import TuningError
from ragtune.store.db import Store

if TYPE_CHECKING:
    from ragtune.harness.store import RunInfo
    from ragtune.project import Project


@dataclass
class Gate:
    """What the promotion gate compared, and whether the candidate passed."""

    ok: bool
    reasons: list[str]
    comparison: dict[str, Any]


def _runs_with_arm(store: Store, arm: str) -> list[RunInfo]:
    from ragtune.harness.store import list_runs

    return [r for r in list_runs(store) if arm in r.arms and r.finished_at is not None]


def gate(project: Project, candidate: str, current: str | None, run: str | None = None) -> Gate:
    """Compare ``candidate`` with ``current`` on the harness: the same cases, arm by arm (adapter, hybrid).

    The candidate's run is ``run`` or the latest finished run with an ``adapter:CANDIDATE`` or ``hybrid:CANDIDATE``
    arm; the current version's results come from the same run, else from the latest finished run over the same
    case file (by digest). Thresholds: ``[registry]``.
    """
    from ragtune.harness.runs import summarize_run
    from ragtune.harness.store import load_run

    store = project.store
    limits = project.config.registry
    kinds = ("adapter", "hybrid")
    if run is not None:
        info = load_run(store, run)
        if not any(f"{k}:{candidate}" in info.arms for k in kinds):
            raise TuningError(f"run {run!r} has no adapter:{candidate} or hybrid:{candidate} arm")
        runs = [info]
    else:
        runs = [r for k in kinds for r in _runs_with_arm(store, f"{k}:{candidate}")]
        runs.sort(key=lambda r: r.created_at, reverse=True)
    if not runs:
        return Gate(False, [f"{candidate} has no harness results: evaluate it first, e.g. `ragtune eval CASES "
                            f"--arms adapter:{candidate}" + (f",adapter:{current}" if current else "") + "`"], {})  # fmt: skip
    info = runs[0]
    reasons: list[str] = []
    comparison: dict[str, Any] = {"run": info.run, "cases_digest": info.cases_digest, "arms": {}}
    summaries = summarize_run(project, info.run)["arms"]
    for kind in kinds:
        arm = f"{kind}:{candidate}"
        if arm not in summaries:
            continue
        cand = summaries[arm]
        entry: dict[str, Any] = {"candidate": _figures(cand)}
        comparison["arms"][kind] = entry
        if current is None:
            continue
        ref_arm = f"{kind}:{current}"
        if ref_arm in summaries:
            ref, ref_run = summaries[ref_arm], info.run
        else:
            same = [r for r in _runs_with_arm(store, ref_arm) if r.cases_digest == info.cases_digest]
            if not same:
                reasons.append(
                    f"{current} has no {kind} results on run {info.run!r}'s cases to compare with: `ragtune eval "
                    f"{info.cases_path} --arms {arm},{ref_arm}`"
                )
                continue
            ref_run = max(same, key=lambda r: r.created_at).run
            ref = summarize_run(project, ref_run)["arms"][ref_arm]
        entry |= {"current": _figures(ref), "current_run": ref_run}
        reasons += _regressions(kind, candidate, current, cand, ref, limits.max_accuracy_drop,
                                limits.max_format_drop, limits.max_p95_increase)  # fmt: skip
    return Gate(not reasons, reasons, comparison)


def _figures(summary: dict[str, Any]) -> dict[str, Any]:
    return {"n": summary["n"], "accuracy": summary["accuracy"]["value"], "format_ok": summary["format_ok"]["value"],
            "p95_ms": summary["p95_ms"]}  # fmt: skip


def _regressions(
    kind: str, cand_v: str, cur_v: str, cand: dict[str, Any], cur: dict[str, Any],
    max_acc: float, max_fmt: float, max_p95: float,
) -> list[str]:  # fmt: skip
    out = []
    a, b = cand["accuracy"]["value"], cur["accuracy"]["value"]
    if a is not None and b is not None and a < b - max_acc:
        out.append(f"{kind}: accuracy {a:.1%} vs {b:.1%} for {cur_v}, a drop over [registry] max_accuracy_drop {max_acc:.0%}")  # fmt: skip
    a, b = cand["format_ok"]["value"], cur["format_ok"]["value"]
    if a is not None and b is not None and a < b - max_fmt:
        out.append(f"{kind}: format compliance {a:.1%} vs {b:.1%} for {cur_v}, a drop over [registry] max_format_drop {max_fmt:.0%}")  # fmt: skip
    a, b = cand["p95_ms"], cur["p95_ms"]
    if a is not None and b and a > b * (1 + max_p95):
        out.append(f"{kind}: p95 {a:,.0f} ms vs {b:,.0f} ms for {cur_v}, over [registry] max_p95_increase {max_p95:.0%}")  # fmt: skip
    return out
