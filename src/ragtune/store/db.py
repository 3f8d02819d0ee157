"""SQLite access: connection set-up, migrations, transactions."""

from __future__ import annotations

import fcntl
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from ragtune.errors import StoreError
from ragtune.store.migrations import MIGRATIONS


def utcnow(precise: bool = False) -> str:
    """Now, as the ISO 8601 UTC string the store keeps: second precision, or microseconds where events within one
    second must be ordered (``precise``: a version's ingest against a run's finish, which the diagnosis compares).
    Both forms compare as strings: '…:38+00:00' sorts before '…:38.5+00:00'."""
    now = datetime.now(UTC)
    return now.isoformat() if precise else now.replace(microsecond=0).isoformat()


def _statements(script: str) -> list[str]:
    """Split a migration into statements (``;`` inside comments or strings does not end one)."""
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    if current.strip():
        statements.append(current.strip())
    return statements


class Store:
    """The project's SQLite file.

    >>> store = Store(Path(".ragtune/ragtune.db"))
    >>> with store.transaction() as db: db.execute("SELECT 1")
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        # one connection serves every thread (the server's workers among them); transactions take turns
        self._write_lock = threading.RLock()
        self._writer_lock = threading.RLock()  # see writing()
        self._writer_depth = 0
        self._lock_file: IO[str] | None = None
        try:
            self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        except sqlite3.Error as exc:
            raise StoreError(f"{path}: cannot open the store ({exc}); check the folder's permissions") from None
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        # Deleted rows are overwritten with zeros, so forgotten text does not linger in free pages.
        self.db.execute("PRAGMA secure_delete=ON")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.migrate()

    def migrate(self) -> list[str]:
        """Apply the migrations this file has not seen; returns their names."""
        self.db.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
        done = {row[0] for row in self.db.execute("SELECT name FROM _migrations")}
        applied = []
        for name, sql in MIGRATIONS:
            if name in done:
                continue
            with self.transaction() as db:
                for statement in _statements(sql):
                    db.execute(statement)
                db.execute("INSERT INTO _migrations VALUES (?, ?)", (name, utcnow()))
            applied.append(name)
        return applied

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic unit of work: everything inside commits together or not at all."""
        with self._write_lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Writers of this project take turns, across processes: an ingest plans its versions from what is stored,
        so a second ingest (or a forget, a merge, a reindex) must wait until the first has committed. Reentrant
        within a process; readers never wait. The lock is ``ragtune.db.lock`` beside the store (``flock``)."""
        with self._writer_lock:
            self._writer_depth += 1
            try:
                if self._writer_depth == 1:
                    self._lock_file = open(self.path.with_name(self.path.name + ".lock"), "a+")  # noqa: SIM115
                    fcntl.flock(self._lock_file, fcntl.LOCK_EX)
                yield
            finally:
                self._writer_depth -= 1
                if self._writer_depth == 0 and self._lock_file is not None:
                    fcntl.flock(self._lock_file, fcntl.LOCK_UN)
                    self._lock_file.close()
                    self._lock_file = None

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else default

    @staticmethod
    def set_meta(db: sqlite3.Connection, key: str, value: str) -> None:
        db.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value))

    def generation(self) -> int:
        """Bumped by every change to the indexed corpus; readers reload when it moves."""
        return int(self.get_meta("generation", "0") or 0)

    @staticmethod
    def bump_generation(db: sqlite3.Connection) -> None:
        db.execute(
            "INSERT INTO meta VALUES ('generation', '1') "
            "ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1"
        )

    def compact(self) -> None:
        """Rewrite the file so that deleted rows leave no trace on disk (used by forget)."""
        self.db.execute("VACUUM")
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        self.db.close()
