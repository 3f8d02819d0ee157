"""The real `ragtune tune data`, `ragtune lineage` and `ragtune forget` in subprocesses: JSON, exit codes, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.test_cli import rt
from tests.conftest import write
from tests.tuning.helpers import case_file, chat, chat_file

pytestmark = pytest.mark.integration


def test_tune_data_lineage_and_forget_json(tmp_path: Path) -> None:
    rt("init", "proj", cwd=tmp_path)
    root = tmp_path / "proj"
    write(root / "docs" / "refunds.md", "# Refunds\n\nRefunds are accepted within 30 days of purchase.")
    write(root / "docs" / "discounts.md", "# Discounts\n\nSales may give up to 15% without approval.")
    rt("ingest", "docs/refunds.md", cwd=root)
    rt("ingest", "docs/discounts.md", "--no-training", cwd=root)
    cases = case_file(
        root / "train.jsonl",
        [
            {"id": "refund", "question": "What is the refund window?", "answers": ["30 days"],
             "evidence": ["docs/refunds.md"]},
            {"id": "discount", "question": "What discount needs no approval?", "answers": ["15%"],
             "evidence": ["docs/discounts.md"]},
            {"id": "contact", "question": "Who handles refunds?", "answers": ["Mail jo@example.org"],
             "evidence": ["docs/refunds.md"]},
        ],
    )  # fmt: skip
    eval_cases = case_file(
        root / "eval.jsonl", [{"id": "e1", "question": "What's the refund window?", "answers": ["30 days"]}]
    )
    proc = rt("tune", "data", "--from-cases", str(cases), "--name", "v1", "--eval-cases", str(eval_cases),
              "--holdout", "0", "--json", cwd=root)  # fmt: skip
    report = json.loads(proc.stdout)
    assert report["status"] == "created" and report["kept"] == 1 and report["train"] == 1
    assert report["excluded"] == {"rights": 1, "restricted": 0, "unknown_document": 0, "pii": 0, "duplicate": 0, "leakage": 1,
                                  "near_duplicate": 0}  # fmt: skip
    assert report["pii"]["email"] == 1 and report["pii_masked_examples"] == 1
    train = Path(report["paths"]["train"]).read_text()
    assert json.loads(train) == {"messages": [{"role": "user", "content": "Who handles refunds?"},
                                              {"role": "assistant", "content": "Mail [EMAIL]"}]}  # fmt: skip
    text = rt("tune", "data", "--from-cases", str(cases), "--name", "v1", "--eval-cases", str(eval_cases),
              "--holdout", "0", cwd=root).stdout  # fmt: skip
    assert "data set v1 unchanged: 1 of 3 examples kept" in text and "rights" in text

    # the same name with other content is one line and exit code 1; --replace overwrites
    other = chat_file(root / "chat.jsonl", [chat("Who is the CEO?", "Élodie Marchand.")])
    proc = rt("tune", "data", "--from-jsonl", str(other), "--name", "v1", cwd=root, check=False)
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1 and "--replace" in proc.stderr
    bad = write(root / "bad.jsonl", '{"messages": []}\nnot json\n')
    proc = rt("tune", "data", "--from-jsonl", str(bad), "--name", "v2", cwd=root, check=False)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.splitlines()[1:] == [
        f"  {bad}:1: messages: must have at least 2 item",
        f"  {bad}:2: not valid JSON (Expecting value at column 1)",
    ]

    lineage = json.loads(rt("lineage", "docs/refunds.md", "--json", cwd=root).stdout)
    assert lineage["document"]["may_train"] is True and lineage["versions"][0]["chunks"] == 1
    assert lineage["datasets"] == [
        {"name": "v1", "digest": report["digest"], "examples": 1, "train": 1, "holdout": 0, "versions": [1]}
    ]
    assert "data set v1 (" in rt("lineage", "docs/refunds.md", cwd=root).stdout
    receipt = json.loads(rt("forget", "docs/refunds.md", "--json", cwd=root).stdout)
    assert receipt["totals"]["dataset_examples"] == 1
    assert receipt["datasets"][0]["name"] == "v1" and receipt["datasets"][0]["old_digest"] == report["digest"]
    assert Path(report["paths"]["train"]).read_text() == ""
    after = json.loads(rt("lineage", "docs/refunds.md", "--json", cwd=root).stdout)
    assert after["in_corpus"] is False and after["forgotten"][0]["receipt_id"] == receipt["receipt_id"]
    proc = rt("lineage", "docs/none.md", cwd=root, check=False)
    assert proc.returncode == 1 and "no such document" in proc.stderr
