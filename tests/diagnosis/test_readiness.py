"""Readiness: owners, training rights, unowned sources, the extension hook, and error migration against a baseline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ragtune.diagnosis import READINESS_CHECKS, Blocker, ReadinessContext, diagnose_run
from ragtune.diagnosis.facts import Corpus, load_run_data
from ragtune.diagnosis.readiness import training_rights
from tests.diagnosis.builders import Ans, case, chunk, log, write_run


def test_owners_and_rights_are_blockers(world: Any) -> None:
    d = diagnose_run(world, "main")
    by = {b["check"]: b for b in d.recommendation.blockers}
    assert by["evidence_owners"]["severity"] == "blocker" and by["evidence_owners"]["items"] == ["docs/refunds.md"]
    assert "--owner" in by["evidence_owners"]["next"]
    assert by["unowned_sources"]["items"] == ["docs"]
    rights = by["training_rights"]  # the verdict is not fine-tuning here: a warning only
    assert (
        rights["severity"] == "warning"
        and rights["items"] == ["distraction"]
        and "docs/support.md" in rights["message"]
    )
    data = load_run_data(world.store, "main", world.root)
    ctx = ReadinessContext(world, data, Corpus(world.store), "rag", d.cases, "FINE-TUNE")
    [blocker] = training_rights(ctx)
    assert blocker.severity == "blocker"


def test_others_extend_the_checks(world: Any) -> None:
    def no_rollback_target(ctx: ReadinessContext) -> list[Blocker]:
        return [Blocker("rollback", "blocker", f"no rollback target for {ctx.verdict}", "ragtune tune promote ...")]

    READINESS_CHECKS.append(no_rollback_target)
    try:
        blockers = diagnose_run(world, "main").recommendation.blockers
    finally:
        READINESS_CHECKS.remove(no_rollback_target)
    assert blockers[-1] == {"check": "rollback", "severity": "blocker", "message": "no rollback target for RAG",
                            "next": "ragtune tune promote ...", "items": []}  # fmt: skip


def test_accuracy_up_while_format_failures_grew(world: Any, tmp_path: Path) -> None:
    cases = [
        case("a", "How long is the free trial?", ["30 days"], ["docs/trial.md"]),
        case("b", "Trial length in days? Digits and unit only.", ["30 days"], ["docs/trial.md"],
             format={"regex": "^[0-9]+ days$"}),
        case("c", "For how many days can I try it?", ["30 days"], ["docs/trial.md"]),
    ]  # fmt: skip
    ctx = log((chunk("trial.md"), "used"))
    before = {"a": "A week.", "b": "30 days", "c": "Two weeks."}
    after = {"a": "30 days.", "b": "It lasts 30 days.", "c": "30 days."}
    write_run(world, tmp_path, "before", ["rag"], [(c, {"rag": Ans(before[c["id"]], ctx)}) for c in cases])
    write_run(world, tmp_path, "after", ["rag"], [(c, {"rag": Ans(after[c["id"]], ctx)}) for c in cases])
    d = diagnose_run(world, "after", baseline="before")
    assert d.migration is not None and d.migration["accuracy"]["delta"] > 0
    assert d.migration["flags"] == ["format failures grew from 0 to 1 while accuracy improved by +66.7% against before"]
    [flag] = [b for b in d.recommendation.blockers if b["check"] == "error_migration"]
    assert flag["items"] == ["b"] and "ragtune compare before after --arm rag" in flag["next"]
    missing = diagnose_run(world, "after", baseline="main")  # no shared cases: said, not raised
    assert missing.migration is not None and "share no case ids" in missing.migration["error"]
