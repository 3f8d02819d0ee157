"""ragtune tune list | show | promote | rollback | history: the model registry (docs/tuning.md#registry)."""

from __future__ import annotations

from pathlib import Path

import click

from ragtune.cli.common import console, emit_json, json_option, open_project, project_option
from ragtune.cli.tune_cmd import tune_group


@tune_group.command("train")
@click.option(
    "--data", "dataset", required=True, metavar="NAME", help="The data set to train on (`ragtune tune data`)."
)
@click.option("--base", help="A Hugging Face model folder to adapt (default: the packaged SmolLM2-135M-Instruct).")
@click.option("--epochs", type=click.IntRange(1, 1000), help="Passes over the data at most (default [train] epochs).")
@click.option("--max-steps", type=click.IntRange(0), help="Optimizer steps at most (default [train] max_steps).")
@click.option("--learning-rate", type=float, help="Peak learning rate (default [train] learning_rate).")
@click.option("--batch-size", type=click.IntRange(1, 4096), help="Examples per step (default [train] batch_size).")
@click.option("--seed", type=int, help="Seed (default [train] seed).")
@click.option("--no-resume", is_flag=True, help="Start over instead of resuming this run's checkpoints.")
@project_option
@json_option
def tune_train(
    dataset: str,
    base: str | None,
    epochs: int | None,
    max_steps: int | None,
    learning_rate: float | None,
    batch_size: int | None,
    seed: int | None,
    no_resume: bool,
    project_dir: Path | None,
    as_json: bool,
) -> None:
    """Train a LoRA adapter on a data set and register it as the next model version (resumes after a kill)."""
    from ragtune.tuning.train import TrainSettings
    from ragtune.tuning.versions import train_version

    project = open_project(project_dir)
    given = {"epochs": epochs, "max_steps": max_steps, "learning_rate": learning_rate, "batch_size": batch_size,
             "seed": seed}  # fmt: skip
    settings = TrainSettings.from_config(project.config).model_copy(
        update={k: v for k, v in given.items() if v is not None}
    )
    v = train_version(project, dataset, base=base, settings=settings, progress=not as_json, resume=not no_resume)
    if as_json:
        emit_json(v.to_json())
        return
    r = v.result
    console.print(
        f"{v.version}: trained on {v.dataset} ({v.dataset_digest[:12]}) in {r['wall_seconds']:.0f}s, "
        f"{r['steps']} steps ({r['stop_reason']}), holdout loss {r['initial_holdout_loss']} -> {r['best_holdout_loss']}"
    )
    console.print(
        f"  evaluate it: ragtune eval CASES --arms closed-book,prompts,adapter:{v.version},hybrid:{v.version}"
    )
    console.print(f"  then: ragtune tune promote {v.version} --alias production")


@tune_group.command("list")
@project_option
@json_option
def tune_list(project_dir: Path | None, as_json: bool) -> None:
    """List model versions: data set, aliases, holdout loss, training time, taint."""
    from ragtune.tuning.registry import list_versions

    versions = list_versions(open_project(project_dir).store)
    if as_json:
        emit_json({"versions": [v.to_json() for v in versions]})
        return
    if not versions:
        console.print("no model versions yet: `ragtune tune train --data NAME` makes one")
    for v in versions:
        r = v.result
        loss = r.get("best_holdout_loss")
        console.print(
            f"{v.version:<5} {v.created_at}  data {v.dataset} ({v.dataset_digest[:12]})  "
            f"holdout loss {'-' if loss is None else f'{loss:.3f}'}  {r.get('wall_seconds', 0):.0f}s"
            + (f"  [{', '.join(v.aliases)}]" if v.aliases else "")
            + ("  TAINTED" if v.tainted else "")
        )


