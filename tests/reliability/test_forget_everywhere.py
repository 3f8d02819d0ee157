"""The byte-level forget check on the real CLI and the real packaged models: after ask, eval (rag, oracle,
closed-book and the fine-tune), tune data, train and forget, no file under .ragtune/ (nor anything ragtune wrote
under RAGTUNE_HOME during the cycle) holds the forgotten document's text."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ragtune.home import ragtune_home
from ragtune.index.analyzer import Analyzer
from tests.conftest import write

pytestmark = [pytest.mark.slow, pytest.mark.integration]

MARKER = "Quibblefrost"
VAULT = f"# Vault\n\nThe vault code word is {MARKER}. It rotates every Monday at nine.\n"
CANTEEN = "# Canteen\n\nThe canteen opens at noon and serves tomato soup on Fridays.\n"


def rt(*args: str, cwd: Path) -> dict[str, object]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("RAGTUNE_PROJECT", None)
    proc = subprocess.run(
        [sys.executable, "-m", "ragtune.cli.main", *args, "--json"],
        cwd=cwd, env=env, text=True, capture_output=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return json.loads(proc.stdout) if proc.stdout.strip() else {}


def holding(files: list[Path], needles: list[str]) -> list[str]:
    forms = [f for n in needles for f in (n.encode("utf-8"), n.encode("utf-16-le"), n.encode("utf-32-le"))]
    return [str(p) for p in files if p.is_file() and any(f in p.read_bytes() for f in forms)]


def test_forget_leaves_no_byte_after_the_whole_cycle(tmp_path: Path) -> None:
    started = time.time()
    subprocess.run([sys.executable, "-m", "ragtune.cli.main", "init", "proj"], cwd=tmp_path, check=True,
                   capture_output=True)  # fmt: skip
    root = tmp_path / "proj"
    toml = root / "ragtune.toml"
    toml.write_text(toml.read_text().replace("max_new_tokens = 160", "max_new_tokens = 24"))
    write(root / "docs" / "vault.md", VAULT)
    write(root / "docs" / "canteen.md", CANTEEN)
    cases = [
        {"id": "vault", "question": "What is the vault code word?", "answers": [MARKER], "evidence": ["docs/vault.md"]},
        {"id": "lunch", "question": "When does the canteen open?", "answers": ["noon"], "evidence": ["docs/canteen.md"]},
    ]  # fmt: skip
    train = [
        {"id": f"t{i}", "question": q, "answers": [a], "evidence": [e]}
        for i, (q, a, e) in enumerate([
            ("Which word opens the vault?", f"The code word is {MARKER}.", "docs/vault.md"),
            ("When does the vault code rotate?", "Every Monday at nine.", "docs/vault.md"),
            ("What soup is served on Fridays?", "Tomato soup.", "docs/canteen.md"),
            ("When is lunch?", "At noon.", "docs/canteen.md"),
        ])
    ]  # fmt: skip
    write(tmp_path / "cases.jsonl", "".join(json.dumps(c) + "\n" for c in cases))
    write(tmp_path / "train.jsonl", "".join(json.dumps(c) + "\n" for c in train))

    rt("ingest", "docs", cwd=root)
    rt("ask", "What is the vault code word?", cwd=root)
    rt("eval", str(tmp_path / "cases.jsonl"), "--arms", "closed-book,rag,oracle", "--name", "base", cwd=root)
    rt("tune", "data", "--from-cases", str(tmp_path / "train.jsonl"), "--from-traces", "--name", "style",
       "--eval-cases", str(tmp_path / "cases.jsonl"), cwd=root)  # fmt: skip
    rt("tune", "train", "--data", "style", "--max-steps", "2", "--batch-size", "2", cwd=root)
    rt("eval", str(tmp_path / "cases.jsonl"), "--arms", "adapter:v1,hybrid:v1", "--name", "tuned", cwd=root)
    state = root / ".ragtune"
    needles = [MARKER, MARKER.lower(), Analyzer().terms(MARKER)[0]]
    assert holding(list(state.rglob("*")), needles), "the cycle should have stored the marker"

    receipt = rt("forget", "docs/vault.md", cwd=root)

    totals = receipt["totals"]
    assert totals["documents"] == 1 and totals["dataset_examples"] >= 2 and totals["models_tainted"] == 1
    assert totals["runs"] == 2 and totals["run_results_redacted"] >= 5
    # the generation cache: rag's and oracle's vault answers, and every answer of the fine-tune that learned it
    assert totals["generation_cache"] >= 6
    assert holding(list(state.rglob("*")), needles) == []
    assert not (state / "models" / "v1" / "adapter").exists()  # the weights that learned it are gone too
    # what ragtune wrote under its home during the cycle (model caches) holds no document text either
    home = ragtune_home()
    fresh = [p for p in home.rglob("*") if p.is_file() and p.stat().st_mtime >= started] if home.exists() else []
    assert holding(fresh, needles) == []
    # the runs still say what they measured, and which cases lost their text
    runs = rt("runs", "show", "base", cwd=root)
    assert "vault" in runs["redacted"]["oracle"]
