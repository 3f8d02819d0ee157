"""`ragtune diagnose` through the real CLI in a subprocess: the --json shape and the terminal summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ragtune.diagnosis.taxonomy import CAUSES, FAMILIES, UNCLEAR, UNCLEAR_REASONS, VERDICTS
from tests.cli.test_cli import rt

pytestmark = pytest.mark.integration


def test_json_shape(world: Any, tmp_path: Path) -> None:
    costs = tmp_path / "costs.json"
    costs.write_text('{"reingest_s": 1.5, "retrain_s": 600}')
    root = str(world.root)
    out = json.loads(
        rt("diagnose", "main", "--json", "--update-costs", str(costs), "--project", root, cwd=tmp_path).stdout
    )
    rec = out["recommendation"]
    assert {"verdict", "confidence", "shares", "fix_rates", "sla", "update_cost", "blockers", "would_change"} <= set(
        rec
    )
    assert rec["verdict"] in VERDICTS and rec["confidence"] in ("high", "medium", "low")
    assert set(rec["shares"]) == {*FAMILIES, UNCLEAR}
    assert all(set(v) >= {"value", "ci95"} for v in rec["shares"].values())
    assert rec["update_cost"]["retrain"]["seconds"] == 600 and rec["update_cost"]["retrain_vs_reingest"] == 400
    assert rec["sla"]["candidate"] == "rag" and rec["sla"]["arms"]["rag"]["latency_met"] is False
    assert {"oracle", "closed-book", "prompts", "prompts/concise"} <= set(rec["fix_rates"])
    assert out["cases"]
    for c in out["cases"]:
        assert {"id", "arm", "family", "cause", "what", "why", "next"} <= set(c)
        assert (c["family"], c["cause"]) in CAUSES or (c["family"] == UNCLEAR and c["cause"] in UNCLEAR_REASONS)

    text = rt("diagnose", "main", "--project", root, cwd=tmp_path).stdout
    assert f"verdict: {rec['verdict']}" in text and "[answer] sources" in text and "what would change" in text
    proc = rt("diagnose", "nope", "--project", root, cwd=tmp_path, check=False)
    assert proc.returncode == 1 and proc.stderr.startswith("error: no run named 'nope'")
    proc = rt("diagnose", "main", "--primary", "adapter:x", "--project", root, cwd=tmp_path, check=False)
    assert proc.returncode == 1 and "not in run" in proc.stderr
