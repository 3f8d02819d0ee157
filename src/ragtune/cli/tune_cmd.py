"""ragtune tune (training data now; train, list, promote and rollback join this group) and ragtune lineage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ragtune.cli.common import console, emit_json, err_console, json_option, open_project, project_option
from ragtune.corpus.model import parse_groups


@click.group("tune")
def tune_group() -> None:
    """Fine-tuning: build governed training data sets (and train, compare and roll out adapters)."""


@tune_group.command("data")
@click.option(
    "--from-cases",
    "cases",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="A case file (JSONL): each case with answers gives question -> first answer. Repeatable.",
)
@click.option("--from-traces", "traces", is_flag=True, help="Stored answers that used documents (`ragtune ask`).")
@click.option(
    "--from-jsonl",
    "jsonl",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help='Chat-messages JSONL ({"messages": [...], "source": {"doc_id", "version"}}). Repeatable.',
)
@click.option("--name", required=True, metavar="NAME", help="Data set name (letters, digits, '.', '_', '-').")
@click.option(
    "--eval-cases",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Case files you evaluate on: examples copying their questions are dropped as leakage "
    "(default: [tuning] eval_cases). Repeatable.",
)
@click.option(
    "--holdout",
    type=click.FloatRange(0, 1, max_open=True),
    help="Share set aside for evaluation (default: [tuning] holdout).",
)
@click.option(
    "--pii", type=click.Choice(["drop", "mask"]), help="Personal data: drop the example or mask it ([tuning] pii)."
)
@click.option("--seed", type=int, help="Seed of the holdout split (default: [tuning] seed).")
@click.option(
    "--near-duplicate",
    type=click.FloatRange(0, 1, min_open=True),
    help="Cosine at which two examples are near-duplicates (default: [tuning] near_duplicate).",
)
@click.option(
    "--leakage",
    type=click.FloatRange(0, 1, min_open=True),
    help="Cosine at which a user turn copies an evaluation question (default: [tuning] leakage).",
)
@click.option("--replace", is_flag=True, help="Overwrite an existing data set of this name that has other content.")
@click.option(
    "--allow-groups",
    metavar="GROUPS",
    help="Comma-separated access groups whose restricted documents may be trained on (default: none). The data "
    "set and every model trained on it then inherit those groups: only callers who hold them may use the model.",
)
@project_option
@json_option
def tune_data(
    cases: tuple[Path, ...],
    traces: bool,
    jsonl: tuple[Path, ...],
    name: str,
    eval_cases: tuple[Path, ...],
    holdout: float | None,
    pii: str | None,
    seed: int | None,
    near_duplicate: float | None,
    leakage: float | None,
    replace: bool,
    allow_groups: str | None,
    project_dir: Path | None,
    as_json: bool,
) -> None:
    """Build a training data set in chat-messages format, screened for rights, personal data, duplicates and
    leakage, split into train and holdout, and stored with its lineage.

    Only material whose source documents allow training, and are public (or opted in with --allow-groups), is kept. The files land in
    .ragtune/datasets/NAME/{train,holdout}.jsonl with a manifest.json; the same name with other content is an
    error unless --replace.
    """
    from ragtune.tuning.data import build_dataset

    project = open_project(project_dir)
    overrides: dict[str, Any] = {
        k: v
        for k, v in {
            "holdout": holdout,
            "pii": pii,
            "seed": seed,
            "near_duplicate": near_duplicate,
            "leakage": leakage,
        }.items()
        if v is not None
    }
    settings = project.config.tuning.model_copy(update=overrides)
    report = build_dataset(
        project,
        name,
        cases=list(cases),
        traces=traces,
        jsonl=list(jsonl),
        eval_cases=list(eval_cases) if eval_cases else None,
        settings=settings,
        replace=replace,
        allow_groups=parse_groups(allow_groups),
    )
    if as_json:
        emit_json(report.to_json())
        return
    for warning in report.warnings:
        err_console.print(f"[yellow]warning[/yellow]: {warning}", markup=True, highlight=False)
    from rich.table import Table

    console.print(
        f"data set {report.name} {report.status}: {report.kept} of {report.candidates} examples kept "
        f"({report.train} train, {report.holdout} holdout); digest {report.digest}"
    )
    table = Table("excluded because", "examples")
    for reason, n in report.excluded.items():
        table.add_row(reason.replace("_", " "), str(n))
    for reason, n in report.skipped.items():
        table.add_row(f"(not an example: {reason.replace('_', ' ')})", str(n))
    console.print(table)
    found = {k: v for k, v in report.pii.items() if v}
    if found:
        what = ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in found.items())
        verb = "masked" if report.pii_mode == "mask" else "dropped with their examples"
        console.print(f"personal data found: {what} ({verb})")
    if report.groups:
        audiences = " and ".join("/".join(a) for a in report.groups)
        console.print(f"restricted: only callers in groups {audiences} may use models trained on this data set")
    if report.leakage_checked_against:
        console.print(f"leakage checked against: {', '.join(report.leakage_checked_against)}")
    console.print(f"files: {report.paths['train']}, {report.paths['holdout']}, {report.paths['manifest']}")


@click.command("lineage")
@click.argument("doc_id")
@project_option
@json_option
def lineage_cmd(doc_id: str, project_dir: Path | None, as_json: bool) -> None:
    """Show where a document went: its versions and chunks, the traces that used it, the data sets holding
    examples made from it, what was trained on them, and the receipts that forgot it."""
    from ragtune.corpus.lineage import document_lineage

    out = document_lineage(open_project(project_dir), doc_id)
    if as_json:
        emit_json(out)
        return
    doc = out["document"]
    if doc:
        console.print(
            f"{doc_id}  source={doc['source']}  status={doc['status']}  licence={doc['license']}  "
            f"train={'yes' if doc['may_train'] else 'no'}"
        )
    else:
        console.print(f"{doc_id}  (not in the corpus)")
    for v in out["versions"]:
        console.print(f"  v{v['version']}  {v['valid_from']} → {v['valid_to'] or 'current'}  {v['chunks']} chunks")
    traces = out["traces"]
    console.print(
        f"  traces: {traces['count']}" + (f" (recent: {', '.join(traces['recent'])})" if traces["recent"] else "")
    )
    for ds in out.get("datasets", []):
        versions = ", ".join(f"v{v}" for v in ds["versions"])
        console.print(
            f"  data set {ds['name']} ({ds['digest'][:12]}): {ds['examples']} examples "
            f"({ds['train']} train, {ds['holdout']} holdout) from {versions}"
        )
    for receipt in out["forgotten"]:
        console.print(f"  forgotten by {receipt['receipt_id']} ({receipt['created_at']})")
    shown = {"doc_id", "in_corpus", "document", "versions", "chunks", "traces", "forgotten", "datasets"}
    for key, entries in out.items():  # sections added by other hooks (model versions, ...)
        if key in shown:
            continue
        for entry in entries if isinstance(entries, list) else [entries]:
            text = "  ".join(f"{k}={v}" for k, v in entry.items()) if isinstance(entry, dict) else str(entry)
            console.print(f"  {key}: {text}")


def register(cli: click.Group) -> None:
    cli.add_command(tune_group)
    cli.add_command(lineage_cmd)
