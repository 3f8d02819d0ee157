"""Readiness: what stands between the verdict and a rollout. Each check is a function in :data:`READINESS_CHECKS`
that reads a :class:`ReadinessContext` and returns blockers; an extension appends its own the same way::

    def my_check(ctx: ReadinessContext) -> list[Blocker]: ...
    READINESS_CHECKS.append(my_check)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ragtune.diagnosis.attribute import Attribution
from ragtune.diagnosis.facts import Corpus, RunData
from ragtune.errors import RagtuneError
from ragtune.harness.compare import compare_arms
from ragtune.harness.summary import LABELS
from ragtune.store.registry import registry_store

if TYPE_CHECKING:
    from ragtune.project import Project

Severity = Literal["blocker", "warning"]


@dataclass
class Blocker:
    """One readiness problem: which check, how bad, what, the ids involved, and the step that clears it."""

    check: str
    severity: Severity
    message: str
    next: str
    items: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ReadinessContext:
    """What a readiness check may read: the project, the run's data, the attributions and the verdict, and the
    optional traffic coverage and baseline migration computed before the checks run."""

    project: Project
    data: RunData
    corpus: Corpus
    primary: str
    attributions: Sequence[Attribution]
    verdict: str
    coverage: dict[str, Any] | None = None
    migration: dict[str, Any] | None = None

    def evidence_docs(self) -> list[str]:
        """Every gold document the run's cases name, in first-seen order."""
        seen: dict[str, None] = {}
        for case in self.data.cases.values():
            seen.update(dict.fromkeys(case.evidence))
        for by_arm in self.data.results.values():  # without the case file: the retrieval scorer's record of them
            for r in by_arm.values():
                ret = r.scores.get("retrieval")
                if ret is not None and isinstance(ret.details.get("exists_by_doc"), dict):
                    seen.update(dict.fromkeys(ret.details["exists_by_doc"]))
        return list(seen)


ReadinessCheck = Callable[[ReadinessContext], list[Blocker]]


def _listed(items: Sequence[str], limit: int = 5) -> str:
    return ", ".join(items[:limit]) + (f" and {len(items) - limit} more" if len(items) > limit else "")


def evidence_owners(ctx: ReadinessContext) -> list[Blocker]:
    """Gold documents of the cases with no owner: nobody is answerable for keeping the facts right."""
    unowned = [d for d in ctx.evidence_docs() if (doc := ctx.corpus.doc(d)) is not None and not doc.owner]
    if not unowned:
        return []
    return [Blocker("evidence_owners", "blocker",
                    f"{len(unowned)} document(s) the cases' evidence relies on have no owner: {_listed(unowned)}",
                    "re-ingest them with an owner: ragtune ingest PATH --source SOURCE --owner TEAM", unowned)]  # fmt: skip


def training_rights(ctx: ReadinessContext) -> list[Blocker]:
    """Cases whose evidence may not be trained on (``may_train`` 0): a blocker when the verdict fine-tunes."""
    trains = ctx.verdict in ("FINE-TUNE", "HYBRID")
    barred: dict[str, list[str]] = {}
    for case in ctx.data.cases.values():
        docs = [d for d in case.evidence if (doc := ctx.corpus.doc(d)) is not None and not doc.may_train]
        if docs:
            barred[case.id] = docs
    if not barred:
        return []
    docs = sorted({d for ds in barred.values() for d in ds})
    n = len(ctx.data.cases)
    message = (f"{len(barred)} of {n} cases rest on evidence without training rights ({_listed(docs)}): their "
               "answers cannot become training data")  # fmt: skip
    if not trains:
        message += f" (relevant only if fine-tuning is chosen; the verdict is {ctx.verdict})"
    return [Blocker("training_rights", "blocker" if trains else "warning", message,
                    "train on the other cases only (`ragtune tune data` leaves these out), or obtain the rights and "
                    "re-ingest without --no-training", sorted(barred))]  # fmt: skip


def unowned_sources(ctx: ReadinessContext) -> list[Blocker]:
    """Sources (components of the corpus) with documents nobody owns."""
    rows = ctx.project.store.db.execute(
        "SELECT source, COUNT(*) FROM documents WHERE status = 'active' AND (owner IS NULL OR owner = '') "
        "GROUP BY source ORDER BY source"
    ).fetchall()
    if not rows:
        return []
    items = [f"{r[0]} ({r[1]} documents)" for r in rows]
    return [Blocker("unowned_sources", "warning", f"sources with documents nobody owns: {_listed(items)}",
                    "give each source an owner: ragtune ingest PATH --source SOURCE --owner TEAM",
                    [str(r[0]) for r in rows])]  # fmt: skip


