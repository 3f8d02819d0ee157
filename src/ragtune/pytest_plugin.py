"""ragtune's pytest plugin (entry point ``pytest11: ragtune``): the ``assert_cases`` fixture, which answers cases
with an arm of one project and fails the test with one line per failing case (docs/eval.md)::

    def test_rag_answers_the_pricing_questions(assert_cases) -> None:
        assert_cases("eval/pricing.jsonl", arm="rag")

The project is ``--ragtune-project DIR``, else the ``ragtune_project`` ini setting, else the one ``ragtune`` itself
would use; it is opened once per session, when a test first asks for it. Loading the plugin imports nothing of
ragtune's models, so a test run that does not use it pays nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ragtune.harness.model import Output
    from ragtune.project import Project
    from ragtune.testing import Cases

AssertCases = Callable[..., "list[Output]"]
"""``assert_cases(cases, arm="rag", scorers=None)``: :func:`ragtune.testing.assert_cases` on the session's project."""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ragtune")
    group.addoption("--ragtune-project", metavar="DIR", help="The ragtune project the assert_cases fixture uses.")
    parser.addini("ragtune_project", "The ragtune project the assert_cases fixture uses (a folder).", default="")


@pytest.fixture(scope="session")
def ragtune_project(pytestconfig: pytest.Config) -> Iterator[Project]:
    """The project that ``assert_cases`` answers with, opened once per test session."""
    from ragtune.project import Project

    folder = pytestconfig.getoption("ragtune_project") or pytestconfig.getini("ragtune_project")
    project = Project.open(Path(str(folder)) if folder else None)
    yield project
    project.close()


@pytest.fixture
def assert_cases(ragtune_project: Project) -> AssertCases:
    """Answer cases with an arm and fail the test with one line per failing case: ``ID: SCORER: REASON``."""
    from ragtune import testing

    def check(cases: Cases, arm: str = "rag", scorers: Sequence[str] | None = None) -> list[Output]:
        __tracebackhide__ = True
        return testing.assert_cases(cases, arm=arm, project=ragtune_project, scorers=scorers)

    return check
