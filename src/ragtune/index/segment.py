"""An immutable index segment: BM25 postings and dense vectors for one batch of chunks.

Each ingest batch writes one segment; forgetting rewrites only the segments that held the forgotten chunks; small
segments are merged. Files are written under a temporary name and renamed, and the store's ``segments`` table
(committed in the same transaction as the chunks) says which files are live, so a crash leaves no half-index.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ragtune.errors import StoreError


def _encode_strings(items: Sequence[str]) -> np.ndarray:
    return np.frombuffer(json.dumps(list(items), ensure_ascii=False).encode("utf-8"), dtype=np.uint8)


def _decode_strings(array: np.ndarray) -> list[str]:
    return list(json.loads(array.tobytes().decode("utf-8")))


@dataclass
class Segment:
    """Postings in CSR layout (one row per term) plus one L2-normalised vector per chunk."""

    seg_id: int
    chunk_ids: list[str]
    vocab: dict[str, int]
    indptr: np.ndarray  # int64, len(vocab) + 1
    docs: np.ndarray  # int32, local chunk index of each posting
    tfs: np.ndarray  # float32, term frequency of each posting
    doclen: np.ndarray  # float32, terms per chunk
    vectors: np.ndarray  # float32, (n, dim)

    def __len__(self) -> int:
        return len(self.chunk_ids)

    @classmethod
    def build(cls, seg_id: int, chunk_ids: list[str], terms: list[list[str]], vectors: np.ndarray) -> Segment:
        vocab: dict[str, int] = {}
        rows: list[int] = []
        cols: list[int] = []
        vals: list[int] = []
        for doc, doc_terms in enumerate(terms):
            for term, tf in Counter(doc_terms).items():
                rows.append(vocab.setdefault(term, len(vocab)))
                cols.append(doc)
                vals.append(tf)
        row_arr = np.asarray(rows, dtype=np.int64)
        order = np.argsort(row_arr, kind="stable")
        indptr = np.zeros(len(vocab) + 1, dtype=np.int64)
        np.cumsum(np.bincount(row_arr, minlength=len(vocab)), out=indptr[1:])
        doclen = np.asarray([len(t) for t in terms], dtype=np.float32)
        return cls(
            seg_id,
            list(chunk_ids),
            vocab,
            indptr,
            np.asarray(cols, dtype=np.int32)[order],
            np.asarray(vals, dtype=np.float32)[order],
            doclen,
            np.ascontiguousarray(vectors, dtype=np.float32),
        )

    def postings(self, term: str) -> tuple[np.ndarray, np.ndarray] | None:
        row = self.vocab.get(term)
        if row is None:
            return None
        a, b = self.indptr[row], self.indptr[row + 1]
        return self.docs[a:b], self.tfs[a:b]

    def select(self, keep: np.ndarray, seg_id: int) -> Segment:
        """A new segment holding only the chunks where ``keep`` is true; unused terms are dropped."""
        new_index = np.cumsum(keep) - 1
        posting_keep = keep[self.docs]
        term_counts = (
            np.add.reduceat(posting_keep.astype(np.int64), self.indptr[:-1])
            if len(self.docs)
            else np.zeros(0, np.int64)
        )
        # reduceat misreads empty rows; every stored term has at least one posting, so rows are never empty
        terms = sorted(self.vocab, key=self.vocab.__getitem__)
        live_terms = [t for t, c in zip(terms, term_counts, strict=True) if c > 0]
        indptr = np.zeros(len(live_terms) + 1, dtype=np.int64)
        np.cumsum(term_counts[term_counts > 0], out=indptr[1:])
        return Segment(
            seg_id,
            [cid for cid, k in zip(self.chunk_ids, keep, strict=True) if k],
            {t: i for i, t in enumerate(live_terms)},
            indptr,
            new_index[self.docs[posting_keep]].astype(np.int32),
            self.tfs[posting_keep],
            self.doclen[keep],
            np.ascontiguousarray(self.vectors[keep]),
        )

    @classmethod
    def merge(cls, segments: Sequence[Segment], seg_id: int) -> Segment:
        """One segment holding every chunk of ``segments``, in order."""
        vocab: dict[str, int] = {}
        rows, cols, vals = [], [], []
        offset = 0
        for seg in segments:
            terms = sorted(seg.vocab, key=seg.vocab.__getitem__)
            remap = np.asarray([vocab.setdefault(t, len(vocab)) for t in terms], dtype=np.int64)
            counts = np.diff(seg.indptr)
            rows.append(np.repeat(remap, counts))
            cols.append(seg.docs.astype(np.int64) + offset)
            vals.append(seg.tfs)
            offset += len(seg)
        row_arr = np.concatenate(rows) if rows else np.zeros(0, np.int64)
        order = np.argsort(row_arr, kind="stable")
        indptr = np.zeros(len(vocab) + 1, dtype=np.int64)
        np.cumsum(np.bincount(row_arr, minlength=len(vocab)), out=indptr[1:])
        dim = segments[0].vectors.shape[1] if segments else 0
        return cls(
            seg_id,
            [cid for seg in segments for cid in seg.chunk_ids],
            vocab,
            indptr,
            np.concatenate(cols)[order].astype(np.int32) if cols else np.zeros(0, np.int32),
            np.concatenate(vals)[order] if vals else np.zeros(0, np.float32),
            np.concatenate([s.doclen for s in segments]) if segments else np.zeros(0, np.float32),
            np.concatenate([s.vectors for s in segments]) if segments else np.zeros((0, dim), np.float32),
        )

    # -- files ---------------------------------------------------------------------------------------------

    @staticmethod
    def paths(folder: Path, seg_id: int) -> tuple[Path, Path]:
        return folder / f"seg-{seg_id:06d}.npz", folder / f"seg-{seg_id:06d}.vec.npy"

    def save(self, folder: Path) -> None:
        postings_path, vectors_path = self.paths(folder, self.seg_id)
        terms = sorted(self.vocab, key=self.vocab.__getitem__)
        tmp = postings_path.with_suffix(".tmp")
        with open(tmp, "wb") as fh:
            np.savez(
                fh,
                chunk_ids=_encode_strings(self.chunk_ids),
                vocab=_encode_strings(terms),
                indptr=self.indptr,
                docs=self.docs,
                tfs=self.tfs,
                doclen=self.doclen,
            )
            fh.flush()
            os.fsync(fh.fileno())
        vtmp = vectors_path.with_suffix(".tmp")
        with open(vtmp, "wb") as fh:
            np.save(fh, self.vectors)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, postings_path)
        os.replace(vtmp, vectors_path)

    @classmethod
    def load(cls, folder: Path, seg_id: int) -> Segment:
        postings_path, vectors_path = cls.paths(folder, seg_id)
        try:
            with np.load(postings_path) as data:
                terms = _decode_strings(data["vocab"])
                seg = cls(
                    seg_id,
                    _decode_strings(data["chunk_ids"]),
                    {t: i for i, t in enumerate(terms)},
                    data["indptr"],
                    data["docs"],
                    data["tfs"],
                    data["doclen"],
                    np.load(vectors_path, mmap_mode="r"),
                )
        except (OSError, KeyError, ValueError) as exc:
            raise StoreError(
                f"{postings_path}: index segment unreadable ({exc}); rebuild the index with `ragtune reindex`"
            ) from None
        return seg

    @classmethod
    def delete_files(cls, folder: Path, seg_id: int) -> None:
        for path in cls.paths(folder, seg_id):
            path.unlink(missing_ok=True)
