"""Governed training data sets: built from cases, traces or chat JSONL, screened, split, stored with lineage.

Screening runs in a fixed order and each excluded example is counted under the first reason that applies:
rights (a source document that may not be used for training), unknown documents, personal data (``pii = "drop"``;
``"mask"`` rewrites instead), exact duplicates, leakage of evaluation questions, then near-duplicates. The data set
is content-addressed and written in one transaction, to the store and to ``.ragtune/datasets/NAME/``::

    report = build_dataset(project, "support-v1", cases=[Path("train_cases.jsonl")], eval_cases=[Path("eval.jsonl")])
    ds = load_dataset(project, "support-v1")      # ds.digest, ds.train, ds.holdout: list[Example]
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from ragtune.config import TuningSection
from ragtune.errors import CaseProblem, TuningError
from ragtune.harness.cases import load_cases
from ragtune.project import Project
from ragtune.store.db import Store, utcnow
from ragtune.tuning import pii as pii_scan
from ragtune.tuning.quality import (
    canonical_json,
    conversation_text,
    leaks,
    near_duplicates,
    normalised_key,
    sha256,
)
from ragtune.tuning.sources import Candidate, DocRef, Skipped, from_cases, from_jsonl, from_traces

Split = Literal["train", "holdout"]
# Every reason an example can be excluded for, in the order screening applies them.
REASONS = ("rights", "restricted", "unknown_document", "pii", "duplicate", "leakage", "near_duplicate")
# "restricted": a source document readable only by some access groups, not opted in with ``allow_groups``
DATASETS_DIR = "datasets"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class Example:
    """One training conversation, where it came from, its content digest and its split.

    >>> ex = load_dataset(project, "support-v1").train[0]
    >>> ex.messages[-1]["content"], ex.origin["documents"]      # ('25 seats', ['handbook/pricing.md@2'])
    """

    messages: list[dict[str, str]]
    origin: dict[str, Any]
    digest: str
    split: Split


@dataclass(frozen=True)
class Dataset:
    """A stored data set; ``digest`` is what a model version records as its training data."""

    name: str
    digest: str
    examples: list[Example]
    created_at: str
    updated_at: str
    settings: dict[str, Any]
    report: dict[str, Any]
    previous: list[dict[str, Any]]
    folder: Path
    # who may see what it holds: one list per restricted source audience; a caller needs a group of each
    groups: list[list[str]] = field(default_factory=list)

    @property
    def train(self) -> list[Example]:
        return [e for e in self.examples if e.split == "train"]

    @property
    def holdout(self) -> list[Example]:
        return [e for e in self.examples if e.split == "holdout"]

    @property
    def documents(self) -> set[str]:
        """Every ``doc@version`` the examples derive from."""
        return {d for e in self.examples for d in e.origin.get("documents", [])}


@dataclass
class BuildReport:
    """What ``tune data`` did: counts by reason, sizes, digest and paths (ids and counts only, never text)."""

    name: str
    digest: str = ""
    status: Literal["created", "replaced", "unchanged"] = "created"
    inputs: dict[str, Any] = field(default_factory=dict)
    candidates: int = 0
    kept: int = 0
    train: int = 0
    holdout: int = 0
    excluded: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REASONS, 0))
    skipped: dict[str, int] = field(default_factory=dict)
    pii_mode: str = "mask"
    pii: dict[str, int] = field(default_factory=lambda: dict.fromkeys(pii_scan.PII_KINDS, 0))
    pii_masked_examples: int = 0
    leakage_checked_against: list[str] = field(default_factory=list)
    # opted-in access groups, and the audience the data set inherits from its restricted sources (see groups_needed)
    allow_groups: list[str] = field(default_factory=list)
    groups: list[list[str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    exclusions: list[dict[str, Any]] = field(default_factory=list)
    paths: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def exclude(self, reason: str, candidate: Candidate, **detail: Any) -> None:
        self.excluded[reason] += 1
        self.exclusions.append({"reason": reason, "example": origin_label(candidate.origin), **detail})

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def origin_label(origin: dict[str, Any]) -> str:
    """A short name for an example's origin: ``case:ID``, ``trace:ID`` or ``FILE:LINE``."""
    if origin.get("kind") == "case":
        return f"case:{origin['case_id']}"
    if origin.get("kind") == "trace":
        return f"trace:{origin['trace_id']}"
    return f"{origin.get('file')}:{origin.get('line')}"


