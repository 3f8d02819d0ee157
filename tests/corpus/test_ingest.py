"""Ingest on the real store and the real MiniLM: versions, as_of, sync, rights, transactions, freshness."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from ragtune.corpus.ingest import ingest_paths
from ragtune.corpus.loaders import Defaults
from ragtune.corpus.model import parse_when
from ragtune.index.index import Filters
from ragtune.project import Project
from ragtune.retrieval.search import Retriever
from tests.conftest import write


def retriever(project: Project) -> Retriever:
    return Retriever(project.store, project.index, project.embedder, project.config.retrieval)


def ingest(project: Project, *paths: Path, **kw: object):  # type: ignore[no-untyped-def]
    sync = bool(kw.pop("sync", False))
    rights_change = bool(kw.pop("rights_change", False))
    if "valid_from" in kw:
        kw["valid_from"] = parse_when(str(kw["valid_from"]))
    return ingest_paths(project, list(paths), Defaults(**kw), sync=sync, rights_change=rights_change)  # type: ignore[arg-type]


def test_incremental_versions_and_as_of(project: Project, docs: Path) -> None:
    pricing = write(docs / "pricing.md", "# Pricing\n\nThe Pro plan allows 600 requests per minute.")
    write(docs / "support.md", "# Support\n\nSupport is open on weekdays.")
    first = ingest(project, docs, valid_from="2026-01-05")
    assert sorted(first.added) == ["docs/pricing.md", "docs/support.md"] and first.ok

    again = ingest(project, docs, valid_from="2026-01-12")
    assert (
        again.added == [] and again.updated == [] and sorted(again.unchanged) == ["docs/pricing.md", "docs/support.md"]
    )
    assert again.chunks == 0

    pricing.write_text("# Pricing\n\nThe Pro plan allows 900 requests per minute.")
    third = ingest(project, docs, valid_from="2026-01-19")
    assert third.updated == ["docs/pricing.md"] and third.unchanged == ["docs/support.md"]

    rows = project.store.db.execute(
        "SELECT version, valid_from, valid_to FROM versions WHERE doc_id = 'docs/pricing.md' ORDER BY version"
    ).fetchall()
    assert [tuple(r) for r in rows] == [
        (1, "2026-01-05T00:00:00+00:00", "2026-01-19T00:00:00+00:00"),
        (2, "2026-01-19T00:00:00+00:00", None),
    ]
    r = retriever(project)
    now = r.search("Pro plan requests per minute", k=1).hits[0]
    assert (now.doc_id, now.version) == ("docs/pricing.md", 2) and "900" in now.text
    past = r.search(
        "Pro plan requests per minute", k=1, filters=Filters(as_of=parse_when("2026-01-10", end_of_day=True))
    )
    assert past.hits[0].version == 1 and "600" in past.hits[0].text
    # before anything was valid, nothing is visible
    assert r.search("Pro plan", filters=Filters(as_of=parse_when("2025-12-31"))).hits == []
    # the change day itself sees the new version (as_of a date means the end of that day)
    same_day = r.search("Pro plan requests", k=1, filters=Filters(as_of=parse_when("2026-01-19", end_of_day=True)))
    assert same_day.hits[0].version == 2


def test_valid_from_cannot_go_back_in_time(project: Project, docs: Path) -> None:
    page = write(docs / "a.md", "Version one.")
    ingest(project, docs, valid_from="2026-02-01")
    page.write_text("Version two.")
    report = ingest(project, docs, valid_from="2026-01-01")
    assert not report.ok and "is before the current version's" in report.errors[0]["message"]
    assert project.store.db.execute("SELECT COUNT(*) FROM versions").fetchone()[0] == 1


def test_sync_retires_what_is_gone_and_keeps_history(project: Project, docs: Path) -> None:
    write(docs / "keep.md", "Keep this page about llamas.")
    gone = write(docs / "gone.md", "The deprecated Zapier integration page.")
    ingest(project, docs)
    gone.unlink()
    report = ingest(project, docs, sync=True)
    assert report.retired == ["docs/gone.md"]
    status = project.store.db.execute("SELECT status FROM documents WHERE doc_id='docs/gone.md'").fetchone()[0]
    assert status == "retired"
    r = retriever(project)
    assert all(h.doc_id != "docs/gone.md" for h in r.search("Zapier integration", k=5).hits)
    # without --sync nothing is retired; a file that failed to read is not mistaken for a removed one
    write(docs / "broken.md", "fine at first")
    ingest(project, docs)
    (docs / "broken.md").write_bytes(b"\xff\xfe broken")
    report = ingest(project, docs, sync=True)
    assert report.retired == [] and not report.ok


def test_rights_change_without_new_version(project: Project, docs: Path) -> None:
    write(docs / "a.md", "Quarterly numbers.")
    ingest(project, docs, license="CC-BY-4.0")
    # a new licence is a change ragtune cannot rank, so it is asked for explicitly
    report = ingest(project, docs, license="proprietary", may_train=False, groups=("finance",), rights_change=True)
    assert report.metadata_changed == ["docs/a.md"] and report.updated == []
    row = project.store.db.execute("SELECT license, may_train, groups FROM documents").fetchone()
    assert tuple(row) == ("proprietary", 0, '["finance"]')
    assert retriever(project).search("Quarterly numbers").hits == []  # now restricted
    assert retriever(project).search("Quarterly numbers", filters=Filters(groups=("finance",))).hits


def test_a_failed_commit_leaves_nothing_half_written(
    project: Project, docs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(docs / "a.md", "Alpha.")
    ingest(project, docs)
    before = sorted(p.name for p in project.index_dir.iterdir())
    write(docs / "b.md", "Beta.")
    write(docs / "c.md", "Gamma.")
    import ragtune.corpus.ingest as mod

    calls = {"n": 0}
    real = mod._write_version

    def flaky(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("disk full")
        return real(*args, **kwargs)

    monkeypatch.setattr(mod, "_write_version", flaky)
    with pytest.raises(RuntimeError):
        ingest(project, docs)
    ids = [r[0] for r in project.store.db.execute("SELECT doc_id FROM documents ORDER BY doc_id")]
    assert ids == ["docs/a.md"]
    assert project.store.db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0] == 1
    assert sorted(p.name for p in project.index_dir.iterdir()) == before


def test_ingest_returns_only_when_searchable(project: Project, docs: Path) -> None:
    """A long-lived process (a server) holding the index sees a change as soon as ingest returns."""
    page = write(docs / "faq.md", "The office cat is called Miso.")
    ingest(project, docs)
    r = retriever(project)
    assert "Miso" in r.search("office cat name", k=1).hits[0].text
    page.write_text("The office cat is called Pumpernickel.")
    started = datetime.now(UTC)
    ingest(project, docs)
    hit = r.search("office cat name", k=1).hits[0]
    assert "Pumpernickel" in hit.text and hit.version == 2
    assert (datetime.now(UTC) - started).total_seconds() < 30
    # and another process (a fresh project object) sees it too
    other = Project.open(project.root)
    other.embedder = project.embedder
    assert "Pumpernickel" in retriever(other).search("office cat name", k=1).hits[0].text


def test_many_small_ingests_stay_few_segments(project: Project, docs: Path) -> None:
    for i in range(12):
        write(docs / f"n{i}.md", f"Note {i}: the code word is word{i}x.")
        ingest(project, docs / f"n{i}.md")
    n = project.store.db.execute("SELECT COUNT(*) FROM segments").fetchone()[0]
    assert n <= 8
    r = retriever(project)
    for i in (0, 5, 11):
        assert r.search(f"word{i}x", k=1, mode="keyword").hits[0].doc_id == f"docs/n{i}.md"
    files = {p.name for p in project.index_dir.iterdir()}
    assert len(files) == 2 * n  # merged-away segments leave no files behind


def test_reindex_rebuilds_from_the_store_and_guards_the_embedder(project: Project, docs: Path) -> None:
    from ragtune.corpus.reindex import reindex
    from ragtune.errors import StoreError

    write(docs / "a.md", "# Alpha\n\nThe alpha page mentions zebras.")
    write(docs / "b.md", "# Beta\n\nThe beta page mentions giraffes.")
    ingest(project, docs)
    before = retriever(project).search("giraffes", k=1).hits[0].chunk_id
    for path in project.index_dir.iterdir():  # a damaged index folder
        path.unlink()
    result = reindex(project)
    assert result["chunks"] == 2 and result["embedder"] == "all-MiniLM-L6-v2/384"
    assert retriever(project).search("giraffes", k=1).hits[0].chunk_id == before
    project.store.db.execute("UPDATE meta SET value = 'other-model/768' WHERE key = 'embedder'")
    write(docs / "c.md", "More.")
    with pytest.raises(StoreError, match=r"built with other-model/768 .* run `ragtune reindex`"):
        ingest(project, docs)


def test_sync_with_a_single_file_leaves_its_siblings_alone(project: Project, docs: Path) -> None:
    a = write(docs / "a.md", "Alpha page.")
    write(docs / "b.md", "Beta page.")
    ingest(project, docs)
    a.write_text("Alpha page, edited.")
    report = ingest(project, a, sync=True)
    assert report.updated == ["docs/a.md"] and report.retired == []


def test_jsonl_export_is_a_whole_source_under_sync(project: Project, docs: Path) -> None:
    export = write(
        docs / "kb.jsonl",
        '{"id": "k1", "text": "One.", "metadata": {"source": "kb"}}\n'
        '{"id": "k2", "text": "Two.", "metadata": {"source": "kb", "extra": {"url": "u2"}}}\n',
    )
    ingest(project, export)
    export.write_text('{"id": "k2", "text": "Two.", "metadata": {"source": "kb", "extra": {"url": "u2b"}}}\n')
    report = ingest(project, export, sync=True)
    assert report.retired == ["k1"] and report.metadata_changed == ["k2"] and report.updated == []
    extra = project.store.db.execute("SELECT extra FROM documents WHERE doc_id = 'k2'").fetchone()[0]
    assert extra == '{"url": "u2b"}'


def test_files_stream_through_in_batches(project: Project, docs: Path) -> None:
    project.config.corpus.batch_documents = 2
    for i in range(5):
        write(docs / f"p{i}.md", f"Page {i} about topic{i}.")
    (docs / "p2b.md").write_bytes(b"\xff broken")
    report = ingest(project, docs)
    assert sorted(report.added) == [f"docs/p{i}.md" for i in range(5)]
    assert [e["where"] for e in report.errors] == [str(docs / "p2b.md")]
    assert project.store.db.execute("SELECT SUM(n_chunks) FROM segments").fetchone()[0] == 5
    assert retriever(project).search("topic4", k=1, mode="keyword").hits[0].doc_id == "docs/p4.md"
