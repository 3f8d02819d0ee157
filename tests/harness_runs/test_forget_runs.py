"""Forget reaches stored eval results: answers, outputs and score reasons that came from a document are redacted,
the run's summary names the redacted cases, and no byte of the document's text is left under .ragtune/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ragtune.answer.pipeline import Answerer, Question
from ragtune.corpus.forget import forget
from ragtune.corpus.ingest import ingest_paths
from ragtune.corpus.loaders import Defaults
from ragtune.harness.runs import REDACTED, execute_run, summarize_run
from ragtune.index.analyzer import Analyzer
from ragtune.tuning.data import build_dataset
from tests.conftest import write
from tests.corpus.test_forget import on_disk
from tests.harness_runs.conftest import write_cases
from tests.harness_runs.fakes import Cacheable

MARKER = "Zorblaxium"
SECRET = f"# Vault\n\nThe vault code word is {MARKER} and it rotates every Monday.\n"
OTHER = "# Canteen\n\nThe canteen opens at noon and serves soup.\n"


def marker_files(root: Path) -> list[str]:
    stem = Analyzer().terms(MARKER)[0]
    return sorted(set(on_disk(root, MARKER) + on_disk(root, MARKER.lower()) + on_disk(root, stem)))


def test_forget_redacts_results_scores_traces_and_data_sets(project: Any, docs: Path, tmp_path: Path) -> None:
    write(docs / "vault.md", SECRET)
    write(docs / "canteen.md", OTHER)
    assert ingest_paths(project, [docs], Defaults()).ok
    # the model repeats what it reads: every place an answer is stored gets the marker
    model = Cacheable({"canteen": "At noon."})
    # it can repeat the code word only when its prompt holds it (closed-book prompts quote no document)
    model.reply = lambda m: f"The code word is {MARKER} [1]." if MARKER in m[-1]["content"] else "At noon."  # type: ignore[method-assign]
    project.generator = model
    Answerer(project).ask(Question("What is the vault code word?"))
    cases = write_cases(
        tmp_path / "cases.jsonl",
        [
            {"id": "vault", "question": "What is the vault code word?", "answers": [MARKER.lower()],
             "evidence": ["docs/vault.md"]},
            {"id": "lunch", "question": "When does the canteen open?", "answers": ["noon"],
             "evidence": ["docs/canteen.md"]},
        ],
    )  # fmt: skip
    execute_run(project, cases, ["closed-book", "rag", "oracle"], name="base")
    # the generation cache keeps the answers too (migration 0009): the vault answers of rag and oracle
    cached = project.store.db.execute("SELECT COUNT(*) FROM generation_cache WHERE text LIKE ?", (f"%{MARKER}%",))
    assert cached.fetchone()[0] >= 2
    build_dataset(project, "from-traces", traces=True, eval_cases=[])
    before = summarize_run(project, "base")
    state = project.root / ".ragtune"
    assert marker_files(state), "the cycle should have stored the marker somewhere"

    receipt = forget(project, ["docs/vault.md"])

    assert marker_files(state) == []
    assert receipt.totals["runs"] == 1
    # every cached answer whose prompt quoted the vault (rag, oracle) went, and nothing else
    assert receipt.totals["generation_cache"] >= 2
    left = project.store.db.execute("SELECT text FROM generation_cache").fetchall()
    assert left and all(MARKER not in r[0] for r in left)
    # the vault case in all three arms (its gold evidence), and the rag answer to the canteen question only if
    # its context held a vault chunk
    (run,) = receipt.sections["runs"]
    assert run["run"] == "base" and "vault" in run["cases"] and run["rows"] == receipt.totals["run_results_redacted"]
    rows = project.store.db.execute(
        "SELECT arm, case_id, answer, redacted FROM run_results WHERE run = 'base' AND redacted IS NOT NULL"
    ).fetchall()
    assert {(r["arm"], r["case_id"]) for r in rows} >= {("closed-book", "vault"), ("rag", "vault"), ("oracle", "vault")}
    assert all(r["answer"] == REDACTED and json.loads(r["redacted"])["receipts"] == [receipt.receipt_id] for r in rows)
    reasons = project.store.db.execute(
        "SELECT DISTINCT reason FROM run_scores WHERE run = 'base' AND case_id = 'vault'"
    ).fetchall()
    assert [r[0] for r in reasons] == [REDACTED]
    after = summarize_run(project, "base")
    assert "vault" in after["redacted"]["closed-book"]
    # the figures stay: the summary says which cases were redacted instead of silently changing them
    for arm in ("closed-book", "rag", "oracle"):
        assert after["arms"][arm]["labels"] == before["arms"][arm]["labels"]
    # a second forget of another document adds its receipt, and a run without that document is untouched
    again = forget(project, ["docs/canteen.md"])
    lunch = project.store.db.execute(
        "SELECT redacted FROM run_results WHERE run = 'base' AND arm = 'oracle' AND case_id = 'lunch'"
    ).fetchone()[0]
    assert json.loads(lunch)["receipts"] == [again.receipt_id]
