"""A project with a small versioned corpus, owners and training rights, and the synthetic run ``main`` in it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.diagnosis.builders import ARMS, MAIN, build_corpus, set_targets, write_run


@pytest.fixture
def world(project: Any, docs: Path, tmp_path: Path) -> Any:
    build_corpus(project, docs)
    set_targets(project)
    write_run(project, tmp_path, "main", ARMS, MAIN)
    return project
