"""kill -9 in the middle of an ingest, then ingest again: nothing lost, nothing duplicated, the store whole.

(The same for eval is tests/harness_runs/test_kill_resume.py, and for training
tests/tuning/test_train.py::test_sigkilled_process_resumes_to_the_same_result.)"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import write
from tests.reliability.conftest import record

pytestmark = pytest.mark.integration

N = 16


def cli(*args: str, cwd: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("RAGTUNE_PROJECT", None)
    return subprocess.Popen([sys.executable, "-m", "ragtune.cli.main", *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip


def count(db_path: Path, sql: str) -> int:
    db = sqlite3.connect(db_path, timeout=30)
    try:
        return int(db.execute(sql).fetchone()[0])
    except sqlite3.OperationalError:  # the tables are not made yet
        return 0
    finally:
        db.close()


@pytest.mark.parametrize("kill_after", [2, 8])
def test_sigkilled_ingest_then_ingest_again(tmp_path: Path, kill_after: int) -> None:
    assert cli("init", "proj", cwd=tmp_path).wait(timeout=120) == 0
    root = tmp_path / "proj"
    toml = root / "ragtune.toml"
    toml.write_text(toml.read_text().replace("batch_documents = 256", "batch_documents = 2"))
    for i in range(N):
        write(root / "docs" / f"p{i:02d}.md", f"# Page {i}\n\n" + f"Fact {i} says the count is {i * 11}. " * 8)
    db_path = root / ".ragtune" / "ragtune.db"

    proc = cli("ingest", "docs", "--json", cwd=root)
    deadline = time.monotonic() + 300
    while count(db_path, "SELECT COUNT(*) FROM versions") < kill_after and proc.poll() is None:
        assert time.monotonic() < deadline, "the ingest made no progress"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    committed = count(db_path, "SELECT COUNT(*) FROM versions")
    assert count(db_path, "SELECT COUNT(*) FROM chunks") >= committed  # every committed version has its chunks

    again = cli("ingest", "docs", "--json", cwd=root)
    out, err = again.communicate(timeout=600)
    assert again.returncode == 0, err
    report = json.loads(out)
    checks = [
        len(report["added"]) == N - committed and len(report["unchanged"]) == committed,
        count(db_path, "SELECT COUNT(*) FROM versions") == N,
        count(db_path, "SELECT MAX(version) FROM versions") == 1,
        count(db_path, "SELECT COUNT(DISTINCT doc_id) FROM chunks") == N,
        count(db_path, "SELECT COUNT(*) FROM chunks WHERE seg_id NOT IN (SELECT seg_id FROM segments)") == 0,
    ]
    db = sqlite3.connect(db_path)
    checks.append(db.execute("PRAGMA integrity_check").fetchone()[0] == "ok")
    segs = [r[0] for r in db.execute("SELECT seg_id FROM segments")]
    db.close()
    from ragtune.index.segment import Segment

    checks.append(all(p.is_file() for s in segs for p in Segment.paths(root / ".ragtune" / "index", s)))
    search = subprocess.run([sys.executable, "-m", "ragtune.cli.main", "search", "Fact 13 count", "--json"],
                            cwd=root, capture_output=True, text=True, timeout=300)  # fmt: skip
    checks.append(json.loads(search.stdout)["results"][0]["doc_id"] == "docs/p13.md")
    held = sum(checks)
    record("kill -9: ingest", len(checks), held)
    assert all(checks), checks
