"""Ingesting documents: incremental, versioned, transactional, searchable on return.

A batch of documents becomes one index segment and one store transaction. Unchanged documents are skipped; a
changed one gets a new version and the previous one is superseded (``valid_to`` set), not lost. The segment file is
written before the transaction that makes it live commits, so a crash leaves either the whole batch or none of it.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ragtune.corpus.chunking import Chunk, chunk_text, index_text
from ragtune.corpus.loaders import Defaults, ReadResult, default_source, iter_documents
from ragtune.corpus.model import RIGHTS_FIELDS, RawDocument, iso
from ragtune.corpus.reindex import EMBEDDER_KEY, check_embedder, embedder_identity
from ragtune.errors import IngestError
from ragtune.index.analyzer import Analyzer
from ragtune.index.merge import merge_small_segments, next_segment_id
from ragtune.index.segment import Segment
from ragtune.project import Project
from ragtune.store.db import Store, utcnow

Progress = Callable[[int, int], None]  # (documents just done, documents in all)


@dataclass
class IngestReport:
    """What an ingest did, document by document; ``ok`` is false when any input failed."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)  # a new version was stored
    unchanged: list[str] = field(default_factory=list)
    metadata_changed: list[str] = field(default_factory=list)  # same text, new rights, owner or groups
    retired: list[str] = field(default_factory=list)
    # every known document whose rights, groups, licence or owner this ingest changed: {doc_id, changes: {field:
    # {old, new}}}; a loosening not allowed by ``rights_change`` is an error instead, and the stored rights stay
    rights_changed: list[dict[str, Any]] = field(default_factory=list)
    skipped_files: list[str] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)
    chunks: int = 0
    seconds: float = 0.0
    embed_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("_failed_paths", None)
        out["ok"] = self.ok
        return out

    def fail(self, err: IngestError) -> None:
        self.errors.append({"where": err.where, "problem": err.problem, "fix": err.fix, "message": str(err)})
        try:
            resolved = str(Path(err.path).resolve())
        except (OSError, RuntimeError):  # a symlink loop cannot be resolved
            resolved = os.path.abspath(err.path)
        self._failed_paths.add(resolved)

    _failed_paths: set[str] = field(default_factory=set, repr=False)


def content_hash(doc: RawDocument) -> str:
    return hashlib.sha256(f"{doc.title}\0{doc.text}".encode()).hexdigest()


def _rights_row(doc: RawDocument) -> tuple[Any, ...]:
    r = doc.rights
    return (r.source, r.owner, r.license, int(r.may_retrieve), int(r.may_train), json.dumps(list(r.groups)))


def _stored_rights(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "license": row["license"],
        "owner": row["owner"],
        "may_retrieve": bool(row["may_retrieve"]),
        "may_train": bool(row["may_train"]),
        "groups": tuple(json.loads(row["groups"])),
    }


def loosens(field_name: str, old: Any, new: Any, default_license: str = "unspecified") -> bool:
    """Whether changing one right from ``old`` to ``new`` lets more callers or more uses reach the document.

    Groups are an audience (any one of them may read): making a public document restricted, or dropping groups
    from a restricted one, tightens; making it public, or adding a group to a restricted one, widens who reads it.
    A licence may be set where none was; changing or clearing one is a loosening (ragtune cannot tell whether the
    new terms are stricter). The owner is not a right: changing it is applied and reported.
    """
    if old == new or field_name == "owner":
        return False
    if field_name in ("may_train", "may_retrieve"):
        return bool(new) and not old
    if field_name == "groups":
        return not new or (bool(old) and not set(new) <= set(old))
    if field_name == "license":
        return old not in (None, "", default_license)
    return True


