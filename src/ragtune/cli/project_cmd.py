"""ragtune init."""

from __future__ import annotations

from pathlib import Path

import click

from ragtune.cli.common import console, emit_json, json_option
from ragtune.config import CONFIG_FILE
from ragtune.project import STATE_DIR, init_project


@click.command("init")
@click.argument("folder", type=click.Path(path_type=Path), default=".")
@json_option
def init_cmd(folder: Path, as_json: bool) -> None:
    """Create a project: a commented ragtune.toml and a .ragtune/ folder (store and indexes)."""
    root, created = init_project(folder)
    if as_json:
        emit_json({"project": str(root), "config": str(root / CONFIG_FILE), "created": created})
        return
    verb = "created" if created else "already a project; kept"
    console.print(f"{verb} {root / CONFIG_FILE} and {root / STATE_DIR}/")
    console.print(
        f"next: ragtune ingest DOCS/ --project {root}" if root != Path.cwd().resolve() else "next: ragtune ingest DOCS/"
    )


def register(cli: click.Group) -> None:
    cli.add_command(init_cmd)