def example_digest(messages: Sequence[dict[str, str]]) -> str:
    return sha256(canonical_json([{"role": m["role"], "content": m["content"]} for m in messages]))


def dataset_digest(examples: Sequence[Example]) -> str:
    """sha256 over the canonical JSON of the examples in order: their messages and split (not their origin, so
    the same conversations read from another file give the same digest)."""
    return sha256(canonical_json([{"messages": e.messages, "split": e.split} for e in examples]))


def split_for(digest: str, seed: int, holdout: float) -> Split:
    """Deterministic per example: the same seed and content give the same split, whatever else is in the set."""
    draw = int.from_bytes(hashlib.sha256(f"{seed}:{digest}".encode()).digest()[:8], "big") / 2**64
    return "holdout" if draw < holdout else "train"


def datasets_dir(project: Project) -> Path:
    return project.state_dir / DATASETS_DIR


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise TuningError(
            f"data set name {name!r} is not allowed; use letters, digits, '.', '_' or '-' (at most 64, "
            "starting with a letter or digit)"
        )
    return name


def build_dataset(
    project: Project,
    name: str,
    *,
    cases: Sequence[Path] = (),
    traces: bool = False,
    jsonl: Sequence[Path] = (),
    eval_cases: Sequence[Path] | None = None,
    settings: TuningSection | None = None,
    replace: bool = False,
    allow_groups: Sequence[str] = (),
) -> BuildReport:
    """Build, screen and store the data set ``name``; every input is validated before anything is written.

    Examples from group-restricted documents are excluded (``restricted``) unless one of the document's groups is
    in ``allow_groups``; the data set then inherits those audiences (``groups``), and so does every model version
    trained on it: only callers who could read every such source may use it."""
    started = time.perf_counter()
    check_name(name)
    if not (cases or traces or jsonl):
        raise TuningError("nothing to build from; give --from-cases FILE, --from-traces or --from-jsonl FILE")
    settings = settings or project.config.tuning
    if eval_cases is None:
        eval_cases = [project.root / p for p in settings.eval_cases]
    report = BuildReport(name=name, pii_mode=settings.pii, allow_groups=sorted(set(allow_groups)))
    report.inputs = {
        "cases": [str(p) for p in cases],
        "traces": traces,
        "jsonl": [str(p) for p in jsonl],
        "eval_cases": [str(p) for p in eval_cases],
    }
    skipped = Skipped()
    candidates: list[Candidate] = []
    for path in cases:
        candidates += from_cases(path, skipped)
    if traces:
        candidates += from_traces(project.store, skipped)
    problems: list[CaseProblem] = []
    for path in jsonl:
        try:
            candidates += from_jsonl(path)
        except TuningError as exc:
            if not exc.problems:
                raise
            problems += exc.problems
    if problems:
        bad = len({(p.path, p.line) for p in problems})
        raise TuningError(f"{bad} bad line{'s' if bad > 1 else ''} in the JSONL input; nothing was written", problems)
    questions: list[tuple[str, str, str]] = []  # (file, case id, question)
    for path in eval_cases:
        questions += [(str(path), c.id, c.question) for c in load_cases(path)]
    report.skipped = skipped.counts
    report.candidates = len(candidates)
    if not candidates:
        raise TuningError("the inputs hold no example (cases need answers, traces need documents); nothing written")
    _warn_about_leakage_setup(report, cases, eval_cases)

    kept = _screen_rights(project.store, candidates, report, set(allow_groups))
    kept = _screen_pii(kept, settings, report)
    kept = _drop_exact_duplicates(kept, report)
    if questions and kept:
        report.leakage_checked_against = [str(p) for p in eval_cases]
        user_turns = [[m["content"] for m in c.messages if m["role"] == "user"] for c in kept]
        hits = leaks(project.embedder, user_turns, [q for _, _, q in questions], settings.leakage)
        for i, (q, cosine) in sorted(hits.items()):
            report.exclude("leakage", kept[i], case=f"{questions[q][0]}:{questions[q][1]}", cosine=cosine)
        kept = [c for i, c in enumerate(kept) if i not in hits]
    if len(kept) > 1:
        vectors = project.embedder.encode([conversation_text(c.messages) for c in kept])
        dups = near_duplicates(vectors, settings.near_duplicate)
        for i, (j, cosine) in sorted(dups.items()):
            report.exclude("near_duplicate", kept[i], of=origin_label(kept[j].origin), cosine=cosine)
        kept = [c for i, c in enumerate(kept) if i not in dups]
    if not kept:
        counts = ", ".join(f"{k} {v}" for k, v in report.excluded.items() if v)
        raise TuningError(f"no example is left after screening ({counts}); nothing was written")

    examples = []
    for c in kept:
        digest = example_digest(c.messages)
        examples.append(Example(c.messages, c.origin, digest, split_for(digest, settings.seed, settings.holdout)))
    report.kept = len(examples)
    report.train = sum(e.split == "train" for e in examples)
    report.holdout = report.kept - report.train
    report.digest = dataset_digest(examples)
    report.groups = groups_needed([set(a) for c in kept for a in c.origin.get("audiences", [])])
    for c in kept:
        c.origin.pop("audiences", None)
    folder = datasets_dir(project) / name
    report.paths = {
        "folder": str(folder),
        "train": str(folder / "train.jsonl"),
        "holdout": str(folder / "holdout.jsonl"),
        "manifest": str(folder / "manifest.json"),
    }
    report.seconds = round(time.perf_counter() - started, 3)
    report.status = _save(project, name, examples, settings.model_dump(), report, replace)
    return report


