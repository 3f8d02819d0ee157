"""Evaluation cases as test assertions, as DeepEval's ``assert_test`` is: the cases go through an arm, the project's
scorers grade each answer, and a failing case fails the test with one line saying which scorer failed and why::

    def test_rag_answers_the_pricing_questions() -> None:
        assert_cases("eval/pricing.jsonl", arm="rag", project="my-project")

The pytest plugin (``ragtune.pytest_plugin``) offers the same as the ``assert_cases`` fixture, bound to one project
opened per session. Nothing is stored as a run: ``ragtune eval`` and ``ragtune check`` are for runs to keep.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragtune.harness.cases import load_cases
from ragtune.harness.model import Case, Output, Score
from ragtune.harness.summary import ACCURACY, FORMAT, STALENESS, Label, failure_label

if TYPE_CHECKING:
    from ragtune.project import Project

Cases = str | Path | Sequence[Case | Mapping[str, Any]]
"""A case file, or cases given in the test itself (as :class:`Case` or as the objects of a case file's lines)."""

_BLAMED: dict[Label, tuple[str, ...]] = {
    "stale": (STALENESS,),
    "wrong": (ACCURACY,),
    "format": (FORMAT,),
    "unscored": (ACCURACY, FORMAT),
}
"""The scorer whose verdict explains each failure label (failure_label's own order: content first)."""


@dataclass(frozen=True)
class CaseFailure:
    """One case that did not pass: its failure label, and the scorer and reason that explain it."""

    case_id: str
    label: Label
    scorer: str
    reason: str

    def line(self) -> str:
        return f"{self.case_id}: {self.scorer}: {self.reason}"


class CasesFailed(AssertionError):
    """An assertion's failure, so that pytest reports the test as failed rather than broken. Raised by :func:`assert_cases`: the message has one line per failing case; ``failures`` holds them."""

    def __init__(self, arm: str, total: int, failures: Sequence[CaseFailure]) -> None:
        self.arm, self.total, self.failures = arm, total, list(failures)
        lines = [f"{len(failures)} of {total} cases failed on arm {arm}:", *(f.line() for f in failures)]
        super().__init__("\n".join(lines))


def explain(case: Case, output: Output, scores: Sequence[Score]) -> CaseFailure | None:
    """Why ``output`` fails ``case`` (None when it passes), in the words of the scorer that decided it."""
    label = failure_label(scores)
    if label == "correct":
        return None
    if output.error:
        return CaseFailure(case.id, label, "arm", _one_line(output.error))
    by = {s.scorer: s for s in scores}
    blamed = next((by[name] for name in _BLAMED[label] if name in by), None)
    if blamed is None:
        return CaseFailure(case.id, label, "scorers", "nothing could score this case; add answers or a format")
    return CaseFailure(case.id, label, blamed.scorer, _one_line(blamed.reason))


def assert_cases(
    cases: Cases, *, arm: str = "rag", project: Project | str | Path | None = None, scorers: Sequence[str] | None = None
) -> list[Output]:
    """Answer ``cases`` with ``arm`` and score them with ``scorers`` (default: the project's ``[eval] scorers``);
    raise :class:`CasesFailed` listing every case that is not ``correct``, else return the outputs.

    ``project``: a :class:`~ragtune.project.Project`, its folder, or None for the one ``ragtune`` itself would
    use (``RAGTUNE_PROJECT``, else the folder holding ragtune.toml above the working directory).
    """
    __tracebackhide__ = True  # pytest: the failure points at the test, not into this function
    from ragtune.harness.arms import make_arm
    from ragtune.harness.runs import scoring_context
    from ragtune.harness.scorers.base import score_output
    from ragtune.project import Project

    own = not isinstance(project, Project)  # a project this call opens, it closes
    opened = project if isinstance(project, Project) else Project.open(Path(project) if project else None)
    try:
        loaded = _cases(cases)
        names = list(scorers if scorers is not None else opened.config.eval.scorers)
        answering = make_arm(arm, opened)
        ctx = scoring_context(opened, names)
        size = opened.config.eval.batch_size
        outputs = [o for start in range(0, len(loaded), size) for o in answering.answer(loaded[start : start + size])]
        failures = [
            failure
            for case, output in zip(loaded, outputs, strict=True)
            if (failure := explain(case, output, score_output(case, output, ctx, names))) is not None
        ]
    finally:
        if own:
            opened.close()
    if failures:
        raise CasesFailed(arm, len(loaded), failures)
    return outputs


def _cases(cases: Cases) -> list[Case]:
    if isinstance(cases, str | Path):
        return list(load_cases(Path(cases)))
    return [c if isinstance(c, Case) else Case.model_validate(dict(c)) for c in cases]


def _one_line(text: str) -> str:
    return " ".join(text.split())
