"""ragtune eval, ragtune runs list|show|rescore|export, ragtune compare, ragtune check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ragtune.cli.common import console, emit_json, err_console, json_option, open_project, progress_bar, project_option
from ragtune.errors import HarnessError


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _num(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:,.1f}{unit}"


def print_summary(summary: dict[str, Any]) -> None:
    state = "finished" if summary["finished"] else "unfinished (run `ragtune eval` again with the same --name)"
    origin = summary.get("rescored_from")
    since = f"  rescored from {origin['run']}" if origin else ""
    console.print(f"[bold]run {summary['run']}[/bold]  {summary['n_cases']} cases  {state}{since}")
    for arm, s in summary["arms"].items():
        acc = s["accuracy"]
        ci = f" [{acc['ci95'][0]:.1%}, {acc['ci95'][1]:.1%}]" if acc["ci95"] else ""
        console.print(
            f"  [bold]{arm:<14}[/bold] accuracy {_pct(acc['value'])}{ci} (n={s['n']}, unscored {s['unscored']}, "
            f"errors {s['errors']})  format {_pct(s['format_ok']['value'])}  "
            f"citations {_pct(s['citation_precision']['value'])}  stale {_pct(s['staleness_rate']['value'])}"
        )
        tp = s.get("throughput") or {}
        console.print(
            f"  {'':<14} per request (timed alone, n={s.get('latency_n', 0)}): p50 {_num(s['p50_ms'], ' ms')}  "
            f"p95 {_num(s['p95_ms'], ' ms')}  p99 {_num(s.get('p99_ms'), ' ms')}  "
            f"tokens/1k {_num(s['tokens_per_1k'])}  cost/1k ${s['cost_per_1k'] or 0:.4f}"
        )
        console.print(
            f"  {'':<14} batch throughput: {_num(tp.get('answers_per_s'))} answers/s, "
            f"{_num(tp.get('tokens_out_per_s'))} tokens/s"
        )
        if s.get("cached"):
            console.print(
                f"  {'':<14} {s['cached']} of {s['cases']} answers read back from the generation cache: not "
                "generated now, so they are left out of latency, throughput and cost (--no-cache measures them)"
            )
        for name, t in s["targets"].items():
            bound = t.get("min", t.get("max"))
            kind = "min" if "min" in t else "max"
            mark = "[green]met[/green]" if t["met"] else "[red]missed[/red]"
            console.print(f"  {'':<14} target {name} {kind} {bound:g}: {mark}")
    for arm, cases in (summary.get("redacted") or {}).items():
        # forget removed these answers' text; their labels still count in the figures above
        console.print(
            f"  redacted by forget: {arm}: {len(cases)} cases ({', '.join(cases[:8])}{', ...' if len(cases) > 8 else ''})"
        )


@click.command("eval")
@click.argument("cases", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--arms", help="Comma-separated arms (default: [eval] arms), e.g. closed-book,rag,oracle.")
@click.option("--name", help="Run name; give an unfinished run's name to resume it (default: run-DATE-TIME).")
@click.option(
    "--no-cache",
    "no_cache",
    is_flag=True,
    help="Generate every answer: read nothing from the generation cache and write nothing to it ([eval] cache).",
)
@project_option
@json_option
def eval_cmd(cases: Path, arms: str | None, name: str | None, no_cache: bool, project_dir: Path | None, as_json: bool) -> None:  # fmt: skip
    """Ask every case of CASES of every arm, score and store each answer; resumable by --name.

    Arms: closed-book, rag, oracle, prompts, endpoint:NAME ([endpoints.NAME] in ragtune.toml).
    """
    from ragtune.harness.arms import parse_arms
    from ragtune.harness.runs import execute_run, summarize_run

    project = open_project(project_dir)
    arm_list = parse_arms(arms) if arms is not None else None  # "" is a mistake, not "the defaults"
    with progress_bar("evaluating", not as_json) as advance:
        info = execute_run(project, cases, arm_list, name=name, progress=advance, cache=False if no_cache else None)
    summary = summarize_run(project, info.run)
    if as_json:
        emit_json(summary)
    else:
        print_summary(summary)


@click.group("runs")
def runs_group() -> None:
    """Stored evaluation runs."""


@runs_group.command("list")
@project_option
@json_option
def runs_list(project_dir: Path | None, as_json: bool) -> None:
    """List runs, newest first."""
    from ragtune.harness.store import list_runs

    runs = list_runs(open_project(project_dir).store)
    if as_json:
        emit_json({"runs": [r.to_json() for r in runs]})
        return
    if not runs:
        console.print("no runs yet; `ragtune eval CASES` makes one")
    for r in runs:
        state = "finished" if r.finished_at else "unfinished"
        console.print(f"{r.run:<28} {r.created_at}  {r.n_cases:>6} cases  {','.join(r.arms)}  {state}")


@runs_group.command("show")
@click.argument("run")
@project_option
@json_option
def runs_show(run: str, project_dir: Path | None, as_json: bool) -> None:
    """Show one run's summary per arm."""
    from ragtune.harness.runs import summarize_run

    summary = summarize_run(open_project(project_dir), run)
    if as_json:
        emit_json(summary)
    else:
        print_summary(summary)