def _warn_about_leakage_setup(report: BuildReport, cases: Sequence[Path], eval_cases: Sequence[Path]) -> None:
    if not eval_cases:
        report.warnings.append(
            "no leakage check: give --eval-cases FILE (or set [tuning] eval_cases) with the cases you evaluate on"
        )
    both = {p.resolve() for p in cases} & {p.resolve() for p in eval_cases}
    for path in sorted(both):
        report.warnings.append(
            f"{path} is both training input and evaluation cases: every example from it leaks and is dropped; "
            "split your cases into a training file and a held-out evaluation file"
        )


def groups_needed(audiences: Sequence[set[str]]) -> list[list[str]]:
    """The smallest list of audiences a caller must each hold a group of: a caller who satisfies a narrower
    audience also satisfies any wider one, so only the narrowest are kept. ``[]``: anyone."""
    distinct = {frozenset(a) for a in audiences if a}
    narrowest = [a for a in distinct if not any(b < a for b in distinct)]
    return sorted(sorted(a) for a in narrowest)


def may_use(needed: Sequence[Sequence[str]], caller_groups: Sequence[str]) -> bool:
    """Whether a caller with ``caller_groups`` may see something that inherited ``needed`` (see groups_needed)."""
    held = set(caller_groups)
    return all(held & set(audience) for audience in needed)


def _screen_rights(
    store: Store, candidates: list[Candidate], report: BuildReport, allow_groups: set[str]
) -> list[Candidate]:
    """Keep examples whose every source document exists, may be used for training and is public or opted in by
    one of its groups; pin their versions and note the restricted sources' audiences."""
    may_train: dict[str, bool] = {}
    audience: dict[str, set[str]] = {}
    for r in store.db.execute("SELECT doc_id, may_train, groups FROM documents"):
        may_train[r["doc_id"]] = bool(r["may_train"])
        audience[r["doc_id"]] = set(json.loads(r["groups"]))
    versions: dict[str, list[tuple[int, str, str | None]]] = {}
    for r in store.db.execute("SELECT doc_id, version, valid_from, valid_to FROM versions ORDER BY doc_id, version"):
        versions.setdefault(r["doc_id"], []).append((r["version"], r["valid_from"], r["valid_to"]))
    kept = []
    for c in candidates:
        pinned: list[str] = []
        for ref in c.docs:
            if ref.doc_id not in may_train or not versions.get(ref.doc_id):
                report.exclude("unknown_document", c, document=ref.doc_id)
                break
            if not may_train[ref.doc_id]:
                report.exclude("rights", c, document=ref.doc_id)
                break
            if audience[ref.doc_id] and not audience[ref.doc_id] & allow_groups:
                report.exclude("restricted", c, document=ref.doc_id, groups=sorted(audience[ref.doc_id]))
                break
            version = _pin(ref, versions[ref.doc_id])
            if version is None:
                report.exclude("unknown_document", c, document=f"{ref.doc_id}@{ref.version}")
                break
            pinned.append(f"{ref.doc_id}@{version}")
        else:
            c.origin["documents"] = sorted(set(pinned))
            restricted = [sorted(audience[r.doc_id]) for r in c.docs if audience[r.doc_id]]
            if restricted:
                c.origin["audiences"] = restricted
            kept.append(c)
    return kept