def resolve_rights(
    doc: RawDocument, stored: sqlite3.Row | None, *, rights_change: bool, default_license: str
) -> tuple[RawDocument, dict[str, dict[str, Any]], IngestError | None]:
    """The rights a document gets: what the input named, else what is stored for it (else the fallbacks, already
    in ``doc.rights`` for a new document); with the changes made and, for a loosening not allowed, the error."""
    if stored is None:
        return doc, {}, None
    old = _stored_rights(stored)
    new = {f: getattr(doc.rights, f) if f in doc.given else old[f] for f in RIGHTS_FIELDS}
    changes = {f: {"old": _show(old[f]), "new": _show(new[f])} for f in RIGHTS_FIELDS if new[f] != old[f]}
    loosened = [f for f in changes if loosens(f, old[f], new[f], default_license)]
    error = None
    if loosened and not rights_change:
        what = "; ".join(f"{f} {describe_right(f, old[f])} -> {describe_right(f, new[f])}" for f in loosened)
        error = IngestError(
            doc.where,
            f"{doc.doc_id}: would loosen its rights ({what}); its stored rights are kept",
            'pass --rights-change ("rights_change": true over the API) to loosen them, or repeat the stored ones',
            path=doc.path,
        )
        new, changes = old, {}
    rights = replace(doc.rights, **new)
    return replace(doc, rights=rights), changes, error


