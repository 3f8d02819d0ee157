"""Saving and reading traces. A trace holds ids, scores, timings and the answer; chunk texts stay in the corpus,
so forgetting a document deletes the traces that touched it (see corpus/forget.py) and nothing else keeps it."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ragtune.errors import StoreError
from ragtune.store.db import Store

_JSON_COLUMNS = ("groups", "model", "index_state", "timings", "chunks", "citations", "body")


@dataclass
class Trace:
    trace_id: str
    created_at: str
    kind: str
    arm: str
    question: str
    answer: str
    model: dict[str, str]
    index_state: dict[str, Any]
    timings: dict[str, float]
    tokens_in: int
    tokens_out: int
    chunks: list[dict[str, Any]]
    citations: list[dict[str, Any]]
    as_of: str | None = None
    groups: list[str] = field(default_factory=list)
    caller: str | None = None
    body: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def doc_ids(self) -> set[str]:
        """The documents this answer came from: every chunk it retrieved, and the gold evidence it was asked
        about (an eval case's), so that forgetting one of them deletes the trace."""
        return {c["doc_id"] for c in self.chunks} | set(self.body.get("evidence", []))


def save_trace(store: Store, trace: Trace) -> None:
    row = trace.to_json()
    for col in _JSON_COLUMNS:
        row[col] = json.dumps(row[col], sort_keys=True)
    cols = list(row)
    with store.transaction() as db:
        db.execute(
            f"INSERT INTO traces ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", [row[c] for c in cols]
        )
        db.executemany(
            "INSERT OR IGNORE INTO trace_docs (trace_id, doc_id) VALUES (?, ?)",
            [(trace.trace_id, d) for d in sorted(trace.doc_ids)],
        )


def _from_row(row: Any) -> Trace:
    data = dict(row)
    for col in _JSON_COLUMNS:
        data[col] = json.loads(data[col])
    return Trace(**data)


def load_trace(
    store: Store, trace_id: str, caller: str | None = None, readable: Callable[[Trace], bool] | None = None
) -> Trace:
    """One trace by id, or by a unique prefix of at least 6 characters (as git accepts short hashes).

    With ``caller``, only that caller's traces are looked at, and with ``readable`` only the traces it accepts: a
    prefix is unique or ambiguous among those alone, and any other trace is "no trace", so the answer tells nothing
    about traces the asker may not read.
    """
    trace_id = trace_id.strip().lower()
    if len(trace_id) < 6:
        raise StoreError(f"trace id {trace_id!r} is too short; give at least 6 characters")
    only, params = ("", ()) if caller is None else (" AND caller = ?", (caller,))
    rows = store.db.execute(
        f"SELECT * FROM traces WHERE trace_id >= ? AND trace_id < ?{only} ORDER BY trace_id",
        (trace_id, trace_id + "g", *params),
    )
    found: list[Trace] = []
    for row in rows:
        trace = _from_row(row)
        if readable is None or readable(trace):
            found.append(trace)
            if len(found) > 1:
                break
    exact = [t for t in found if t.trace_id == trace_id]
    if exact:
        return exact[0]
    if not found:
        raise StoreError(f"no trace {trace_id!r}; `ragtune trace --list` shows recent ones")
    if len(found) > 1:
        raise StoreError(f"trace id {trace_id!r} is ambiguous; give more characters")
    return found[0]


def list_traces(store: Store, limit: int = 20) -> list[dict[str, Any]]:
    rows = store.db.execute(
        "SELECT trace_id, created_at, kind, arm, caller, question, tokens_in, tokens_out, timings FROM traces "
        "ORDER BY created_at DESC, rowid DESC LIMIT ?",
        (limit,),
    )
    out = []
    for row in rows:
        item = dict(row)
        item["total_ms"] = json.loads(item.pop("timings")).get("total")
        out.append(item)
    return out


def traces_of_documents(db: Any, doc_ids: Sequence[str]) -> set[str]:
    """The traces that retrieved or quoted any of these documents."""
    found: set[str] = set()
    for i in range(0, len(doc_ids), 500):
        part = list(doc_ids[i : i + 500])
        marks = ",".join("?" * len(part))
        found |= {r[0] for r in db.execute(f"SELECT trace_id FROM trace_docs WHERE doc_id IN ({marks})", part)}
    return found


def delete_traces(db: Any, trace_ids: Sequence[str]) -> None:
    """Within the caller's transaction: delete these traces (their document rows go with them)."""
    ordered = sorted(trace_ids)
    for i in range(0, len(ordered), 500):
        part = ordered[i : i + 500]
        db.execute(f"DELETE FROM traces WHERE trace_id IN ({','.join('?' * len(part))})", part)


def document_traces(db: Any, doc_id: str, limit: int) -> tuple[int, list[str]]:
    """How many traces touched a document, and the ids of the most recent `limit` of them."""
    count = db.execute("SELECT COUNT(*) FROM trace_docs WHERE doc_id = ?", (doc_id,)).fetchone()[0]
    recent = [
        r[0]
        for r in db.execute(
            "SELECT t.trace_id FROM trace_docs d JOIN traces t USING (trace_id) WHERE d.doc_id = ? "
            "ORDER BY t.created_at DESC, t.trace_id LIMIT ?",
            (doc_id, limit),
        )
    ]
    return int(count), recent


def answered_traces(store: Store) -> list[Any]:
    """Every trace's id, question, answer and chunk list (JSON text), oldest first."""
    return store.db.execute(
        "SELECT trace_id, question, answer, chunks FROM traces ORDER BY created_at, trace_id"
    ).fetchall()


def traffic_questions(store: Store) -> list[str]:
    """The questions of production traffic: the traces of `ask` and the server (kind ask or chat), oldest first."""
    rows = store.db.execute("SELECT question FROM traces WHERE kind IN ('ask', 'chat') ORDER BY created_at")
    return [str(r[0]) for r in rows]


def delete_traces_of_adapters(db: Any, adapters: Sequence[str]) -> int:
    """Within forget's transaction: delete every trace answered by one of these adapter folders (paths relative to
    the project, as the registry keeps them): a fine-tune trained on a forgotten document may repeat it."""
    doomed: list[str] = []
    for trace_id, model in db.execute("SELECT trace_id, model FROM traces WHERE model LIKE '%adapter%'"):
        adapter = str(json.loads(model).get("adapter") or "")
        if adapter and any(Path(adapter).as_posix().endswith(a) for a in adapters):
            doomed.append(trace_id)
    delete_traces(db, doomed)
    return len(doomed)