@runs_group.command("rescore")
@click.argument("run")
@click.option("--scorers", help="Comma-separated scorers (default: [eval] scorers), e.g. accuracy,content.similarity.")
@click.option("--name", help="The new run's name (default: RUN-rescored); refused if a run has it.")
@project_option
@json_option
def runs_rescore(run: str, scorers: str | None, name: str | None, project_dir: Path | None, as_json: bool) -> None:
    """Score RUN's stored answers again, without generating, into a new run that records where it came from."""
    from ragtune.harness.rescore import rescore_run
    from ragtune.harness.runs import summarize_run

    names = None
    if scorers is not None:
        names = [s.strip() for s in scorers.split(",")]
        if not all(names):
            raise HarnessError(f"--scorers {scorers!r}: an empty scorer name; give names separated by commas")
    project = open_project(project_dir)
    info = rescore_run(project, run, names, name=name)
    summary = summarize_run(project, info.run)
    if as_json:
        emit_json(summary)
        return
    console.print(f"rescored {run} into {info.run} with {', '.join(info.settings['scorers'])} (nothing generated)")
    print_summary(summary)


@runs_group.command("export")
@click.argument("run")
@click.option("--arm", required=True, help="The arm whose results to export.")
@click.option("--to", "fmt", type=click.Choice(["ragas", "deepeval", "ragchecker"]), required=True, help="The shape to write.")  # fmt: skip
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="File to write: .jsonl or .csv for ragas, .json for deepeval and ragchecker.",
)
@click.option("--force", is_flag=True, help="Overwrite OUTPUT if it exists.")
@project_option
@json_option
def runs_export(run: str, arm: str, fmt: str, output: Path, force: bool, project_dir: Path | None, as_json: bool) -> None:  # fmt: skip
    """Write one arm's results of RUN as a RAGAS, DeepEval or RAGChecker data set (answers, contexts, scores)."""
    from ragtune.harness.export import export_run

    if output.exists() and not force:
        raise HarnessError(f"{output} exists; pass --force to overwrite it")
    n = export_run(open_project(project_dir).store, run, arm, fmt, output)
    if as_json:
        emit_json({"run": run, "arm": arm, "format": fmt, "rows": n, "path": str(output)})
    else:
        console.print(f"wrote {n} rows of {run}/{arm} to {output} ({fmt})")


