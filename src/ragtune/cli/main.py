"""Entry point and error boundary: a RagtuneError becomes one line and an exit code, never a traceback."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from ragtune import __version__
from ragtune.cli import (
    ask_cmd,
    bench_cmd,
    cases_cmd,
    corpus_cmd,
    demo_cmd,
    diagnose_cmd,
    eval_cmd,
    project_cmd,
    registry_cmd,
    report_cmd,
    search_cmd,
    serve_cmd,
    tune_cmd,
)
from ragtune.errors import RagtuneError


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="ragtune")
@click.option(
    "--project",
    "project_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Project folder (default: found by walking up from the current folder).",
)
@click.pass_context
def cli(ctx: click.Context, project_dir: Path | None) -> None:
    """ragtune: measure whether RAG or fine-tuning fixes your LLM feature.

    Start with `ragtune demo`, or `ragtune init` then `ragtune ingest DOCS/` and `ragtune search QUERY`.
    """
    ctx.obj = {"project_dir": project_dir}


for module in (
    project_cmd,
    corpus_cmd,
    search_cmd,
    ask_cmd,
    cases_cmd,
    eval_cmd,
    tune_cmd,
    registry_cmd,
    diagnose_cmd,
    report_cmd,
    bench_cmd,
    demo_cmd,
    serve_cmd,
):
    module.register(cli)


def main(argv: list[str] | None = None) -> None:
    debug = os.environ.get("RAGTUNE_DEBUG") == "1"
    try:
        code = cli.main(args=argv, prog_name="ragtune", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except RagtuneError as exc:
        if debug:
            raise
        click.echo(f"error: {exc}", err=True)
        # errors that gather several problems (every bad line of a case file) show each on its own line
        for problem in getattr(exc, "problems", None) or []:
            click.echo(f"  {problem}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # the boundary: anything unexpected is still one line, with a way to see more
        if debug:
            raise
        click.echo(f"internal error: {type(exc).__name__}: {exc} (set RAGTUNE_DEBUG=1 for the traceback)", err=True)
        sys.exit(70)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
