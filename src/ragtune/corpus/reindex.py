"""Rebuilding every segment from the store: after a change of embedder, or to repair a damaged index folder."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ragtune.corpus.chunking import index_text
from ragtune.errors import StoreError
from ragtune.index.analyzer import Analyzer
from ragtune.index.merge import next_segment_id, remove_orphans, swap_segments
from ragtune.index.segment import Segment
from ragtune.project import Project
from ragtune.store.db import Store

EMBEDDER_KEY = "embedder"


def embedder_identity(project: Project) -> str:
    return f"{project.embedder.name}/{project.embedder.dim}"


def check_embedder(project: Project) -> None:
    """Refuse to mix vectors from two embedders: the index records which one built it."""
    built_with = project.store.get_meta(EMBEDDER_KEY)
    if built_with is not None and built_with != embedder_identity(project):
        raise StoreError(
            f"the index was built with {built_with} but ragtune.toml asks for {embedder_identity(project)}; "
            "run `ragtune reindex`"
        )


def reindex(project: Project, progress: Callable[[int, int], None] | None = None, batch: int = 2048) -> dict[str, Any]:
    """Re-embed and re-analyse every stored chunk into fresh segments, then swap them in at once."""
    with project.store.writing():  # no ingest or forget may change the chunks being rebuilt
        return _reindex(project, progress, batch)


def _reindex(project: Project, progress: Callable[[int, int], None] | None, batch: int) -> dict[str, Any]:
    started = time.perf_counter()
    store = project.store
    rows = store.db.execute(
        "SELECT c.chunk_id, c.heading, substr(v.text, c.start + 1, c.end - c.start) AS body FROM chunks c "
        "JOIN versions v USING (doc_id, version) ORDER BY c.doc_id, c.version, c.ordinal"
    ).fetchall()
    old = [r[0] for r in store.db.execute("SELECT seg_id FROM segments")]
    analyzer = Analyzer()
    new: list[Segment] = []
    try:
        for i in range(0, len(rows), batch):
            part = rows[i : i + batch]
            texts = [index_text(r["heading"], r["body"]) for r in part]
            seg = Segment.build(
                next_segment_id(store),
                [r["chunk_id"] for r in part],
                [analyzer.terms(t) for t in texts],
                project.embedder.encode(texts),
            )
            seg.save(project.index_dir)
            new.append(seg)
            if progress:
                progress(len(part), len(rows))
        with store.transaction() as db:
            swap_segments(db, old, new)
            Store.set_meta(db, EMBEDDER_KEY, embedder_identity(project))
            Store.bump_generation(db)
    except BaseException:
        for seg in new:
            Segment.delete_files(project.index_dir, seg.seg_id)
        raise
    for seg_id in old:
        Segment.delete_files(project.index_dir, seg_id)
    remove_orphans(store, project.index_dir)
    if "index" in project.__dict__:
        project.index.refresh()
    return {
        "chunks": len(rows),
        "segments": len(new),
        "seconds": round(time.perf_counter() - started, 3),
        "embedder": embedder_identity(project),
    }
