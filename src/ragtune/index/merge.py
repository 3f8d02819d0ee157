"""Keeping the number of segments small: every ingest batch adds one, and queries visit each."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

from ragtune.index.segment import Segment
from ragtune.store.db import Store, utcnow

MERGE_FACTOR = 4


def next_segment_id(store: Store) -> int:
    """A segment id never used before, even by a segment since merged or rewritten away."""
    # read and bumped in one write transaction, so two processes never hand out the same id
    with store.transaction() as db:
        row = db.execute("SELECT value FROM meta WHERE key = 'last_segment'").fetchone()
        last = max(int(row[0]) if row else 0, db.execute("SELECT COALESCE(MAX(seg_id), 0) FROM segments").fetchone()[0])
        Store.set_meta(db, "last_segment", str(last + 1))
    return int(last + 1)


def swap_segments(db: sqlite3.Connection, old: Sequence[int], new: Sequence[Segment]) -> None:
    """Within the caller's transaction: list ``new`` (already saved), unlist ``old``; chunks follow by id."""
    for seg in new:
        if len(seg):
            db.execute("INSERT INTO segments VALUES (?, ?, ?)", (seg.seg_id, len(seg), utcnow()))
            db.executemany("UPDATE chunks SET seg_id = ? WHERE chunk_id = ?", [(seg.seg_id, c) for c in seg.chunk_ids])
    if old:
        db.execute(f"DELETE FROM segments WHERE seg_id IN ({','.join('?' * len(old))})", list(old))


def replace_segments(store: Store, folder: Path, old: list[int], new: Segment | None) -> None:
    """Swap segments in one transaction: ``new`` (already saved) replaces ``old``; chunks follow by id."""
    try:
        with store.transaction() as db:
            swap_segments(db, old, [new] if new is not None else [])
            Store.bump_generation(db)
    except BaseException:
        if new is not None:
            Segment.delete_files(folder, new.seg_id)
        raise
    for seg_id in old:
        Segment.delete_files(folder, seg_id)
    if new is not None and not len(new):
        Segment.delete_files(folder, new.seg_id)


def merge_small_segments(store: Store, folder: Path, factor: int = MERGE_FACTOR) -> int:
    """Tiered merging: whenever ``factor`` segments share a size tier (powers of ``factor``), merge them.

    A fresh one-document segment only ever merges with other small ones, so an update stays cheap however large
    the index is, and each chunk is rewritten about log_factor(N) times over its life. Returns the merges done.
    """
    merges = 0
    while True:
        rows = store.db.execute("SELECT seg_id, n_chunks FROM segments ORDER BY seg_id").fetchall()
        tiers: dict[int, list[int]] = {}
        for seg_id, n in rows:
            tiers.setdefault(_tier(int(n), factor), []).append(int(seg_id))
        full = [ids for _, ids in sorted(tiers.items()) if len(ids) >= factor]
        if not full:
            return merges
        victims = full[0][:factor]
        merged = Segment.merge([Segment.load(folder, s) for s in victims], next_segment_id(store))
        merged.save(folder)
        replace_segments(store, folder, victims, merged)
        merges += 1


def _tier(n: int, factor: int) -> int:
    tier = 0
    while n >= factor:
        n //= factor
        tier += 1
    return tier


def remove_orphans(store: Store, folder: Path, grace_s: float = 60.0) -> list[str]:
    """Delete segment files the store does not list: left by a crash between writing a segment and committing it.

    Files younger than ``grace_s`` are spared: they may belong to an ingest still in flight in another process.
    """
    import time

    live = {row[0] for row in store.db.execute("SELECT seg_id FROM segments")}
    removed = []
    now = time.time()
    for path in folder.glob("seg-*"):
        try:
            seg_id = int(path.name[4:10])
        except ValueError:
            continue
        if seg_id not in live and now - path.stat().st_mtime > grace_s:
            path.unlink(missing_ok=True)
            removed.append(path.name)
    return removed
