"""Fixtures for runs: a project with a small handbook ingested and a case file about it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ragtune.corpus.ingest import ingest_paths
from ragtune.corpus.loaders import Defaults
from tests.conftest import write

PRICING = "# Pricing\n\nThe Pro plan's API rate limit is 600 requests per minute.\n"
SUPPORT = "# Support\n\nSupport answers tickets from 8:00 to 18:00 CET on weekdays.\n"

CASES = [
    {"id": "rate", "question": "What is the Pro plan's rate limit?", "answers": ["600 requests per minute"],
     "stale_answers": ["300 requests per minute"], "evidence": ["docs/pricing.md"]},
    {"id": "capital", "question": "What is the capital of France?", "answers": ["Paris"]},
    {"id": "hours", "question": "When does support answer tickets?", "answers": ["8:00 to 18:00"],
     "evidence": ["docs/support.md"]},
    {"id": "fmt", "question": "Name the capital of France in one word.", "answers": ["Paris"],
     "format": {"max_words": 1}},
    {"id": "noevidence", "question": "Who founded the company?", "answers": ["Ada"]},
]  # fmt: skip


def write_cases(path: Path, cases: list[dict[str, Any]] | None = None) -> Path:
    return write(path, "".join(json.dumps(c) + "\n" for c in (cases or CASES)))


@pytest.fixture
def handbook(project: Any, docs: Path) -> Any:
    write(docs / "pricing.md", PRICING)
    write(docs / "support.md", SUPPORT)
    ingest_paths(project, [docs / "pricing.md", docs / "support.md"], Defaults())
    return project


@pytest.fixture
def cases_file(tmp_path: Path) -> Path:
    return write_cases(tmp_path / "cases.jsonl")