@click.command("compare")
@click.argument("runs", nargs=-1, required=True)
@click.option("--arms", help="With one RUN: the two arms to compare, A,B.")
@click.option("--arm", help="With two runs: compare only this arm (default: every arm both runs have).")
@project_option
@json_option
def compare_cmd(runs: tuple[str, ...], arms: str | None, arm: str | None, project_dir: Path | None, as_json: bool) -> None:  # fmt: skip
    """Paired bootstrap deltas (B minus A) and the error migration between RUN_A and RUN_B, or two arms of RUN."""
    from ragtune.harness.arms import parse_arms
    from ragtune.harness.compare import compare_arms
    from ragtune.harness.store import load_run

    project = open_project(project_dir)
    store, settings = project.store, project.config.eval
    if len(runs) == 1:
        if arm:
            raise HarnessError("--arm NAME is for two runs; with one run give the two arms as --arms A,B")
        pair = parse_arms(arms or "")
        if len(pair) != 2:
            raise HarnessError("with one run, give --arms A,B (two arms of that run)")
        sides = [((runs[0], pair[0]), (runs[0], pair[1]))]
    elif len(runs) == 2:
        if arms:
            raise HarnessError("--arms A,B is for one run; with two runs use --arm NAME")
        first, second = load_run(store, runs[0]), load_run(store, runs[1])
        names = [arm] if arm else [a for a in first.arms if a in second.arms]
        if not names:
            raise HarnessError(f"runs {runs[0]!r} and {runs[1]!r} share no arm; pick one with --arm")
        sides = [((runs[0], n), (runs[1], n)) for n in names]
    else:
        raise HarnessError("give one run (with --arms A,B) or two runs")
    reports = [compare_arms(store, a, b, resamples=settings.bootstrap_resamples, seed=settings.seed) for a, b in sides]
    if as_json:
        emit_json({"comparisons": reports})
        return
    for rep in reports:
        a, b = rep["a"], rep["b"]
        console.print(f"[bold]{b['run']}/{b['arm']} vs {a['run']}/{a['arm']}[/bold]  {rep['cases']} shared cases")
        for name, m in rep["metrics"].items():
            if "ci95" not in m:
                console.print(f"  {name:<19} {_num(m['a'])} -> {_num(m['b'])}  delta {_num(m['delta'])}")
            elif m["n"]:
                lo, hi = m["ci95"]
                console.print(
                    f"  {name:<19} {m['a']:.1%} -> {m['b']:.1%}  delta {m['delta']:+.1%} [{lo:+.1%}, {hi:+.1%}]  "
                    f"(n={m['n']})"
                )
        console.print("  migration (rows: A, columns: B)")
        labels = list(rep["migration"])
        console.print("  " + " " * 10 + "".join(f"{x:>10}" for x in labels))
        for x in labels:
            console.print(f"  {x:<10}" + "".join(f"{rep['migration'][x][y]:>10}" for y in labels))


@click.command("check")
@click.argument("run")
@click.option("--min", "mins", multiple=True, metavar="METRIC=VALUE", help="Fail when METRIC is below VALUE.")
@click.option("--max", "maxes", multiple=True, metavar="METRIC=VALUE", help="Fail when METRIC is above VALUE.")
@click.option("--arm", help="Check only this arm (default: every arm of the run).")
@project_option
@json_option
def check_cmd(
    run: str, mins: tuple[str, ...], maxes: tuple[str, ...], arm: str | None, project_dir: Path | None, as_json: bool
) -> None:
    """Exit 1 with one line per unmet condition, for CI; without --min/--max, the [targets] of ragtune.toml.

    Metrics: accuracy, accuracy_ci_low, accuracy_ci_high, format_ok, citation_precision, staleness_rate, p50_ms,
    p95_ms, p99_ms, cost_per_1k, tokens_per_1k, n, unscored, errors.
    """
    from ragtune.harness.runs import summarize_run
    from ragtune.harness.summary import target_conditions, unmet

    project = open_project(project_dir)
    conditions = [_condition(t, "min") for t in mins] + [_condition(t, "max") for t in maxes]
    if not conditions:
        conditions = target_conditions(project.config.targets)
        if not conditions:
            raise HarnessError("nothing to check: give --min/--max METRIC=VALUE or set [targets] in ragtune.toml")
    summary = summarize_run(project, run)
    arms = [arm] if arm else list(summary["arms"])
    if arm and arm not in summary["arms"]:
        raise HarnessError(f"run {run!r} has no arm {arm!r} (it has {', '.join(summary['arms'])})")
    failures = [f"{name}: {reason}" for name in arms for reason in unmet(summary["arms"][name], conditions)]
    if not summary["finished"]:
        failures.insert(0, f"run {run!r} is unfinished; resume it with `ragtune eval` and the same --name")
    if as_json:
        emit_json({"run": run, "passed": not failures, "failures": failures})
    else:
        for line in failures:
            err_console.print(line)
        if not failures:
            console.print(f"run {run}: {len(conditions)} conditions met by {', '.join(arms)}")
    if failures:
        raise click.exceptions.Exit(1)


def _condition(text: str, kind: str) -> tuple[str, str, float]:
    from ragtune.harness.summary import METRICS

    name, sep, value = text.partition("=")
    name = name.strip()
    if not sep or name not in METRICS:
        raise HarnessError(f"--{kind} {text!r}: give METRIC=VALUE with METRIC one of {', '.join(METRICS)}")
    try:
        return name, kind, float(value)
    except ValueError:
        raise HarnessError(f"--{kind} {text!r}: {value!r} is not a number") from None


def register(cli: click.Group) -> None:
    cli.add_command(eval_cmd)
    cli.add_command(runs_group)
    cli.add_command(compare_cmd)
    cli.add_command(check_cmd)
