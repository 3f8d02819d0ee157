"""Run summaries: accuracy with a percentile-bootstrap interval, format compliance, citation precision, staleness,
latency percentiles, tokens and cost, each held to the ``[targets]`` of ragtune.toml (docs/eval.md).

Unscored cases are counted and reported, never averaged in as zeros: every rate is over the cases its scorer
scored, and says how many that was.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from ragtune.config import TargetsSection
from ragtune.harness.model import Score

Label = Literal["correct", "wrong", "stale", "format", "unscored"]
LABELS: tuple[Label, ...] = ("correct", "wrong", "stale", "format", "unscored")
"""Failure labels, one per (arm, case), for the error-migration matrix of ``ragtune compare``."""

ACCURACY, FORMAT, CITATIONS, STALENESS = "accuracy", "format", "citations.support", "staleness"


def failure_label(scores: Sequence[Score]) -> Label:
    """What went wrong with one answer, content first: a wrong answer that is also badly formatted is ``wrong``.

    ``stale``: it gives a value that used to be right (and no current one); ``wrong``: accuracy 0 otherwise;
    ``format``: right (or nothing to be right about) but breaks the case's format rule; ``correct``: nothing failed
    and something passed; ``unscored``: neither accuracy nor format could be scored (the arm failed, say).
    """
    by = {s.scorer: s for s in scores if s.status == "scored"}
    acc, fmt, stale = by.get(ACCURACY), by.get(FORMAT), by.get(STALENESS)
    if acc is None and fmt is None:
        return "unscored"
    if stale is not None and stale.value == 0.0:
        return "stale"
    if acc is not None and not acc.passed:
        return "wrong"
    if fmt is not None and not fmt.passed:
        return "format"
    return "correct"


def bootstrap_ci(
    values: Sequence[float] | np.ndarray, *, resamples: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the mean; None for no values.

    Resampling draws ``rng.integers(0, n, (resamples, n))`` from ``numpy.random.default_rng(seed)``, as
    scipy.stats.bootstrap does, so the two agree exactly on the same seed (tests/harness_runs/test_summary.py).
    """
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return None
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, (resamples, x.size))].mean(axis=1)
    alpha = (1 - level) / 2
    lo, hi = np.percentile(means, [100 * alpha, 100 * (1 - alpha)])
    return float(lo), float(hi)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (linear interpolation, numpy's default); None for no values."""
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if values else None


def _rate(values: list[float]) -> dict[str, Any]:
    return {"value": round(float(np.mean(values)), 6) if values else None, "n": len(values)}


def summarize_arm(
    results: Sequence[dict[str, Any]], *, resamples: int, seed: int, targets: TargetsSection
) -> dict[str, Any]:
    """One arm's summary from its stored results (each with ``scores``: scorer -> (status, value))."""
    acc: list[float] = []
    fmt: list[float] = []
    cit: list[float] = []
    stale: list[float] = []
    labels = dict.fromkeys(LABELS, 0)
    for r in results:
        scores = r["scores"]
        for name, bucket in ((ACCURACY, acc), (FORMAT, fmt), (CITATIONS, cit)):
            if name in scores and scores[name][0] == "scored":
                bucket.append(scores[name][1])
        if STALENESS in scores and scores[STALENESS][0] == "scored":
            stale.append(1.0 - scores[STALENESS][1])  # the scorer passes answers that are NOT stale
        labels[r["label"]] += 1
    answered = [r for r in results if not r["error"]]
    # answers read back from the generation cache were not generated now: no latency, throughput or cost of theirs
    # is a measurement, so every such figure is over the generated answers only (None when there are none)
    generated = [r for r in answered if not r.get("cached")]
    priced = [r for r in results if not r.get("cached")]
    # what one request waited for: only requests timed alone (or an endpoint's, each timed as it ran)
    latencies = [r["request_ms"] for r in generated if r.get("request_ms") is not None]
    # batch throughput: the batch wall time each answer's share of it (latency_ms), over the batched answers
    batched = [r for r in generated if r.get("request_ms") is None] or generated
    batch_s = sum(r["latency_ms"] for r in batched) / 1000
    n = len(results)
    n_priced = len(priced)
    ci = bootstrap_ci(acc, resamples=resamples, seed=seed)
    per_1k = 1000 / n if n else 0.0
    summary: dict[str, Any] = {
        "n": len(acc),
        "cases": n,
        "unscored": n - len(acc),
        "errors": n - len(answered),
        "accuracy": {
            "value": round(float(np.mean(acc)), 6) if acc else None,
            "ci95": [round(ci[0], 6), round(ci[1], 6)] if ci else None,
        },
        "format_ok": _rate(fmt),
        "citation_precision": _rate(cit),
        "staleness_rate": _rate(stale),
        "p50_ms": _round(percentile(latencies, 50)),
        "p95_ms": _round(percentile(latencies, 95)),
        "p99_ms": _round(percentile(latencies, 99)),
        "latency_n": len(latencies),
        "throughput": {
            "answers_per_s": round(len(batched) / batch_s, 4) if batch_s > 0 else None,
            "tokens_out_per_s": round(sum(r["tokens_out"] for r in batched) / batch_s, 2) if batch_s > 0 else None,
        },
        "tokens_in_per_request": round(sum(r["tokens_in"] for r in results) / n, 3) if n else None,
        "tokens_out_per_request": round(sum(r["tokens_out"] for r in results) / n, 3) if n else None,
        "tokens_per_1k": round(sum(r["tokens_in"] + r["tokens_out"] for r in results) * per_1k, 1) if n else None,
        "cost_per_1k": round(sum(r["cost_usd"] for r in priced) * 1000 / n_priced, 6) if n_priced else None,
        "cpu_s_per_request": round(sum(r["cpu_s"] for r in priced) / n_priced, 6) if n_priced else None,
        "cached": n - n_priced,
        "labels": labels,
    }
    variants: dict[str, dict[str, list[float]]] = {}
    for r in results:
        for name, (status, value) in r["scores"].items():
            if name.startswith("variant.") and status == "scored":
                variant, _, scorer = name[len("variant.") :].rpartition(".")
                variants.setdefault(variant, {}).setdefault(scorer, []).append(value)
    if variants:  # the prompts arm: how each variant did on its own
        summary["variants"] = {
            v: {("format_ok" if k == FORMAT else k): _rate(vals) for k, vals in by.items()}
            for v, by in variants.items()
        }
    summary["targets"] = check_targets(summary, targets)
    return summary


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


METRICS: dict[str, tuple[str, ...]] = {
    "accuracy": ("accuracy", "value"),
    "accuracy_ci_low": ("accuracy", "ci95", "0"),
    "accuracy_ci_high": ("accuracy", "ci95", "1"),
    "format_ok": ("format_ok", "value"),
    "citation_precision": ("citation_precision", "value"),
    "staleness_rate": ("staleness_rate", "value"),
    "p50_ms": ("p50_ms",),
    "p95_ms": ("p95_ms",),
    "p99_ms": ("p99_ms",),
    "cost_per_1k": ("cost_per_1k",),
    "tokens_per_1k": ("tokens_per_1k",),
    "n": ("n",),
    "unscored": ("unscored",),
    "errors": ("errors",),
}
"""Metric names that targets and ``ragtune check`` accept, and where each sits in an arm's summary."""


def metric(summary: dict[str, Any], name: str) -> float | None:
    """One named metric of an arm's summary (see :data:`METRICS`); None when nothing was scored for it."""
    value: Any = summary
    for part in METRICS[name]:
        if value is None:
            return None
        value = value[int(part)] if isinstance(value, list) else value.get(part)
    return None if value is None else float(value)


def target_conditions(targets: TargetsSection) -> list[tuple[str, str, float]]:
    """The configured targets as (metric, 'min' | 'max', bound); a target of 0 is no target."""
    pairs = [
        ("accuracy", "min", targets.min_accuracy),
        ("format_ok", "min", targets.min_format_ok),
        ("staleness_rate", "max", targets.max_staleness_rate),
        ("p95_ms", "max", targets.p95_ms),
        ("cost_per_1k", "max", targets.cost_per_1k_usd),
    ]
    return [(m, kind, bound) for m, kind, bound in pairs if bound > 0]


def unmet(summary: dict[str, Any], conditions: Sequence[tuple[str, str, float]]) -> list[str]:
    """A one-line reason for each condition the arm's summary does not meet."""
    reasons = []
    for name, kind, bound in conditions:
        value = metric(summary, name)
        if value is None and summary.get("cached") and name in ("p50_ms", "p95_ms", "p99_ms", "cost_per_1k"):
            reasons.append(f"{name}: not measured, {summary['cached']} answers came from the generation cache, so it "
                           f"cannot be held to {kind} {bound:g}; run `ragtune eval --no-cache` to measure it")  # fmt: skip
        elif value is None and name.endswith("_ms"):
            reasons.append(f"{name}: no request was timed alone ([eval] latency_sample), so it cannot be held to "
                           f"{kind} {bound:g}")  # fmt: skip
        elif value is None:
            reasons.append(f"{name}: nothing scored, so it cannot be held to {kind} {bound:g}")
        elif kind == "min" and value < bound:
            reasons.append(f"{name} {value:g} < {bound:g} (min)")
        elif kind == "max" and value > bound:
            reasons.append(f"{name} {value:g} > {bound:g} (max)")
    return reasons


def check_targets(summary: dict[str, Any], targets: TargetsSection) -> dict[str, Any]:
    out = {}
    for name, kind, bound in target_conditions(targets):
        value = metric(summary, name)
        met = value is not None and (value >= bound if kind == "min" else value <= bound)
        out[name] = {kind: bound, "value": value, "met": met}
    return out
