"""Runs: every case asked of every arm, scored, and stored one (run, arm, case) result per transaction.

A run killed at any moment and started again under the same name finishes with no case missing and none
duplicated: results already stored are skipped, and the primary key (run, arm, case) refuses a second copy. A
resume must see the same case file (by digest) and the same arm list, or it is refused::

    info = execute_run(project, Path("cases.jsonl"), ["closed-book", "rag"], name="baseline")
    summary = summarize_run(project, "baseline")
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragtune.corpus.forget import FORGET_HOOKS, ForgetContext
from ragtune.errors import HarnessError
from ragtune.harness.arms import Arm, CachingArm, make_arm
from ragtune.harness.cases import load_cases
from ragtune.harness.model import Case, Output, Score
from ragtune.harness.scorers import SCORERS, ScoringContext, score_output
from ragtune.harness.store import (  # noqa: F401  (re-exported: part of the runs API)
    REDACTED,
    RunInfo,
    count_results,
    file_digest,
    finish_run,
    get_run,
    insert_run,
    list_runs,
    load_results,
    load_run,
    redact_arms_of_adapters,
    redact_results,
    redacted_cases,
    store_result,
    stored_case_ids,
)
from ragtune.harness.summary import summarize_arm
from ragtune.store.db import Store, utcnow
from ragtune.store.registry import adapters_trained_on
from ragtune.traces.store import delete_traces_of_adapters

if TYPE_CHECKING:
    from ragtune.generation.base import Generator
    from ragtune.project import Project

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")


def default_run_name() -> str:
    return "run-" + datetime.now(UTC).strftime("%Y%m%d-%H%M%S")


def begin_run(store: Store, name: str, cases_path: Path, cases: Sequence[Case], arms: list[str], settings: dict[str, Any]) -> RunInfo:  # fmt: skip
    """Create the run, or check that resuming it would see the same cases and arms."""
    if not _NAME.match(name):
        raise HarnessError(f"run name {name!r}: use letters, digits, '.', '_', ':' or '-' (at most 100)")
    digest = file_digest(cases_path)
    old = get_run(store, name)
    if old is not None:
        if old.cases_digest != digest:
            raise HarnessError(
                f"run {name!r} was started on a different case file ({old.cases_path}, sha256 {old.cases_digest[:12]}; "
                f"now {digest[:12]}); give a new --name to evaluate the changed cases"
            )
        if old.arms != arms:
            raise HarnessError(
                f"run {name!r} was started with arms {','.join(old.arms)}, not {','.join(arms)}; resume it with "
                f"--arms {','.join(old.arms)} or give a new --name"
            )
        if changed := _changed_settings(old.settings, settings):
            raise HarnessError(
                f"run {name!r} was started with a different {changed}; its stored results would not be comparable "
                "with new ones: restore the old setting to resume, or give a new --name"
            )
        return old
    info = RunInfo(name, utcnow(), None, str(cases_path), digest, arms, len(cases), settings)
    insert_run(store, info)
    return info


def _changed_settings(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    """What differs between a run's stored settings and a resume's, in words; None when nothing that matters does.

    The batch size is free to change (it changes speed, not answers); runs stored before a setting was recorded
    are not refused for lacking it.
    """
    if "scorers" in old and old["scorers"] != new["scorers"]:
        return f"[eval] scorers ({', '.join(old['scorers'])}; now {', '.join(new['scorers'])})"
    if "judge" in old and old["judge"] != new["judge"]:
        return f"[eval] judge ({old['judge']}; now {new['judge']})"
    for arm, identity in old.get("arms", {}).items():
        now = new["arms"].get(arm)
        if now is not None and "requests_model" not in identity:  # recorded since runs timed requests alone
            now = {k: v for k, v in now.items() if k != "requests_model"}
        if now is not None and now != identity:
            return f"model or settings for arm {arm} ({json.dumps(identity)}; now {json.dumps(now)})"
    return None


def scoring_context(project: Project, scorers: Sequence[str]) -> ScoringContext:
    """The scorers' context: the store always; the embedder and the judge only when a scorer asks for them."""
    from ragtune.harness.scorers.content import SIMILARITY
    from ragtune.harness.scorers.judge import NAME as JUDGE

    embedder = project.embedder if SIMILARITY in scorers else None
    judge = make_judge(project) if JUDGE in scorers else None
    return ScoringContext(store=project.store, embedder=embedder, judge=judge)


def make_judge(project: Project) -> Generator | None:
    """The generator named by ``[eval] judge``: an ``[endpoints.NAME]`` model, or ``generator`` for the project's."""
    name = project.config.eval.judge
    if not name:
        return None
    if name == "generator":
        return project.generator
    endpoint = project.config.endpoints.get(name)
    if endpoint is None:
        known = ", ".join(project.config.endpoints) or "none"
        raise HarnessError(
            f"[eval] judge = {name!r}: no [endpoints.{name}] table (configured: {known}); name one, or 'generator'"
        )
    from ragtune.config import GeneratorSection
    from ragtune.generation.base import make_generator

    return make_generator(
        GeneratorSection(
            backend="openai",
            base_url=endpoint.base_url,
            model=endpoint.model,
            api_key_env=endpoint.api_key_env,
            timeout_s=endpoint.timeout_s,
            concurrency=endpoint.concurrency,
        )
    )


