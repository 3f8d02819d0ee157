"""The real `ragtune` command in subprocesses: JSON shapes, exit codes, one-line errors, project discovery."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import write

pytestmark = pytest.mark.integration


def rt(*args: str, cwd: Path, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("RAGTUNE_PROJECT", None)
    proc = subprocess.run(
        [sys.executable, "-m", "ragtune.cli.main", *args],
        cwd=cwd,
        env=env,
        text=True,
        capture_output=True,
        timeout=timeout,
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def test_init_ingest_search_forget_json(tmp_path: Path) -> None:
    rt("init", "proj", cwd=tmp_path)
    root = tmp_path / "proj"
    assert "# Results each retriever hands to fusion." in (root / "ragtune.toml").read_text()
    write(root / "docs" / "pricing.md", "# Pricing\n\n## Pro\n\nThe Pro plan allows 600 requests per minute.")
    write(root / "docs" / "hr.md", "# Salaries\n\nThe salary bands are confidential.")
    write(root / "docs" / "bad.jsonl", '{"id": "ok-1", "text": "Good line."}\n{"id": \n')
    sub = root / "docs"
    proc = rt("ingest", ".", "--license", "CC-BY-4.0", "--json", cwd=sub, check=False)
    assert proc.returncode == 1  # one bad line: the rest ingested, the exit code says so
    report = json.loads(proc.stdout)
    assert sorted(report["added"]) == ["docs/hr.md", "docs/pricing.md", "ok-1"]
    assert report["errors"][0]["where"].endswith("bad.jsonl:2") and report["ok"] is False
    assert proc.stderr == ""  # --json: the errors are in the JSON

    rt("ingest", "docs/hr.md", "--groups", "hr", "--no-training", cwd=root)
    out = json.loads(rt("search", "Pro plan rate limit", "-k", "2", "--json", cwd=sub).stdout)
    first = out["results"][0]
    assert {"doc_id", "version", "chunk_id", "score", "text"} <= set(first)
    assert (first["doc_id"], first["version"], first["chunk_id"]) == ("docs/pricing.md", 1, "docs/pricing.md@1#0")
    hidden = json.loads(rt("search", "salary bands", "-k", "10", "--json", cwd=root).stdout)["results"]
    assert all(r["doc_id"] != "docs/hr.md" for r in hidden)
    seen = json.loads(rt("search", "salary bands", "--groups", "hr", "--json", cwd=root).stdout)["results"]
    assert seen[0]["doc_id"] == "docs/hr.md"
    past = json.loads(rt("search", "Pro plan", "--as-of", "2000-01-01", "--json", cwd=root).stdout)
    assert past["results"] == []

    receipt = json.loads(rt("forget", "docs/hr.md", "--json", "--project", str(root), cwd=tmp_path).stdout)
    assert receipt["totals"]["documents"] == 1 and receipt["receipt_id"].startswith("rcpt-")
    receipts = json.loads(rt("receipts", "--json", cwd=root).stdout)["receipts"]
    assert [r["receipt_id"] for r in receipts] == [receipt["receipt_id"]]
    docs = json.loads(rt("docs", "list", "--json", cwd=root).stdout)["documents"]
    assert sorted(d["doc_id"] for d in docs) == ["docs/pricing.md", "ok-1"]
    shown = json.loads(rt("docs", "show", "docs/pricing.md", "--json", cwd=root).stdout)
    assert shown["license"] == "CC-BY-4.0" and shown["may_train"] is True and shown["groups"] == []
    assert [v["version"] for v in shown["versions"]] == [1] and shown["versions"][0]["valid_to"] is None
    assert "v1  " in rt("docs", "show", "docs/pricing.md", cwd=root).stdout
    proc = rt("docs", "show", "nope", cwd=root, check=False)
    assert proc.returncode == 1 and "nope: no such document" in proc.stderr


def test_errors_are_one_line_with_an_exit_code(tmp_path: Path) -> None:
    proc = rt("search", "anything", cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: no ragtune.toml in {tmp_path.resolve()} or any folder above it; run `ragtune init` or pass --project DIR"
    ]
    rt("init", cwd=tmp_path)
    (tmp_path / "ragtune.toml").write_text("[retrieval]\nk = 0\n")
    proc = rt("search", "anything", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "ragtune.toml: retrieval.k = 0" in proc.stderr
    (tmp_path / "ragtune.toml").write_text("")
    proc = rt("ingest", "missing-folder", cwd=tmp_path, check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[0] == "error: missing-folder: no such file or folder; check the path"
    proc = rt("forget", cwd=tmp_path, check=False)
    assert proc.returncode == 1 and "nothing to forget" in proc.stderr
    proc = rt("search", "x", "--as-of", "yesterday", cwd=tmp_path, check=False)
    assert proc.returncode == 1 and "'yesterday' is not a date" in proc.stderr


def test_help_is_fast_and_lists_the_commands(tmp_path: Path) -> None:
    out = rt("--help", cwd=tmp_path).stdout
    for command in ("init", "ingest", "search", "forget", "docs", "receipts", "demo"):
        assert f"  {command} " in out
    code = "import sys, ragtune.cli.main; print('torch' in sys.modules, 'sentence_transformers' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], text=True, capture_output=True, check=True)
    assert proc.stdout.strip() == "False False"  # no model stack loaded just to parse a command line


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    # an earlier demo in the folder (its marker file) is replaced
    write(tmp_path / "demo" / ".ragtune-demo", "created by `ragtune demo`")
    write(tmp_path / "demo" / "leftover.txt", "from the earlier demo")
    # (the demo's own budget is 10 minutes on a quiet 2-core machine; the timeout leaves room for a busy one)
    out = json.loads(rt("demo", "--dir", "demo", "--json", cwd=tmp_path, timeout=1800).stdout)
    assert not (tmp_path / "demo" / "leftover.txt").exists()
    weeks = out["weeks"]
    assert [w["week"] for w in weeks] == [1, 2, 3, 4] and all(w["errors"] == 0 for w in weeks)
    assert weeks[0]["added"] == 19 and weeks[2]["retired"] == 1
    changed = [c for w in weeks for c in w["changed_facts"]]
    assert sum(c["found_in_top3"] for c in changed) >= 0.8 * len(changed)
    assert out["access"]["restricted_hidden"] and out["access"]["with_finance_group"][0].startswith("internal/")
    # a cited answer from the packaged model, and changed facts asked right after each week's edit
    example = weeks[0]["example_answer"]
    assert "600" in example["answer"] and example["citations"][0]["doc_id"] == "handbook/pricing.md"
    for w in weeks[1:]:
        assert w["answers"]["asked"] == 2 and w["answers"]["seconds_from_edit"] > 0
        assert all(f["trace_id"] for f in w["answers"]["facts"])
    # the arms evaluated on the demo's mix of cases, diagnosed, and the report written
    evaluation = out["evaluation"]
    arms = evaluation["summary"]["arms"]
    assert list(arms) == ["closed-book", "oracle", "rag", "prompts", "adapter:v1", "hybrid:v1"]
    assert all(a["cases"] == 20 and a["missing"] == 0 for a in arms.values())
    assert set(arms["prompts"]["variants"]) == {"plain", "style", "style-fewshot"}
    # a governed data set (the bundled cases' near-copies left out) and a short LoRA, registered as v1
    training = out["training"]
    assert training["version"] == "v1" and training["dataset"]["excluded"]["leakage"] > 0
    assert training["result"]["best_holdout_loss"] < training["result"]["initial_holdout_loss"]
    assert evaluation["verdict"] in {"RAG", "FINE-TUNE", "HYBRID", "PROMPT-FIX", "HARNESS-FIRST", "NO-CHANGE"}
    report = Path(out["report"]["path"])
    html = report.read_text(encoding="utf-8")
    assert html.count("<svg") == 3 and html.count('class="case"') == 20
    assert out["report"]["update_costs"]["reingest_s"] > 0
    diagnosed = json.loads(rt("diagnose", evaluation["run"], "--json", cwd=tmp_path / "demo").stdout)
    assert diagnosed["recommendation"]["verdict"] == out["report"]["verdict"]
    # a folder that is not a demo is refused
    write(tmp_path / "mine" / "notes.md", "mine")
    proc = rt("demo", "--dir", "mine", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "not an earlier ragtune demo" in proc.stderr
