"""The recommendation: RAG, FINE-TUNE, HYBRID, PROMPT-FIX, HARNESS-FIRST or NO-CHANGE, from the attributed failures,
with the shares and fix rates behind it (95% percentile-bootstrap intervals, the harness's own bootstrap), the SLA and
cost check, the update cost, and what evidence would change it. The rules and thresholds are in docs/diagnosis.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ragtune.config import Config
from ragtune.diagnosis.attribute import Attribution, Confidence
from ragtune.diagnosis.facts import RunData
from ragtune.diagnosis.taxonomy import CAUSES, FAMILIES, SIDE_VERDICT, UNCLEAR, Side, Verdict
from ragtune.harness.summary import bootstrap_ci

QUALITY_SIDES: tuple[Side, ...] = ("prompt", "facts", "training")
"""The sides a verdict weighs, in the order that breaks ties: the cheapest change first."""


@dataclass
class Recommendation:
    """The verdict for a run and the evidence behind it (see :func:`recommend`).

    >>> rec = diagnose_run(project, "baseline").recommendation
    >>> rec.verdict, rec.confidence, rec.shares["knowledge"]["ci95"]
    """

    verdict: Verdict
    confidence: Confidence
    confidence_reason: str
    reason: str
    primary_arm: str
    n_cases: int
    n_failed: int
    failure_rate: dict[str, Any]
    shares: dict[str, dict[str, Any]]
    sides: dict[str, dict[str, Any]]
    causes: dict[str, int]
    fix_rates: dict[str, dict[str, Any]]
    sla: dict[str, Any]
    update_cost: dict[str, Any]
    would_change: list[str]
    thresholds: dict[str, Any]
    candidate_arm: str | None = None
    blockers: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class _Stats:
    def __init__(self, config: Config) -> None:
        self.resamples = config.eval.bootstrap_resamples
        self.seed = config.eval.seed

    def rate(self, flags: Sequence[bool]) -> dict[str, Any]:
        """``{"value", "ci95", "n"}`` of a share, None for no observations."""
        if not flags:
            return {"value": None, "ci95": None, "n": 0}
        values = [1.0 if f else 0.0 for f in flags]
        ci = bootstrap_ci(values, resamples=self.resamples, seed=self.seed)
        assert ci is not None
        return {"value": round(sum(values) / len(values), 6), "ci95": [round(ci[0], 6), round(ci[1], 6)],
                "n": len(values)}  # fmt: skip


def side_of(a: Attribution) -> Side | None:
    return None if a.unclear else CAUSES[(a.family, a.cause)].side


def fix_rates(data: RunData, primary: str, failed: Sequence[Attribution], stats: _Stats) -> dict[str, dict[str, Any]]:
    """For every other arm (and every prompt variant, as ``prompts/NAME``): the share of the primary arm's failed
    cases it gets right (label ``correct``), overall and by family, over the failed cases it answered."""
    out: dict[str, dict[str, Any]] = {}
    names: list[str] = [a for a in data.info.arms if a != primary]
    variants = sorted({v for r in data.arm_results("prompts") for v in r.variants})
    names += [f"prompts/{v}" for v in variants]
    for name in names:
        flags: list[bool] = []
        by_family: dict[str, list[bool]] = {}
        for a in failed:
            arm, _, variant = name.partition("/")
            result = data.results.get(a.case_id, {}).get(arm)
            if result is None:
                continue
            fixed = result.variant_right(variant) if variant else (None if result.label == "unscored" and result.error else result.correct)  # fmt: skip
            if fixed is None:
                continue
            flags.append(fixed)
            by_family.setdefault(a.family, []).append(fixed)
        entry = stats.rate(flags)
        entry["by_family"] = {f: {"value": round(sum(v) / len(v), 6), "n": len(v)} for f, v in by_family.items()}
        out[name] = entry
    return out


def form_fix_rate(data: RunData, variant: str, cases: Sequence[Attribution], stats: _Stats) -> dict[str, Any]:
    """The share of ``cases`` (behaviour failures) where prompt variant ``variant`` follows the format rule: the form
    alone, as the attribution judges it (the prompts arm answers without retrieval)."""
    flags = []
    for a in cases:
        r = data.results.get(a.case_id, {}).get("prompts")
        ok = r.variant_formatted(variant) if r is not None else None
        if ok is not None:
            flags.append(ok)
    return stats.rate(flags)


def fix_rate_on(data: RunData, arm: str, cases: Sequence[Attribution], stats: _Stats) -> dict[str, Any]:
    arm_name, _, variant = arm.partition("/")
    flags = []
    for a in cases:
        r = data.results.get(a.case_id, {}).get(arm_name)
        if r is not None:
            fixed = r.variant_right(variant) if variant else r.correct
            if fixed is not None:
                flags.append(fixed)
    return stats.rate(flags)


def update_cost(costs: Mapping[str, float | None] | None) -> dict[str, Any]:
    """Seconds to make a changed fact answerable by re-ingesting vs by retraining (``reingest_s``, ``retrain_s``)."""
    costs = dict(costs or {})
    out: dict[str, Any] = {}
    for key, label in (("reingest_s", "reingest"), ("retrain_s", "retrain")):
        value = costs.get(key)
        out[label] = {"seconds": None if value is None else float(value),
                      "text": "not measured" if value is None else f"{float(value):,.1f} s"}  # fmt: skip
    r, t = out["reingest"]["seconds"], out["retrain"]["seconds"]
    out["retrain_vs_reingest"] = round(t / r, 1) if r and t is not None else None
    out["extra"] = {k: v for k, v in costs.items() if k not in ("reingest_s", "retrain_s")}
    return out


def sla_check(config: Config, summaries: Mapping[str, Mapping[str, Any]], candidate: str | None) -> dict[str, Any]:
    """Each arm's p95 latency and cost per 1k requests against [targets] (0 there: no target, ``met`` None)."""
    t = config.targets
    arms: dict[str, Any] = {}
    for arm, s in summaries.items():
        p95, cost = s.get("p95_ms"), s.get("cost_per_1k")
        latency_met = None if not t.p95_ms or p95 is None else p95 <= t.p95_ms
        cost_met = None if not t.cost_per_1k_usd or cost is None else cost <= t.cost_per_1k_usd
        checks = [m for m in (latency_met, cost_met) if m is not None]
        arms[arm] = {"p95_ms": p95, "cost_per_1k": cost, "latency_met": latency_met, "cost_met": cost_met,
                     "met": all(checks) if checks else None}  # fmt: skip
    return {
        "targets": {"p95_ms": t.p95_ms or None, "cost_per_1k_usd": t.cost_per_1k_usd or None},
        "arms": arms,
        "candidate": candidate,
        "candidate_met": arms[candidate]["met"] if candidate in arms else None,
    }


