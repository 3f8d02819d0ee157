"""What every command shares: finding the project, --json output, progress on stderr."""

from __future__ import annotations

import json
import math
import os
import sys
import time
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
def progress_lines(label: str, every_s: float | None = None) -> Iterator[Callable[[int, int], None]]:
    """Plain progress lines on stderr, at most one per ``every_s`` seconds, and a last one if any was printed."""
    every = every_s if every_s is not None else _progress_every()
    start = last = time.monotonic()
    state = {"done": 0, "total": 0, "printed": False}

    def line(now: float) -> None:
        done, total, elapsed = state["done"], state["total"], now - start
        share = f" ({done / total:.0%})" if total else ""
        left = f", about {_duration(elapsed / done * (total - done))} left" if total and 0 < done < total else ""
        print(f"{label}: {done}/{total or '?'}{share}, {_duration(elapsed)} elapsed{left}", file=sys.stderr, flush=True)
        state["printed"] = True

    def advance(n: int, total: int) -> None:
        nonlocal last
        state["done"] += n
        state["total"] = max(int(state["total"]), state["done"], total)
        now = time.monotonic()
        if now - last >= every:
            last = now
            line(now)

    yield advance
    if state["printed"]:
        line(time.monotonic())


def _progress_every() -> float:
    try:
        return max(0.0, float(os.environ.get("RAGTUNE_PROGRESS_EVERY", "5")))
    except ValueError:
        return 5.0


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


@contextmanager
def progress_bar(label: str, enabled: bool) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar on stderr when it is a terminal (not under --json); yields ``advance(n, total)``.

    Off a terminal (a CI log, a pipe, nohup), a plain line on stderr every ``RAGTUNE_PROGRESS_EVERY`` seconds (5)
    instead: done, total, elapsed and an estimate of what is left. Work that ends sooner prints nothing."""
    if not enabled:
        yield lambda n, total: None
        return
    if not sys.stderr.isatty():
        with progress_lines(label) as advance:
            yield advance
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