def _show(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def describe_right(field_name: str, value: Any) -> str:
    """A right's value in words, as messages and the ingest summary show it: groups as a,b or public."""
    if field_name == "groups":
        return ",".join(value) or "public"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "-" if value is None else str(value)


def ingest_paths(
    project: Project,
    paths: list[Path],
    defaults: Defaults,
    *,
    sync: bool = False,
    rights_change: bool = False,
    progress: Progress | None = None,
) -> IngestReport:
    """Read files and folders, then ingest what could be read; every bad input is reported, none stops the rest."""
    started = time.perf_counter()
    read = ReadResult()
    report = IngestReport()
    seen: set[str] = set()
    jsonl_sources: set[str] = set()

    def documents() -> Iterator[RawDocument]:
        for doc in iter_documents(paths, defaults, project.root, int(project.config.corpus.max_file_mb * 1e6), read):
            seen.add(doc.doc_id)
            if doc.path.lower().endswith(".jsonl"):
                jsonl_sources.add(doc.rights.source)
            yield doc

    ingest_documents(project, documents(), report=report, progress=progress, rights_change=rights_change)
    report.skipped_files = read.skipped
    for err in read.errors:
        report.fail(err)
    if sync:
        # A folder is a whole source, and so is a JSONL export; a single plain file says nothing about its siblings.
        sources = {defaults.source or default_source(p) for p in paths if p.is_dir()} | jsonl_sources
        if sources:
            report.retired = retire_missing(project.store, sources, seen, report._failed_paths)
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def ingest_documents(
    project: Project,
    documents: Iterable[RawDocument],
    *,
    report: IngestReport | None = None,
    progress: Progress | None = None,
    total: int = 0,
    rights_change: bool = False,
) -> IngestReport:
    """Ingest already-read documents in batches; returns when every change is committed and searchable.

    A known document keeps its stored rights for every field the input does not name; naming a looser one is an
    error for that document unless ``rights_change`` (see :func:`resolve_rights`)."""
    report = report or IngestReport()
    started = time.perf_counter()
    batch: list[RawDocument] = []
    size = project.config.corpus.batch_documents
    for doc in documents:
        batch.append(doc)
        if len(batch) >= size:
            _ingest_batch(project, batch, report, rights_change)
            with project.store.writing():
                merge_small_segments(project.store, project.index_dir)
            if progress:
                progress(len(batch), total)
            batch = []
    if batch:
        _ingest_batch(project, batch, report, rights_change)
        if progress:
            progress(len(batch), total)
    if "index" in project.__dict__:
        project.index.refresh()  # a server or a long-lived caller sees the change at once
    with project.store.writing():
        merged = merge_small_segments(project.store, project.index_dir)
    if merged and "index" in project.__dict__:
        project.index.refresh()
    if not report.seconds:
        report.seconds = round(time.perf_counter() - started, 3)
    return report


@dataclass
class _Planned:
    doc: RawDocument
    version: int
    valid_from: str
    chunks: list[Chunk]
    is_new: bool


def _ingest_batch(project: Project, batch: list[RawDocument], report: IngestReport, rights_change: bool) -> None:
    # Planning reads the current versions, so it must see every other writer's commits: two ingests of one folder
    # at once (two processes, or a server and a CLI) take turns here, and the second finds the first's versions.
    with project.store.writing():
        _plan_and_write(project, batch, report, rights_change)


def _plan_and_write(project: Project, batch: list[RawDocument], report: IngestReport, rights_change: bool) -> None:
    store = project.store
    check_embedder(project)
    now = datetime.now(UTC).replace(microsecond=0)
    current = _current_versions(store.db, [d.doc_id for d in batch])
    planned: list[_Planned] = []
    metadata_only: list[RawDocument] = []
    rights_changed: list[dict[str, Any]] = []
    for doc in batch:
        cur = current.get(doc.doc_id)
        doc, changes, refused = resolve_rights(
            doc, cur, rights_change=rights_change, default_license=project.config.corpus.default_license
        )
        if refused is not None:
            report.fail(refused)
        if changes:
            rights_changed.append({"doc_id": doc.doc_id, "changes": changes})
        valid_from = iso(doc.valid_from or now)
        if cur is not None and cur["status"] == "active" and cur["content_hash"] == content_hash(doc):
            stored = tuple(cur[k] for k in ("source", "owner", "license", "may_retrieve", "may_train", "groups"))
            if stored != _rights_row(doc) or (cur["extra"], cur["path"]) != (json.dumps(doc.extra), doc.path):
                metadata_only.append(doc)
            else:
                report.unchanged.append(doc.doc_id)
            continue
        if cur is not None and cur["valid_from"] is not None and valid_from < cur["valid_from"]:
            report.fail(
                IngestError(
                    doc.where,
                    f"valid_from {valid_from} is before the current version's ({cur['valid_from']})",
                    "versions move forward in time; give a later --valid-from",
                    path=doc.path,
                )
            )
            continue
        chunks = chunk_text(doc.text, doc.title, project.embedder.token_spans, project.config.corpus.chunk_tokens)
        if not chunks:
            report.fail(
                IngestError(doc.where, "no indexable text", "add content or remove the document", path=doc.path)
            )
            continue
        version = (cur["version"] or 0) + 1 if cur is not None else 1
        planned.append(_Planned(doc, version, valid_from, chunks, cur is None))

    segment = None
    if planned:
        texts, chunk_ids = [], []
        for p in planned:
            for c in p.chunks:
                texts.append(index_text(c.heading, c.body(p.doc.text)))
                chunk_ids.append(chunk_id(p.doc.doc_id, p.version, c.ordinal))
        analyzer = Analyzer()
        terms = [analyzer.terms(t) for t in texts]
        t0 = time.perf_counter()
        vectors = project.embedder.encode(texts)
        report.embed_seconds = round(report.embed_seconds + time.perf_counter() - t0, 3)
        seg_id = next_segment_id(store)
        segment = Segment.build(seg_id, chunk_ids, terms, vectors)
        segment.save(project.index_dir)
    try:
        with store.transaction() as db:
            stamp = iso(now)
            for doc in metadata_only:
                db.execute(
                    "UPDATE documents SET source=?, owner=?, license=?, may_retrieve=?, may_train=?, groups=?, "
                    "extra=?, path=?, updated_at=? WHERE doc_id=?",
                    (*_rights_row(doc), json.dumps(doc.extra), doc.path, stamp, doc.doc_id),
                )
            if segment is not None:
                db.execute("INSERT INTO segments VALUES (?, ?, ?)", (segment.seg_id, len(segment), stamp))
            seen = utcnow(precise=True)  # when the version became searchable (diagnosis orders it against runs)
            for p in planned:
                _write_version(db, p, stamp, seen, segment.seg_id if segment else 0)
            if segment is not None:
                Store.set_meta(db, EMBEDDER_KEY, embedder_identity(project))
            if planned or metadata_only:
                Store.bump_generation(db)
    except BaseException:
        if segment is not None:
            Segment.delete_files(project.index_dir, segment.seg_id)
        raise
    report.metadata_changed += [d.doc_id for d in metadata_only]
    report.rights_changed += rights_changed
    for p in planned:
        (report.added if p.is_new else report.updated).append(p.doc.doc_id)
        report.chunks += len(p.chunks)


def chunk_id(doc_id: str, version: int, ordinal: int) -> str:
    return f"{doc_id}@{version}#{ordinal}"


def _write_version(db: sqlite3.Connection, p: _Planned, stamp: str, ingested_at: str, seg_id: int) -> None:
    doc = p.doc
    db.execute(
        "INSERT INTO documents (doc_id, source, owner, license, may_retrieve, may_train, groups, path, extra, status, "
        "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'active', ?, ?) "
        "ON CONFLICT(doc_id) DO UPDATE SET source=excluded.source, owner=excluded.owner, license=excluded.license, "
        "may_retrieve=excluded.may_retrieve, may_train=excluded.may_train, groups=excluded.groups, "
        "path=excluded.path, extra=excluded.extra, status='active', updated_at=excluded.updated_at",
        (doc.doc_id, *_rights_row(doc), doc.path, json.dumps(doc.extra), stamp, stamp),
    )
    db.execute(
        "UPDATE versions SET valid_to = ? WHERE doc_id = ? AND (valid_to IS NULL OR valid_to > ?)",
        (p.valid_from, doc.doc_id, p.valid_from),
    )
    db.execute(
        "INSERT INTO versions VALUES (?, ?, ?, ?, ?, ?, NULL, ?)",
        (doc.doc_id, p.version, content_hash(doc), doc.title, doc.text, p.valid_from, ingested_at),
    )
    db.executemany(
        "INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                chunk_id(doc.doc_id, p.version, c.ordinal),
                doc.doc_id,
                p.version,
                c.ordinal,
                c.start,
                c.end,
                c.heading,
                c.n_tokens,
                seg_id,
            )
            for c in p.chunks
        ],
    )


