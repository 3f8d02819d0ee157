"""One call from a stored run to its diagnosis: attributions, recommendation, readiness (docs/diagnosis.md).

The report and the CLI both start here::

    diagnosis = diagnose_run(project, "baseline", traffic=Path("traffic.jsonl"), baseline="last-week")
    diagnosis.recommendation.verdict, diagnosis.to_json()["cases"][0]["next"]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ragtune.diagnosis.attribute import Attribution, Attributor, choose_primary
from ragtune.diagnosis.coverage import read_traffic, stored_traffic, traffic_coverage
from ragtune.diagnosis.facts import Corpus, load_run_data
from ragtune.diagnosis.readiness import ReadinessContext, migration_against, run_checks
from ragtune.diagnosis.recommend import Recommendation, recommend
from ragtune.harness.runs import summarize_run
from ragtune.harness.store import load_run
from ragtune.store.db import Store
from ragtune.store.registry import registry_store

if TYPE_CHECKING:
    from ragtune.project import Project

Traffic = Path | Literal["traces"] | None
"""A JSONL file of ``{"question": ...}`` lines, ``"traces"`` for the stored ask/chat traces, or None (no check)."""


@dataclass
class Diagnosis:
    """A run's diagnosis: the recommendation, every failed case's attribution, and the readiness facts.

    >>> d = diagnose_run(project, "baseline")
    >>> d.recommendation.verdict, [(a.case_id, a.family, a.cause) for a in d.cases][:2]
    """

    run: str
    primary_arm: str
    primary_reason: str
    arms: list[str]
    recommendation: Recommendation
    cases: list[Attribution]
    coverage: dict[str, Any] | None = None
    migration: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """``{"run", "primary_arm", "recommendation": {...}, "cases": [{"id", "arm", "family", "cause", "what",
        "why", "next", ...}], "coverage", "migration", "notes"}`` (docs/diagnosis.md)."""
        return {
            "run": self.run,
            "primary_arm": self.primary_arm,
            "primary_reason": self.primary_reason,
            "arms": self.arms,
            "recommendation": self.recommendation.to_json(),
            "cases": [a.to_json() for a in self.cases],
            "coverage": self.coverage,
            "migration": self.migration,
            "notes": self.notes,
        }

    def examples(self, per_family: int = 2) -> dict[str, list[Attribution]]:
        """The first few attributions of each family (unclear included), for summaries."""
        out: dict[str, list[Attribution]] = {}
        for a in self.cases:
            if len(out.setdefault(a.family, [])) < per_family:
                out[a.family].append(a)
        return out


def measured_update_costs(store: Store) -> dict[str, float | None]:
    """What the store has measured: the latest model version's training wall time is the cost of retraining after
    a change in the facts (re-ingesting is not stored: ``ragtune demo`` and callers pass it in)."""
    result = registry_store(store).latest_result()
    if result is None:
        return {}
    seconds = result.get("wall_seconds")
    return {"retrain_s": float(seconds)} if isinstance(seconds, int | float) else {}


def diagnose_run(
    project: Project,
    run: str,
    *,
    traffic: Traffic = None,
    baseline: str | None = None,
    update_costs: Mapping[str, float | None] | None = None,
    primary: str | None = None,
) -> Diagnosis:
    """Attribute every failed case of ``run``, recommend, and check readiness.

    ``update_costs``: seconds to make a changed fact answerable, ``{"reingest_s": ..., "retrain_s": ...}`` (either
    may be missing: "not measured"). ``primary`` overrides ``[diagnosis] primary_arm``.
    """
    config = project.config
    store = project.store
    data = load_run_data(store, run, project.root)
    summary = summarize_run(project, run)
    summaries: dict[str, dict[str, Any]] = summary["arms"]
    notes = list(data.notes)
    if not summary["finished"]:
        notes.append(f"run {run!r} is unfinished: the diagnosis covers the results stored so far")
    arm, why = choose_primary(data, primary if primary is not None else config.diagnosis.primary_arm)
    corpus = Corpus(store, known_at=load_run(store, run).finished_at)
    attributions = Attributor(data, corpus, arm, config, summaries).attribute_all()
    rec = recommend(
        data, arm, attributions, config, summaries, {**measured_update_costs(store), **(update_costs or {})}
    )

    coverage = None
    if traffic is not None:
        questions = stored_traffic(store) if traffic == "traces" else read_traffic(Path(traffic))
        source = "stored ask/chat traces" if traffic == "traces" else str(traffic)
        case_questions = [c.question for c in data.cases.values()]
        if not case_questions:
            coverage = {"measured": False, "reason": "the run's case file is not readable", "source": source}
        else:
            coverage = traffic_coverage(project.embedder, case_questions, questions, config.diagnosis,
                                        seed=config.eval.seed, source=source)  # fmt: skip
    migration = migration_against(project, baseline, run, arm) if baseline else None
    ctx = ReadinessContext(project, data, corpus, arm, attributions, rec.verdict, coverage, migration)
    rec.blockers = [b.to_json() for b in run_checks(ctx)]
    return Diagnosis(run, arm, why, list(data.info.arms), rec, attributions, coverage, migration, notes)