def _pct(entry: Mapping[str, Any]) -> str:
    if entry.get("value") is None:
        return "not measured"
    ci = entry.get("ci95")
    return f"{entry['value']:.0%}" + (f" [{ci[0]:.0%}, {ci[1]:.0%}]" if ci else "") + f" of {entry.get('n', '?')}"


def recommend(
    data: RunData,
    primary: str,
    attributions: Sequence[Attribution],
    config: Config,
    summaries: Mapping[str, Mapping[str, Any]],
    update_costs: Mapping[str, float | None] | None = None,
) -> Recommendation:
    """The verdict for a run from its attributions (the rules are in docs/diagnosis.md)."""
    d, stats = config.diagnosis, _Stats(config)
    arms = data.info.arms
    answered = [r for r in data.arm_results(primary)]
    failed = [a for a in attributions if a.family != "operations"]
    attributed = [a for a in failed if not a.unclear]
    n_cases, n_failed = len(answered), len(failed)
    failed_ids = {a.case_id for a in failed}
    failure_rate = stats.rate([r.case_id in failed_ids for r in answered])
    shares = {f: stats.rate([a.family == f for a in attributions]) for f in (*FAMILIES, UNCLEAR)}
    sides: dict[str, dict[str, Any]] = {s: stats.rate([side_of(a) == s for a in attributed]) for s in QUALITY_SIDES}
    causes: dict[str, int] = {}
    for a in attributions:
        causes[f"{a.family}/{a.cause}"] = causes.get(f"{a.family}/{a.cause}", 0) + 1
    rates = fix_rates(data, primary, failed, stats)
    facts = [a for a in attributed if side_of(a) == "facts"]
    training = [a for a in attributed if side_of(a) == "training"]
    behaviour = [a for a in attributed if a.family == "behaviour"]
    share = {s: float(sides[s]["value"] or 0.0) for s in QUALITY_SIDES}
    unclear_share = (n_failed - len(attributed)) / n_failed if n_failed else 0.0
    would: list[str] = []
    low: list[str] = []
    candidate: str | None = primary
    hybrid_note = ""

    if n_failed == 0 or float(failure_rate["value"] or 0.0) <= d.no_change_max_failure_rate:
        verdict: Verdict = "NO-CHANGE"
        reason = (f"{n_failed} of {n_cases} cases failed on {primary} ({_pct(failure_rate)}), at or below "
                  f"no_change_max_failure_rate {d.no_change_max_failure_rate:.0%}")  # fmt: skip
        would.append(
            f"if {primary}'s failure rate rose above {d.no_change_max_failure_rate:.0%} (now {_pct(failure_rate)})"
        )
        ci = failure_rate["ci95"]
        strong = ci is not None and ci[1] <= d.no_change_max_failure_rate
    elif not attributed or unclear_share > d.max_unclear_share:
        verdict = "HARNESS-FIRST"
        reason = (f"{n_failed - len(attributed)} of {n_failed} failures cannot be attributed ({unclear_share:.0%} > "
                  f"max_unclear_share {d.max_unclear_share:.0%}): the harness must tell causes apart before a fix is "
                  "chosen; add the missing arms and evidence")  # fmt: skip
        would.append(
            "if the missing arms (closed-book, oracle, prompts) or gold evidence attributed the unclear failures"
        )
        strong = False
    elif share["facts"] >= d.severe_share and share["training"] >= d.severe_share:
        mixed = facts + training
        hybrids = {a: fix_rate_on(data, a, mixed, stats) for a in arms if a.startswith("hybrid:")}
        best = max(hybrids, key=lambda a: hybrids[a]["value"] or 0.0, default=None)
        measured = best is not None and (hybrids[best]["value"] or 0.0) >= d.hybrid_min_fix_rate and (hybrids[best]["ci95"] or [0.0])[0] > 0  # fmt: skip
        both = (f"fact failures {share['facts']:.0%} and training failures {share['training']:.0%} of the attributed "
                f"failures are both at or above severe_share {d.severe_share:.0%}")  # fmt: skip
        if measured and best is not None:
            verdict, candidate = "HYBRID", best
            reason = f"{both}, and {best} fixes {_pct(hybrids[best])} of them"
            would.append(
                f"if {best}'s fix rate on these failures fell below hybrid_min_fix_rate {d.hybrid_min_fix_rate:.0%}"
            )
        else:
            verdict = "HARNESS-FIRST"
            hybrid_note = (f"; {best} fixes only {_pct(hybrids[best])} of them" if best
                           else "; no hybrid:VERSION arm was measured")  # fmt: skip
            reason = (f"{both}{hybrid_note}: build the shared evaluation harness first, then roll out in phases: RAG "
                      "for the facts first, then evaluate fine-tuning for behaviour")  # fmt: skip
            would.append(f"a hybrid:VERSION arm fixing at least {d.hybrid_min_fix_rate:.0%} of these failures would make it HYBRID")  # fmt: skip
        would.append(f"if either side fell below severe_share {d.severe_share:.0%} (facts {_pct(sides['facts'])}, "
                     f"training {_pct(sides['training'])})")  # fmt: skip
        strong = all((sides[s]["ci95"] or [0.0])[0] >= d.severe_share for s in ("facts", "training"))
    else:
        lead = max(QUALITY_SIDES, key=lambda s: (share[s], -QUALITY_SIDES.index(s)))
        verdict = SIDE_VERDICT[lead]
        others = [s for s in QUALITY_SIDES if s != lead]
        runner = max(others, key=lambda s: share[s])
        count = round(share[lead] * len(attributed))
        reason = (f"{count} of {len(attributed)} attributed failures are {lead} failures ({_pct(sides[lead])}; "
                  f"{', '.join(f'{s} {share[s]:.0%}' for s in others)})")  # fmt: skip
        strong = (sides[lead]["ci95"] or [0.0])[0] > share[runner]
        would.append(f"if {runner} failures outgrew {lead} failures (now {share[runner]:.0%} vs {share[lead]:.0%})")
        if verdict == "RAG":
            candidate = "rag" if "rag" in arms else None
            oracle = rates.get("oracle")
            if oracle is not None and facts:
                on_facts = fix_rate_on(data, "oracle", facts, stats)
                would.append(f"if the oracle arm's fix rate on fact failures fell below oracle_min_fix_rate "
                             f"{d.oracle_min_fix_rate:.0%} (now {_pct(on_facts)})")  # fmt: skip
                if on_facts["value"] is not None and on_facts["value"] < d.oracle_min_fix_rate:
                    low.append(f"the oracle fixes only {_pct(on_facts)} of the fact failures")
            elif primary != "oracle":
                would.append("an oracle arm would show whether the gold evidence fixes these failures")
            if not training:
                would.append(f"if behaviour failures needing training reached severe_share {d.severe_share:.0%}: HYBRID or HARNESS-FIRST")  # fmt: skip
        elif verdict == "FINE-TUNE":
            adapters = {a: fix_rate_on(data, a, training, stats) for a in arms if a.startswith("adapter:")}
            candidate = max(adapters, key=lambda a: adapters[a]["value"] or 0.0, default=None)
            if candidate is None:
                would.append("an adapter:VERSION arm fixing these failures would confirm it (not measured yet: "
                             "`ragtune tune data`, `ragtune tune train`)")  # fmt: skip
            else:
                would.append(f"if {candidate}'s fix rate on training failures fell (now {_pct(adapters[candidate])})")
            if "prompts" not in arms and behaviour:
                low.append("the run has no prompts arm: untested whether a prompt fixes the behaviour failures")
                would.append("if the prompts arm fixed the behaviour failures: PROMPT-FIX")
        elif verdict == "PROMPT-FIX":
            candidate = "prompts" if "prompts" in arms else None
            names = sorted({v for r in data.arm_results("prompts") for v in r.variants})
            forms = {v: form_fix_rate(data, v, behaviour, stats) for v in names}
            best_v = max(forms, key=lambda v: forms[v]["value"] or 0.0, default=None)
            if best_v is not None:
                would.append(f"if the best variant (prompts/{best_v}) stopped giving the behaviour failures the right form (now {_pct(forms[best_v])}): FINE-TUNE")  # fmt: skip

    n_attr = len(attributed)
    if verdict != "NO-CHANGE" and n_attr < d.min_failures:
        low.append(f"n too small: {n_attr} attributed failures (min_failures {d.min_failures})")
        would.append(f"n too small: add cases until at least {d.min_failures} failures are attributed")
    if verdict == "NO-CHANGE" and n_cases < d.min_failures:
        low.append(f"n too small: {n_cases} cases")
        would.append("n too small: add cases")
    weak = [a for a in attributed if a.confidence == "low"]
    if attributed and len(weak) * 2 > len(attributed):
        low.append(f"{len(weak)} of {n_attr} attributions rest on a missing arm")
    sla = sla_check(config, summaries, candidate)
    if sla["candidate_met"] is False:
        would.append(f"{candidate} misses the [targets] SLA or cost check: a cheaper or faster arm is needed before rollout")  # fmt: skip
    if verdict in ("RAG", "FINE-TUNE", "HYBRID", "PROMPT-FIX") and candidate is None:
        would.append(f"the arm that implements {verdict} was not in this run, so its SLA and cost are not measured")

    if low:
        confidence: Confidence = "low"
        confidence_reason = "; ".join(low)
    elif strong and unclear_share < 0.2:
        confidence = "high"
        confidence_reason = "the intervals separate the verdict from the alternatives"
    else:
        confidence = "medium"
        confidence_reason = ("the intervals overlap the alternative" if not strong
                             else f"{unclear_share:.0%} of the failures are unclear")  # fmt: skip
    thresholds = d.model_dump()
    return Recommendation(
        verdict=verdict,
        confidence=confidence,
        confidence_reason=confidence_reason,
        reason=reason,
        primary_arm=primary,
        n_cases=n_cases,
        n_failed=n_failed,
        failure_rate=failure_rate,
        shares=shares,
        sides=sides,
        causes=causes,
        fix_rates=rates,
        sla=sla,
        update_cost=update_cost(update_costs),
        would_change=would,
        thresholds=thresholds,
        candidate_arm=candidate,
    )
