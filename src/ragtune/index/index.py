"""The in-memory view of every live segment, with the per-chunk facts that filters need.

Filters (validity at a date, access groups, source, retrieval rights) become one boolean mask over all chunks,
applied before any ranking: a filtered chunk gets no score at all, and BM25's statistics (document frequency,
average length) are computed over the visible chunks only, as if the others did not exist.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from ragtune.config import RetrievalSection
from ragtune.index.segment import Segment
from ragtune.store.db import Store

FOREVER = np.iinfo(np.int64).max


def epoch(value: str | datetime | None) -> int:
    if value is None:
        return int(FOREVER)
    dt = datetime.fromisoformat(value) if isinstance(value, str) else value
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp())


@dataclass(frozen=True)
class Filters:
    """Who is asking, and about when. ``as_of`` None means now; ``sources`` empty means every source."""

    as_of: datetime | None = None
    groups: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()


class ChunkTable:
    """Per-chunk filter facts as numpy arrays, aligned with the segments' chunk order."""

    def __init__(self, store: Store, chunk_ids: list[str]) -> None:
        n = len(chunk_ids)
        self.chunk_ids = chunk_ids
        self.position = {cid: i for i, cid in enumerate(chunk_ids)}
        self.valid_from = np.zeros(n, dtype=np.int64)
        self.valid_to = np.full(n, FOREVER, dtype=np.int64)
        self.acl = np.zeros(n, dtype=np.int32)
        self.source = np.zeros(n, dtype=np.int32)
        self.retrievable = np.zeros(n, dtype=bool)
        self.acl_sets: list[frozenset[str]] = []
        self.sources: list[str] = []
        acl_ids: dict[str, int] = {}
        source_ids: dict[str, int] = {}
        rows = store.db.execute(
            "SELECT c.chunk_id, v.valid_from, v.valid_to, d.groups, d.source, d.may_retrieve "
            "FROM chunks c JOIN versions v USING (doc_id, version) JOIN documents d USING (doc_id)"
        )
        for chunk_id, valid_from, valid_to, groups, source, may_retrieve in rows:
            i = self.position.get(chunk_id)
            if i is None:
                continue  # committed after this view was loaded; the next refresh picks it up
            self.valid_from[i] = epoch(valid_from)
            self.valid_to[i] = epoch(valid_to)
            if groups not in acl_ids:
                acl_ids[groups] = len(self.acl_sets)
                self.acl_sets.append(frozenset(json.loads(groups)))
            self.acl[i] = acl_ids[groups]
            if source not in source_ids:
                source_ids[source] = len(self.sources)
                self.sources.append(source)
            self.source[i] = source_ids[source]
            self.retrievable[i] = bool(may_retrieve)

    def mask(self, filters: Filters) -> np.ndarray:
        when = int((filters.as_of or datetime.now(UTC)).timestamp())
        mask = self.retrievable & (self.valid_from <= when) & (when < self.valid_to)
        asker = set(filters.groups)
        visible_acl = [i for i, groups in enumerate(self.acl_sets) if not groups or groups & asker]
        if len(visible_acl) < len(self.acl_sets):
            mask &= np.isin(self.acl, visible_acl)
        if filters.sources:
            wanted = [i for i, s in enumerate(self.sources) if s in filters.sources]
            mask &= np.isin(self.source, wanted)
        return mask


