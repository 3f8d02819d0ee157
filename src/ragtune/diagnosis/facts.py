"""What diagnosis reads: a run's stored results with every score's reason and details, the run's cases, and the
corpus facts (owners, rights, versions and their text) that evidence is checked against."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ragtune.errors import HarnessError
from ragtune.harness.cases import load_cases
from ragtune.harness.model import Case
from ragtune.harness.store import (
    ArmResult,
    RunInfo,
    ScoreRow,  # noqa: F401  (re-exported: what diagnosis reads)
    file_digest,
    load_arm_results,
    load_run,
)
from ragtune.store.db import Store


@dataclass
class RunData:
    """A run's header, its results as ``case_id -> arm -> result`` (case-file order), and its cases if readable."""

    info: RunInfo
    results: dict[str, dict[str, ArmResult]]
    cases: dict[str, Case]
    notes: list[str] = field(default_factory=list)

    def arm_results(self, arm: str) -> list[ArmResult]:
        return [by_arm[arm] for by_arm in self.results.values() if arm in by_arm]


def load_run_data(store: Store, run: str, root: Path | None = None) -> RunData:
    info = load_run(store, run)
    results = load_arm_results(store, run)
    for by_arm in results.values():  # run order, so that ties between arms resolve the same way every time
        ordered = {a: by_arm[a] for a in info.arms if a in by_arm}
        by_arm.clear()
        by_arm.update(ordered)
    cases, notes = _read_cases(info, root)
    return RunData(info, results, cases, notes)


def _read_cases(info: RunInfo, root: Path | None) -> tuple[dict[str, Case], list[str]]:
    """The run's cases from its case file, when it is still there (questions, evidence, format rules)."""
    path = Path(info.cases_path)
    candidates = [path] if path.is_absolute() or root is None else [path, root / path]
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        return {}, [
            f"the run's case file {info.cases_path} is gone: questions, evidence and format rules are read from the "
            "stored scores only, and traffic coverage cannot be measured"
        ]
    notes = []
    if file_digest(found) != info.cases_digest:
        notes.append(f"the case file {found} changed since the run; its cases are matched to the results by id")
    try:
        cases = load_cases(found)
    except HarnessError as exc:
        return {}, [*notes, f"the case file {found} no longer loads ({exc}); read from the stored scores only"]
    return {c.id: c for c in cases}, notes


@dataclass
class DocInfo:
    doc_id: str
    source: str
    owner: str | None
    may_train: bool
    status: str
    path: str | None


@dataclass
class VersionInfo:
    doc_id: str
    version: int
    valid_from: str
    valid_to: str | None
    text: str

    @property
    def ref(self) -> str:
        return f"{self.doc_id}@{self.version}"


class Corpus:
    """Cached look-ups of documents, versions and chunk texts in the store."""

    def __init__(self, store: Store, known_at: str | None = None) -> None:
        """``known_at`` (the run's finish time): see the corpus as the run saw it, ignoring versions ingested
        later, so that diagnosing last week's run after this week's edits still judges it by last week's corpus."""
        self.store = store
        self.known_at = known_at
        self._docs: dict[str, DocInfo | None] = {}
        self._versions: dict[str, list[VersionInfo]] = {}
        self._chunks: dict[str, tuple[str, int, str] | None] = {}

    def doc(self, doc_id: str) -> DocInfo | None:
        if doc_id not in self._docs:
            row = self.store.db.execute(
                "SELECT doc_id, source, owner, may_train, status, path FROM documents WHERE doc_id = ?", (doc_id,)
            ).fetchone()
            self._docs[doc_id] = (
                DocInfo(row[0], row[1], row[2] or None, bool(row[3]), row[4], row[5]) if row is not None else None
            )
        return self._docs[doc_id]

    def exists(self, doc_id: str) -> bool:
        """Active with a version: the same test as the retrieval scorer's."""
        doc = self.doc(doc_id)
        return doc is not None and doc.status == "active" and bool(self.versions(doc_id))

    def versions(self, doc_id: str) -> list[VersionInfo]:
        if doc_id not in self._versions:
            rows = self.store.db.execute(
                "SELECT doc_id, version, valid_from, valid_to, text, ingested_at FROM versions WHERE doc_id = ? "
                "ORDER BY version",
                (doc_id,),
            ).fetchall()
            if self.known_at is not None:
                rows = [r for r in rows if r[5] <= self.known_at]
            # the last version known then was open-ended then, whatever superseded it since
            self._versions[doc_id] = [
                VersionInfo(r[0], r[1], r[2], None if i == len(rows) - 1 else r[3], r[4]) for i, r in enumerate(rows)
            ]
        return self._versions[doc_id]

    def version_at(self, doc_id: str, as_of: str | None) -> VersionInfo | None:
        """The version valid at ``as_of`` (ISO, UTC), or the latest one when ``as_of`` is None."""
        versions = self.versions(doc_id)
        if as_of is None:
            return versions[-1] if versions else None
        valid = [v for v in versions if v.valid_from <= as_of and (v.valid_to is None or v.valid_to > as_of)]
        return valid[-1] if valid else None

    def chunk(self, chunk_id: str) -> tuple[str, int, str] | None:
        """``(doc_id, version, text)`` of a chunk, or None when it is gone (forgotten, say)."""
        if chunk_id not in self._chunks:
            row = self.store.db.execute(
                "SELECT c.doc_id, c.version, substr(v.text, c.start + 1, c.end - c.start) FROM chunks c "
                "JOIN versions v ON v.doc_id = c.doc_id AND v.version = c.version WHERE c.chunk_id = ?",
                (chunk_id,),
            ).fetchone()
            self._chunks[chunk_id] = (row[0], int(row[1]), row[2]) if row else None
        return self._chunks[chunk_id]
