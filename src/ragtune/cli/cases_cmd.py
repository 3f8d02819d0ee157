"""ragtune cases validate, import: check case files, and make them from other tools' data sets."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import click

from ragtune.cli.common import console, emit_json, err_console, json_option
from ragtune.errors import HarnessError
from ragtune.harness.cases import case_line, load_cases
from ragtune.harness.interop import IMPORTERS, ImportReport

_SHOWN = 12  # record numbers listed per skip reason in text mode; --json lists them all


@click.group("cases")
def cases_group() -> None:
    """Case files (JSONL, one case a line): validate them, import them from RAGAS, DeepEval, RAGChecker, IFEval."""


@cases_group.command("validate")
@click.argument("path", type=click.Path(path_type=Path))
@json_option
def validate_cmd(path: Path, as_json: bool) -> None:
    """Check a case file and report every bad line at once, one line each: FILE:LINE: FIELD: PROBLEM.

    The exit code is 1 when any line is bad. The format is in docs/cases.md, its JSON Schema in
    docs/case.schema.json.
    """
    try:
        cases = load_cases(path)
    except HarnessError as err:
        if not err.problems:
            raise  # the file itself is missing, unreadable or empty: one line from the error boundary
        if as_json:
            emit_json(
                {
                    "file": str(path),
                    "ok": False,
                    "bad_lines": len({p.line for p in err.problems}),
                    "problems": [p.to_json() for p in err.problems],
                }
            )
            sys.exit(1)
        for problem in err.problems:
            click.echo(str(problem), err=True)
        click.echo(f"error: {err}", err=True)  # the summary once; the problems are above, not printed again
        sys.exit(1)
    formats = Counter(case.format.kind for case in cases if case.format is not None)
    if as_json:
        emit_json({"file": str(path), "ok": True, "cases": len(cases), "formats": dict(formats), "problems": []})
        return
    kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(formats.items()))
    console.print(f"{path}: {len(cases)} cases, all valid" + (f" (format rules: {kinds})" if kinds else ""))


@cases_group.command("import")
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "--from",
    "fmt",
    required=True,
    type=click.Choice(sorted(IMPORTERS)),
    help="The data set's format: ragas (CSV/JSONL/JSON), deepeval (goldens JSON/CSV), ragchecker (input JSON), "
    "ifeval (input_data.jsonl).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Case file to write (default: standard output).",
)
@click.option("--force", is_flag=True, help="Overwrite OUTPUT if it exists.")
@json_option
def import_cmd(path: Path, fmt: str, output: Path | None, force: bool, as_json: bool) -> None:
    """Turn another tool's data set into a case file; says what it skipped and which fields it left out, and why.

    Ids are the source's own (id, query_id, name, IFEval key) or FORMAT-<n> by position, so importing the same file
    again gives the same ids. The exit code is 1 when nothing could be imported.
    """
    if as_json and output is None:
        raise click.UsageError("--json prints the import report on standard output; give the case file with -o")
    if output is not None and output.exists() and not force:
        raise HarnessError(f"{output}: already exists; pass --force to overwrite it")
    cases, report = IMPORTERS[fmt](path)
    if cases:
        text = "".join(case_line(case) + "\n" for case in cases)
        if output is None:
            click.echo(text, nl=False)
        else:
            output.parent.mkdir(parents=True, exist_ok=True)
            partial = output.with_name(output.name + ".partial")
            partial.write_text(text, encoding="utf-8")
            partial.replace(output)  # a reader never sees half a file
    if as_json:
        emit_json(report.to_json() | {"output": str(output)})
    else:
        _print_report(report, output)
    if not cases:
        if as_json:
            sys.exit(1)
        raise HarnessError(f"{path}: no case could be imported; is it a {fmt} data set?")


def _print_report(report: ImportReport, output: Path | None) -> None:
    # the summary goes to stderr when the cases themselves go to stdout
    out = console if output is not None else err_console
    into = f" into {output}" if output is not None else ""
    out.print(
        f"imported {report.imported} of {report.records} records from {report.path} ({report.format}){into}"
        + (f"; {len(report.skipped)} skipped" if report.skipped else ""),
        markup=False,
    )
    # one line per reason, not per record: a file whose records all lack a field says so once
    by_reason: dict[str, list[str]] = {}
    for skipped in report.skipped:
        place = skipped.where.removeprefix(report.path).lstrip(":").strip().removeprefix("record ")
        by_reason.setdefault(skipped.reason, []).append(place)
    unit = "record" if report.path.lower().endswith(".json") else "line"
    for reason, places in by_reason.items():
        more = f" and {len(places) - _SHOWN} more" if len(places) > _SHOWN else ""
        listed = f"{unit}{'s' if len(places) > 1 else ''} {', '.join(places[:_SHOWN])}{more}"
        out.print(f"  {len(places)} skipped ({reason}): {listed}", markup=False)
    for name, dropped in report.dropped.items():
        out.print(f"  left out '{name}' in {dropped.count} cases: {dropped.why}", markup=False)


def register(cli: click.Group) -> None:
    cli.add_command(cases_group)
