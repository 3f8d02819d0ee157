"""Issue 13, point 4: the generation cache (an unchanged eval is not generated twice), and what it must never do:
serve an answer to a prompt that differs in any part of the key, report a read-back answer as a measured latency,
keep text forget removed, or give one asker what another's groups could read."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ragtune.config import GeneratorSection
from ragtune.corpus.forget import forget
from ragtune.corpus.ingest import ingest_paths
from ragtune.corpus.loaders import Defaults
from ragtune.harness.cache import GenerationCache, cache_key, weights_digest
from ragtune.harness.runs import execute_run, load_results, summarize_run
from ragtune.harness.summary import unmet
from tests.conftest import write
from tests.harness_runs.conftest import CASES, write_cases
from tests.harness_runs.fakes import CACHEABLE, SCRIPT, Cacheable, Scripted
from tests.harness_runs.test_kill_resume import REPO, small_project  # noqa: F401  (fixture)

MESSAGES = [{"role": "system", "content": "Answer."}, {"role": "user", "content": "What is the capital of France?"}]


def entries(project: Any) -> int:
    return GenerationCache(project).count()


def test_a_second_identical_eval_generates_nothing_and_says_so(handbook: Any, cases_file: Path) -> None:
    first = Cacheable(SCRIPT)
    handbook.generator = first
    execute_run(handbook, cases_file, ["closed-book", "rag", "prompts"], name="one")
    assert first.prompts and entries(handbook) > 0
    again = Cacheable(SCRIPT)  # the same model (same identity and weights), a fresh process's generator
    handbook.generator = again
    execute_run(handbook, cases_file, ["closed-book", "rag", "prompts"], name="two")
    assert again.prompts == []  # nothing generated
    one, two = load_results(handbook.store, "one"), load_results(handbook.store, "two")
    for arm in ("closed-book", "rag", "prompts"):
        assert [(r["case_id"], r["answer"], r["label"]) for r in two[arm]] == [
            (r["case_id"], r["answer"], r["label"]) for r in one[arm]
        ]
        assert all(r["cached"] == 1 and r["request_ms"] is None for r in two[arm])
        assert not any(r["cached"] for r in one[arm])
    summary = summarize_run(handbook, "two")
    rag = summary["arms"]["rag"]
    # the cases rag answers with no source at all are never generated, so never cached
    no_source = sum(1 for r in two["rag"] if r["tokens_out"] == 0)
    assert summary["cached"] == sum(a["cached"] for a in summary["arms"].values()) > 0
    assert rag["cached"] == len(CASES) - no_source or rag["cached"] == len(CASES)
    cb = summary["arms"]["closed-book"]
    # latency, throughput and cost come from real generations only: here there were none
    assert cb["cached"] == 5 and cb["latency_n"] == 0 and cb["p95_ms"] is None and cb["cost_per_1k"] is None
    assert cb["throughput"]["answers_per_s"] is None and cb["tokens_per_1k"] > 0
    (reason,) = unmet(cb, [("p95_ms", "max", 1500.0)])
    assert "not measured" in reason and "generation cache" in reason and "--no-cache" in reason
    assert summarize_run(handbook, "one")["arms"]["closed-book"]["latency_n"] == 4  # the first run was timed


def test_changing_any_part_of_the_key_misses() -> None:
    base = Cacheable()
    key = cache_key(base, MESSAGES)
    assert key is not None and key == cache_key(Cacheable(), MESSAGES)
    other_question = [MESSAGES[0], {"role": "user", "content": "What is the capital of Spain?"}]
    other_system = [{"role": "system", "content": "Answer briefly."}, MESSAGES[1]]
    misses = [
        cache_key(base, other_question),
        cache_key(base, other_system),
        cache_key(base, MESSAGES, max_new_tokens=12),
        cache_key(Cacheable(settings=GeneratorSection(seed=7)), MESSAGES),
        cache_key(Cacheable(adapter=".ragtune/models/v2/adapter"), MESSAGES),
        cache_key(Cacheable(weights="w2"), MESSAGES),  # retrained in place: same folder, other files
    ]
    assert None not in misses and len({key, *misses}) == len(misses) + 1
    # what counts is the limit in force, whether the call or [generator] max_new_tokens set it
    assert cache_key(Cacheable(settings=GeneratorSection(max_new_tokens=12)), MESSAGES) == misses[2]
    # sampling is never cached (a draw reused is no draw); neither is a generator whose weights are unknown
    assert cache_key(Cacheable(settings=GeneratorSection(temperature=0.7)), MESSAGES) is None
    assert cache_key(Scripted(), MESSAGES) is None


def test_a_changed_setting_in_the_project_generates_again(handbook: Any, cases_file: Path) -> None:
    handbook.generator = Cacheable(SCRIPT)
    execute_run(handbook, cases_file, ["closed-book"], name="a")
    shorter = Cacheable(SCRIPT, settings=GeneratorSection(max_new_tokens=12))
    handbook.generator = shorter
    execute_run(handbook, cases_file, ["closed-book"], name="b")
    assert len(shorter.prompts) == len(CASES)
    tuned = Cacheable(SCRIPT, adapter="models/v9/adapter")
    handbook.generator = tuned
    execute_run(handbook, cases_file, ["closed-book"], name="c")
    assert len(tuned.prompts) == len(CASES)


def test_no_cache_generates_everything_and_writes_nothing(handbook: Any, cases_file: Path) -> None:
    handbook.generator = Cacheable(SCRIPT)
    execute_run(handbook, cases_file, ["closed-book"], name="warm")
    stored = entries(handbook)
    fresh = Cacheable(SCRIPT)
    handbook.generator = fresh
    execute_run(handbook, cases_file, ["closed-book", "prompts"], name="cold", cache=False)
    assert len(fresh.prompts) == len(CASES) * 4  # closed-book, and prompts' three variants
    assert entries(handbook) == stored  # the prompts arm's answers were not written either
    assert summarize_run(handbook, "cold")["cached"] == 0
    assert load_results(handbook.store, "cold")["closed-book"][1]["request_ms"] is not None  # timed for real


def test_forget_deletes_the_entries_a_document_shaped(handbook: Any, cases_file: Path) -> None:
    handbook.generator = Cacheable(SCRIPT)
    execute_run(handbook, cases_file, ["closed-book", "rag", "oracle"], name="r")
    db = handbook.store.db
    quoting = db.execute(
        "SELECT COUNT(DISTINCT key) FROM generation_cache_docs WHERE doc_id = 'docs/pricing.md'"
    ).fetchone()[0]
    versions = {tuple(r) for r in db.execute("SELECT doc_id, version FROM generation_cache_docs")}
    assert quoting > 0 and versions <= {("docs/pricing.md", 1), ("docs/support.md", 1)}
    closed_book = entries(handbook) - db.execute("SELECT COUNT(DISTINCT key) FROM generation_cache_docs").fetchone()[0]
    receipt = forget(handbook, ["docs/pricing.md"])
    assert receipt.totals["generation_cache"] == quoting
    assert db.execute("SELECT COUNT(*) FROM generation_cache_docs WHERE doc_id = 'docs/pricing.md'").fetchone()[0] == 0
    # the closed-book answers quoted no document and stay; so do the answers that quoted only support.md
    left = db.execute("SELECT COUNT(DISTINCT key) FROM generation_cache_docs").fetchone()[0]
    assert entries(handbook) == closed_book + left and left > 0


def test_forget_deletes_what_a_fine_tune_trained_on_the_document_wrote(handbook: Any, cases_file: Path) -> None:
    db = handbook.store.db
    adapter = handbook.root / ".ragtune" / "models" / "v1" / "adapter"
    with handbook.store.transaction() as tx:  # a registered version trained on pricing.md (as tune train records it)
        tx.execute(
            "INSERT INTO model_versions (version, created_at, created_by, base, adapter, dataset, dataset_digest, "
            "settings, result) VALUES ('v1', '2026-01-01', 'test', 'smollm2', '.ragtune/models/v1/adapter', 'd', "
            "'x', '{}', '{}')"
        )
        tx.execute("INSERT INTO model_docs (version, doc_id) VALUES ('v1', 'docs/pricing.md')")
    handbook.generator = Cacheable(SCRIPT, adapter=str(adapter))
    execute_run(handbook, cases_file, ["closed-book"], name="tuned")
    assert db.execute("SELECT COUNT(*) FROM generation_cache WHERE model_version = 'v1'").fetchone()[0] == len(CASES)
    receipt = forget(handbook, ["docs/pricing.md"])
    # closed-book prompts quote nothing, yet the model that wrote them learned the document
    assert receipt.totals["generation_cache"] == len(CASES) and entries(handbook) == 0


def test_a_cache_hit_never_gives_text_the_askers_groups_may_not_read(project: Any, docs: Path, tmp_path: Path) -> None:
    write(docs / "bonus.md", "# Bonus\n\nThe bonus pool is Glimmerquartz percent of profit.\n")
    write(docs / "public.md", "# Holidays\n\nThe office closes for two weeks in August.\n")
    ingest_paths(project, [docs / "bonus.md"], Defaults(groups=["finance"]))
    ingest_paths(project, [docs / "public.md"], Defaults())
    echo = Cacheable(default="no")

    def reply(messages: Any) -> str:  # the model repeats the secret when its prompt holds it
        return "Glimmerquartz [1]." if "Glimmerquartz" in messages[-1]["content"] else "I don't know."

    echo.reply = reply  # type: ignore[method-assign]
    project.generator = echo
    question = "What is the bonus pool?"
    finance = write_cases(tmp_path / "f.jsonl", [{"id": "q", "question": question, "answers": ["x"], "groups": ["finance"]}])  # fmt: skip
    anyone = write_cases(tmp_path / "a.jsonl", [{"id": "q", "question": question, "answers": ["x"]}])
    execute_run(project, finance, ["rag"], name="finance")
    execute_run(project, anyone, ["rag"], name="anyone")
    (f,) = load_results(project.store, "finance")["rag"]
    (a,) = load_results(project.store, "anyone")["rag"]
    assert "Glimmerquartz" in f["answer"] and "Glimmerquartz" not in a["answer"]
    # same question, but the key holds the messages, and their context is what each asker's groups could read
    assert not a["cached"]


def rt(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}", CACHEABLE: "1"}
    return subprocess.run(
        [sys.executable, "-m", "tests.harness_runs.fakes", "--project", str(project), *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_cli_no_cache_and_the_cached_count(small_project: Path, tmp_path: Path) -> None:  # noqa: F811
    cases = write_cases(tmp_path / "cases.jsonl", CASES)
    first = rt(small_project, "eval", str(cases), "--arms", "closed-book", "--name", "a", "--json")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["cached"] == 0
    second = rt(small_project, "eval", str(cases), "--arms", "closed-book", "--name", "b")
    assert second.returncode == 0, second.stderr
    assert "5 of 5 answers read back from the generation cache" in second.stdout
    cold = rt(small_project, "eval", str(cases), "--arms", "closed-book", "--name", "c", "--no-cache", "--json")
    assert cold.returncode == 0, cold.stderr
    summary = json.loads(cold.stdout)
    assert summary["cached"] == 0 and summary["arms"]["closed-book"]["latency_n"] > 0


@pytest.mark.slow
def test_the_real_model_is_not_asked_twice(handbook: Any, generator: Any, tmp_path: Path, monkeypatch: Any) -> None:
    real = generator.generate
    asked: list[int] = []

    def counting(batch: Any, **kw: Any) -> Any:
        asked.append(len(batch))
        return real(batch, **kw)

    monkeypatch.setattr(generator, "generate", counting)
    handbook.generator = generator
    # the timed sample answers on the serving backend: llama.cpp over the same GGUF, cached under its own identity
    alone = handbook.interactive_generator
    assert alone is not generator and alone.identity()["backend"] == "llama-cpp"
    real_alone, asked_alone = alone.generate, []

    def counting_alone(batch: Any, **kw: Any) -> Any:
        asked_alone.append(len(batch))
        return real_alone(batch, **kw)

    monkeypatch.setattr(alone, "generate", counting_alone)
    cases = write_cases(tmp_path / "cases.jsonl", [CASES[0], CASES[2]])
    execute_run(handbook, cases, ["closed-book", "oracle"], name="first")
    # per arm, the first case in a batch (it warms the model) and the second timed alone
    assert sum(asked) == 2 and sum(asked_alone) == 2 and weights_digest(generator) is not None
    assert weights_digest(alone) is not None
    asked.clear()
    asked_alone.clear()
    execute_run(handbook, cases, ["closed-book", "oracle"], name="second")
    assert asked == [] and asked_alone == []
    first, second = load_results(handbook.store, "first"), load_results(handbook.store, "second")
    assert {a: [r["answer"] for r in rs] for a, rs in second.items()} == {a: [r["answer"] for r in rs] for a, rs in first.items()}  # fmt: skip
    # a third run with a different answer limit is a different key: generated again
    monkeypatch.setattr(generator.settings, "max_new_tokens", 12)  # the serving backend shares the settings
    execute_run(handbook, cases, ["closed-book"], name="third")
    assert sum(asked) == 1 and sum(asked_alone) == 1
