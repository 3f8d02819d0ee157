"""Comparison of two arms (of one run or of two runs): paired bootstrap deltas and the error-migration matrix.

Deltas are paired: over the cases both sides scored, the same resampled cases on both sides. The migration matrix
counts how each case's failure label (correct, wrong, stale, format, unscored; see
:func:`ragtune.harness.summary.failure_label`) moved from A to B, so a gain in one metric that only moved errors
elsewhere (wrong answers become format failures) shows up::

    report = compare_arms(store, ("baseline", "rag"), ("tuned", "rag"))
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ragtune.errors import HarnessError
from ragtune.harness.store import load_results, load_run
from ragtune.harness.summary import ACCURACY, CITATIONS, FORMAT, LABELS, STALENESS, bootstrap_ci, percentile
from ragtune.store.db import Store

Side = tuple[str, str]
"""(run, arm)."""

_PAIRED = {"accuracy": ACCURACY, "format_ok": FORMAT, "citation_precision": CITATIONS, "not_stale": STALENESS}


def _timed(result: dict[str, Any]) -> bool:
    """Answered and timed alone: only such results carry what one request waited for."""
    return not result["error"] and result.get("request_ms") is not None


def _side(store: Store, side: Side) -> dict[str, dict[str, Any]]:
    run, arm = side
    info = load_run(store, run)
    if arm not in info.arms:
        raise HarnessError(f"run {run!r} has no arm {arm!r} (it has {', '.join(info.arms)})")
    return {r["case_id"]: r for r in load_results(store, run).get(arm, [])}


def compare_arms(store: Store, a: Side, b: Side, *, resamples: int = 2000, seed: int = 0) -> dict[str, Any]:
    """B against A: per metric ``{"a", "b", "delta", "ci95", "n"}`` over paired scored cases, and the migrations."""
    left, right = _side(store, a), _side(store, b)
    common = [cid for cid in left if cid in right]
    if not common:
        raise HarnessError(f"{a[0]}/{a[1]} and {b[0]}/{b[1]} share no case ids; nothing to compare")
    metrics: dict[str, Any] = {}
    for metric, scorer in _PAIRED.items():
        pairs = []
        for cid in common:
            sa, sb = left[cid]["scores"].get(scorer), right[cid]["scores"].get(scorer)
            if sa and sb and sa[0] == "scored" and sb[0] == "scored":
                pairs.append((float(sa[1]), float(sb[1])))
        if not pairs:
            metrics[metric] = {"a": None, "b": None, "delta": None, "ci95": None, "n": 0}
            continue
        xa, xb = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
        ci = bootstrap_ci(xb - xa, resamples=resamples, seed=seed)
        assert ci is not None
        metrics[metric] = {
            "a": round(float(xa.mean()), 6),
            "b": round(float(xb.mean()), 6),
            "delta": round(float((xb - xa).mean()), 6),
            "ci95": [round(ci[0], 6), round(ci[1], 6)],
            "n": len(pairs),
        }
    for q in (50, 95):
        la = percentile([left[c]["request_ms"] for c in common if _timed(left[c])], q)
        lb = percentile([right[c]["request_ms"] for c in common if _timed(right[c])], q)
        metrics[f"p{q}_ms"] = {"a": la, "b": lb, "delta": None if la is None or lb is None else round(lb - la, 3)}
    matrix = {x: dict.fromkeys(LABELS, 0) for x in LABELS}
    moved = []
    for cid in common:
        la, lb = left[cid]["label"], right[cid]["label"]
        matrix[la][lb] += 1
        if la != lb:
            moved.append({"case_id": cid, "from": la, "to": lb})
    return {
        "a": {"run": a[0], "arm": a[1]},
        "b": {"run": b[0], "arm": b[1]},
        "cases": len(common),
        "only_a": len(left) - len(common),
        "only_b": len(right) - len(common),
        "metrics": metrics,
        "migration": matrix,
        "moved": moved,
    }
