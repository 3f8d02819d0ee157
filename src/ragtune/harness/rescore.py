"""Rescoring: a finished run's stored answers scored again, under other scorers, into a new run, without generating.

The new run has the same cases, arms, answers, chunk logs, citations, trace references, latency and cost figures
and cache flags as the old one, its own scores and labels, and ``settings["rescored_from"]`` saying where it came
from; ``runs show``, ``compare``, ``diagnose`` and ``report`` read it like any other run::

    info = rescore_run(project, "baseline", ["accuracy", "content.similarity"], name="baseline-similarity")
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ragtune.errors import HarnessError
from ragtune.harness.cases import load_cases
from ragtune.harness.model import Case, Output, Score
from ragtune.harness.runs import _NAME, scoring_context, variant_scores
from ragtune.harness.scorers import SCORERS, score_output
from ragtune.harness.store import (
    REDACTED,
    RunInfo,
    checked_case_file,
    copy_run,
    get_run,
    load_run,
    result_rows,
    stored_scores,
)
from ragtune.store.db import utcnow

if TYPE_CHECKING:
    from ragtune.project import Project


def rescore_run(project: Project, run: str, scorers: Sequence[str] | None = None, *, name: str | None = None) -> RunInfo:  # fmt: skip
    """Score the stored answers of ``run`` again with ``scorers`` (default ``[eval] scorers``) into the new run
    ``name`` (default ``RUN-rescored``), in one transaction; returns the new run's header."""
    store = project.store
    info = load_run(store, run)
    if info.finished_at is None:
        raise HarnessError(
            f"run {run!r} is unfinished; finish it with `ragtune eval {info.cases_path} --arms {','.join(info.arms)} "
            f"--name {run}`, then rescore it"
        )
    new = name or f"{run}-rescored"
    if not _NAME.match(new):
        raise HarnessError(f"run name {new!r}: use letters, digits, '.', '_', ':' or '-' (at most 100)")
    if get_run(store, new) is not None:
        raise HarnessError(f"a run named {new!r} exists already; give another --name")
    names = list(scorers if scorers is not None else project.config.eval.scorers)
    unknown = [s for s in names if s not in SCORERS]
    if unknown or not names:
        raise HarnessError(f"--scorers: unknown {', '.join(unknown) or '(none given)'}; known: {', '.join(SCORERS)}")
    _check_needs(project, names)
    cases = _cases(info)
    ctx = scoring_context(project, names)
    old_scores = stored_scores(store, run)
    rows = sorted(result_rows(store, run), key=lambda r: (r["arm"], r["position"]))
    scored: list[tuple[str, str, list[Score]]] = []
    for row in rows:
        case = cases.get(row["case_id"])
        if case is None:  # the digest matched, so only a hand-edited store gets here
            raise HarnessError(
                f"run {run!r}: case {row['case_id']!r} is not in {info.cases_path}; it cannot be rescored"
            )
        if row["redacted"]:
            # forget took the answer's text; what was scored then stays, what was not cannot be scored now
            scores = _kept(old_scores.get((row["arm"], row["case_id"]), []), names)
        else:
            output = _output(row)
            scores = score_output(case, output, ctx, names) + variant_scores(case, output, ctx, names)
        scored.append((row["arm"], row["case_id"], scores))
    settings = dict(info.settings) | {
        "scorers": names,
        "judge": ctx.judge.identity() if ctx.judge is not None else None,
        "rescored_from": {"run": run, "scorers": info.settings.get("scorers"), "at": utcnow()},
    }
    copy_run(store, info, new, settings, scored)
    return load_run(store, new)


def _check_needs(project: Project, names: Sequence[str]) -> None:
    """A scorer that needs what this project cannot give it is one line naming both, before any work."""
    from ragtune.harness.scorers.judge import NAME as JUDGE

    if JUDGE in names and not project.config.eval.judge:
        raise HarnessError(
            f"--scorers {JUDGE}: it needs a judge model and [eval] judge is empty; set it to an [endpoints.NAME] "
            "table or 'generator' in ragtune.toml"
        )


def _cases(info: RunInfo) -> dict[str, Case]:
    return {c.id: c for c in load_cases(checked_case_file(info, "rescore it"))}


def _output(row: Any) -> Output:
    extra = json.loads(row["output"]) if row["output"] else {}
    return Output(
        case_id=row["case_id"],
        arm=row["arm"],
        answer=row["answer"],
        citations=list(extra.get("citations") or []),
        chunks=list(extra.get("chunks") or []),
        variants=dict(extra.get("variants") or {}),
        latency_ms=float(row["latency_ms"]),
        tokens_in=int(row["tokens_in"]),
        tokens_out=int(row["tokens_out"]),
        trace_id=extra.get("trace_id"),
        error=row["error"],
        cached=bool(row["cached"]),
    )


def _kept(old: Sequence[Score], names: Sequence[str]) -> list[Score]:
    """A redacted result's stored scores for the scorers asked for (prompt variants' included); unscored for the
    others, saying why."""
    by = {s.scorer: s for s in old}
    kept = [by[n] if n in by else Score.unscored(n, f"{REDACTED}: the answer is gone, so it cannot be scored again")
            for n in names]  # fmt: skip
    kept += [s for s in old if s.scorer.startswith("variant.") and s.scorer.rpartition(".")[2] in names]
    return kept