def result_documents(case: Case, output: Output) -> list[str]:
    """The documents a result came from: the case's gold evidence, its context chunks and its citations."""
    found = list(case.evidence)
    found += [str(c["doc_id"]) for c in output.chunks if isinstance(c, dict) and c.get("doc_id")]
    found += [str(c["doc_id"]) for c in output.citations if isinstance(c, dict) and c.get("doc_id")]
    return sorted(set(found))


VARIANT_SCORERS = ("accuracy", "format")
"""Scorers also run on every prompt variant's answer, stored as ``variant.NAME.SCORER``."""


def variant_scores(case: Case, output: Output, ctx: ScoringContext, scorers: Sequence[str]) -> list[Score]:
    """Accuracy and format of each prompt variant's answer, so the summary can say which variant did best."""
    names = [n for n in VARIANT_SCORERS if n in scorers]
    out = []
    for variant, text in output.variants.items():
        for score in score_output(case, replace(output, answer=text, variants={}), ctx, names):
            score.scorer = f"variant.{variant}.{score.scorer}"
            out.append(score)
    return out


Progress = Callable[[int, int], None]
"""``advance(n, total)``: n more (arm, case) results are done, out of total still to do in this invocation."""


def execute_run(
    project: Project,
    cases_path: Path,
    arm_names: Sequence[str] | None = None,
    *,
    name: str | None = None,
    progress: Progress | None = None,
    cache: bool | None = None,
) -> RunInfo:
    """Run (or resume) an evaluation; returns the finished run's header. ``cache`` (default ``[eval] cache``):
    answer prompts seen before from the generation cache (harness/cache.py); False reads and writes none."""
    from ragtune.harness.cache import GenerationCache

    settings = project.config.eval
    arm_list = list(arm_names or settings.arms)
    unknown = [s for s in settings.scorers if s not in SCORERS]
    if unknown:
        raise HarnessError(f"[eval] scorers: unknown {', '.join(unknown)}; known: {', '.join(SCORERS)}")
    cases = load_cases(cases_path)
    arms = [make_arm(a, project) for a in arm_list]  # every arm checked before any work
    use_cache = settings.cache if cache is None else cache
    generation_cache = GenerationCache(project, enabled=use_cache)
    for arm in arms:
        if isinstance(arm, CachingArm):  # the arms that generate locally (pipeline arms, prompts)
            arm.cache = generation_cache
    ctx = scoring_context(project, settings.scorers)
    store = project.store
    run_name = name or default_run_name()
    run_settings = {
        "scorers": settings.scorers,
        "batch_size": settings.batch_size,
        "latency_sample": settings.latency_sample,
        "cache": use_cache,  # free to change on a resume: greedy answers are the same either way
        "judge": ctx.judge.identity() if ctx.judge is not None else None,
        "arms": {a.name: a.identity() for a in arms},
    }
    info = begin_run(store, run_name, cases_path, cases, arm_list, run_settings)
    todo = {a.name: [(i, c) for i, c in enumerate(cases) if c.id not in stored_case_ids(store, run_name, a.name)] for a in arms}  # fmt: skip
    total = sum(len(t) for t in todo.values())
    timed = set(latency_positions(len(cases), settings.latency_sample))
    for arm in arms:
        pending = todo[arm.name]
        each = bool(getattr(arm, "times_each_request", False))  # an endpoint: every request is timed as it ran
        alone = [] if each else [(i, c) for i, c in pending if i in timed]
        batched = [(i, c) for i, c in pending if each or i not in timed]
        if alone and not batched and len(pending) == len(cases):  # nothing of this arm stored before either
            # nothing would warm this arm's model before the timed requests: the first is answered untimed, so
            # that the timed ones are what a request to a warm server waits for
            batched, alone = alone[:1], alone[1:]
        for start in range(0, len(batched), settings.batch_size):
            batch = batched[start : start + settings.batch_size]
            _answer_batch(project, run_name, arm, batch, ctx, timed_alone=False, per_request=each)
            if progress is not None:
                progress(len(batch), total)
        for one in alone:  # after the batches, so that the model is warm
            _answer_batch(project, run_name, arm, [one], ctx, timed_alone=True, per_request=False)
            if progress is not None:
                progress(1, total)
    missing = count_results(store, run_name) != len(cases) * len(arms)
    if missing:  # only a concurrent writer deleting rows could get here; say so rather than claim it finished
        raise HarnessError(f"run {run_name!r}: results are missing after the run; run it again to fill them in")
    if info.finished_at is None:
        finish_run(store, run_name)
    return load_run(store, run_name)


