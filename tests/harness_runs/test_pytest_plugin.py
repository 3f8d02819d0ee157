"""`ragtune.testing.assert_cases` and the pytest plugin's fixture: a failing case fails the test with one line per
case (id, scorer, why), shown by a real pytest session (pytester)."""

from __future__ import annotations

import textwrap
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

from ragtune.harness.model import Case
from ragtune.testing import CasesFailed, assert_cases
from tests.harness_runs.conftest import CASES, write_cases
from tests.harness_runs.fakes import SCRIPT, Scripted

pytest_plugins = ["pytester"]


def test_assert_cases_fails_with_one_line_per_failing_case(handbook: Any, cases_file: Path) -> None:
    handbook.generator = Scripted(SCRIPT)
    with pytest.raises(CasesFailed) as failed:
        assert_cases(cases_file, arm="rag", project=handbook)
    lines = str(failed.value).splitlines()
    assert lines[0] == f"{len(failed.value.failures)} of {len(CASES)} cases failed on arm rag:"
    by_id = {f.case_id: f for f in failed.value.failures}
    assert "rate" not in by_id and "capital" not in by_id  # answered right: not listed
    hours = by_id["hours"]
    assert (hours.label, hours.scorer) == ("wrong", "accuracy")
    assert lines[1:] == [f.line() for f in failed.value.failures]
    assert all(line.count(": ") >= 2 and "\n" not in line for line in lines[1:])


def test_assert_cases_passes_returns_outputs_and_names_arm_failures(handbook: Any, tmp_path: Path) -> None:
    handbook.generator = Scripted(SCRIPT)
    outputs = assert_cases([CASES[0], Case(**CASES[1])], arm="rag", project=handbook)  # lines as dicts, or cases
    assert [o.case_id for o in outputs] == ["rate", "capital"]
    with pytest.raises(CasesFailed) as failed:
        assert_cases([CASES[1]], arm="oracle", project=handbook)  # no evidence: the arm itself fails
    assert str(failed.value).splitlines()[1] == "capital: arm: the case lists no evidence for the oracle"


@pytest.mark.slow
def test_plugin_fixture_fails_a_real_pytest_test_with_ragtune_reasons(
    handbook: Any, tmp_path: Path, pytester: pytest.Pytester
) -> None:
    cases = write_cases(tmp_path / "cases.jsonl", [CASES[0], CASES[2]])
    pytester.makeconftest(
        """
        import pytest
        from tests.harness_runs.fakes import SCRIPT, Scripted

        @pytest.fixture(scope="session")
        def ragtune_project(ragtune_project):  # the plugin's, answered by the scripted model
            ragtune_project.generator = Scripted(SCRIPT)
            return ragtune_project
        """
    )
    pytester.makepyfile(
        test_quality=textwrap.dedent(
            f"""
            def test_rag_answers_the_handbook(assert_cases):
                assert_cases({str(cases)!r}, arm="rag")
            """
        )
    )
    # installed (pip install -e .), the entry point loads the plugin; from a source tree, -p does
    installed = "ragtune" in {ep.name for ep in entry_points(group="pytest11")}
    args = [] if installed else ["-p", "ragtune.pytest_plugin"]
    result = pytester.runpytest(*args, "--ragtune-project", str(handbook.root), "-q", "--tb=short")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*CasesFailed: 1 of 2 cases failed on arm rag:",
            "*hours: accuracy: *",
            "*FAILED test_quality.py::test_rag_answers_the_handbook*",
        ]
    )
    assert "rate:" not in result.stdout.str()
