"""What every command shares: finding the project, --json output, progress on stderr."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console

from ragtune.project import Project

F = TypeVar("F", bound=Callable[..., Any])

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def project_option(fn: F) -> F:
    """``--project DIR``: use that project instead of the one found above the current folder."""
    return click.option(
        "--project",
        "project_dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        envvar="RAGTUNE_PROJECT",
        help="Project folder (default: found by walking up from the current folder).",
    )(fn)


def json_option(fn: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON on stdout.")(fn)


def open_project(project_dir: Path | None) -> Project:
    ctx = click.get_current_context(silent=True)
    if project_dir is None and ctx is not None and ctx.find_root().obj:
        project_dir = ctx.find_root().obj.get("project_dir")
    return Project.open(project_dir)


def emit_json(data: Any) -> None:
    """``data`` as strict JSON on stdout: NaN and infinities (which JSON has no words for) become null."""
    try:
        text = json.dumps(data, indent=2, ensure_ascii=False, default=str, allow_nan=False)
    except ValueError:
        text = json.dumps(_finite(data), indent=2, ensure_ascii=False, default=str, allow_nan=False)
    click.echo(text)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


@contextmanager
def progress_bar(label: str, enabled: bool) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar on stderr when it is a terminal (not under --json); yields ``advance(n, total)``."""
    if not enabled or not sys.stderr.isatty():
        yield lambda n, total: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=None)

        def advance(n: int, total: int) -> None:
            bar.update(task, advance=n, total=total or None)

        yield advance