def latency_positions(n: int, k: int) -> list[int]:
    """The case-file positions timed alone: ``k`` of ``n``, spread evenly from the first to the last (every case
    when ``k >= n``); the same for a resumed run."""
    if k <= 0 or n <= 0:
        return []
    if k >= n:
        return list(range(n))
    if k == 1:
        return [0]
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)})


def _answer_batch(
    project: Project,
    run: str,
    arm: Arm,
    batch: Sequence[tuple[int, Case]],
    ctx: ScoringContext,
    *,
    timed_alone: bool,
    per_request: bool,
) -> None:
    """Answer, score and store one batch. Its wall time is shared evenly by its cases as ``latency_ms`` (a throughput
    figure); a case timed alone also gets it as ``request_ms``, as does every case of an arm that times each request
    itself (an endpoint under its configured concurrency)."""
    scorers = project.config.eval.scorers
    cpu0, wall0 = time.process_time(), time.perf_counter()
    alone = getattr(arm, "answer_alone", None) if timed_alone else None
    outputs = [alone(batch[0][1])] if alone is not None else arm.answer([c for _, c in batch])
    wall_ms = (time.perf_counter() - wall0) * 1000
    # process CPU time of the batch (every thread: torch's included), shared evenly by its cases
    cpu_s = (time.process_time() - cpu0) / len(batch)
    if len(outputs) != len(batch):
        raise HarnessError(f"arm {arm.name!r} returned {len(outputs)} outputs for {len(batch)} cases")
    for (position, case), output in zip(batch, outputs, strict=True):
        scores = score_output(case, output, ctx, scorers) + variant_scores(case, output, ctx, scorers)
        cost = arm.cost_usd(output, cpu_s)
        request_ms = round(wall_ms, 3) if timed_alone else (output.latency_ms if per_request else None)
        if output.cached:  # read back, not generated: no request was timed, whatever the wall clock says
            request_ms = None
        output = replace(output, latency_ms=round(wall_ms / len(batch), 3))
        store_result(project.store, run, position, output, scores, cpu_s, cost, result_documents(case, output),
                     request_ms=request_ms)  # fmt: skip


def summarize_run(project: Project, name: str) -> dict[str, Any]:
    """The summary of a run: ``{"run", "finished", "arms": {NAME: {"n", "accuracy": {"value", "ci95"}, ...}}}``."""
    store = project.store
    info = load_run(store, name)
    results = load_results(store, name)
    settings = project.config.eval
    arms = {
        arm: summarize_arm(
            results.get(arm, []),
            resamples=settings.bootstrap_resamples,
            seed=settings.seed,
            targets=project.config.targets,
        )
        for arm in info.arms
    }
    for summary in arms.values():
        summary["missing"] = info.n_cases - summary["cases"]  # nonzero only while a run is unfinished
    return {
        "run": info.run,
        "finished": info.finished_at is not None,
        "cases_path": info.cases_path,
        "n_cases": info.n_cases,
        "arms": arms,
        # cases whose answers forget redacted: their labels and figures above still count, their text is gone
        "redacted": redacted_cases(store, name),
        # answers read back from the generation cache, over every arm (each arm's own count is its "cached")
        "cached": sum(a["cached"] for a in arms.values()),
        "rescored_from": info.settings.get("rescored_from"),
    }


def _forget_results(ctx: ForgetContext) -> None:
    """Forget hook: redact every stored result that came from the forgotten documents (see redact_results), and
    every answer of a fine-tune the registry's hook just tainted (it learned from them); delete that fine-tune's
    traces too."""
    if not ctx.doc_ids:
        return
    found = redact_results(ctx.db, ctx.doc_ids, ctx.receipt.receipt_id)
    # the fine-tunes that learned from the documents (read here, not from the registry hook's receipt section, so
    # that the order the hooks registered in does not matter)
    adapters = sorted({adapter for _, adapter in adapters_trained_on(ctx.db, ctx.doc_ids)})
    by_model = redact_arms_of_adapters(ctx.db, adapters, ctx.receipt.receipt_id) if adapters else {"runs": []}
    runs: dict[str, dict[str, Any]] = {}
    for entry in found["runs"] + by_model["runs"]:
        merged = runs.setdefault(entry["run"], {"run": entry["run"], "rows": 0, "cases": []})
        merged["rows"] += entry["rows"]
        merged["cases"] += [c for c in entry["cases"] if c not in merged["cases"]]
    ctx.receipt.sections["runs"] = list(runs.values())
    ctx.receipt.totals["runs"] = len(runs)
    ctx.receipt.totals["run_results_redacted"] = sum(r["rows"] for r in runs.values())
    if adapters:
        ctx.receipt.totals["traces"] = ctx.receipt.totals.get("traces", 0) + delete_traces_of_adapters(ctx.db, adapters)


FORGET_HOOKS.append(_forget_results)
