"""Forgetting documents: every version and chunk leaves the store and both indexes, physically, with a receipt.

Segments that held forgotten chunks are rewritten without them (their vocabulary too), the old files are deleted,
and the SQLite file is vacuumed with secure_delete on, so no file under .ragtune/ keeps the forgotten text. The
receipt records ids and counts only, never the text.

What else was made from a document (training data sets; model versions trained on them) is cleaned up by the
functions in :data:`FORGET_HOOKS`, inside the same transaction. The built-in data set hook registers itself there
exactly as an extension would::

    def taint_models(ctx: ForgetContext) -> None:
        ctx.db.execute("UPDATE ...")                       # rolls back with the forget if anything fails
        ctx.receipt.sections["models"] = [...]; ctx.receipt.totals["models_tainted"] = n
    FORGET_HOOKS.append(taint_models)
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ragtune.errors import CorpusError
from ragtune.index.merge import next_segment_id, remove_orphans, swap_segments
from ragtune.index.segment import Segment
from ragtune.project import Project
from ragtune.store.db import Store, utcnow
from ragtune.traces.store import delete_traces, traces_of_documents


@dataclass
class Receipt:
    """Proof of a deletion: what was removed, how much, when, and how long it took."""

    receipt_id: str
    created_at: str
    documents: list[dict[str, Any]] = field(default_factory=list)
    not_found: list[str] = field(default_factory=list)
    totals: dict[str, int] = field(default_factory=dict)
    segments_rewritten: int = 0
    seconds: float = 0.0
    # filled by FORGET_HOOKS, one list per kind of thing made from the documents ("datasets", "models");
    # each shows as a top-level key of the JSON receipt
    sections: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.not_found

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(data.pop("sections"))
        return data


@dataclass
class ForgetContext:
    """What a forget hook gets: the project, the open transaction, the documents going, and the receipt."""

    project: Project
    db: sqlite3.Connection  # inside the forget's transaction: changes commit or roll back with the rows it deletes
    doc_ids: list[str]  # the documents being forgotten (those found in the corpus)
    receipt: Receipt  # extend receipt.totals and receipt.sections; ids and counts only, never text
    after_commit: list[Callable[[], object]] = field(default_factory=list)  # file work once the rows are gone


ForgetHook = Callable[[ForgetContext], None]

# Run in order inside the forget's transaction, after the document rows are deleted and before the receipt is
# stored. Plugins register them (ragtune/plugins.py) in a declared order: the data set hook first, so that later
# hooks find each changed data set's name and old digest (what a model version records) in
# receipt.sections["datasets"], the data set rows being already rewritten.
FORGET_HOOKS: list[ForgetHook] = []


def _load_builtin_hooks() -> None:
    from ragtune.plugins import load_plugins

    load_plugins()  # the data set, model and run hooks, in their declared order (see ragtune/plugins.py)


def forget(project: Project, doc_ids: list[str] | None = None, source: str | None = None) -> Receipt:
    """Remove documents (by id, or every document of a source) from everywhere they went."""
    with project.store.writing():  # an ingest planning versions meanwhile must not see half of it
        return _forget(project, doc_ids, source)


def _forget(project: Project, doc_ids: list[str] | None, source: str | None) -> Receipt:
    started = time.perf_counter()
    _load_builtin_hooks()
    store = project.store
    wanted = list(dict.fromkeys(doc_ids or []))
    missing_source = False
    if source is not None:
        missing_source = store.db.execute("SELECT 1 FROM documents WHERE source = ?", (source,)).fetchone() is None
        wanted += [
            r[0]
            for r in store.db.execute("SELECT doc_id FROM documents WHERE source = ?", (source,))
            if r[0] not in wanted
        ]
    if not wanted and source is None:
        raise CorpusError("nothing to forget; give document ids or --source NAME")
    receipt = Receipt(receipt_id=f"rcpt-{uuid.uuid4().hex[:12]}", created_at=utcnow())
    if missing_source:
        receipt.not_found.append(f"source:{source}")
    found: list[dict[str, Any]] = []
    for doc_id in wanted:
        row = store.db.execute("SELECT doc_id, source FROM documents WHERE doc_id = ?", (doc_id,)).fetchone()
        if row is None:
            receipt.not_found.append(doc_id)
            continue
        versions = store.db.execute("SELECT COUNT(*) FROM versions WHERE doc_id = ?", (doc_id,)).fetchone()[0]
        chunks = store.db.execute("SELECT COUNT(*) FROM chunks WHERE doc_id = ?", (doc_id,)).fetchone()[0]
        found.append({"doc_id": doc_id, "source": row["source"], "versions": versions, "chunks": chunks})
    gone_ids = [d["doc_id"] for d in found]
    gone_chunks: set[str] = set()
    seg_ids: set[int] = set()
    for i in range(0, len(gone_ids), 500):
        part = gone_ids[i : i + 500]
        marks = ",".join("?" * len(part))
        for cid, seg in store.db.execute(f"SELECT chunk_id, seg_id FROM chunks WHERE doc_id IN ({marks})", part):
            gone_chunks.add(cid)
            seg_ids.add(seg)
    # Rewrite each affected segment without the forgotten chunks, then swap them in with the row deletions.
    rewritten: list[tuple[int, Segment]] = []
    for seg_id in sorted(seg_ids):
        seg = Segment.load(project.index_dir, seg_id)
        keep = np.asarray([cid not in gone_chunks for cid in seg.chunk_ids], dtype=bool)
        new = seg.select(keep, next_segment_id(store))
        if len(new):
            new.save(project.index_dir)
        rewritten.append((seg_id, new))
    trace_ids = traces_of_documents(store.db, gone_ids)
    receipt.documents = found
    receipt.totals = {
        "documents": len(found),
        "versions": sum(d["versions"] for d in found),
        "chunks": sum(d["chunks"] for d in found),
        # answers that retrieved or quoted the documents: the whole trace goes, question and answer included
        "traces": len(trace_ids),
    }
    receipt.segments_rewritten = len(rewritten)
    context: ForgetContext | None = None
    try:
        with store.transaction() as db:
            for i in range(0, len(gone_ids), 500):
                part = gone_ids[i : i + 500]
                marks = ",".join("?" * len(part))
                db.execute(f"DELETE FROM chunks WHERE doc_id IN ({marks})", part)
                db.execute(f"DELETE FROM versions WHERE doc_id IN ({marks})", part)
                db.execute(f"DELETE FROM documents WHERE doc_id IN ({marks})", part)
            delete_traces(db, sorted(trace_ids))
            swap_segments(db, [old for old, _ in rewritten], [new for _, new in rewritten])
            Store.bump_generation(db)
            context = ForgetContext(project, db, gone_ids, receipt)
            for hook in FORGET_HOOKS:
                hook(context)
            receipt.seconds = round(time.perf_counter() - started, 3)
            db.execute(
                "INSERT INTO receipts VALUES (?, 'forget', ?, ?)",
                (receipt.receipt_id, receipt.created_at, json.dumps(receipt.to_json())),
            )
    except BaseException:
        for _, new in rewritten:
            Segment.delete_files(project.index_dir, new.seg_id)
        raise
    for old, _ in rewritten:
        Segment.delete_files(project.index_dir, old)
    remove_orphans(store, project.index_dir)
    if found:
        store.compact()
    if "index" in project.__dict__:
        project.index.refresh()
    # last, so that a failure here (a data set file that cannot be rewritten) still leaves the store compacted
    for work in context.after_commit if context else []:
        work()
    receipt.seconds = round(time.perf_counter() - started, 3)
    return receipt


def list_receipts(store: Store) -> list[dict[str, Any]]:
    return [json.loads(r[0]) for r in store.db.execute("SELECT body FROM receipts ORDER BY created_at, receipt_id")]