def traffic_coverage(ctx: ReadinessContext) -> list[Blocker]:
    """Production questions the cases do not cover (clusters with no near case), and a length mismatch."""
    cov = ctx.coverage
    if not cov or not cov.get("measured"):
        return []
    out = []
    uncovered = [c for c in cov["clusters"] if not c["covered"]]
    if uncovered:
        share = sum(c["size"] for c in uncovered) / max(cov["n_traffic"], 1)
        names = [f"'{c['name']}' ({c['size']} questions, e.g. {c['examples'][0]!r})" for c in uncovered]
        out.append(Blocker("traffic_coverage", "blocker" if share >= 0.2 else "warning",
                           f"{len(uncovered)} topic(s) of production traffic ({share:.0%} of it) have no case: "
                           f"{_listed(names, 3)}",
                           "add cases for these topics (their example questions, with answers and evidence) and "
                           "run `ragtune eval` again", [c["name"] for c in uncovered]))  # fmt: skip
    length = cov.get("length", {})
    if length.get("mismatch"):
        out.append(Blocker("traffic_length", "warning",
                           f"case questions are not as long as production ones: KS distance {length['ks']:.2f} "
                           f"(median {length['cases']['p50']:.0f} vs {length['traffic']['p50']:.0f} words)",
                           "add cases with questions of production's length"))  # fmt: skip
    return out


def error_migration(ctx: ReadinessContext) -> list[Blocker]:
    """Against a baseline run: accuracy up while some failure label grew (errors moved rather than went away)."""
    mig = ctx.migration
    if not mig or not mig.get("flags"):
        return []
    return [Blocker("error_migration", "warning", flag, f"inspect the moved cases: ragtune compare {mig['baseline']} "
                    f"{mig['run']} --arm {mig['arm']}", mig.get("moved_to", {}).get(flag.split()[0], []))
            for flag in mig["flags"]]  # fmt: skip


def rollback_target(ctx: ReadinessContext) -> list[Blocker]:
    """A fine-tuning verdict needs somewhere to go back to: an alias (production) with an earlier, untainted
    version in its history. Read from the registry's tables, so the check needs no model loaded."""
    if ctx.verdict not in ("FINE-TUNE", "HYBRID"):
        return []
    registry = registry_store(ctx.project.store)
    aliases = registry.aliases()
    if not aliases:
        return [Blocker("rollback_target", "blocker",
                        "no model version is promoted to an alias: a fine-tune would ship with no rollback target",
                        "train and promote a version first: ragtune tune train --data NAME, then "
                        "ragtune tune promote VERSION --alias production")]  # fmt: skip
    missing = []
    for alias, current in aliases:
        if not registry.has_earlier_untainted(alias, current):
            missing.append(alias)
    if not missing:
        return []
    return [Blocker("rollback_target", "warning",
                    f"alias(es) {_listed(missing)} have no earlier untainted version: `ragtune tune rollback` has "
                    "nowhere to go", "keep the previous version promoted once before replacing it", missing)]  # fmt: skip


READINESS_CHECKS: list[ReadinessCheck] = [
    evidence_owners,
    training_rights,
    unowned_sources,
    traffic_coverage,
    error_migration,
    rollback_target,
]
"""The readiness checks, run in order; append yours."""


def run_checks(ctx: ReadinessContext, checks: Sequence[ReadinessCheck] | None = None) -> list[Blocker]:
    out: list[Blocker] = []
    for check in READINESS_CHECKS if checks is None else checks:
        out += check(ctx)
    return out


def migration_against(project: Project, baseline: str, run: str, arm: str) -> dict[str, Any]:
    """compare.py's error-migration matrix of ``arm`` from the baseline run to this one, and the labels that grew
    while accuracy improved (``flags``: one sentence each, starting with the label)."""
    settings = project.config.eval
    try:
        rep = compare_arms(project.store, (baseline, arm), (run, arm), resamples=settings.bootstrap_resamples,
                           seed=settings.seed)  # fmt: skip
    except RagtuneError as exc:
        return {"baseline": baseline, "run": run, "arm": arm, "error": str(exc), "flags": []}
    matrix = rep["migration"]
    before = {x: sum(matrix[x].values()) for x in LABELS}
    after = {y: sum(matrix[x][y] for x in LABELS) for y in LABELS}
    acc = rep["metrics"]["accuracy"]
    flags = []
    moved_to: dict[str, list[str]] = {}
    for m in rep["moved"]:
        moved_to.setdefault(m["to"], []).append(m["case_id"])
    if acc["delta"] is not None and acc["delta"] > 0:
        for label in ("format", "stale", "wrong", "unscored"):
            if after[label] > before[label]:
                flags.append(f"{label} failures grew from {before[label]} to {after[label]} while accuracy improved "
                             f"by {acc['delta']:+.1%} against {baseline}")  # fmt: skip
    return {"baseline": baseline, "run": run, "arm": arm, "accuracy": acc, "before": before, "after": after,
            "matrix": matrix, "flags": flags, "moved_to": moved_to}  # fmt: skip