@tune_group.command("show")
@click.argument("ref")
@project_option
@json_option
def tune_show(ref: str, project_dir: Path | None, as_json: bool) -> None:
    """Show model version REF (v3, or an alias such as production): base, adapter, data set, settings, figures."""
    from ragtune.tuning.registry import resolve

    v = resolve(open_project(project_dir).store, ref)
    if as_json:
        emit_json(v.to_json())
        return
    console.print(f"[bold]{v.version}[/bold]  created {v.created_at} by {v.created_by}" + (f"  aliases: {', '.join(v.aliases)}" if v.aliases else ""))  # fmt: skip
    console.print(f"  base {v.base}  adapter {v.adapter}")
    console.print(f"  data set {v.dataset}  digest {v.dataset_digest}")
    r = v.result
    for key in ("train_examples", "holdout_examples", "steps", "epochs_run", "stop_reason", "best_holdout_loss",
                "initial_holdout_loss", "tokens_per_second", "wall_seconds", "cost_usd"):  # fmt: skip
        if key in r:
            console.print(f"  {key.replace('_', ' ')}: {r[key]}")
    if v.tainted:
        console.print(f"  [red]TAINTED[/red] by {v.tainted.get('receipt')}: trained on forgotten {', '.join(v.tainted.get('documents', []))}; retrain: {v.tainted.get('retrain')}")  # fmt: skip


@tune_group.command("promote")
@click.argument("ref")
@click.option("--alias", required=True, help="The alias to point at REF, e.g. production.")
@click.option("--run", help="The evaluation run to judge REF on (default: the latest one with an arm for it).")
@click.option("--force", is_flag=True, help="Promote even if the gate refuses (needs --reason; recorded).")
@click.option("--reason", help="Why: recorded in the alias history (required with --force).")
@project_option
@json_option
def tune_promote(
    ref: str, alias: str, run: str | None, force: bool, reason: str | None, project_dir: Path | None, as_json: bool
) -> None:
    """Point ALIAS at REF if it does not regress ALIAS's current version on the harness ([registry] thresholds)."""
    from ragtune.tuning.registry import promote

    moved = promote(open_project(project_dir), ref, alias, run=run, force=force, reason=reason)
    if as_json:
        emit_json(moved)
        return
    console.print(f"{alias}: {moved['previous'] or '(new)'} -> {moved['version']}" + (" (forced)" if moved["forced"] else ""))  # fmt: skip
    for kind, entry in moved["gate"]["comparison"].get("arms", {}).items():
        cand, cur = entry.get("candidate"), entry.get("current")
        line = f"  {kind}: accuracy {_pct(cand['accuracy'])}, format {_pct(cand['format_ok'])}"
        if cur:
            line += f" (was {_pct(cur['accuracy'])}, {_pct(cur['format_ok'])})"
        console.print(line)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


@tune_group.command("rollback")
@click.option("--alias", required=True, help="The alias to move back, e.g. production.")
@project_option
@json_option
def tune_rollback(alias: str, project_dir: Path | None, as_json: bool) -> None:
    """Point ALIAS back at the version it held before its current one."""
    from ragtune.tuning.registry import rollback

    moved = rollback(open_project(project_dir), alias)
    if as_json:
        emit_json(moved)
    else:
        console.print(f"{alias}: {moved['previous']} -> {moved['version']} (rollback by {moved['by']})")


@tune_group.command("history")
@click.option("--alias", help="Only this alias (default: every alias).")
@project_option
@json_option
def tune_history(alias: str | None, project_dir: Path | None, as_json: bool) -> None:
    """Every move of the aliases: who pointed what where, when, and why."""
    from ragtune.tuning.registry import alias_history

    rows = alias_history(open_project(project_dir).store, alias)
    if as_json:
        emit_json({"history": rows})
        return
    for h in rows:
        console.print(
            f"{h['at']}  {h['by']:<10} {h['action']:<8} {h['alias']}: {h['previous'] or '(new)'} -> {h['version']}"
            + ("  FORCED" if h["forced"] else "") + (f"  ({h['reason']})" if h["reason"] else "")
        )  # fmt: skip


def register(cli: click.Group) -> None:
    """The commands attach to the ``tune`` group when this module is imported; nothing else to add."""
