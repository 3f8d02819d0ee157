"""ragtune diagnose: per-case what/why/next and the recommendation for a run (docs/diagnosis.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ragtune.cli.common import console, emit_json, json_option, open_project, project_option
from ragtune.errors import HarnessError

if TYPE_CHECKING:
    from ragtune.diagnosis import Diagnosis
    from ragtune.diagnosis.diagnose import Traffic

_COLOUR = {"high": "green", "medium": "yellow", "low": "red"}


def _pct(entry: dict[str, Any] | None) -> str:
    if not entry or entry.get("value") is None:
        return "-"
    ci = entry.get("ci95")
    return f"{entry['value']:.0%}" + (f" [{ci[0]:.0%}, {ci[1]:.0%}]" if ci else "")


def _met(value: bool | None) -> str:
    return "-" if value is None else "[green]met[/green]" if value else "[red]missed[/red]"


def print_diagnosis(d: Diagnosis, per_family: int = 2) -> None:
    from rich.markup import escape as e
    from rich.table import Table

    rec = d.recommendation
    colour = _COLOUR[rec.confidence]
    console.print(f"[bold]run {e(d.run)}[/bold]  primary arm [bold]{e(d.primary_arm)}[/bold] ({e(d.primary_reason)})")
    console.print(
        f"{rec.n_failed} of {rec.n_cases} cases failed ({_pct(rec.failure_rate)}); "
        f"{len(d.cases) - rec.n_failed} more right but over a target"
    )
    console.print(
        f"\n[bold]verdict: {rec.verdict}[/bold]  confidence [{colour}]{rec.confidence}[/{colour}]: {e(rec.confidence_reason)}"
    )
    console.print(f"  {e(rec.reason)}")

    shares = Table(title="failures by family (share, 95% CI)", title_justify="left")
    for col in ("family", "share", "n", "causes"):
        shares.add_column(col)
    for family, entry in rec.shares.items():
        causes = ", ".join(f"{k.split('/')[1]} {v}" for k, v in rec.causes.items() if k.startswith(family + "/"))
        count = round((entry["value"] or 0) * entry["n"])
        if count:
            shares.add_row(family, _pct(entry), str(count), causes)
    if d.cases:
        console.print(shares)

    fixes = Table(title=f"fix rates on {d.primary_arm}'s failed cases (95% CI)", title_justify="left")
    for col in ("arm", "fixes", "of", "by family"):
        fixes.add_column(col)
    for arm, entry in rec.fix_rates.items():
        by = ", ".join(f"{f} {v['value']:.0%}/{v['n']}" for f, v in entry["by_family"].items())
        fixes.add_row(arm, _pct(entry), str(entry["n"]), by)
    if rec.fix_rates and rec.n_failed:
        console.print(fixes)

    sla = rec.sla
    t = sla["targets"]
    sla_table = Table(
        title=f"SLA and cost (targets: p95 {t['p95_ms'] or '-'} ms, ${t['cost_per_1k_usd'] or '-'} per 1k)",
        title_justify="left",
    )
    for col in ("arm", "p95 ms", "latency", "cost/1k", "cost"):
        sla_table.add_column(col)
    for arm, s in sla["arms"].items():
        name = f"{arm} (candidate)" if arm == sla["candidate"] else arm
        p95 = "-" if s["p95_ms"] is None else f"{s['p95_ms']:,.0f}"
        cost = "-" if s["cost_per_1k"] is None else f"${s['cost_per_1k']:.4f}"
        sla_table.add_row(name, p95, _met(s["latency_met"]), cost, _met(s["cost_met"]))
    console.print(sla_table)
    uc = rec.update_cost
    console.print(
        f"update cost of a changed fact: re-ingest {uc['reingest']['text']}, retrain {uc['retrain']['text']}"
        + (f" ({uc['retrain_vs_reingest']}x)" if uc["retrain_vs_reingest"] else "")
    )

    if rec.blockers:
        console.print("\n[bold]readiness[/bold]")
        for b in rec.blockers:
            mark = "[red]blocker[/red]" if b["severity"] == "blocker" else "[yellow]warning[/yellow]"
            console.print(f"  {mark} {e(b['message'])}\n    next: {e(b['next'])}")
    if rec.would_change:
        console.print("\n[bold]what would change the verdict[/bold]")
        for line in rec.would_change:
            console.print(f"  - {e(line)}")
    if d.coverage and d.coverage.get("measured"):
        cov = d.coverage
        console.print(
            f"\n[bold]traffic coverage[/bold]: {cov['covered_share']:.0%} of {cov['n_traffic']} production questions "
            f"have a case within cosine {cov['min_similarity']} ({cov['source']})"
        )
        for c in cov["clusters"]:
            state = "covered" if c["covered"] else "[red]no case[/red]"
            console.print(f"  {e(c['name'])}: {c['size']} questions, {state}; e.g. {e(repr(c['examples'][0]))}")
    if d.migration and d.migration.get("error"):
        console.print(f"\nbaseline comparison: {e(d.migration['error'])}")

    examples = d.examples(per_family)
    if examples:
        console.print(f"\n[bold]example cases[/bold] (all {len(d.cases)} with --json)")
    for family, items in examples.items():
        for a in items:
            console.print(f"  [bold]{a.case_id}[/bold]  {family}/{a.cause}  ({a.confidence})")
            console.print(f"    what: {e(a.what)}\n    why:  {e(a.why)}\n    next: {e(a.next)}")
    for note in d.notes:
        console.print(f"[dim]note: {e(note)}[/dim]")


def _update_costs(path: Path | None) -> dict[str, float | None] | None:
    if path is None:
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise HarnessError(f"{path}: cannot read the update costs ({exc}); give a JSON object") from None
    if not isinstance(data, dict) or not all(v is None or isinstance(v, int | float) for v in data.values()):
        raise HarnessError(f'{path}: give a JSON object of seconds, e.g. {{"reingest_s": 3.2, "retrain_s": 540}}')
    return {str(k): None if v is None else float(v) for k, v in data.items()}


@click.command("diagnose")
@click.argument("run")
@click.option(
    "--traffic",
    metavar="FILE|traces",
    help="Production questions to compare the cases with: a JSONL file of {\"question\": ...} lines, or 'traces' "
    "for the stored ask/chat traces.",
)
@click.option("--baseline", metavar="RUN", help="An earlier run: flag accuracy gains that moved errors elsewhere.")
@click.option(
    "--primary", metavar="ARM", help="The arm whose failures are diagnosed (default [diagnosis] primary_arm)."
)
@click.option(
    "--update-costs",
    type=click.Path(dir_okay=False, path_type=Path),
    help='JSON file of seconds to make a changed fact answerable: {"reingest_s": ..., "retrain_s": ...}.',
)
@click.option("--examples", type=click.IntRange(0, 100), default=2, show_default=True, help="Cases shown per family.")
@project_option
@json_option
def diagnose_cmd(
    run: str,
    traffic: str | None,
    baseline: str | None,
    primary: str | None,
    update_costs: Path | None,
    examples: int,
    project_dir: Path | None,
    as_json: bool,
) -> None:
    """Attribute every failed case of RUN (what failed, why, what next) and recommend RAG, FINE-TUNE, HYBRID,
    PROMPT-FIX, HARNESS-FIRST or NO-CHANGE, with shares, fix rates, the SLA check and readiness blockers."""
    from ragtune.diagnosis import diagnose_run

    project = open_project(project_dir)
    source: Traffic = None if traffic is None else "traces" if traffic == "traces" else Path(traffic)
    diagnosis = diagnose_run(
        project,
        run,
        traffic=source,
        baseline=baseline,
        update_costs=_update_costs(update_costs),
        primary=primary,
    )
    if as_json:
        emit_json(diagnosis.to_json())
    else:
        print_diagnosis(diagnosis, examples)


def register(cli: click.Group) -> None:
    cli.add_command(diagnose_cmd)
