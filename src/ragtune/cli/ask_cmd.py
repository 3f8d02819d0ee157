"""ragtune ask, ragtune trace."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import click
from rich.live import Live
from rich.text import Text

from ragtune.answer.pipeline import Answer, Answerer, Question, pipeline_arm
from ragtune.cli.common import console, emit_json, err_console, json_option, open_project, project_option
from ragtune.corpus.model import parse_groups, parse_when
from ragtune.traces.store import list_traces, load_trace


@click.command("ask")
@click.argument("question")
@click.option(
    "--arm",
    default="rag",
    show_default=True,
    help="How to answer: rag, closed-book, oracle, adapter:VERSION (a fine-tune alone) or hybrid:VERSION (a "
    "fine-tune with RAG context); VERSION may be an alias such as production.",
)
@click.option("--as-of", help="Answer from the corpus as it was at this date (YYYY-MM-DD or ISO datetime).")
@click.option("--groups", help="Comma-separated access groups of the asker.")
@click.option("-k", "k", type=click.IntRange(1, 100), default=None, help="Chunks retrieved (default [answer] sources).")
@project_option
@json_option
def ask_cmd(
    question: str,
    arm: str,
    as_of: str | None,
    groups: str | None,
    k: int | None,
    project_dir: Path | None,
    as_json: bool,
) -> None:
    """Answer QUESTION with cited sources (rag) or from the model alone (closed-book); stores a trace."""
    pipeline_arm(arm)  # an unknown arm fails here, before the project and its models load
    project = open_project(project_dir)
    q = Question(
        question, arm, parse_when(as_of, end_of_day=True) if as_of is not None else None, parse_groups(groups), k
    )
    if as_json:
        emit_json(Answerer(project).ask(q).to_json())
        return
    answer = _streamed(Answerer(project).ask_stream(q)) if console.is_terminal else None
    if answer is None:
        with err_console.status("answering (the first use prepares the model, about 20 s)"):
            answer = Answerer(project).ask(q)
        console.print(answer.answer)
    if answer.citations:
        console.print()
    for c in answer.citations:
        how = "" if c.mode == "model" else "  [dim](attributed)[/dim]"
        console.print(
            f"[bold][{c.n}][/bold] {c.doc_id}@{c.version}  {c.title}  [dim]{c.chunk_id} {c.start}-{c.end}[/dim]{how}"
        )
    if answer.invalid_citations:
        nums = ", ".join(f"[{n}]" for n in answer.invalid_citations)
        console.print(f"[yellow]removed invented citations {nums}: no such source[/yellow]")
    console.print(f"[dim]trace {answer.trace_id}  (ragtune trace {answer.trace_id[:8]})[/dim]")


def _streamed(items: Iterator[str | Answer]) -> Answer:
    """On a terminal: the answer drawn as it is written, then redrawn as checked (with its attributed markers)."""
    text = Text()
    with err_console.status("answering (the first use prepares the model, about 20 s)") as status:
        first = next(items)
        status.stop()
        with Live(text, console=console, auto_refresh=False, transient=False) as live:
            for item in itertools.chain([first], items):
                if isinstance(item, Answer):
                    live.update(Text(item.answer), refresh=True)
                    return item
                text.append(item)
                live.refresh()
    raise AssertionError("ask_stream ended without an answer")  # pragma: no cover


@click.command("trace")
@click.argument("trace_id", required=False)
@click.option("--list", "list_", is_flag=True, help="List recent traces instead.")
@click.option("-n", "limit", type=click.IntRange(1, 10000), default=20, show_default=True, help="How many to list.")
@project_option
@json_option
def trace_cmd(trace_id: str | None, list_: bool, limit: int, project_dir: Path | None, as_json: bool) -> None:
    """Show what happened inside one answer: stages, timings, tokens, model, chunks used and dropped."""
    project = open_project(project_dir)
    if list_ or trace_id is None:
        rows = list_traces(project.store, limit)
        if as_json:
            emit_json({"traces": rows})
            return
        if not rows:
            console.print("no traces yet; `ragtune ask QUESTION` makes one")
        for r in rows:
            total = f"{r['total_ms']:.0f} ms" if r["total_ms"] is not None else "-"
            console.print(f"{r['trace_id'][:12]}  {r['created_at']}  {r['arm']:<11} {total:>9}  {r['question'][:70]}")
        return
    trace = load_trace(project.store, trace_id)
    if as_json:
        emit_json(trace.to_json())
        return
    console.print(f"[bold]trace {trace.trace_id}[/bold]  {trace.created_at}  {trace.kind} / arm {trace.arm}")
    if trace.caller:
        console.print(f"caller   {trace.caller}")
    console.print(f"question {trace.question}")
    console.print(f"answer   {trace.answer}")
    scope = f"as of {trace.as_of or 'now'}, groups {', '.join(trace.groups) or '(public only)'}"
    console.print(f"scope    {scope}")
    model = trace.model
    console.print(f"model    {model.get('backend')} {model.get('model', '')} {model.get('adapter', '')}".rstrip())
    if trace.index_state:
        s = trace.index_state
        console.print(
            f"index    {s.get('embedder')}, generation {s.get('generation')}, {s.get('visible_chunks')} chunks visible, "
            f"fusion {s.get('fusion')}, rerank {s.get('rerank')}"
        )
    console.print(f"tokens   {trace.tokens_in} in, {trace.tokens_out} out")
    stages = "  ".join(f"{k} {v:.1f} ms" for k, v in trace.timings.items())
    console.print(f"timings  {stages}")
    if trace.chunks:
        console.print("chunks")
    for c in trace.chunks:
        mark = (
            f"[green]used [{c['n']}][/green]" if c["status"] == "used" else f"[yellow]dropped ({c['reason']})[/yellow]"
        )
        detail = f"  [dim]{c.get('detail', '')}[/dim]" if c["status"] != "used" else ""
        console.print(f"  {c['rank']:>2}. {c['chunk_id']}  score {c['score']:.3f}  {mark}{detail}")
    for c in trace.citations:
        console.print(f"cites    [{c['n']}] {c['doc_id']}@{c['version']} {c['chunk_id']} ({c['mode']})")
    invalid = trace.body.get("invalid_citations")
    if invalid:
        console.print(f"[yellow]invented citations removed: {invalid}[/yellow]")


def register(cli: click.Group) -> None:
    cli.add_command(ask_cmd)
    cli.add_command(trace_cmd)
