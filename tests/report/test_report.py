"""The HTML report on a real run (real SQLite, MiniLM retrieval, scripted model), and in a real browser."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from ragtune.harness.runs import execute_run
from ragtune.report import build_report, write_report
from tests.harness_runs.conftest import CASES, cases_file, handbook  # noqa: F401  (fixtures)
from tests.harness_runs.fakes import SCRIPT, Scripted

CHROMIUM = Path("/usr/bin/chromium")

DIAGNOSIS = {
    "recommendation": {
        "verdict": "RAG",
        "confidence": "low",
        "shares": {"knowledge": {"value": 0.5, "ci95": [0.1, 0.9]}, "retrieval": {"value": 0.5, "ci95": [0.1, 0.9]}},
        "would_change": ["more cases"],
    },
    "cases": [
        {"id": "hours", "arm": "rag", "family": "generation", "cause": "distraction",
         "what": "generation", "why": "gold chunk docs/support.md@1#0 was in the context <b>but</b> ignored",
         "next": "ragtune eval cases.jsonl --arms rag"},
    ],
}  # fmt: skip


@pytest.fixture
def run(handbook: Any, cases_file: Path) -> Any:  # noqa: F811
    stale_cases = [dict(c) for c in CASES]
    stale_cases[0] |= {"as_of": "2026-01-11"}
    cases_file.write_text("".join(__import__("json").dumps(c) + "\n" for c in stale_cases))
    script = SCRIPT | {"support": "Support answers <script>alert(1)</script> from 9 to 5.",
                       "rate limit": "The limit is 300 requests per minute [1]."}  # fmt: skip
    handbook.generator = Scripted(script)
    execute_run(handbook, cases_file, ["closed-book", "rag", "prompts"], name="rep")
    return handbook


def test_report_has_plots_arms_drilldown_and_escapes_answers(run: Any, tmp_path: Path) -> None:
    html = build_report(run, "rep", diagnosis=DIAGNOSIS)
    assert html.count("<svg") == 3  # families, accuracy vs latency vs cost, staleness over as_of
    assert 'Recommendation: <span class="verdict">RAG</span>' in html
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;but&lt;/b&gt;" in html  # the diagnosis's text is data too
    for case in CASES:
        assert f'id="case-{case["id"]}"' in html
    assert "docs/pricing.md@1" in html and "Stale values:" in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)  # nothing fetched: self-contained
    out = tmp_path / "sub" / "report.html"
    write_report(out, html)
    assert out.read_text(encoding="utf-8") == html and not list(out.parent.glob(".report.html.*"))


def test_report_without_diagnosis_says_how_to_get_one(run: Any) -> None:
    html = build_report(run, "rep")
    assert "ragtune diagnose rep" in html
    assert html.count("<svg") == 3  # families fall back to 'not attributed'; the other plots need no diagnosis


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (.ci/run installs it)")
def test_report_opens_in_headless_chromium(run: Any, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    out = tmp_path / "report.html"
    write_report(out, build_report(run, "rep", diagnosis=DIAGNOSIS))
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        page = browser.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(out.as_uri())
        plots = page.locator("figure.plot svg")
        assert plots.count() == 3
        for i in range(3):
            box = plots.nth(i).bounding_box()
            assert box is not None and box["width"] > 200 and box["height"] > 100  # drawn, not empty
        assert page.locator("details.case").count() == len(CASES)
        case = page.locator("#case-hours")
        assert not case.locator("div.drill").is_visible()
        case.locator("summary").click()
        assert case.locator("div.drill").is_visible()
        assert "distraction" in case.locator("div.attribution").inner_text()
        assert case.locator("table.chunks").first.is_visible()
        page.fill("#filter", "capital of France")
        assert page.inner_text("#shown") == f"2 of {len(CASES)} cases shown"
        page.fill("#filter", "")
        page.check("#failed-only")
        shown = page.locator("details.case:visible").count()
        assert 0 < shown < len(CASES)
        browser.close()
    assert errors == []
    assert shutil.which(str(CHROMIUM))


def test_report_command_diagnoses_and_writes_the_file(run: Any, tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    from ragtune.cli.main import cli

    out = tmp_path / "r.html"
    result = CliRunner().invoke(cli, ["--project", str(run.root), "report", "rep", "--html", str(out), "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["path"] == str(out.resolve()) and body["bytes"] == len(out.read_bytes())
    assert body["verdict"] in {"RAG", "FINE-TUNE", "HYBRID", "PROMPT-FIX", "HARNESS-FIRST", "NO-CHANGE"}
    html = out.read_text(encoding="utf-8")
    assert f'<span class="verdict">{body["verdict"]}</span>' in html
    assert 'class="box attribution"' in html  # the scripted rag arm fails some cases: they are attributed
    missing = CliRunner().invoke(cli, ["--project", str(run.root), "report", "nope", "--html", str(out)])
    assert missing.exit_code != 0 and "no run named 'nope'" in str(missing.exception or missing.output)