class Index:
    """Every live segment of a project, searchable in process; reloads when the store's generation moves.

    >>> index = Index.load(store, Path(".ragtune/index"), RetrievalSection())
    >>> scores = index.bm25(["rate", "limit"], index.table.mask(Filters()))
    """

    def __init__(self, store: Store, folder: Path, settings: RetrievalSection) -> None:
        self.store = store
        self.folder = folder
        self.settings = settings
        self.segments: list[Segment] = []
        self.offsets: list[int] = []
        self.table = ChunkTable(store, [])
        self.generation = -1
        self.dim = 0
        self.doclen = np.zeros(0, dtype=np.float32)
        self._global_docs: list[np.ndarray] = []
        self._views: dict[bytes, _Bm25View] = {}
        self._lock = threading.RLock()

    @classmethod
    def load(cls, store: Store, folder: Path, settings: RetrievalSection) -> Index:
        index = cls(store, folder, settings)
        index.refresh()
        return index

    def __len__(self) -> int:
        return len(self.table.chunk_ids)

    def refresh(self) -> bool:
        """Bring the view up to date with the store; returns whether anything changed."""
        with self._lock:
            generation = self.store.generation()
            if generation == self.generation:
                return False
            seg_ids = [row[0] for row in self.store.db.execute("SELECT seg_id FROM segments ORDER BY seg_id")]
            loaded = {seg.seg_id: seg for seg in self.segments}
            self.segments = [loaded.get(s) or Segment.load(self.folder, s) for s in seg_ids]
            self.offsets = list(np.cumsum([0] + [len(s) for s in self.segments])[:-1])
            self.table = ChunkTable(self.store, [cid for s in self.segments for cid in s.chunk_ids])
            self.doclen = np.concatenate([s.doclen for s in self.segments]) if self.segments else self.doclen[:0]
            self._global_docs = [
                seg.docs.astype(np.int64) + off for seg, off in zip(self.segments, self.offsets, strict=True)
            ]
            self._views = {}
            self.dim = next((s.vectors.shape[1] for s in self.segments if len(s)), 0)
            self.generation = generation
            return True

    def bm25(self, terms: list[str], mask: np.ndarray) -> np.ndarray:
        """BM25 (Lucene's idf) of every chunk for ``terms``, over the visible chunks only; hidden chunks score 0."""
        scores = np.zeros(len(mask), dtype=np.float32)
        if not terms or not mask.any():
            return scores
        view = self._bm25_view(mask)
        for term, qtf in Counter(terms).items():
            rows = [(i, row) for i, seg in enumerate(self.segments) if (row := seg.vocab.get(term)) is not None]
            df = sum(int(view.df[i][row]) for i, row in rows)
            if df == 0:
                continue
            idf = qtf * np.log(1.0 + (view.n_visible - df + 0.5) / (df + 0.5))
            for i, row in rows:
                a, b = self.segments[i].indptr[row], self.segments[i].indptr[row + 1]
                scores[self._global_docs[i][a:b]] += np.float32(idf) * view.tf_part[i][a:b]
        return scores

    def _bm25_view(self, mask: np.ndarray) -> _Bm25View:
        key = hashlib.blake2b(np.packbits(mask).tobytes(), digest_size=16).digest()
        with self._lock:
            view = self._views.get(key)
            if view is None:
                view = _Bm25View(self, mask)
                self._views[key] = view
                while len(self._views) > 4:  # a handful of (date, groups) combinations are in use at once
                    self._views.pop(next(iter(self._views)))
            return view

    def cosine(self, query: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Cosine similarity of every chunk with a normalised query vector; hidden chunks get -inf."""
        parts = [np.asarray(s.vectors) @ query for s in self.segments if len(s)]
        scores = np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)
        scores[~mask] = -np.inf
        return scores


class _Bm25View:
    """The parts of BM25 that depend only on which chunks are visible, computed once per visibility mask.

    Per segment: each posting's term-frequency part ``tf / (tf + k1 (1 - b + b dl / avgdl))``, zero for
    hidden chunks, and each term's document frequency among visible chunks. A query then costs two array operations
    per term and segment.
    """

    def __init__(self, index: Index, mask: np.ndarray) -> None:
        k1, b = index.settings.bm25_k1, index.settings.bm25_b
        self.n_visible = int(mask.sum())
        avgdl = float(index.doclen[mask].mean()) if self.n_visible else 1.0
        norm = (k1 * (1.0 - b + b * index.doclen / (avgdl or 1.0))).astype(np.float32)
        self.tf_part: list[np.ndarray] = []
        self.df: list[np.ndarray] = []
        for seg, docs in zip(index.segments, index._global_docs, strict=True):
            visible = mask[docs]
            part = seg.tfs / (seg.tfs + norm[docs])  # Lucene 8+ drops the constant (k1 + 1), as bm25s does
            part[~visible] = 0.0
            self.tf_part.append(part)
            counts = np.cumsum(np.concatenate([[0], visible.astype(np.int64)]))
            self.df.append(counts[seg.indptr[1:]] - counts[seg.indptr[:-1]])