def _pin(ref: DocRef, versions: list[tuple[int, str, str | None]]) -> int | None:
    """The version an example derives from: the one named, else the one valid at its date, else the latest."""
    if ref.version is not None:
        return ref.version if any(v == ref.version for v, _, _ in versions) else None
    if ref.as_of is not None:
        moment = f"{ref.as_of}T23:59:59+00:00"
        valid = [v for v, start, end in versions if start <= moment and (end is None or end > moment)]
        if valid:
            return max(valid)
    return versions[-1][0]


def _screen_pii(candidates: list[Candidate], settings: TuningSection, report: BuildReport) -> list[Candidate]:
    kept = []
    for c in candidates:
        kinds: dict[str, int] = {}
        masked = []
        for m in c.messages:
            found = pii_scan.scan(m["content"], settings.phone_regions)
            for f in found:
                kinds[f.kind] = kinds.get(f.kind, 0) + 1
            masked.append({"role": m["role"], "content": pii_scan.mask(m["content"], found)})
        for kind, n in kinds.items():
            report.pii[kind] += n
        if kinds and settings.pii == "drop":
            report.exclude("pii", c, kinds=sorted(kinds))
            continue
        if kinds:
            report.pii_masked_examples += 1
            c.messages = masked
            c.origin["pii_masked"] = sorted(kinds)
        kept.append(c)
    return kept


def _drop_exact_duplicates(candidates: list[Candidate], report: BuildReport) -> list[Candidate]:
    first: dict[str, Candidate] = {}
    kept = []
    for c in candidates:
        key = normalised_key(c.messages)
        if key in first:
            report.exclude("duplicate", c, of=origin_label(first[key].origin))
            continue
        first[key] = c
        kept.append(c)
    return kept


def _save(
    project: Project,
    name: str,
    examples: list[Example],
    settings: dict[str, Any],
    report: BuildReport,
    replace: bool,
) -> Literal["created", "replaced", "unchanged"]:
    """Store the data set and its files together: a failure leaves the earlier state, rows and files alike."""
    store = project.store
    digest = report.digest
    row = store.db.execute("SELECT digest, previous, created_at FROM datasets WHERE name = ?", (name,)).fetchone()
    if row is not None and row["digest"] == digest:
        export_dataset(project, name)  # same content: make sure the files are there, keep the stored row
        return "unchanged"
    if row is not None and not replace:
        raise TuningError(
            f"data set {name!r} already exists with other content (digest {row['digest'][:12]}, new "
            f"{digest[:12]}); pick a new --name, or pass --replace to overwrite it"
        )
    now = utcnow()
    previous = json.loads(row["previous"]) if row else []
    if row is not None:
        previous.append({"digest": row["digest"], "until": now, "why": "replaced"})
    report_json = report.to_json() | {"status": "replaced" if row else "created"}
    dataset = Dataset(
        name, digest, examples, now, now, settings, report_json, previous, datasets_dir(project) / name, report.groups
    )
    with _swap_folder(dataset.folder) as staging:
        write_files(staging, dataset)
        with store.transaction() as db:
            now_row = db.execute("SELECT digest FROM datasets WHERE name = ?", (name,)).fetchone()
            if (now_row and now_row["digest"]) != (row and row["digest"]):
                raise TuningError(f"data set {name!r} was changed by another command meanwhile; run again")
            db.execute("DELETE FROM datasets WHERE name = ?", (name,))
            db.execute(
                "INSERT INTO datasets (name, digest, created_at, updated_at, n_train, n_holdout, settings, report, "
                "previous, groups) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    name,
                    digest,
                    now,
                    now,
                    len(dataset.train),
                    len(dataset.holdout),
                    json.dumps(settings),
                    json.dumps(report_json),
                    json.dumps(previous),
                    json.dumps(report.groups),
                ),
            )
            for position, e in enumerate(examples):
                db.execute(
                    "INSERT INTO dataset_examples (name, position, split, digest, messages, origin) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (name, position, e.split, e.digest, json.dumps(e.messages), json.dumps(e.origin)),
                )
                db.executemany(
                    "INSERT OR IGNORE INTO dataset_example_docs (name, position, doc_id, version) VALUES (?, ?, ?, ?)",
                    [(name, position, *_split_ref(ref)) for ref in e.origin.get("documents", [])],
                )
    return "replaced" if row else "created"


