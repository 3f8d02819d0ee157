"""Rights stick: a re-ingest keeps what it does not name, tightens when asked, loosens only with --rights-change."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ragtune.corpus.ingest import ingest_documents, loosens
from ragtune.corpus.loaders import Defaults
from ragtune.index.index import Filters
from ragtune.project import Project
from ragtune.retrieval.search import Retriever
from tests.conftest import write
from tests.corpus.test_ingest import ingest


def rights(project: Project, doc_id: str) -> dict[str, object]:
    row = project.store.db.execute(
        "SELECT license, owner, may_retrieve, may_train, groups FROM documents WHERE doc_id = ?", (doc_id,)
    ).fetchone()
    return {
        "license": row[0],
        "owner": row[1],
        "may_retrieve": bool(row[2]),
        "may_train": bool(row[3]),
        "groups": json.loads(row[4]),
    }


def search_ids(project: Project, query: str, groups: tuple[str, ...] = ()) -> list[str]:
    r = Retriever(project.store, project.index, project.embedder, project.config.retrieval)
    return [h.doc_id for h in r.search(query, 5, Filters(groups=groups)).hits]


def test_a_plain_reingest_keeps_groups_training_licence_and_owner(project: Project, docs: Path) -> None:
    write(docs / "finance" / "margins.md", "# Margins\n\nThe gross margin target is 71 percent.")
    first = ingest(project, docs / "finance", groups=("finance",), may_train=False, license="internal", owner="cfo")
    assert first.ok
    before = rights(project, "docs/finance/margins.md")
    again = ingest(project, docs / "finance")  # no flags: the issue's `ragtune ingest finance`
    assert again.ok and again.unchanged == ["docs/finance/margins.md"] and again.rights_changed == []
    assert rights(project, "docs/finance/margins.md") == before
    assert search_ids(project, "gross margin target") == []  # still hidden from a public search
    assert search_ids(project, "gross margin target", ("finance",)) == ["docs/finance/margins.md"]
    # a changed text is a new version: the rights stay too (the README's `ingest ~/handbook --sync`)
    write(docs / "finance" / "margins.md", "# Margins\n\nThe gross margin target is 73 percent.")
    edited = ingest(project, docs / "finance", sync=True)
    assert edited.updated == ["docs/finance/margins.md"] and edited.ok
    assert rights(project, "docs/finance/margins.md") == before


def test_tightening_applies_and_is_listed(project: Project, docs: Path) -> None:
    write(docs / "a.md", "Alpha facts about the Bluebird plan.")
    ingest(project, docs, license="CC-BY-4.0")
    report = ingest(project, docs, groups=("finance",), may_train=False, may_retrieve=False)
    assert report.ok and report.metadata_changed == ["docs/a.md"]
    assert report.rights_changed == [
        {
            "doc_id": "docs/a.md",
            "changes": {
                "may_retrieve": {"old": True, "new": False},
                "may_train": {"old": True, "new": False},
                "groups": {"old": [], "new": ["finance"]},
            },
        }
    ]
    assert rights(project, "docs/a.md")["license"] == "CC-BY-4.0"


@pytest.mark.parametrize(
    ("first", "second", "loosened"),
    [
        ({"groups": ("finance",)}, {"groups": ()}, "groups finance -> public"),
        ({"groups": ("finance",)}, {"groups": ("finance", "hr")}, "groups finance -> finance,hr"),
        ({"may_train": False}, {"may_train": True}, "may_train no -> yes"),
        ({"may_retrieve": False}, {"may_retrieve": True}, "may_retrieve no -> yes"),
        ({"license": "CC-BY-4.0"}, {"license": "unspecified"}, "license CC-BY-4.0 -> unspecified"),
    ],
)
def test_loosening_needs_rights_change(
    project: Project, docs: Path, first: dict[str, object], second: dict[str, object], loosened: str
) -> None:
    write(docs / "a.md", "Alpha facts about the Bluebird plan.")
    ingest(project, docs, **first)
    before = rights(project, "docs/a.md")
    refused = ingest(project, docs, **second)
    assert not refused.ok and refused.rights_changed == []
    (err,) = refused.errors
    assert loosened in err["message"] and "--rights-change" in err["message"] and err["where"].endswith("a.md")
    assert rights(project, "docs/a.md") == before
    allowed = ingest(project, docs, rights_change=True, **second)
    assert allowed.ok and [c["doc_id"] for c in allowed.rights_changed] == ["docs/a.md"]
    assert rights(project, "docs/a.md") != before


def test_a_refused_loosening_still_ingests_the_new_text(project: Project, docs: Path) -> None:
    write(docs / "a.md", "The Bluebird plan costs 10 euros.")
    ingest(project, docs, groups=("finance",))
    write(docs / "a.md", "The Bluebird plan costs 12 euros.")
    report = ingest(project, docs, groups=())
    assert report.updated == ["docs/a.md"] and len(report.errors) == 1
    assert rights(project, "docs/a.md")["groups"] == ["finance"]
    assert search_ids(project, "Bluebird plan cost") == []


def test_jsonl_metadata_follows_the_same_rules(project: Project, docs: Path) -> None:
    line = {"id": "fin-1", "text": "The refund threshold is 500 euros.", "metadata": {"groups": ["finance"]}}
    write(docs / "export.jsonl", json.dumps(line) + "\n")
    assert ingest(project, docs / "export.jsonl").ok
    write(docs / "export.jsonl", json.dumps({"id": "fin-1", "text": line["text"]}) + "\n")  # metadata dropped
    kept = ingest(project, docs / "export.jsonl")
    assert kept.ok and rights(project, "fin-1")["groups"] == ["finance"]
    public = {"id": "fin-1", "text": line["text"], "metadata": {"groups": [], "no_training": False}}
    write(docs / "export.jsonl", json.dumps(public) + "\n")
    refused = ingest(project, docs / "export.jsonl")
    assert not refused.ok and "groups finance -> public" in refused.errors[0]["message"]
    assert refused.errors[0]["where"].endswith("export.jsonl:1")
    assert rights(project, "fin-1")["groups"] == ["finance"]
    assert ingest(project, docs / "export.jsonl", rights_change=True).ok
    assert rights(project, "fin-1")["groups"] == []


def test_new_documents_get_the_fallbacks(project: Project, docs: Path) -> None:
    write(docs / "a.md", "Alpha.")
    ingest_report = ingest(project, docs, default_license="CC0-1.0")
    assert ingest_report.added == ["docs/a.md"]
    assert rights(project, "docs/a.md") == {
        "license": "CC0-1.0",
        "owner": None,
        "may_retrieve": True,
        "may_train": True,
        "groups": [],
    }


def test_library_callers_name_every_right(project: Project, docs: Path) -> None:
    """A RawDocument built by hand (bench, the API before it names fields) states all its rights."""
    from ragtune.corpus.model import RawDocument, Rights

    doc = RawDocument("x", "X", "Text of x.", Rights("s", "CC0-1.0", groups=("hr",)), "x", "x")
    ingest_documents(project, [doc])
    public = RawDocument("x", "X", "Text of x.", Rights("s", "CC0-1.0"), "x", "x")
    report = ingest_documents(project, [public])
    assert not report.ok and rights(project, "x")["groups"] == ["hr"]
    assert Defaults().license is None


def test_loosens_reads_groups_as_an_audience() -> None:
    assert not loosens("groups", (), ("finance",))
    assert not loosens("groups", ("finance", "hr"), ("finance",))
    assert loosens("groups", ("finance",), ("finance", "hr"))
    assert loosens("groups", ("finance",), ())
    assert not loosens("license", "unspecified", "CC-BY-4.0")
    assert loosens("license", "CC-BY-4.0", "MIT")
    assert not loosens("owner", "a", "b")
    assert not loosens("may_train", True, False) and loosens("may_train", False, True)
