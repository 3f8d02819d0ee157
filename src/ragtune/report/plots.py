"""The report's plots as inline SVG (matplotlib's object API: no pyplot, no global backend state).

Each function returns an ``<svg>`` string, or None when there is nothing to plot (the report then says why).
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

FAMILY_COLOURS = {
    "knowledge": "#4e79a7",
    "retrieval": "#f28e2b",
    "generation": "#e15759",
    "behaviour": "#76b7b2",
    "operations": "#59a14f",
    "unclear": "#bab0ac",
    "not attributed": "#d3d3d3",
}


def _svg(fig: Any) -> str:
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "ragtune"}):  # text stays text; ids repeat
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buf.getvalue()
    return text[text.index("<svg") :]  # the XML prolog and doctype do not belong inside HTML


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    fig.set_layout_engine("constrained")
    return fig


def failure_families(per_arm: Mapping[str, Counter[str]]) -> str | None:
    """Stacked bars: each arm's failed cases by failure family."""
    if not per_arm or not any(per_arm.values()):
        return None
    arms = list(per_arm)
    families = [f for f in FAMILY_COLOURS if any(per_arm[a][f] for a in arms)]
    fig = _figure(7, 0.5 + 0.45 * len(arms))
    ax = fig.add_subplot()
    left = [0] * len(arms)
    for family in families:
        counts = [per_arm[a][family] for a in arms]
        ax.barh(arms, counts, left=left, label=family, color=FAMILY_COLOURS[family])
        left = [x + c for x, c in zip(left, counts, strict=True)]
    ax.invert_yaxis()
    ax.set_xlabel("failed cases")
    ax.set_title("Failure families per arm")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small", frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    return _svg(fig)


def accuracy_latency_cost(arms: Mapping[str, Mapping[str, Any]], p95_target_ms: float = 0.0) -> str | None:
    """Accuracy (with its 95% interval) against p95 latency; the marker's area grows with cost per 1,000 requests."""
    points = [
        (name, s["p95_ms"], s["accuracy"]["value"], s["accuracy"].get("ci95"), s.get("cost_per_1k") or 0.0)
        for name, s in arms.items()
        if s.get("p95_ms") is not None and s.get("accuracy", {}).get("value") is not None
    ]
    if not points:
        return None
    fig = _figure(7, 4)
    ax = fig.add_subplot()
    top_cost = max(p[4] for p in points) or 1.0
    for name, p95, acc, ci, cost in points:
        yerr = [[acc - ci[0]], [ci[1] - acc]] if ci else None
        ax.errorbar([p95], [acc], yerr=yerr, fmt="none", ecolor="#888", capsize=3)
        ax.scatter([p95], [acc], s=60 + 600 * cost / top_cost, alpha=0.7)
        ax.annotate(f"{name}\n${cost:.3g}/1k", (p95, acc), textcoords="offset points", xytext=(8, 4), fontsize=8)
    if p95_target_ms:
        ax.axvline(p95_target_ms, color="#c00", linestyle="--", linewidth=1, label=f"p95 target {p95_target_ms:g} ms")
        ax.legend(loc="lower right", fontsize="small", frameon=False)
    ax.set_xlabel("p95 latency (ms)")
    ax.set_ylabel("accuracy (95% CI)")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title("Accuracy vs p95 latency (marker area: cost per 1,000 requests)")
    ax.spines[["top", "right"]].set_visible(False)
    return _svg(fig)


def staleness_over_time(series: Mapping[str, Sequence[tuple[str, float, int]]]) -> str | None:
    """Per arm, the share of stale answers among the cases asked at each ``as_of`` date (with n at each point)."""
    series = {arm: pts for arm, pts in series.items() if pts}
    if not series:
        return None
    dates = sorted({d for pts in series.values() for d, _, _ in pts})
    fig = _figure(7, 3.5)
    ax = fig.add_subplot()
    for arm, pts in series.items():
        xs = [dates.index(d) for d, _, _ in pts]
        ax.plot(xs, [v for _, v, _ in pts], marker="o", label=arm)
    ax.set_xticks(range(len(dates)), dates, rotation=30, ha="right", fontsize=8)
    ax.set_ylim(-0.05, 1.05)
    ax.set_ylabel("stale answers (share)")
    ax.set_xlabel("as_of date asked at")
    ax.set_title("Staleness over as_of dates")
    ax.legend(fontsize="small", frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    return _svg(fig)
