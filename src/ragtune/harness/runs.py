"""Runs: every case asked of every arm, scored, and stored one (run, arm, case) result per transaction.

A run killed at any moment and started again under the same name finishes with no case missing and none
duplicated: results already stored are skipped, and the primary key (run, arm, case) refuses a second copy. A
resume must see the same case file (by digest) and the same arm list, or it is refused::

    info = execute_run(project, Path("cases.jsonl"), ["closed-book", "rag"], name="baseline")
    summary = summarize_run(project, "baseline")
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragtune.corpus.forget import FORGET_HOOKS, ForgetContext
from ragtune.errors import HarnessError
from ragtune.harness.arms import Arm, CachingArm, make_arm
from ragtune.harness.cases import load_cases
from ragtune.harness.model import Case, Output, Score
from ragtune.harness.scorers import SCORERS, ScoringContext, score_output
from ragtune.harness.summary import failure_label, summarize_arm
from ragtune.store.db import Store, utcnow
from ragtune.store.registry import adapters_trained_on
from ragtune.traces.store import delete_traces_of_adapters

if TYPE_CHECKING:
    from ragtune.generation.base import Generator
    from ragtune.project import Project

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")


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


def default_run_name() -> str:
    return "run-" + datetime.now(UTC).strftime("%Y%m%d-%H%M%S")


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
    with store.transaction() as db:
        db.execute(
            "INSERT INTO runs (run, created_at, cases_path, cases_digest, arms, n_cases, settings) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (name, info.created_at, info.cases_path, digest, json.dumps(arms), len(cases), json.dumps(settings)),
        )
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


def stored_case_ids(store: Store, run: str, arm: str) -> set[str]:
    rows = store.db.execute("SELECT case_id FROM run_results WHERE run = ? AND arm = ?", (run, arm))
    return {r[0] for r in rows}


def result_documents(case: Case, output: Output) -> list[str]:
    """The documents a result came from: the case's gold evidence, its context chunks and its citations."""
    found = list(case.evidence)
    found += [str(c["doc_id"]) for c in output.chunks if isinstance(c, dict) and c.get("doc_id")]
    found += [str(c["doc_id"]) for c in output.citations if isinstance(c, dict) and c.get("doc_id")]
    return sorted(set(found))


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
    missing = store.db.execute("SELECT COUNT(*) FROM run_results WHERE run = ?", (run_name,)).fetchone()[0] != len(
        cases
    ) * len(arms)
    if missing:  # only a concurrent writer deleting rows could get here; say so rather than claim it finished
        raise HarnessError(f"run {run_name!r}: results are missing after the run; run it again to fill them in")
    if info.finished_at is None:
        with store.transaction() as db:
            db.execute("UPDATE runs SET finished_at = ? WHERE run = ?", (utcnow(precise=True), run_name))
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
