"""Forget removes a document from the store and both indexes, physically, with a stored receipt."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ragtune.corpus.forget import forget, list_receipts
from ragtune.corpus.ingest import ingest_paths
from ragtune.corpus.loaders import Defaults
from ragtune.index.analyzer import Analyzer
from ragtune.project import Project
from ragtune.retrieval.search import Retriever
from tests.conftest import write

PHRASE = "Quokkazanzibar merger codename Bellwether"


def on_disk(folder: Path, needle: str) -> list[str]:
    """Files under ``folder`` holding ``needle`` in UTF-8 or UTF-32 (numpy's string encoding)."""
    forms = [needle.encode("utf-8"), needle.encode("utf-32-le")]
    return [str(p) for p in folder.rglob("*") if p.is_file() and any(f in p.read_bytes() for f in forms)]


def test_forget_removes_everything_everywhere(project: Project, docs: Path) -> None:
    secret = write(docs / "secret.md", f"# Deal\n\n{PHRASE} closes in March.")
    write(docs / "other.md", "# Other\n\nA page about the weekly standup.")
    ingest_paths(project, [docs], Defaults())
    secret.write_text(f"# Deal\n\n{PHRASE} closes in April.")
    ingest_paths(project, [docs], Defaults())  # a second version, in a second segment
    state = project.root / ".ragtune"
    stem = Analyzer().terms("Quokkazanzibar")[0]
    assert on_disk(state, "Quokkazanzibar") and on_disk(state, stem)

    receipt = forget(project, ["docs/secret.md", "docs/nope.md"])
    assert receipt.totals == {
        "documents": 1,
        "versions": 2,
        "chunks": 2,
        "traces": 0,
        "dataset_examples": 0,
        "models_tainted": 0,
        "training_runs_deleted": 0,
        "runs": 0,
        "run_results_redacted": 0,
        "generation_cache": 0,
    }
    assert receipt.not_found == ["docs/nope.md"] and not receipt.ok
    assert receipt.segments_rewritten >= 1
    for needle in ("Quokkazanzibar", stem, "Bellwether", "closes in April"):
        assert on_disk(state, needle) == [], needle
    db = project.store.db
    assert db.execute("SELECT COUNT(*) FROM chunks WHERE doc_id = 'docs/secret.md'").fetchone()[0] == 0
    assert db.execute("SELECT COUNT(*) FROM versions WHERE doc_id = 'docs/secret.md'").fetchone()[0] == 0
    # the other document is intact and still searchable, in both indexes
    r = Retriever(project.store, project.index, project.embedder, project.config.retrieval)
    assert r.search("weekly standup", k=1, mode="keyword").hits[0].doc_id == "docs/other.md"
    assert r.search("weekly standup", k=1, mode="dense").hits[0].doc_id == "docs/other.md"
    assert all(h.doc_id != "docs/secret.md" for h in r.search(PHRASE, k=10).hits)
    assert len(project.index) == 1 and project.index.segments[0].vectors.shape == (1, 384)
    (stored,) = list_receipts(project.store)
    assert stored["receipt_id"] == receipt.receipt_id and stored["totals"]["chunks"] == 2


def test_forget_a_source(project: Project, docs: Path) -> None:
    write(docs / "a" / "one.md", "Alpha one.")
    write(docs / "a" / "two.md", "Alpha two.")
    write(docs / "b" / "three.md", "Beta three.")
    ingest_paths(project, [docs / "a"], Defaults(source="alpha"))
    ingest_paths(project, [docs / "b"], Defaults(source="beta"))
    receipt = forget(project, source="alpha")
    assert sorted(d["doc_id"] for d in receipt.documents) == ["docs/a/one.md", "docs/a/two.md"] and receipt.ok
    left = [r[0] for r in project.store.db.execute("SELECT doc_id FROM documents")]
    assert left == ["docs/b/three.md"]
    vectors = np.concatenate([np.asarray(s.vectors) for s in project.index.segments])
    assert vectors.shape[0] == 1


def test_forgetting_an_unknown_source_is_reported(project: Project, docs: Path) -> None:
    write(docs / "a.md", "Alpha.")
    ingest_paths(project, [docs], Defaults(source="alpha"))
    receipt = forget(project, source="alpah")
    assert receipt.not_found == ["source:alpah"] and not receipt.ok and receipt.totals["documents"] == 0


def test_forget_also_clears_segments_a_crash_left_behind(project: Project, docs: Path) -> None:
    import os

    from ragtune.index.segment import Segment

    write(docs / "a.md", "Alpha.")
    ingest_paths(project, [docs], Defaults())
    orphan = Segment.build(999, ["x@1#0"], [["quokkazanzibar"]], np.zeros((1, 384), dtype=np.float32))
    orphan.save(project.index_dir)  # written, never committed: what a crash mid-ingest leaves
    fresh = Segment.build(998, ["y@1#0"], [["inflight"]], np.zeros((1, 384), dtype=np.float32))
    fresh.save(project.index_dir)  # an ingest still in flight elsewhere: too young to touch
    for path in Segment.paths(project.index_dir, 999):
        os.utime(path, (1, 1))
    forget(project, ["docs/a.md"])
    state = project.root / ".ragtune"
    assert on_disk(state, "quokkazanzibar") == []
    assert all(p.exists() for p in Segment.paths(project.index_dir, 998))
