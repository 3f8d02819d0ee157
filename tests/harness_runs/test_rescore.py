"""ragtune runs rescore: a run's stored answers scored again without generating, into a new run that the other run
commands read like any other."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ragtune.corpus.forget import forget
from ragtune.errors import HarnessError
from ragtune.harness.rescore import rescore_run
from ragtune.harness.runs import execute_run, load_results, load_run, summarize_run
from tests.harness_runs.conftest import write_cases
from tests.harness_runs.fakes import SCRIPT, Scripted
from tests.harness_runs.test_cache import rt
from tests.harness_runs.test_kill_resume import CASES, small_project  # noqa: F401  (fixture)


def scores(project: Any, run: str) -> dict[tuple[str, str, str], tuple[str, float | None, str]]:
    rows = project.store.db.execute(
        "SELECT arm, case_id, scorer, status, value, reason FROM run_scores WHERE run = ?", (run,)
    )
    return {(r[0], r[1], r[2]): (r[3], r[4], r[5]) for r in rows}


def test_rescore_repeats_the_scores_and_adds_new_ones_without_generating(handbook: Any, cases_file: Path) -> None:
    handbook.generator = Scripted(SCRIPT)
    execute_run(handbook, cases_file, ["closed-book", "rag", "prompts"], name="base")
    idle = Scripted(SCRIPT)
    handbook.generator = idle
    same = rescore_run(handbook, "base")
    assert idle.prompts == []
    assert same.run == "base-rescored" and same.finished_at is not None
    assert same.settings["rescored_from"]["run"] == "base"
    assert scores(handbook, "base-rescored") == scores(handbook, "base")
    old, new = load_results(handbook.store, "base"), load_results(handbook.store, "base-rescored")
    assert new == old  # answers, labels, latency, tokens, cost and cache flags, arm by arm and case by case
    out = handbook.store.db.execute("SELECT run, output FROM run_results WHERE case_id = 'rate' AND arm = 'rag'")
    outputs = {r[0]: json.loads(r[1]) for r in out}
    assert outputs["base"] == outputs["base-rescored"]  # citations, chunk log, trace reference

    rescore_run(handbook, "base", ["accuracy", "content.numeric", "content.similarity"], name="more")
    got = scores(handbook, "more")
    assert {k[2] for k in got if not k[2].startswith("variant.")} == {
        "accuracy",
        "content.numeric",
        "content.similarity",
    }
    assert all(got[k] == v for k, v in scores(handbook, "base").items() if k[2] == "accuracy")
    assert got[("closed-book", "capital", "content.similarity")][0] == "scored"
    summary = summarize_run(handbook, "more")
    assert summary["rescored_from"]["run"] == "base" and summary["rescored_from"]["scorers"] == handbook.config.eval.scorers  # fmt: skip
    assert load_run(handbook.store, "more").settings["scorers"] == ["accuracy", "content.numeric", "content.similarity"]


def test_rescore_refuses_what_it_cannot_do_in_one_line(handbook: Any, cases_file: Path) -> None:
    handbook.generator = Scripted(SCRIPT)
    execute_run(handbook, cases_file, ["closed-book"], name="base")
    rescore_run(handbook, "base")
    with pytest.raises(HarnessError, match="a run named 'base-rescored' exists already; give another --name"):
        rescore_run(handbook, "base")
    with pytest.raises(HarnessError, match=r"unknown content\.f2"):
        rescore_run(handbook, "base", ["content.f2"], name="x")
    with pytest.raises(HarnessError, match=r"content\.judge: it needs a judge model and \[eval\] judge is empty"):
        rescore_run(handbook, "base", ["content.judge"], name="x")
    with pytest.raises(HarnessError, match="no run named 'nope'"):
        rescore_run(handbook, "nope")
    cases_file.write_text(cases_file.read_text() + "\n")
    with pytest.raises(HarnessError, match="the case file changed since run"):
        rescore_run(handbook, "base", name="x")
    assert load_results(handbook.store, "x") == {}  # nothing half-written


def test_a_rescored_copy_is_reached_by_forget(handbook: Any, cases_file: Path) -> None:
    handbook.generator = Scripted(SCRIPT)
    execute_run(handbook, cases_file, ["rag"], name="base")
    rescore_run(handbook, "base", name="copy")
    receipt = forget(handbook, ["docs/pricing.md"])
    assert {r["run"] for r in receipt.sections["runs"]} == {"base", "copy"}
    # a redacted result keeps its stored scores; a scorer it never had cannot score the lost answer
    again = rescore_run(handbook, "copy", ["accuracy", "content.numeric"], name="after")
    got = scores(handbook, "after")
    assert got[("rag", "rate", "accuracy")][:2] == scores(handbook, "copy")[("rag", "rate", "accuracy")][:2]
    status, _, reason = got[("rag", "rate", "content.numeric")]
    assert status == "unscored" and "redacted" in reason
    assert summarize_run(handbook, again.run)["redacted"]["rag"]


def test_rescore_cli_and_the_commands_that_read_runs(small_project: Path, tmp_path: Path) -> None:  # noqa: F811
    cases = write_cases(tmp_path / "cases.jsonl", CASES[:4])
    assert rt(small_project, "eval", str(cases), "--arms", "closed-book,prompts", "--name", "g").returncode == 0
    out = rt(small_project, "runs", "rescore", "g", "--scorers", "accuracy,content.numeric", "--json")
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["run"] == "g-rescored" and summary["rescored_from"]["run"] == "g"
    assert summary["arms"]["closed-book"]["accuracy"]["value"] == 1.0
    again = rt(small_project, "runs", "rescore", "g", "--scorers", "accuracy,content.numeric")
    assert again.returncode == 1 and again.stderr.strip().splitlines() == [
        "error: a run named 'g-rescored' exists already; give another --name"
    ]
    blank = rt(small_project, "runs", "rescore", "g", "--scorers", "accuracy,", "--name", "h")
    assert blank.returncode == 1 and "an empty scorer name" in blank.stderr and "Traceback" not in blank.stderr
    shown = rt(small_project, "runs", "show", "g-rescored")
    assert shown.returncode == 0 and "rescored from g" in shown.stdout
    cmp = rt(small_project, "compare", "g", "g-rescored", "--json")
    assert cmp.returncode == 0, cmp.stderr
    assert all(r["metrics"]["accuracy"]["delta"] == 0 for r in json.loads(cmp.stdout)["comparisons"])
    diag = rt(small_project, "diagnose", "g-rescored", "--json")
    assert diag.returncode == 0, diag.stderr
    report = rt(small_project, "report", "g-rescored", "--html", str(tmp_path / "r.html"), "--json")
    assert report.returncode == 0, report.stderr and (tmp_path / "r.html").stat().st_size > 0
