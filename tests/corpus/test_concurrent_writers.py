"""Writers take turns: two `ragtune ingest` of one folder at once (and a forget beside them) all finish, with
correct reports, one version per document and no duplicate chunk or segment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import write

pytestmark = pytest.mark.integration

N = 40


def start(*args: str, cwd: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("RAGTUNE_PROJECT", None)
    return subprocess.Popen(
        [sys.executable, "-m", "ragtune.cli.main", *args],
        cwd=cwd,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def finish(proc: subprocess.Popen[str]) -> tuple[int, dict[str, object], str]:
    out, err = proc.communicate(timeout=600)
    assert "Traceback" not in err and "internal error" not in err, err
    return proc.returncode, json.loads(out) if out.lstrip().startswith("{") else {}, err


def test_two_ingests_of_one_folder_at_once(tmp_path: Path) -> None:
    init = start("init", "proj", cwd=tmp_path)
    assert finish(init)[0] == 0
    root = tmp_path / "proj"
    toml = root / "ragtune.toml"
    # small batches: many planning rounds, so the two processes interleave
    text = toml.read_text()
    assert "batch_documents = 256" in text
    toml.write_text(text.replace("batch_documents = 256", "batch_documents = 3"))
    for i in range(N):
        write(root / "docs" / f"page-{i:02d}.md", f"# Page {i}\n\nFact number {i} is {i * 7} widgets.\n")
    write(root / "other" / "gone.md", "# Gone\n\nThis page will be forgotten.\n")
    assert finish(start("ingest", "other", "--json", cwd=root))[0] == 0

    first = start("ingest", "docs", "--json", cwd=root)
    second = start("ingest", "docs", "--json", cwd=root)
    third = start("forget", "other/gone.md", "--json", cwd=root)
    results = [finish(p) for p in (first, second, third)]
    assert [code for code, _, _ in results] == [0, 0, 0], [err for _, _, err in results]
    (_, a, _), (_, b, _), (_, receipt, _) = results
    assert not a["errors"] and not b["errors"]
    assert len(a["added"]) + len(b["added"]) == N  # each document added once, by one of them
    assert sorted(a["added"] + a["unchanged"]) == sorted(b["added"] + b["unchanged"])
    assert len(a["added"] + a["unchanged"]) == N
    assert receipt["totals"]["documents"] == 1

    import sqlite3

    db = sqlite3.connect(root / ".ragtune" / "ragtune.db")
    assert db.execute("SELECT COUNT(*), COUNT(DISTINCT doc_id) FROM versions").fetchone() == (N, N)
    assert db.execute("SELECT MAX(version) FROM versions").fetchone()[0] == 1
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    segs = {r[0] for r in db.execute("SELECT seg_id FROM segments")}
    assert {r[0] for r in db.execute("SELECT DISTINCT seg_id FROM chunks")} <= segs
    # every listed segment has its files, and a search finds every page
    out = subprocess.run(
        [sys.executable, "-m", "ragtune.cli.main", "search", "Fact number 17 widgets", "--json"],
        cwd=root, capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    assert json.loads(out.stdout)["results"][0]["doc_id"] == "docs/page-17.md"
