"""The model registry's tables: model versions, the documents each learned from, aliases and their history.

This module alone names ``model_versions``, ``model_docs``, ``aliases`` and ``alias_history``; the registry's
operations (tuning.registry) and the readers below it (harness, diagnosis) go through it. Reads take the
``Store``; writes that belong to a caller's bigger transaction (forget hooks) take the connection it holds.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ragtune.store.db import Store

_BATCH = 500
_MOVE = ("alias", "version", "previous", "action", "forced", "reason", "gate", "by", "at")
_ORDER = "CAST(substr(version, 2) AS INTEGER)"


@dataclass
class ModelVersion:
    """One trained model, as the registry keeps it."""

    version: str
    created_at: str
    created_by: str
    base: str
    adapter: str  # relative to the project root
    dataset: str
    dataset_digest: str
    settings: dict[str, Any]
    result: dict[str, Any]
    tainted: dict[str, Any] | None
    aliases: list[str] = field(default_factory=list)
    # the audiences of the restricted documents it learned from (as its data set inherited them, joined with
    # what those documents' groups are now): a caller needs one group of each to use it; [] means anyone
    groups: list[list[str]] = field(default_factory=list)

    def adapter_path(self, root: Path) -> Path:
        return root / self.adapter

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class RegistryStore(Protocol):
    """What the registry's callers may ask of its tables."""

    def versions(self) -> list[ModelVersion]: ...
    def version(self, version: str) -> ModelVersion | None: ...
    def version_docs(self, version: str) -> list[str]: ...
    def alias_target(self, alias: str) -> str | None: ...
    def aliases(self) -> list[tuple[str, str]]: ...
    def next_version(self) -> str: ...
    def add_version(self, row: dict[str, Any], docs: Sequence[str]) -> None: ...
    def alias_history(self, alias: str | None = None) -> list[dict[str, Any]]: ...
    def move_alias(self, move: dict[str, Any]) -> None: ...
    def has_earlier_untainted(self, alias: str, current: str) -> bool: ...
    def latest_result(self) -> dict[str, Any] | None: ...
    def version_of_adapter(self, adapter: str) -> str | None: ...
    def trained_on(self, doc_id: str) -> list[sqlite3.Row]: ...


class SqliteRegistry:
    """The registry's tables in the project's SQLite store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _version(self, row: sqlite3.Row) -> ModelVersion:
        """The version a ``model_versions`` row records, with the groups recorded at training."""
        return ModelVersion(
            version=row["version"],
            created_at=row["created_at"],
            created_by=row["created_by"],
            base=row["base"],
            adapter=row["adapter"],
            dataset=row["dataset"],
            dataset_digest=row["dataset_digest"],
            settings=json.loads(row["settings"]),
            result=json.loads(row["result"]),
            tainted=json.loads(row["tainted"]) if row["tainted"] else None,
            aliases=aliases_of(self.store.db, row["version"]),
            groups=json.loads(row["groups"]),
        )

    def versions(self) -> list[ModelVersion]:
        """Every version, oldest first."""
        rows = self.store.db.execute(f"SELECT * FROM model_versions ORDER BY {_ORDER}").fetchall()
        return [self._version(r) for r in rows]

    def version(self, version: str) -> ModelVersion | None:
        """The version named ``version``, or None."""
        row = self.store.db.execute("SELECT * FROM model_versions WHERE version = ?", (version,)).fetchone()
        return None if row is None else self._version(row)

    def version_docs(self, version: str) -> list[str]:
        """The ids of the documents ``version`` learned from."""
        return docs_of(self.store.db, version)

    def alias_target(self, alias: str) -> str | None:
        """The version ``alias`` points to, or None."""
        row = self.store.db.execute("SELECT version FROM aliases WHERE alias = ?", (alias,)).fetchone()
        return None if row is None else str(row[0])

    def aliases(self) -> list[tuple[str, str]]:
        """Every alias and the version it points to, by alias."""
        return [(r[0], r[1]) for r in self.store.db.execute("SELECT alias, version FROM aliases ORDER BY alias")]

    def next_version(self) -> str:
        """The name the next registered version gets."""
        row = self.store.db.execute("SELECT MAX(CAST(substr(version, 2) AS INTEGER)) FROM model_versions").fetchone()
        return f"v{(row[0] or 0) + 1}"

    def add_version(self, row: dict[str, Any], docs: Sequence[str]) -> None:
        """Insert a version (``row``: its columns, already encoded) and the documents it learned from, in one
        transaction."""
        columns = ("version", "created_at", "created_by", "base", "adapter", "dataset", "dataset_digest",
                   "settings", "result", "groups")  # fmt: skip
        with self.store.transaction() as db:
            db.execute(
                "INSERT INTO model_versions (version, created_at, created_by, base, adapter, dataset, dataset_digest, "
                "settings, result, groups) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                tuple(row[c] for c in columns),
            )
            db.executemany(
                "INSERT INTO model_docs (version, doc_id) VALUES (?, ?)", [(row["version"], d) for d in docs]
            )

    def alias_history(self, alias: str | None = None) -> list[dict[str, Any]]:
        """Every move of ``alias`` (or of every alias), oldest first."""
        where, args = ("WHERE alias = ?", (alias,)) if alias else ("", ())
        rows = self.store.db.execute(f"SELECT * FROM alias_history {where} ORDER BY id", args).fetchall()
        return [
            {k: (json.loads(r[k]) if k == "gate" else bool(r[k]) if k == "forced" else r[k]) for k in r.keys()}  # noqa: SIM118
            for r in rows
        ]

    def move_alias(self, move: dict[str, Any]) -> None:
        """Point an alias at a version and record the move, in one transaction. ``move`` has the keys alias,
        version, previous, action, forced, reason, gate (encoded), by and at."""
        with self.store.transaction() as db:
            db.execute(
                "INSERT INTO aliases (alias, version, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (alias) DO UPDATE SET version = excluded.version, updated_at = excluded.updated_at",
                (move["alias"], move["version"], move["at"]),
            )
            db.execute(
                "INSERT INTO alias_history (alias, version, previous, action, forced, reason, gate, by, at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                tuple(move[k] for k in _MOVE),
            )

    def has_earlier_untainted(self, alias: str, current: str) -> bool:
        """Whether ``alias`` once pointed to an untainted version other than ``current``."""
        row = self.store.db.execute(
            "SELECT 1 FROM alias_history h JOIN model_versions m ON m.version = h.version "
            "WHERE h.alias = ? AND h.version != ? AND m.tainted IS NULL LIMIT 1",
            (alias, current),
        ).fetchone()
        return row is not None

    def latest_result(self) -> dict[str, Any] | None:
        """The training result of the newest version, or None without versions."""
        row = self.store.db.execute(f"SELECT version, result FROM model_versions ORDER BY {_ORDER} DESC LIMIT 1").fetchone()  # fmt: skip
        return None if row is None else dict(json.loads(row[1]))

    def version_of_adapter(self, adapter: str) -> str | None:
        """The version whose adapter folder (relative to the project root) is ``adapter``, or None."""
        row = self.store.db.execute("SELECT version FROM model_versions WHERE adapter = ?", (adapter,)).fetchone()
        return str(row[0]) if row else None

    def trained_on(self, doc_id: str) -> list[sqlite3.Row]:
        """The versions that learned from ``doc_id``, oldest first: version, dataset, dataset_digest, tainted and
        groups (as recorded)."""
        return self.store.db.execute(
            "SELECT m.version, m.dataset, m.dataset_digest, m.tainted, m.groups FROM model_docs d "
            "JOIN model_versions m ON m.version = d.version WHERE d.doc_id = ? ORDER BY CAST(substr(m.version, 2) AS INTEGER)",
            (doc_id,),
        ).fetchall()


def registry_store(store: Store) -> RegistryStore:
    """The registry's tables in ``store``."""
    return SqliteRegistry(store)


