"""ragtune bench retrieval."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from ragtune.cli.common import console, emit_json, err_console, json_option, progress_bar
from ragtune.errors import BenchmarkError

Advance = Callable[[int, int], None]  # (documents just done, documents in all)


class _Stderr:
    """Phases and progress on stderr, under --json too: stdout carries only the report, and a run takes minutes."""

    def phase(self, message: str) -> None:
        err_console.print(f"[dim]· {message}[/dim]")

    def bar(self, label: str) -> AbstractContextManager[Advance]:
        return progress_bar(label, enabled=True)


@click.group("bench")
def bench_group() -> None:
    """Benchmarks: ragtune measured against reference systems, on public data or at scale."""


@bench_group.command("retrieval")
@click.option(
    "--beir",
    "beir_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="A BEIR folder (corpus.jsonl, queries.jsonl, qrels/test.tsv); answerable queries are scored.",
)
@click.option(
    "--scale",
    type=click.IntRange(1, None),
    help="Ingest this many synthetic chunk-sized documents, then time queries, one update and one forget.",
)
@click.option(
    "--rerank-sample",
    type=click.IntRange(0, None),
    default=300,
    show_default=True,
    help="Queries on which the sentence-maxsim reranker is compared with plain hybrid (0: skip).",
)
@click.option(
    "--limit-queries",
    type=click.IntRange(1, None),
    help="Score a seeded sample of this many queries instead of all (for quick runs).",
)
@click.option(
    "--latency-queries",
    type=click.IntRange(1, None),
    default=1000,
    show_default=True,
    help="Queries timed one at a time per system (a seeded sample).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for every sample and the synthetic corpus.")
@json_option
def retrieval_cmd(
    beir_dir: Path | None,
    scale: int | None,
    rerank_sample: int,
    limit_queries: int | None,
    latency_queries: int,
    seed: int,
    as_json: bool,
) -> None:
    """Retrieval quality and speed of ragtune's hybrid, its keyword and dense parts, bm25s and exact MiniLM search.

    Model loading is excluded from every timing. Each run builds its own throwaway project; yours is untouched.
    """
    if beir_dir is None and scale is None:
        raise BenchmarkError("nothing to run; pass --beir DIR, --scale N, or both")
    from ragtune.bench.retrieval import run_beir, run_scale

    reports: dict[str, Any] = {}
    if beir_dir is not None:
        reports["beir"] = run_beir(
            beir_dir,
            limit_queries=limit_queries,
            latency_queries=latency_queries,
            rerank_sample=rerank_sample,
            seed=seed,
            reporter=_Stderr(),
        )
    if scale is not None:
        reports["scale"] = run_scale(scale, seed=seed, reporter=_Stderr())
    if as_json:
        emit_json(reports)
        return
    if "beir" in reports:
        _print_beir(reports["beir"])
    if "scale" in reports:
        _print_scale(reports["scale"])


def _print_beir(report: dict[str, Any]) -> None:
    data = report["dataset"]
    table = Table(
        title=f"{data['folder']}: {data['documents']:,} documents ({data['chunks']:,} chunks), "
        f"{data['queries']:,} queries",
        title_justify="left",
    )
    for column in ("system", "nDCG@10", "R@10", "R@100", "MRR@10", "p50 ms", "p95 ms", "q/s", "index docs/s"):
        table.add_column(column, justify="left" if column == "system" else "right", no_wrap=column == "system")
    for s in report["systems"]:
        m, lat = s["metrics"], s["latency_ms"]
        table.add_row(
            s["name"],
            f"{m['ndcg@10']:.4f}",
            f"{m['recall@10']:.4f}",
            f"{m['recall@100']:.4f}",
            f"{m['mrr@10']:.4f}",
            f"{lat['p50']:.1f}",
            f"{lat['p95']:.1f}",
            f"{s['queries_per_s']:,.0f}",
            f"{s['index_docs_per_s']:,.1f}",
        )
    console.print(table)
    console.print("q/s: all queries in one batch (one embedding call, then ranking); p50/p95: one query at a time.")
    sweep = Table(title="hybrid weight sweep (keyword / dense)", title_justify="left")
    for column in ("fusion", "weights", "nDCG@10", "R@10", "R@100", "MRR@10"):
        sweep.add_column(column, justify="left" if column in ("fusion", "weights") else "right")
    for row in report["weight_sweep"]:
        sweep.add_row(
            row["fusion"],
            f"{row['keyword_weight']:.1f} / {row['dense_weight']:.1f}",
            *(f"{row[m]:.4f}" for m in ("ndcg@10", "recall@10", "recall@100", "mrr@10")),
        )
    console.print(sweep)
    rerank = report["rerank"]
    if rerank:
        for label in ("without", "with"):
            m, lat = rerank[label]["metrics"], rerank[label]["latency_ms"]
            console.print(
                f"{rerank['fusion']} hybrid {label} {rerank['reranker']} ({rerank['queries']} queries): "
                f"nDCG@10 {m['ndcg@10']:.4f}, R@10 {m['recall@10']:.4f}, MRR@10 {m['mrr@10']:.4f}; "
                f"p50 {lat['p50']:.1f} ms, p95 {lat['p95']:.1f} ms at k={rerank['latency_k']}"
            )
    idx = report["indexing"]
    console.print(
        f"indexing: ragtune {idx['ragtune_docs_per_s']:.1f} docs/s ({idx['ragtune_seconds']:.1f} s), "
        f"raw MiniLM {idx['raw_encode_docs_per_s']:.1f} docs/s (mean of "
        + ", ".join(f"{t:.1f}" for t in idx["raw_encode_seconds"])
        + " s, before and after ingesting)"
    )
    _print_targets(report)


def _print_scale(report: dict[str, Any]) -> None:
    corpus, idx, lat = report["corpus"], report["indexing"], report["query_latency_ms"]
    console.print(
        f"[bold]scale[/bold]: {corpus['documents']:,} synthetic documents, {corpus['chunks']:,} chunks, "
        f"ingested in {idx['seconds']:.0f} s ({idx['docs_per_s']:.1f} docs/s; raw MiniLM "
        f"{idx['raw_encode_docs_per_s']:.1f} docs/s on {idx['raw_sample']:,})"
    )
    for mode in ("hybrid", "keyword", "dense"):
        console.print(
            f"  {mode:8} p50 {lat[mode]['p50']:6.1f} ms  p95 {lat[mode]['p95']:6.1f} ms  "
            f"({lat['queries']} queries, k={lat['k']})"
        )
    stages = ", ".join(f"{name} {ms:.1f}" for name, ms in report["hybrid_stages_p50_ms"].items())
    console.print(f"  hybrid stages, median ms: {stages}")
    fresh, gone = report["freshness"], report["forget"]
    console.print(
        f"  one changed document: ingest {fresh['ingest_seconds']:.3f} s, searchable after "
        f"{fresh['seconds_to_searchable']:.3f} s (found: {fresh['found']}, old version hidden: "
        f"{fresh['old_version_hidden']})"
    )
    console.print(
        f"  forget one document: {gone['seconds']:.2f} s, {gone['segments_rewritten']} segment(s) rewritten "
        f"(gone from search: {gone['gone_from_search']})"
    )
    _print_targets(report)


def _print_targets(report: dict[str, Any]) -> None:
    for t in report["targets"]:
        mark = "[green]PASS[/green]" if t["passed"] else "[red]FAIL[/red]"
        console.print(f"{mark} {t['target']}: {t['detail']}")


def register(cli: click.Group) -> None:
    cli.add_command(bench_group)
