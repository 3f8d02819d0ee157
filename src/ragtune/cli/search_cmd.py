"""ragtune search."""

from __future__ import annotations

from pathlib import Path

import click

from ragtune.cli.common import console, emit_json, json_option, open_project, project_option
from ragtune.corpus.model import parse_groups, parse_when
from ragtune.index.index import Filters
from ragtune.retrieval.search import Retriever


@click.command("search")
@click.argument("query")
@click.option(
    "-k", "k", type=click.IntRange(1, 1000), default=None, help="Number of results (default from ragtune.toml)."
)
@click.option("--as-of", help="Search the corpus as it was at this date (YYYY-MM-DD or ISO datetime).")
@click.option("--groups", help="Comma-separated access groups of the asker; documents with groups need one of them.")
@click.option("--source", "sources", multiple=True, help="Only this source (repeatable).")
@click.option(
    "--mode",
    type=click.Choice(["hybrid", "keyword", "dense"]),
    default="hybrid",
    show_default=True,
    help="Which retrievers to use.",
)
@project_option
@json_option
def search_cmd(
    query: str,
    k: int | None,
    as_of: str | None,
    groups: str | None,
    sources: tuple[str, ...],
    mode: str,
    project_dir: Path | None,
    as_json: bool,
) -> None:
    """Hybrid keyword + dense search; filters (date, groups, source, rights) apply before ranking."""
    project = open_project(project_dir)
    filters = Filters(
        as_of=parse_when(as_of, end_of_day=True) if as_of is not None else None,
        groups=parse_groups(groups),
        sources=sources,
    )
    retriever = Retriever(project.store, project.index, project.embedder, project.config.retrieval)
    result = retriever.search(query, k, filters, mode=mode)  # type: ignore[arg-type]
    if as_json:
        emit_json(
            {
                "results": [
                    {
                        "doc_id": h.doc_id,
                        "version": h.version,
                        "chunk_id": h.chunk_id,
                        "score": h.score,
                        "text": h.text,
                        "heading": h.heading,
                        "source": h.source,
                        "span": [h.start, h.end],
                        "ranks": h.ranks,
                    }
                    for h in result.hits
                ],
                "timings_ms": result.timings_ms,
                "visible_chunks": result.visible_chunks,
            }
        )
        return
    if not result.hits:
        console.print("no results (nothing visible matches; check --as-of, --groups and --source)")
    for rank, h in enumerate(result.hits, start=1):
        snippet = " ".join(h.text.split())
        snippet = snippet[:240] + ("…" if len(snippet) > 240 else "")
        console.print(f"[bold]{rank}. {h.doc_id}@{h.version}[/bold]  {h.heading}  [dim]score {h.score:.3f}[/dim]")
        console.print(f"   {snippet}")


def register(cli: click.Group) -> None:
    cli.add_command(search_cmd)
