"""Where a document went: its versions and chunks, the traces that used it, and through :data:`LINEAGE_HOOKS`
what was made from it (training data sets; model versions trained on them).

    lineage = document_lineage(project, "handbook/pricing.md")   # a JSON-ready dict

A hook gets the project, the document id and the lineage dict, and adds its own key (ids and counts only)::

    def models(project: Project, doc_id: str, out: dict[str, Any]) -> None:
        out["models"] = [...]
    LINEAGE_HOOKS.append(models)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ragtune.errors import CorpusError
from ragtune.project import Project
from ragtune.traces.store import document_traces

LineageHook = Callable[[Project, str, dict[str, Any]], None]

# Run in order by document_lineage; plugins register them (ragtune/plugins.py), the data set hook first.
LINEAGE_HOOKS: list[LineageHook] = []

RECENT_TRACES = 10


def document_lineage(project: Project, doc_id: str) -> dict[str, Any]:
    """Everything ragtune knows was made from ``doc_id``, including the receipts that forgot it."""
    from ragtune.plugins import load_plugins

    load_plugins()  # the data set and model hooks (ragtune/plugins.py)

    db = project.store.db
    doc = db.execute("SELECT * FROM documents WHERE doc_id = ?", (doc_id,)).fetchone()
    versions = [
        {"version": r["version"], "valid_from": r["valid_from"], "valid_to": r["valid_to"], "chunks": r["chunks"]}
        for r in db.execute(
            "SELECT v.version, v.valid_from, v.valid_to, (SELECT COUNT(*) FROM chunks c WHERE c.doc_id = v.doc_id "
            "AND c.version = v.version) AS chunks FROM versions v WHERE v.doc_id = ? ORDER BY v.version",
            (doc_id,),
        )
    ]
    n_traces, recent = document_traces(db, doc_id, RECENT_TRACES)
    forgotten = [
        {"receipt_id": r["receipt_id"], "created_at": r["created_at"]}
        for r in db.execute(
            "SELECT receipt_id, created_at, body FROM receipts WHERE kind = 'forget' AND instr(body, ?) > 0 "
            "ORDER BY created_at, receipt_id",
            (json.dumps(doc_id),),
        )
        if any(d.get("doc_id") == doc_id for d in json.loads(r["body"]).get("documents", []))
    ]
    out: dict[str, Any] = {
        "doc_id": doc_id,
        "in_corpus": doc is not None,
        "document": None
        if doc is None
        else {
            "source": doc["source"],
            "status": doc["status"],
            "license": doc["license"],
            "may_retrieve": bool(doc["may_retrieve"]),
            "may_train": bool(doc["may_train"]),
            "owner": doc["owner"],
        },
        "versions": versions,
        "chunks": sum(v["chunks"] for v in versions),
        "traces": {"count": n_traces, "recent": recent},
        "forgotten": forgotten,
    }
    for hook in LINEAGE_HOOKS:
        hook(project, doc_id, out)
    made_from = [v for k, v in out.items() if k not in ("doc_id", "in_corpus", "document", "chunks", "traces")]
    if doc is None and not n_traces and not any(made_from):
        raise CorpusError(f"{doc_id}: no such document, and nothing made from it; see `ragtune docs list`")
    return out
