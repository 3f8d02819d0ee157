"""Building data sets: rights, duplicates and leakage with the real MiniLM, the split, the digest, the store."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from ragtune.config import TuningSection
from ragtune.errors import HarnessError, TuningError
from ragtune.project import Project
from ragtune.tuning import Example, build_dataset, dataset_documents, load_dataset
from ragtune.tuning import data as data_module
from ragtune.tuning.data import dataset_digest, example_digest, split_for
from tests.tuning.helpers import add_docs, add_trace, case_file, chat, chat_file

OPEN = {"open.md": "# Refunds\n\nRefunds are accepted within 30 days of purchase."}
CLOSED = {"closed.md": "# Discounts\n\nSales may give up to 15% without approval."}


@pytest.fixture
def corpus(project: Project, docs: Path) -> Project:
    add_docs(project, docs, OPEN)
    add_docs(project, docs, CLOSED, may_train=False)
    return project


def no_holdout(project: Project, **changes: object) -> TuningSection:
    return project.config.tuning.model_copy(update={"holdout": 0.0, **changes})


def test_only_material_that_may_be_trained_on_is_kept(corpus: Project, tmp_path: Path) -> None:
    cases = case_file(
        tmp_path / "train.jsonl",
        [
            {"id": "refund", "question": "What is the refund window?", "answers": ["30 days"],
             "evidence": ["docs/open.md"]},
            {"id": "discount", "question": "How much discount without approval?", "answers": ["15%"],
             "evidence": ["docs/closed.md"]},
            {"id": "both", "question": "Can I get a refund and a discount?", "answers": ["Yes"],
             "evidence": ["docs/open.md", "docs/closed.md"]},
            {"id": "gone", "question": "Who approves refunds?", "answers": ["A lead"], "evidence": ["docs/gone.md"]},
            {"id": "no-evidence", "question": "Who is the CEO?", "answers": ["Élodie Marchand"]},
            {"id": "format-only", "question": "Say hi", "format": {"max_words": 3}},
        ],
    )  # fmt: skip
    report = build_dataset(corpus, "rights", cases=[cases])
    assert report.excluded == {"rights": 2, "restricted": 0, "unknown_document": 1, "pii": 0, "duplicate": 0, "leakage": 0,
                               "near_duplicate": 0}  # fmt: skip
    assert report.skipped == {"case_without_answer": 1} and report.candidates == 5 and report.kept == 2
    assert {(e["example"], e["document"]) for e in report.exclusions} == {
        ("case:discount", "docs/closed.md"),
        ("case:both", "docs/closed.md"),
        ("case:gone", "docs/gone.md"),
    }
    ds = load_dataset(corpus, "rights")
    origins = {e.origin["case_id"]: e.origin for e in ds.examples}
    assert origins["refund"]["documents"] == ["docs/open.md@1"] and origins["no-evidence"]["documents"] == []
    assert ds.examples[0].messages == [
        {"role": "user", "content": "What is the refund window?"},
        {"role": "assistant", "content": "30 days"},
    ]
    assert dataset_documents(corpus.store, "rights") == {"docs/open.md"} and ds.documents == {"docs/open.md@1"}


def test_jsonl_sources_are_checked_and_pinned(corpus: Project, docs: Path, tmp_path: Path) -> None:
    add_docs(corpus, docs, {"open.md": OPEN["open.md"] + "\n\nStore credit is offered after 30 days."})
    lines = [
        chat("What is the refund window?", "30 days.", source={"doc_id": "docs/open.md", "version": 1}),
        chat("Is store credit offered?", "Yes, after 30 days.", source=[{"doc_id": "docs/open.md"}],
             origin={"author": "support"}),
        chat("What discount needs no approval?", "Up to 15%.", source={"doc_id": "docs/closed.md"}),
        chat("What is version 9?", "Nothing.", source={"doc_id": "docs/open.md", "version": 9}),
        chat("Who is the CEO?", "Élodie Marchand."),
    ]  # fmt: skip
    report = build_dataset(
        corpus, "chat", jsonl=[chat_file(tmp_path / "chat.jsonl", lines)], settings=no_holdout(corpus)
    )
    assert report.excluded["rights"] == 1 and report.excluded["unknown_document"] == 1 and report.kept == 3
    assert [e["document"] for e in report.exclusions if e["reason"] == "unknown_document"] == ["docs/open.md@9"]
    examples = load_dataset(corpus, "chat").train
    assert [e.origin["documents"] for e in examples] == [["docs/open.md@1"], ["docs/open.md@2"], []]
    assert examples[1].origin["meta"] == {"author": "support"} and examples[1].origin["line"] == 2


def test_traces_become_examples_with_their_lineage(corpus: Project) -> None:
    add_trace(corpus, "a" * 32, "What is the refund window?", "Refunds are accepted within 30 days [1].",
              [("docs/open.md", 1)])  # fmt: skip
    add_trace(corpus, "b" * 32, "What discount needs no approval?", "Up to 15% [1].", [("docs/closed.md", 1)])
    add_trace(corpus, "c" * 32, "Hello?", "I don't know.", [])
    report = build_dataset(corpus, "traces", traces=True, settings=no_holdout(corpus))
    assert report.kept == 1 and report.excluded["rights"] == 1 and report.skipped == {"trace_without_documents": 1}
    (example,) = load_dataset(corpus, "traces").train
    assert example.messages[-1]["content"] == "Refunds are accepted within 30 days."
    assert example.origin == {"kind": "trace", "trace_id": "a" * 32, "documents": ["docs/open.md@1"]}


def test_exact_and_near_duplicates_are_removed(project: Project, tmp_path: Path) -> None:
    lines = [
        chat("What is the refund window?", "Refunds are accepted within 30 days."),
        chat("what is the   REFUND window?", "Refunds are accepted within 30 days."),  # same once normalised
        chat("How long is the refund window?", "Refunds are accepted within 30 days of purchase."),  # cosine 0.95
        chat("Who is the CEO?", "Élodie Marchand."),
    ]
    report = build_dataset(project, "dups", jsonl=[chat_file(tmp_path / "d.jsonl", lines)])
    assert report.excluded["duplicate"] == 1 and report.excluded["near_duplicate"] == 1 and report.kept == 2
    by_reason = {e["reason"]: e for e in report.exclusions}
    assert by_reason["duplicate"]["example"].endswith("d.jsonl:2") and by_reason["duplicate"]["of"].endswith(":1")
    assert by_reason["near_duplicate"]["of"].endswith(":1") and by_reason["near_duplicate"]["cosine"] >= 0.95
    strict = project.config.tuning.model_copy(update={"near_duplicate": 0.99})
    loose = build_dataset(project, "dups-strict", jsonl=[chat_file(tmp_path / "d.jsonl", lines)], settings=strict)
    assert loose.excluded["near_duplicate"] == 0 and loose.kept == 3


def test_leakage_of_evaluation_questions_is_dropped(project: Project, tmp_path: Path) -> None:
    eval_cases = case_file(
        tmp_path / "eval.jsonl",
        [{"id": "seats", "question": "How many seats does the Team plan allow?", "answers": ["25 seats"]}],
    )
    lines = [
        chat("How many seats are allowed on the Team plan?", "25 seats."),  # a paraphrase: cosine 0.98
        chat("How many seats does the Pro plan allow?", "100 seats."),  # another plan: cosine 0.82
        chat("Who is the CEO?", "Élodie Marchand."),
    ]
    report = build_dataset(project, "leaky", jsonl=[chat_file(tmp_path / "l.jsonl", lines)], eval_cases=[eval_cases])
    assert report.excluded["leakage"] == 1 and report.kept == 2
    (leak,) = report.exclusions
    assert leak["example"].endswith("l.jsonl:1") and leak["case"] == f"{eval_cases}:seats" and leak["cosine"] > 0.9
    assert report.leakage_checked_against == [str(eval_cases)] and report.warnings == []


def test_training_on_the_evaluation_cases_is_flagged(project: Project, tmp_path: Path) -> None:
    cases = case_file(
        tmp_path / "cases.jsonl",
        [{"id": "ceo", "question": "Who is the CEO?", "answers": ["Élodie Marchand"]},
         {"id": "hq", "question": "Where is the head office?", "answers": ["Lyon"]}],
    )  # fmt: skip
    with pytest.raises(TuningError, match=r"no example is left after screening \(leakage 2\)"):
        build_dataset(project, "same", cases=[cases], eval_cases=[cases])


def test_leakage_files_default_to_the_configuration(project: Project, tmp_path: Path) -> None:
    case_file(project.root / "eval.jsonl", [{"id": "ceo", "question": "Who is the CEO?", "answers": ["X"]}])
    lines = [chat("Who is the CEO?", "Élodie Marchand."), chat("Where is the head office?", "Lyon.")]
    project.config.tuning.eval_cases = ["eval.jsonl"]
    report = build_dataset(project, "cfg", jsonl=[chat_file(tmp_path / "c.jsonl", lines)])
    assert report.excluded["leakage"] == 1 and report.inputs["eval_cases"] == [str(project.root / "eval.jsonl")]
    project.config.tuning.eval_cases = []
    report = build_dataset(project, "none", jsonl=[chat_file(tmp_path / "c.jsonl", lines)])
    assert report.excluded["leakage"] == 0 and report.warnings[0].startswith("no leakage check")


def test_the_holdout_split_is_deterministic_per_example() -> None:
    digests = [example_digest([{"role": "user", "content": f"q{i}"}]) for i in range(2000)]
    first = [split_for(d, 0, 0.2) for d in digests]
    assert first == [split_for(d, 0, 0.2) for d in digests]
    assert 0.17 < first.count("holdout") / len(first) < 0.23
    other_seed = [split_for(d, 1, 0.2) for d in digests]
    assert other_seed != first and 0.17 < other_seed.count("holdout") / len(other_seed) < 0.23
    assert set(split_for(d, 0, 0.0) for d in digests) == {"train"}


def test_the_split_is_recorded_and_repeats(project: Project, tmp_path: Path) -> None:
    lines = [chat(f"Question number {i} about topic {i * 7}?", f"Answer {i}.") for i in range(40)]
    path = chat_file(tmp_path / "many.jsonl", lines)
    loose = project.config.tuning.model_copy(update={"near_duplicate": 1.0})
    a = build_dataset(project, "a", jsonl=[path], settings=loose)
    b = build_dataset(project, "b", jsonl=[path], settings=loose)
    assert a.digest == b.digest and 0 < a.holdout < 20 and a.train + a.holdout == a.kept
    ds = load_dataset(project, "a")
    assert [e.split for e in ds.examples] == [split_for(e.digest, 0, 0.2) for e in ds.examples]
    assert len(ds.holdout) == a.holdout and Path(a.paths["holdout"]).read_text().count("\n") == a.holdout
    reseeded = build_dataset(project, "c", jsonl=[path], settings=loose.model_copy(update={"seed": 7}))
    assert reseeded.digest != a.digest  # the split is part of the content


def test_the_digest_is_pinned_to_the_content() -> None:
    messages = [{"role": "user", "content": "Who is the CEO?"}, {"role": "assistant", "content": "Élodie Marchand."}]
    digest = example_digest(messages)
    # sha256 of the canonical JSON: keys sorted, no spaces, UTF-8 as is; a change here changes every stored digest
    canonical = '[{"content":"Who is the CEO?","role":"user"},{"content":"Élodie Marchand.","role":"assistant"}]'
    assert digest == hashlib.sha256(canonical.encode()).hexdigest()
    assert digest == "dfc7683d91e40a29f5919d89b53de99e84962e2e55ea527a2a050075447e0981"
    example = Example(messages, {"kind": "jsonl"}, digest, "train")
    assert dataset_digest([example]) == "ac5aae1b9e121e8310230a6e415fced75589e4997cc6e6783a0a935988d185db"
    assert dataset_digest([example]) == dataset_digest([Example(messages, {"kind": "case"}, digest, "train")])
    assert dataset_digest([example]) != dataset_digest([Example(messages, {}, digest, "holdout")])


def test_a_name_is_built_once_unless_replaced(project: Project, tmp_path: Path) -> None:
    first = chat_file(tmp_path / "1.jsonl", [chat("Who is the CEO?", "Élodie Marchand.")])
    second = chat_file(tmp_path / "2.jsonl", [chat("Where is the head office?", "Lyon.")])
    created = build_dataset(project, "v1", jsonl=[first])
    assert created.status == "created"
    again = build_dataset(project, "v1", jsonl=[first])
    assert again.status == "unchanged" and again.digest == created.digest
    with pytest.raises(TuningError, match=r"already exists with other content .*pick a new --name, or pass --replace"):
        build_dataset(project, "v1", jsonl=[second])
    assert load_dataset(project, "v1").digest == created.digest
    replaced = build_dataset(project, "v1", jsonl=[second], replace=True)
    ds = load_dataset(project, "v1")
    assert replaced.status == "replaced" and ds.digest == replaced.digest
    assert [p["digest"] for p in ds.previous] == [created.digest]
    with pytest.raises(TuningError, match="not allowed"):
        build_dataset(project, "../escape", jsonl=[first])
    with pytest.raises(TuningError, match="no data set 'v2'; known: v1"):
        load_dataset(project, "v2")


def test_files_are_readable_by_openai_and_trl(project: Project, tmp_path: Path) -> None:
    lines = [chat(f"Question {i} on subject {i * 13}?", f"Answer {i}.") for i in range(12)]
    report = build_dataset(project, "files", jsonl=[chat_file(tmp_path / "f.jsonl", lines)])
    rows = [json.loads(x) for x in Path(report.paths["train"]).read_text().splitlines()]
    assert rows and all(set(r) == {"messages"} for r in rows)
    manifest = json.loads(Path(report.paths["manifest"]).read_text())
    assert manifest["digest"] == report.digest and manifest["format"] == "chat-messages"
    assert manifest["counts"] == {"train": report.train, "holdout": report.holdout}
    first = next(e for e in manifest["examples"] if e["split"] == "train")
    assert first["line"] == 1 and first["origin"]["file"].endswith("f.jsonl")


def test_bad_jsonl_lines_are_reported_at_once_and_nothing_is_written(project: Project, tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(
        json.dumps(chat("Fine?", "Yes.")) + "\n"
        + '{"messages": [\n'
        + '["not", "an", "object"]\n'
        + json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "bot", "content": "x"}]}) + "\n"
        + json.dumps({"messages": [{"role": "assistant", "content": "first"}], "sorce": {}}) + "\n"
        + json.dumps(chat("Ends with the user?", "x") | {"messages": [{"role": "user", "content": "q"}] * 2}) + "\n",
        encoding="utf-8",
    )  # fmt: skip
    with pytest.raises(TuningError) as err:
        build_dataset(project, "bad", jsonl=[path])
    lines = [str(p) for p in err.value.problems]
    assert "5 bad lines" in str(err.value) and "nothing was written" in str(err.value)
    assert lines == [
        f"{path}:2: not valid JSON (Expecting value at column 15)",
        f"{path}:3: a line must be a JSON object",
        f"{path}:4: messages[1].role: \"bot\" is not allowed; use one of 'system', 'user' or 'assistant'",
        f"{path}:5: messages: must have at least 2 item",
        f"{path}:5: sorce: unknown field (allowed: messages, source, origin)",
        f"{path}:6: the last message must be the assistant's (the turn the model learns)",
    ]
    assert project.store.db.execute("SELECT COUNT(*) FROM datasets").fetchone()[0] == 0
    assert not (project.state_dir / "datasets").exists() or not any((project.state_dir / "datasets").iterdir())


def test_bad_case_files_and_empty_inputs_are_errors(project: Project, tmp_path: Path) -> None:
    with pytest.raises(TuningError, match="nothing to build from"):
        build_dataset(project, "x")
    with pytest.raises(HarnessError, match="no such file"):
        build_dataset(project, "x", cases=[tmp_path / "missing.jsonl"])
    with pytest.raises(TuningError, match="no such file"):
        build_dataset(project, "x", jsonl=[tmp_path / "missing.jsonl"])
    with pytest.raises(TuningError, match="hold no example"):
        build_dataset(project, "x", traces=True)


def test_a_failed_write_leaves_no_half_data_set(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = chat_file(tmp_path / "old.jsonl", [chat("Who is the CEO?", "Élodie Marchand.")])
    build_dataset(project, "v1", jsonl=[old])
    before = load_dataset(project, "v1")
    old_train = (before.folder / "train.jsonl").read_text()
    lines = [chat(f"Question {i} on subject {i * 13}?", f"Answer {i}.") for i in range(10)]
    new = chat_file(tmp_path / "new.jsonl", lines)
    calls = {"n": 0}
    real = data_module.json.dumps

    def failing_dumps(value: object, **kw: object) -> str:
        calls["n"] += 1
        if calls["n"] == 8:  # part-way through inserting the examples
            raise OSError("disk full")
        return real(value, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(data_module.json, "dumps", failing_dumps)
    for name, replace in (("v2", False), ("v1", True)):
        calls["n"] = 0
        with pytest.raises(OSError, match="disk full"):
            build_dataset(project, name, jsonl=[new], replace=replace)
    monkeypatch.undo()
    db = project.store.db
    assert [r[0] for r in db.execute("SELECT name FROM datasets")] == ["v1"]
    assert db.execute("SELECT COUNT(*) FROM dataset_examples").fetchone()[0] == 1
    assert db.execute("SELECT COUNT(*) FROM dataset_example_docs").fetchone()[0] == 0
    assert load_dataset(project, "v1").digest == before.digest
    assert (before.folder / "train.jsonl").read_text() == old_train
    assert sorted(p.name for p in (project.state_dir / "datasets").iterdir()) == ["v1"]