def _current_versions(db: sqlite3.Connection, doc_ids: list[str]) -> dict[str, sqlite3.Row]:
    out: dict[str, sqlite3.Row] = {}
    for i in range(0, len(doc_ids), 500):
        part = doc_ids[i : i + 500]
        marks = ",".join("?" * len(part))
        for row in db.execute(
            "SELECT d.doc_id, d.status, d.source, d.owner, d.license, d.may_retrieve, d.may_train, d.groups, d.extra, d.path, "
            "v.version, v.content_hash, v.valid_from FROM documents d "
            "LEFT JOIN versions v ON v.doc_id = d.doc_id "
            "AND v.version = (SELECT MAX(version) FROM versions WHERE doc_id = d.doc_id) "
            f"WHERE d.doc_id IN ({marks})",
            part,
        ):
            out[row["doc_id"]] = row
    return out


def retire_missing(store: Store, sources: set[str], seen: set[str], keep_paths: set[str]) -> list[str]:
    """With --sync: documents of these sources not met in this ingest are retired (their last version ends now)."""
    now = iso(datetime.now(UTC))
    marks = ",".join("?" * len(sources))
    rows = store.db.execute(
        f"SELECT doc_id, path FROM documents WHERE status = 'active' AND source IN ({marks})", sorted(sources)
    ).fetchall()
    gone = [r["doc_id"] for r in rows if r["doc_id"] not in seen and (r["path"] or "") not in keep_paths]
    if gone:
        with store.writing(), store.transaction() as db:
            for doc_id in gone:
                db.execute("UPDATE versions SET valid_to = ? WHERE doc_id = ? AND valid_to IS NULL", (now, doc_id))
                db.execute("UPDATE documents SET status = 'retired', updated_at = ? WHERE doc_id = ?", (now, doc_id))
            Store.bump_generation(db)
    return gone
