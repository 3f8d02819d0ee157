"""Numbered, named schema migrations. Append only: never edit one that has shipped."""

from __future__ import annotations

MIGRATIONS: list[tuple[str, str]] = [
    (
        "0001_corpus",
        """
        CREATE TABLE documents (
            doc_id       TEXT PRIMARY KEY,
            source       TEXT NOT NULL,
            owner        TEXT,
            license      TEXT NOT NULL,
            may_retrieve INTEGER NOT NULL,
            may_train    INTEGER NOT NULL,
            groups       TEXT NOT NULL,            -- JSON list, sorted; empty means public
            path         TEXT,                     -- where it was last read from
            extra        TEXT NOT NULL DEFAULT '{}',
            status       TEXT NOT NULL CHECK (status IN ('active', 'retired')),
            created_at   TEXT NOT NULL,
            updated_at   TEXT NOT NULL
        );
        CREATE INDEX documents_source ON documents(source);

        CREATE TABLE versions (
            doc_id       TEXT NOT NULL REFERENCES documents(doc_id) ON DELETE CASCADE,
            version      INTEGER NOT NULL,
            content_hash TEXT NOT NULL,
            title        TEXT NOT NULL,
            text         TEXT NOT NULL,
            valid_from   TEXT NOT NULL,            -- ISO 8601, UTC
            valid_to     TEXT,                     -- NULL while current
            ingested_at  TEXT NOT NULL,
            PRIMARY KEY (doc_id, version)
        );

        CREATE TABLE segments (
            seg_id     INTEGER PRIMARY KEY,
            n_chunks   INTEGER NOT NULL,
            created_at TEXT NOT NULL
        );

        CREATE TABLE chunks (
            chunk_id  TEXT PRIMARY KEY,            -- doc_id@version#ordinal
            doc_id    TEXT NOT NULL,
            version   INTEGER NOT NULL,
            ordinal   INTEGER NOT NULL,
            start     INTEGER NOT NULL,            -- character span in the version's text
            end       INTEGER NOT NULL,
            heading   TEXT NOT NULL,
            n_tokens  INTEGER NOT NULL,
            seg_id    INTEGER NOT NULL REFERENCES segments(seg_id),
            FOREIGN KEY (doc_id, version) REFERENCES versions(doc_id, version) ON DELETE CASCADE
        );
        CREATE INDEX chunks_doc ON chunks(doc_id, version);
        CREATE INDEX chunks_seg ON chunks(seg_id);

        CREATE TABLE receipts (
            receipt_id TEXT PRIMARY KEY,
            kind       TEXT NOT NULL,
            created_at TEXT NOT NULL,
            body       TEXT NOT NULL               -- JSON; ids and counts, never forgotten text
        );

        CREATE TABLE meta (
            key   TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );
        """,
    ),
]
