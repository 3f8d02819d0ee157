"""Summary statistics against reference computations, failure labels, targets."""

from __future__ import annotations

import numpy as np
import pytest

from ragtune.config import TargetsSection
from ragtune.harness.model import Score
from ragtune.harness.summary import bootstrap_ci, failure_label, percentile, summarize_arm, unmet

DATA = [1.0] * 37 + [0.0] * 13 + [1.0] * 6 + [0.0] * 4  # 43 of 60 right


def test_bootstrap_matches_scipy_percentile_bootstrap() -> None:
    stats = pytest.importorskip("scipy.stats")
    ours = bootstrap_ci(DATA, resamples=2000, seed=7)
    ref = stats.bootstrap(
        (np.array(DATA),), np.mean, n_resamples=2000, method="percentile", random_state=np.random.default_rng(7),
        vectorized=True,
    ).confidence_interval  # fmt: skip
    assert ours == pytest.approx((ref.low, ref.high), abs=1e-12)


def test_bootstrap_matches_a_direct_numpy_computation() -> None:
    x = np.array(DATA)
    rng = np.random.default_rng(0)
    means = np.array([x[rng.integers(0, x.size, x.size)].mean() for _ in range(2000)])
    direct = np.percentile(means, [2.5, 97.5])
    lo, hi = bootstrap_ci(DATA, resamples=2000, seed=0) or (0.0, 0.0)
    # same distribution, different draw order: the bounds agree to within a resample's granularity
    assert abs(lo - direct[0]) <= 2 / 60 and abs(hi - direct[1]) <= 2 / 60
    assert lo < 43 / 60 < hi
    assert bootstrap_ci([], resamples=100) is None
    assert bootstrap_ci(DATA, seed=3) == bootstrap_ci(DATA, seed=3)  # fixed seed: summaries repeat


def test_percentiles_are_numpy_linear() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 95) == pytest.approx(np.percentile(values, 95))
    assert percentile([], 50) is None


def _s(name: str, value: float | None) -> Score:
    return Score.unscored(name, "x") if value is None else Score.ok(name, value, "x")


@pytest.mark.parametrize(
    ("scores", "label"),
    [
        ([_s("accuracy", 1.0), _s("format", 1.0)], "correct"),
        ([_s("accuracy", 1.0), _s("format", 0.0)], "format"),
        ([_s("accuracy", 0.0), _s("format", 0.0)], "wrong"),
        ([_s("accuracy", 0.0), _s("staleness", 0.0)], "stale"),
        ([_s("accuracy", None), _s("format", None)], "unscored"),
        ([_s("format", 1.0)], "correct"),
        ([], "unscored"),
    ],
)
def test_failure_labels(scores: list[Score], label: str) -> None:
    assert failure_label(scores) == label


def _result(acc: float | None, latency: float, error: str | None = None) -> dict[str, object]:
    scores = {} if acc is None else {"accuracy": ("scored", acc)}
    return {"scores": scores, "label": "unscored" if acc is None else ("correct" if acc else "wrong"), "error": error,
            "latency_ms": latency / 4, "request_ms": latency, "tokens_in": 10, "tokens_out": 5, "cost_usd": 0.001, "cpu_s": 0.5}  # fmt: skip


def test_unscored_cases_are_counted_not_averaged_and_targets_apply() -> None:
    results = [_result(1.0, 100), _result(0.0, 200), _result(1.0, 300), _result(None, 0, error="boom")]
    targets = TargetsSection(min_accuracy=0.8, p95_ms=250)
    s = summarize_arm(results, resamples=500, seed=0, targets=targets)
    assert (s["n"], s["cases"], s["unscored"], s["errors"]) == (3, 4, 1, 1)
    assert s["accuracy"]["value"] == pytest.approx(2 / 3)
    assert s["p95_ms"] == pytest.approx(np.percentile([100, 200, 300], 95))  # the failed call has no latency
    assert s["latency_n"] == 3 and s["p99_ms"] == pytest.approx(np.percentile([100, 200, 300], 99))
    assert s["throughput"]["answers_per_s"] == pytest.approx(3 / 0.150)  # three answers over their batch shares
    assert s["cost_per_1k"] == pytest.approx(1.0) and s["tokens_per_1k"] == pytest.approx(15000)
    assert s["format_ok"] == {"value": None, "n": 0}
    assert s["targets"]["accuracy"] == {"min": 0.8, "value": pytest.approx(2 / 3), "met": False}
    assert not s["targets"]["p95_ms"]["met"]
    assert unmet(s, [("accuracy", "min", 0.5), ("format_ok", "min", 0.9), ("p95_ms", "max", 250)]) == [
        "format_ok: nothing scored, so it cannot be held to min 0.9",
        "p95_ms 290 > 250 (max)",
    ]