def _split_ref(ref: str) -> tuple[str, int]:
    doc_id, _, version = ref.rpartition("@")
    return doc_id, int(version)


@contextmanager
def _swap_folder(final: Path) -> Iterator[Path]:
    """Stage a folder's new contents beside it; on a clean exit the staged folder replaces the old one, on an
    error it is removed and the old one stays."""
    tag = uuid.uuid4().hex[:8]
    staging = final.parent / f".{final.name}.new-{tag}"
    old = final.parent / f".{final.name}.old-{tag}"
    staging.mkdir(parents=True)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if final.exists():
        final.rename(old)
    staging.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def write_files(folder: Path, dataset: Dataset) -> None:
    """train.jsonl and holdout.jsonl (one ``{"messages": [...]}`` a line, as OpenAI and TRL read them) and
    manifest.json (digest, settings, report and each example's lineage, by file and line)."""
    lines: dict[str, list[str]] = {"train": [], "holdout": []}
    index = []
    for e in dataset.examples:
        lines[e.split].append(json.dumps({"messages": e.messages}, ensure_ascii=False))
        index.append({"split": e.split, "line": len(lines[e.split]), "digest": e.digest, "origin": e.origin})
    for split, rows in lines.items():
        (folder / f"{split}.jsonl").write_text("".join(r + "\n" for r in rows), encoding="utf-8")
    manifest = {
        "name": dataset.name,
        "digest": dataset.digest,
        "format": "chat-messages",
        "created_at": dataset.created_at,
        "updated_at": dataset.updated_at,
        "files": {"train": "train.jsonl", "holdout": "holdout.jsonl"},
        "counts": {"train": len(lines["train"]), "holdout": len(lines["holdout"])},
        "documents": sorted(dataset.documents),
        "groups": dataset.groups,
        "settings": dataset.settings,
        "report": {k: v for k, v in dataset.report.items() if k != "exclusions"},
        "previous": dataset.previous,
        "examples": index,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def export_dataset(project: Project, name: str) -> Path:
    """Rewrite a data set's files from the store (after forget removed examples, or when they went missing)."""
    dataset = load_dataset(project, name)
    with _swap_folder(dataset.folder) as staging:
        write_files(staging, dataset)
    return dataset.folder


def load_dataset(project: Project, name: str) -> Dataset:
    """A stored data set, its examples in order (``.train`` and ``.holdout`` keep that order)."""
    store = project.store
    row = store.db.execute("SELECT * FROM datasets WHERE name = ?", (name,)).fetchone()
    if row is None:
        known = [r[0] for r in store.db.execute("SELECT name FROM datasets ORDER BY name")]
        raise TuningError(
            f"no data set {name!r}; "
            + (f"known: {', '.join(known)}" if known else "build one with `ragtune tune data --name NAME`")
        )
    examples = [
        Example(json.loads(r["messages"]), json.loads(r["origin"]), r["digest"], r["split"])
        for r in store.db.execute(
            "SELECT split, digest, messages, origin FROM dataset_examples WHERE name = ? ORDER BY position", (name,)
        )
    ]
    return Dataset(
        name=name,
        digest=row["digest"],
        examples=examples,
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        settings=json.loads(row["settings"]),
        report=json.loads(row["report"]),
        previous=json.loads(row["previous"]),
        folder=datasets_dir(project) / name,
        groups=json.loads(row["groups"]),
    )


def dataset_documents(store: Store, name: str) -> set[str]:
    """The ids of the documents a data set's examples derive from (its training-data lineage)."""
    return {r[0] for r in store.db.execute("SELECT DISTINCT doc_id FROM dataset_docs WHERE name = ?", (name,))}


def list_datasets(store: Store) -> list[dict[str, Any]]:
    return [
        dict(r)
        for r in store.db.execute(
            "SELECT name, digest, created_at, updated_at, n_train, n_holdout, groups FROM datasets ORDER BY name"
        )
    ]
