"""ragtune demo."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import click

from ragtune.cli.common import console, emit_json, json_option


@click.command("demo")
@click.option(
    "--dir",
    "folder",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("ragtune-demo"),
    show_default=True,
    help="Where to build the demo project (an earlier demo there is replaced).",
)
@json_option
def demo_cmd(folder: Path, as_json: bool) -> None:
    """Run the bundled example offline: a changing handbook ingested, its cases evaluated over the arms, diagnosed
    and recommended, four weeks of edits answered at once, and the HTML report written."""
    from ragtune.demo import run_demo

    result = run_demo(folder, say=(lambda _: None) if as_json else console.print)
    if as_json:
        emit_json(result)
        return
    # Show a command that works as typed: ragtune may live in a virtualenv that is not on PATH.
    exe = "ragtune" if shutil.which("ragtune") else (shutil.which(sys.argv[0]) or "ragtune")
    console.print(f"\nthe demo project is in {result['project']}; try:")
    console.print(f'  {exe} search "What is the Pro plan\'s API rate limit?" --project {result["project"]}')
    console.print(f'  {exe} search "Pro plan rate limit" --as-of 2026-01-05 --project {result["project"]}')
    console.print(f"  {exe} diagnose {result['evaluation']['run']} --project {result['project']}")
    console.print(f"  {exe} eval {result['project']}/cases-demo.jsonl --arms rag --project {result['project']}")
    console.print(f"\nthe report: {result['report']['path']}")


def register(cli: click.Group) -> None:
    cli.add_command(demo_cmd)
