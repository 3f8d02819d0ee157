"""ragtune report: a run as one self-contained HTML file, with plots and a per-case drill-down (docs/report.md)."""

from __future__ import annotations

from pathlib import Path

import click

from ragtune.cli.common import console, emit_json, json_option, open_project, project_option


@click.command("report")
@click.argument("run")
@click.option(
    "--html",
    "html_path",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="File to write (replaced atomically if it exists).",
)
@click.option(
    "--traffic",
    type=click.Path(dir_okay=False, path_type=Path),
    help='Production questions (JSONL of {"question": ...}) for the diagnosis\'s coverage check.',
)
@click.option("--baseline", help="An earlier run to compare with, for the diagnosis's error-migration check.")
@click.option("--no-diagnosis", is_flag=True, help="Leave out the attribution and the recommendation.")
@project_option
@json_option
def report_cmd(
    run: str,
    html_path: Path,
    traffic: Path | None,
    baseline: str | None,
    no_diagnosis: bool,
    project_dir: Path | None,
    as_json: bool,
) -> None:
    """Write RUN's HTML report: the recommendation, the arms, plots (failure families per arm; accuracy vs p95
    latency vs cost; staleness over as_of dates) and every case's answers, chunks, scores and attribution."""
    from ragtune.report import build_report, write_report

    project = open_project(project_dir)
    diagnosis = None
    if not no_diagnosis:
        from ragtune.diagnosis import diagnose_run

        diagnosis = diagnose_run(project, run, traffic=traffic, baseline=baseline).to_json()
    html = build_report(project, run, diagnosis=diagnosis)
    write_report(html_path, html)
    verdict = diagnosis["recommendation"]["verdict"] if diagnosis else None
    if as_json:
        emit_json({"run": run, "path": str(html_path.resolve()), "bytes": len(html.encode()), "verdict": verdict})
    else:
        console.print(
            f"wrote {html_path} ({len(html.encode()) / 1024:.0f} KiB){f'; verdict {verdict}' if verdict else ''}"
        )
        console.print(f"open it: {html_path.resolve().as_uri()}")


def register(cli: click.Group) -> None:
    cli.add_command(report_cmd)
