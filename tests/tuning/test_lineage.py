"""Forgetting a document takes its examples out of every data set; lineage shows where a document went."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ragtune.corpus.forget import FORGET_HOOKS, ForgetContext, forget, list_receipts
from ragtune.corpus.lineage import LINEAGE_HOOKS, document_lineage
from ragtune.errors import CorpusError
from ragtune.project import Project
from ragtune.tuning import build_dataset, dataset_documents, load_dataset
from ragtune.tuning.data import dataset_digest
from tests.corpus.test_forget import on_disk
from tests.tuning.helpers import add_docs, add_trace, chat, chat_file

SECRET = "Quokkazanzibar"


@pytest.fixture
def two_sets(project: Project, docs: Path, tmp_path: Path) -> Project:
    add_docs(project, docs, {"refunds.md": "Refunds within 30 days.", "deal.md": f"{SECRET} closes in March."})
    add_docs(project, docs, {"deal.md": f"{SECRET} closes in April."})  # version 2
    lines = [
        chat("What is the refund window?", "30 days.", source={"doc_id": "docs/refunds.md"}),
        chat(f"When does {SECRET} close?", "In March.", source={"doc_id": "docs/deal.md", "version": 1}),
        chat(
            f"Who leads the {SECRET} talks?",
            "The corporate development team.",
            source={"doc_id": "docs/deal.md", "version": 2},
        ),
        chat("Who is the CEO?", "Élodie Marchand."),
    ]
    path = chat_file(tmp_path / "chat.jsonl", lines)
    build_dataset(project, "support-v1", jsonl=[path])
    build_dataset(project, "support-v2", jsonl=[path], settings=project.config.tuning.model_copy(update={"seed": 3}))
    add_trace(project, "d" * 32, f"When does {SECRET} close?", "In April [1].", [("docs/deal.md", 2)])
    return project


def test_forget_removes_examples_from_every_data_set(two_sets: Project) -> None:
    project = two_sets
    before = {n: load_dataset(project, n) for n in ("support-v1", "support-v2")}
    assert dataset_documents(project.store, "support-v1") == {"docs/refunds.md", "docs/deal.md"}
    receipt = forget(project, ["docs/deal.md"])
    assert receipt.totals == {
        "documents": 1,
        "versions": 2,
        "chunks": 2,
        "traces": 1,
        "dataset_examples": 4,
        "models_tainted": 0,
        "training_runs_deleted": 0,
        "runs": 0,
        "run_results_redacted": 0,
        "generation_cache": 0,
    }
    body = receipt.to_json()
    assert [d["name"] for d in body["datasets"]] == ["support-v1", "support-v2"]
    for entry in body["datasets"]:
        ds = load_dataset(project, entry["name"])
        assert entry["old_digest"] == before[entry["name"]].digest and entry["new_digest"] == ds.digest
        assert entry["removed"] == 2 and entry["train"] + entry["holdout"] == 2 == len(ds.examples)
        assert ds.digest == dataset_digest(ds.examples) != entry["old_digest"]
        assert [p["digest"] for p in ds.previous] == [entry["old_digest"]]
        assert receipt.receipt_id in ds.previous[0]["why"]
        assert all("docs/deal.md" not in " ".join(e.origin["documents"]) for e in ds.examples)
        manifest = json.loads((ds.folder / "manifest.json").read_text())
        assert manifest["digest"] == ds.digest and manifest["previous"][0]["digest"] == entry["old_digest"]
    assert dataset_documents(project.store, "support-v1") == {"docs/refunds.md"}
    (stored,) = list_receipts(project.store)
    assert stored["datasets"] == body["datasets"] and stored["totals"]["dataset_examples"] == 4
    # no file under .ragtune/ keeps the forgotten text: not the store, not the JSONL files, not the manifests
    assert on_disk(project.state_dir, SECRET) == []


def test_forgetting_an_unused_document_leaves_data_sets_alone(two_sets: Project, docs: Path) -> None:
    add_docs(two_sets, docs, {"other.md": "Unrelated."})
    digest = load_dataset(two_sets, "support-v1").digest
    receipt = forget(two_sets, ["docs/other.md"])
    assert receipt.totals["dataset_examples"] == 0 and receipt.to_json()["datasets"] == []
    assert load_dataset(two_sets, "support-v1").digest == digest


@pytest.fixture
def extra_hooks() -> Iterator[None]:
    forget_before, lineage_before = list(FORGET_HOOKS), list(LINEAGE_HOOKS)
    yield
    FORGET_HOOKS[:] = forget_before
    LINEAGE_HOOKS[:] = lineage_before


def test_a_failing_hook_rolls_the_whole_forget_back(two_sets: Project, extra_hooks: None) -> None:
    def broken(ctx: ForgetContext) -> None:
        raise RuntimeError("registry unavailable")

    FORGET_HOOKS.append(broken)
    digest = load_dataset(two_sets, "support-v1").digest
    with pytest.raises(RuntimeError, match="registry unavailable"):
        forget(two_sets, ["docs/deal.md"])
    assert load_dataset(two_sets, "support-v1").digest == digest and len(load_dataset(two_sets, "support-v1").examples)
    assert two_sets.store.db.execute("SELECT COUNT(*) FROM documents WHERE doc_id = 'docs/deal.md'").fetchone()[0]
    assert list_receipts(two_sets.store) == []


def test_hooks_extend_the_receipt_and_the_lineage(two_sets: Project, extra_hooks: None) -> None:
    """What the model registry will do: find the models trained on a changed data set digest, from the receipt."""
    trained_on = load_dataset(two_sets, "support-v1").digest

    def taint(ctx: ForgetContext) -> None:
        hit = [d for d in ctx.receipt.sections["datasets"] if d["old_digest"] == trained_on]
        ctx.receipt.sections["models"] = [{"model": "support-lora", "version": 3, "dataset": d["name"]} for d in hit]
        ctx.receipt.totals["models_tainted"] = len(hit)

    def models(project: Project, doc_id: str, out: dict[str, Any]) -> None:
        out["models"] = [{"model": "support-lora", "version": 3, "tainted": True}]

    FORGET_HOOKS.append(taint)
    LINEAGE_HOOKS.append(models)
    receipt = forget(two_sets, ["docs/deal.md"]).to_json()
    assert receipt["models"] == [{"model": "support-lora", "version": 3, "dataset": "support-v1"}]
    assert receipt["totals"]["models_tainted"] == 1
    assert document_lineage(two_sets, "docs/deal.md")["models"][0]["tainted"] is True


def test_lineage_shows_versions_chunks_traces_and_data_sets(two_sets: Project) -> None:
    out = document_lineage(two_sets, "docs/deal.md")
    assert out["in_corpus"] and out["document"]["may_train"] is True and out["document"]["source"] == "docs"
    assert [(v["version"], v["chunks"]) for v in out["versions"]] == [(1, 1), (2, 1)] and out["chunks"] == 2
    assert out["versions"][0]["valid_to"] is not None and out["versions"][1]["valid_to"] is None
    assert out["traces"] == {"count": 1, "recent": ["d" * 32]}
    assert [d["name"] for d in out["datasets"]] == ["support-v1", "support-v2"]
    first = out["datasets"][0]
    assert first["examples"] == 2 and first["train"] + first["holdout"] == 2 and first["versions"] == [1, 2]
    assert first["digest"] == load_dataset(two_sets, "support-v1").digest
    assert out["forgotten"] == []

    receipt = forget(two_sets, ["docs/deal.md"])
    after = document_lineage(two_sets, "docs/deal.md")
    assert not after["in_corpus"] and after["versions"] == [] and after["datasets"] == []
    assert after["traces"]["count"] == 0 and [r["receipt_id"] for r in after["forgotten"]] == [receipt.receipt_id]
    with pytest.raises(CorpusError, match=r"nope\.md: no such document"):
        document_lineage(two_sets, "docs/nope.md")
