"""Each stored thing's tables are read and written by its owner module alone.

Every SQL statement in the package's string literals (plain strings and the constant parts of f-strings) is
scanned for the tables it names after FROM, JOIN, INTO, UPDATE or TABLE; a table named outside its owner is a
reader or writer that goes around the owner's interface. The schema (store/migrations.py) names every table and
is the one exception. docs/architecture.md draws the same map; PENDING lists what has not moved yet."""

from __future__ import annotations

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

OWNERS: dict[str, str] = {
    # the corpus: documents, their versions and chunks, the index's segment rows, forget's receipts
    "documents": "ragtune.store.corpus",
    "versions": "ragtune.store.corpus",
    "chunks": "ragtune.store.corpus",
    "segments": "ragtune.store.corpus",
    "receipts": "ragtune.store.corpus",
    "meta": "ragtune.store.db",
    "traces": "ragtune.traces.store",
    "trace_docs": "ragtune.traces.store",
    "runs": "ragtune.harness.store",
    "run_results": "ragtune.harness.store",
    "run_scores": "ragtune.harness.store",
    "run_docs": "ragtune.harness.store",
    "generation_cache": "ragtune.harness.cache",
    "generation_cache_docs": "ragtune.harness.cache",
    "datasets": "ragtune.tuning.datasets",
    "dataset_examples": "ragtune.tuning.datasets",
    "dataset_example_docs": "ragtune.tuning.datasets",
    "model_versions": "ragtune.store.registry",
    "model_docs": "ragtune.store.registry",
    "aliases": "ragtune.store.registry",
    "alias_history": "ragtune.store.registry",
}
SCHEMA = "ragtune.store.migrations"

# Readers and writers not yet moved behind their owner (issue 16): the corpus tables (store/corpus.py is still to
# be written), the data-set tables (tuning/datasets.py) and one read of meta. The list must be exact: a new stray
# fails the suite, and so does a moved one still listed here, so it only shrinks.
PENDING: dict[str, set[str]] = {
    "chunks": {
        "ragtune.cli.corpus_cmd", "ragtune.corpus.forget", "ragtune.corpus.ingest", "ragtune.corpus.lineage",
        "ragtune.corpus.reindex", "ragtune.diagnosis.facts", "ragtune.harness.scorers.base", "ragtune.index.index",
        "ragtune.index.merge", "ragtune.retrieval.search", "ragtune.server.routes",
    },
    "documents": {
        "ragtune.cli.corpus_cmd", "ragtune.corpus.forget", "ragtune.corpus.ingest", "ragtune.corpus.lineage",
        "ragtune.diagnosis.facts", "ragtune.diagnosis.readiness", "ragtune.harness.scorers.base",
        "ragtune.index.index", "ragtune.retrieval.search", "ragtune.server.routes", "ragtune.tuning.data",
        "ragtune.tuning.registry",
    },
    "versions": {
        "ragtune.cli.corpus_cmd", "ragtune.corpus.forget", "ragtune.corpus.ingest", "ragtune.corpus.lineage",
        "ragtune.corpus.reindex", "ragtune.diagnosis.facts", "ragtune.harness.scorers.base", "ragtune.index.index",
        "ragtune.retrieval.search", "ragtune.tuning.data",
    },
    "segments": {"ragtune.corpus.ingest", "ragtune.corpus.reindex", "ragtune.index.index", "ragtune.index.merge"},
    "receipts": {"ragtune.corpus.forget", "ragtune.corpus.lineage"},
    "meta": {"ragtune.index.merge"},
    "datasets": {"ragtune.tuning.data", "ragtune.tuning.lineage"},
    "dataset_examples": {"ragtune.tuning.data", "ragtune.tuning.lineage"},
    "dataset_example_docs": {"ragtune.tuning.data", "ragtune.tuning.lineage"},
}  # fmt: skip

_NAMED = re.compile(r"\b(?:FROM|JOIN|INTO|UPDATE|TABLE)\s+([a-z_]+)\b")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def sql_strings(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            out.append("".join(v.value if isinstance(v, ast.Constant) else " ? " for v in node.values))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            out.append(node.value)
    # adjacent literals are one constant already; a statement split over concatenated f-strings is joined here
    return out


def named_tables() -> dict[str, set[str]]:
    """table -> the modules whose SQL names it"""
    found: dict[str, set[str]] = {}
    for path in (SRC / "ragtune").rglob("*.py"):
        module = module_name(path)
        for text in sql_strings(path):
            for table in _NAMED.findall(text):
                if table in OWNERS:
                    found.setdefault(table, set()).add(module)
    return found


def test_every_table_has_an_owner() -> None:
    schema = (SRC / "ragtune" / "store" / "migrations.py").read_text(encoding="utf-8")
    tables = set(re.findall(r"CREATE TABLE ([a-z_]+)", schema))
    assert tables == set(OWNERS), f"tables without an owner: {sorted(tables - set(OWNERS))}"


def test_no_module_names_a_table_it_does_not_own() -> None:
    strays = {
        table: modules - {OWNERS[table], SCHEMA}
        for table, modules in sorted(named_tables().items())
        if modules - {OWNERS[table], SCHEMA}
    }
    new = {t: sorted(m - PENDING.get(t, set())) for t, m in strays.items() if m - PENDING.get(t, set())}
    assert new == {}, "tables named outside their owner: " + "; ".join(
        f"{t} ({OWNERS[t]}) in {', '.join(m)}" for t, m in new.items()
    )
    moved = {t: sorted(m - strays.get(t, set())) for t, m in PENDING.items() if m - strays.get(t, set())}
    assert moved == {}, "these went through their owner: take them off PENDING: " + "; ".join(
        f"{t}: {', '.join(m)}" for t, m in moved.items()
    )


def test_the_scan_finds_tables_in_plain_and_formatted_sql(tmp_path: Path) -> None:
    sample = (
        'marks = "?"\na = "SELECT x FROM runs r JOIN run_scores s"\nb = f"DELETE FROM chunks WHERE id IN ({marks})"\n'
    )
    path = tmp_path / "sample.py"
    path.write_text(sample, encoding="utf-8")
    names = {t for s in sql_strings(path) for t in _NAMED.findall(s)}
    assert names == {"runs", "run_scores", "chunks"}