def aliases_of(db: sqlite3.Connection, version: str) -> list[str]:
    """The aliases pointing to ``version``, by name."""
    return [r[0] for r in db.execute("SELECT alias FROM aliases WHERE version = ? ORDER BY alias", (version,))]


def docs_of(db: sqlite3.Connection, version: str) -> list[str]:
    """The ids of the documents ``version`` learned from."""
    return [str(r[0]) for r in db.execute("SELECT doc_id FROM model_docs WHERE version = ?", (version,))]


def versions_trained_on(db: sqlite3.Connection, doc_ids: Sequence[str]) -> set[str]:
    """The versions that learned from any of ``doc_ids``."""
    found: set[str] = set()
    for i in range(0, len(doc_ids), _BATCH):
        part = list(doc_ids[i : i + _BATCH])
        marks = ",".join("?" * len(part))
        found |= {r[0] for r in db.execute(f"SELECT DISTINCT version FROM model_docs WHERE doc_id IN ({marks})", part)}  # fmt: skip
    return found


def adapters_trained_on(db: sqlite3.Connection, doc_ids: Sequence[str]) -> set[tuple[str, str]]:
    """The (version, adapter folder) of every version that learned from any of ``doc_ids``."""
    found: set[tuple[str, str]] = set()
    for i in range(0, len(doc_ids), _BATCH):
        part = list(doc_ids[i : i + _BATCH])
        found |= {
            (str(r[0]), str(r[1]))
            for r in db.execute(
                "SELECT DISTINCT m.version, m.adapter FROM model_versions m JOIN model_docs d ON d.version = m.version "
                f"WHERE d.doc_id IN ({','.join('?' * len(part))})",
                part,
            )
        }
    return found


def version_row(db: sqlite3.Connection, version: str) -> sqlite3.Row:
    """The dataset, base, settings, tainted and adapter columns of ``version``."""
    row: sqlite3.Row = db.execute(
        "SELECT dataset, base, settings, tainted, adapter FROM model_versions WHERE version = ?", (version,)
    ).fetchone()
    return row


def mark_tainted(db: sqlite3.Connection, version: str, why: dict[str, Any]) -> None:
    """Record why ``version`` is tainted."""
    db.execute("UPDATE model_versions SET tainted = ? WHERE version = ?", (json.dumps(why), version))
