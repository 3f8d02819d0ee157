"""Data sets in a document's lineage, and out of them when it is forgotten.

Both functions register through the same hook lists an extension uses (``FORGET_HOOKS``, ``LINEAGE_HOOKS``), when
``ragtune.tuning`` is imported.
"""

from __future__ import annotations

import json
import sqlite3
from functools import partial
from typing import Any

from ragtune.corpus.forget import FORGET_HOOKS, ForgetContext
from ragtune.corpus.lineage import LINEAGE_HOOKS
from ragtune.project import Project
from ragtune.store.db import utcnow
from ragtune.tuning.data import Example, dataset_digest, export_dataset


def forget_dataset_examples(ctx: ForgetContext) -> None:
    """Remove every example derived from the forgotten documents from every data set, recompute the digests, and
    record each data set's old and new digest in the receipt; the files are rewritten once the rows are gone."""
    db = ctx.db
    touched: dict[str, set[int]] = {}
    for i in range(0, len(ctx.doc_ids), 500):
        part = ctx.doc_ids[i : i + 500]
        marks = ",".join("?" * len(part))
        for name, position in db.execute(
            f"SELECT DISTINCT name, position FROM dataset_example_docs WHERE doc_id IN ({marks})", part
        ):
            touched.setdefault(name, set()).add(position)
    changed = []
    for name in sorted(touched):
        positions = sorted(touched[name])
        old = db.execute("SELECT digest, previous FROM datasets WHERE name = ?", (name,)).fetchone()
        for i in range(0, len(positions), 500):
            chunk = positions[i : i + 500]
            db.execute(
                f"DELETE FROM dataset_examples WHERE name = ? AND position IN ({','.join('?' * len(chunk))})",
                [name, *chunk],
            )
        left = _examples(db, name)
        new_digest = dataset_digest(left)
        train = sum(e.split == "train" for e in left)
        previous = [
            *json.loads(old["previous"]),
            {"digest": old["digest"], "until": ctx.receipt.created_at, "why": f"forget {ctx.receipt.receipt_id}"},
        ]
        db.execute(
            "UPDATE datasets SET digest = ?, updated_at = ?, n_train = ?, n_holdout = ?, previous = ? WHERE name = ?",
            (new_digest, utcnow(), train, len(left) - train, json.dumps(previous), name),
        )
        changed.append(
            {
                "name": name,
                "old_digest": old["digest"],
                "new_digest": new_digest,
                "removed": len(positions),
                "train": train,
                "holdout": len(left) - train,
            }
        )
        ctx.after_commit.append(partial(export_dataset, ctx.project, name))
    ctx.receipt.sections["datasets"] = changed
    ctx.receipt.totals["dataset_examples"] = sum(d["removed"] for d in changed)


def _examples(db: sqlite3.Connection, name: str) -> list[Example]:
    return [
        Example(json.loads(r["messages"]), json.loads(r["origin"]), r["digest"], r["split"])
        for r in db.execute(
            "SELECT split, digest, messages, origin FROM dataset_examples WHERE name = ? ORDER BY position", (name,)
        )
    ]


def dataset_lineage(project: Project, doc_id: str, out: dict[str, Any]) -> None:
    """``datasets``: each data set holding examples derived from the document, with counts by split and the
    versions they came from."""
    rows = project.store.db.execute(
        "SELECT d.name, s.digest, e.split, COUNT(DISTINCT d.position) AS n, group_concat(DISTINCT d.version) AS vs "
        "FROM dataset_example_docs d JOIN dataset_examples e USING (name, position) JOIN datasets s USING (name) "
        "WHERE d.doc_id = ? GROUP BY d.name, e.split ORDER BY d.name",
        (doc_id,),
    )
    found: dict[str, dict[str, Any]] = {}
    for r in rows:
        entry = found.setdefault(
            r["name"], {"name": r["name"], "digest": r["digest"], "examples": 0, "train": 0, "holdout": 0, "v": set()}
        )
        entry[r["split"]] = r["n"]
        entry["examples"] += r["n"]
        entry["v"] |= {int(v) for v in str(r["vs"]).split(",")}
    out["datasets"] = [{k: v for k, v in e.items() if k != "v"} | {"versions": sorted(e["v"])} for e in found.values()]


FORGET_HOOKS.append(forget_dataset_examples)
LINEAGE_HOOKS.append(dataset_lineage)
