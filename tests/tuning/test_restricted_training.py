"""No leak through training: group-restricted text stays out of data sets unless opted in, and then every data set
and model version trained on it carries the groups; callers without them cannot find or use such a version."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ragtune.answer.pipeline import Answerer, Question
from ragtune.corpus.ingest import ingest_paths
from ragtune.corpus.lineage import document_lineage
from ragtune.corpus.loaders import Defaults
from ragtune.errors import ModelAccessError, TuningError
from ragtune.tuning import build_dataset, load_dataset
from ragtune.tuning.data import groups_needed, may_use
from ragtune.tuning.registry import list_versions, next_version, promote, register_version, resolve
from tests.conftest import write
from tests.server.conftest import (
    FINANCE_TOKEN,
    PUBLIC_TOKEN,
    Live,
    configure,
    serve,  # noqa: F401  (fixture)
)
from tests.tuning.helpers import add_trace
from tests.tuning.test_registry import _adapter, tiny_base  # noqa: F401  (fixture)

pytest.importorskip("peft")

MARGINS = "# Margins\n\nThe gross margin target is 71 percent.\n"
PRICING = "# Pricing\n\nThe Pro plan costs 30 euros.\n"


@pytest.fixture
def corpus(project: Any, docs: Path) -> Any:
    write(docs / "public" / "pricing.md", PRICING)
    write(docs / "finance" / "margins.md", MARGINS)
    assert ingest_paths(project, [docs / "public"], Defaults()).ok
    assert ingest_paths(project, [docs / "finance"], Defaults(groups=("finance",))).ok
    # a finance caller's answer used the finance page; a public caller's used the pricing page
    add_trace(project, "a" * 32, "What is the margin target?", "71 percent [1].", [("docs/finance/margins.md", 1)])
    add_trace(project, "b" * 32, "What does Pro cost?", "30 euros [1].", [("docs/public/pricing.md", 1)])
    return project


def test_restricted_documents_stay_out_of_training_data_by_default(corpus: Any) -> None:
    report = build_dataset(corpus, "traces", traces=True, eval_cases=[])
    assert report.excluded["restricted"] == 1 and report.kept == 1 and report.groups == []
    (excluded,) = [e for e in report.exclusions if e["reason"] == "restricted"]
    assert excluded["document"] == "docs/finance/margins.md" and excluded["groups"] == ["finance"]
    texts = [m["content"] for e in load_dataset(corpus, "traces").examples for m in e.messages]
    assert not any("71 percent" in t for t in texts)


def test_opted_in_data_sets_and_models_inherit_the_groups(corpus: Any, tiny_base: Path) -> None:  # noqa: F811
    report = build_dataset(corpus, "fin", traces=True, eval_cases=[], allow_groups=["finance"])
    assert report.kept == 2 and report.groups == [["finance"]]
    dataset = load_dataset(corpus, "fin")
    assert dataset.groups == [["finance"]]
    manifest = (dataset.folder / "manifest.json").read_text()
    assert '"groups": [\n    [\n      "finance"' in manifest
    version = next_version(corpus.store)
    folder = _adapter(tiny_base, corpus.root / ".ragtune" / "models" / version / "adapter", 1)
    register_version(corpus, version=version, adapter=folder, base=str(tiny_base), dataset=dataset,
                     settings={}, result={"wall_seconds": 1.0})  # fmt: skip
    assert list_versions(corpus.store)[0].groups == [["finance"]]
    assert document_lineage(corpus, "docs/finance/margins.md")["models"][0]["groups"] == [["finance"]]
    # the operator (no caller groups) and a finance caller may use it; anyone else finds no such version
    assert resolve(corpus.store, "v1").version == "v1"
    assert resolve(corpus.store, "v1", ("finance",)).version == "v1"
    with pytest.raises(ModelAccessError) as hidden:
        resolve(corpus.store, "v1", ())
    with pytest.raises(TuningError) as unknown:
        resolve(corpus.store, "v7", ())
    # the same words as for a version that does not exist, and no list of versions the caller may not use
    assert str(hidden.value) == str(unknown.value).replace("'v7'", "'v1'")
    assert "v1," not in str(hidden.value) and "(versions:" not in str(hidden.value)
    with pytest.raises(ModelAccessError):
        Answerer(corpus).ask(Question("What is the margin target?", arm="adapter:v1"))


def test_a_document_restricted_after_training_restricts_the_model(corpus: Any, tiny_base: Path, docs: Path) -> None:  # noqa: F811
    build_dataset(corpus, "pub", traces=True, eval_cases=[])
    folder = _adapter(tiny_base, corpus.root / ".ragtune" / "models" / "v1" / "adapter", 1)
    register_version(corpus, version="v1", adapter=folder, base=str(tiny_base), dataset=load_dataset(corpus, "pub"),
                     settings={}, result={})  # fmt: skip
    assert resolve(corpus.store, "v1", ()).groups == []
    assert ingest_paths(corpus, [docs / "public"], Defaults(groups=("sales",))).ok  # tightening applies
    assert resolve(corpus.store, "v1", ("sales",)).groups == [["sales"]]
    with pytest.raises(ModelAccessError):
        resolve(corpus.store, "v1", ("finance",))


def test_the_server_hides_restricted_fine_tunes(
    corpus: Any,
    tiny_base: Path,  # noqa: F811
    serve: Callable[..., Live],  # noqa: F811
) -> None:
    build_dataset(corpus, "fin", traces=True, eval_cases=[], allow_groups=["finance"])
    folder = _adapter(tiny_base, corpus.root / ".ragtune" / "models" / "v1" / "adapter", 1)
    register_version(corpus, version="v1", adapter=folder, base=str(tiny_base), dataset=load_dataset(corpus, "fin"),
                     settings={}, result={})  # fmt: skip
    promote(corpus, "v1", "finance-bot", force=True, reason="test")
    corpus.config.generator.max_new_tokens = 4
    callers = (
        '[server]\ngroups = []\n[server.callers.finance]\ntoken_env = "T_FIN"\ngroups = ["finance"]\n'
        '[server.callers.public]\ntoken_env = "T_PUB"\n'
    )
    live = serve(configure(corpus, callers), {"T_FIN": FINANCE_TOKEN, "T_PUB": PUBLIC_TOKEN})
    chat = {"model": "ragtune-adapter:finance-bot", "messages": [{"role": "user", "content": "Margin target?"}]}
    with live.client(FINANCE_TOKEN) as fin:
        assert "ragtune-adapter:finance-bot" in [m["id"] for m in fin.get("/v1/models").json()["data"]]
        assert fin.get("/v1/models/ragtune-adapter:finance-bot").json()["id"] == "ragtune-adapter:finance-bot"
        assert fin.post("/v1/chat/completions", json=chat).status_code == 200
        assert fin.post("/ask", json={"question": "Margin target?", "arm": "adapter:v1"}).status_code == 200
    with live.client(PUBLIC_TOKEN) as pub:
        assert not any("finance-bot" in m["id"] for m in pub.get("/v1/models").json()["data"])
        hidden_model, no_model = pub.get("/v1/models/ragtune-adapter:finance-bot"), pub.get("/v1/models/ragtune-x")
        assert hidden_model.status_code == no_model.status_code == 404
        assert hidden_model.json()["error"]["code"] == "model_not_found" and "finance" not in hidden_model.text.replace(
            "ragtune-adapter:finance-bot", ""
        )
        for reply in (
            pub.post("/v1/chat/completions", json=chat),
            pub.post("/ask", json={"question": "Margin target?", "arm": "adapter:v1"}),
            pub.post("/ask", json={"question": "Margin target?", "arm": "hybrid:finance-bot"}),
        ):
            assert reply.status_code in (400, 404), reply.text
            message = reply.json()["error"]["message"]
            assert "no model version or alias" in message and "group" not in message and "restricted" not in message
        unknown = pub.post("/ask", json={"question": "Margin target?", "arm": "adapter:v9"})
        hidden = pub.post("/ask", json={"question": "Margin target?", "arm": "adapter:v1"})
        assert unknown.status_code == hidden.status_code
        assert unknown.json()["error"]["message"].replace("v9", "v1") == hidden.json()["error"]["message"]


def test_groups_needed_keeps_the_narrowest_audiences() -> None:
    assert groups_needed([{"finance"}, {"finance", "hr"}, set()]) == [["finance"]]
    assert groups_needed([{"finance"}, {"hr"}]) == [["finance"], ["hr"]]
    assert may_use([["finance"], ["hr"]], ["finance", "hr"]) and not may_use([["finance"], ["hr"]], ["finance"])
    assert may_use([], [])
