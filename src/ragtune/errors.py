"""One exception tree for ragtune.

Every error a user can cause derives from :class:`RagtuneError`. The CLI turns any of them into one line on
stderr and an exit code; ``RAGTUNE_DEBUG=1`` shows the traceback instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class CaseProblem:
    """One problem on one line of an input file (a case file, a chat JSONL); ``str()`` is what the CLI prints.

    It lives here, with the errors that carry it, so that errors.py imports nothing of ragtune."""

    path: str
    line: int
    field: str  # dotted path such as "format.regex" or "answers[2]"; "" when the problem is the line as a whole
    problem: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: " + (f"{self.field}: " if self.field else "") + self.problem

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class RagtuneError(Exception):
    """Base of every error ragtune raises on purpose."""

    exit_code: int = 1


class ConfigError(RagtuneError):
    """ragtune.toml (or an option) is missing, malformed or holds a bad value."""

    exit_code = 2


class ProjectNotFoundError(ConfigError):
    """No ragtune project above the current folder."""


class StoreError(RagtuneError):
    """The SQLite store or an index file is unusable."""


class CorpusError(RagtuneError):
    """A document, its metadata or its rights are invalid."""


class IngestError(CorpusError):
    """One input (a file, or one JSONL line) could not be ingested.

    ``where`` is ``path`` or ``path:line``; ``str(err)`` is the one line shown to the user.
    """

    def __init__(self, where: str, problem: str, fix: str, path: str | None = None) -> None:
        self.where = where
        self.path = path or where
        self.problem = problem
        self.fix = fix
        super().__init__(f"{where}: {problem}; {fix}")


class RetrievalError(RagtuneError):
    """A search could not run (bad filter, empty index, unknown stage)."""


class ModelError(RagtuneError):
    """A model could not be found, loaded or run."""


class HarnessError(RagtuneError):
    """A case file, run or comparison is invalid.

    ``str(err)`` is a one-line summary; ``problems`` lists every bad line of a case file (line, field, problem), so
    the CLI can print one line each.
    """

    def __init__(self, message: str, problems: Sequence[CaseProblem] = ()) -> None:
        self.problems: list[CaseProblem] = list(problems)
        super().__init__(message)


class TuningError(RagtuneError):
    """Training data, training or the model registry failed.

    ``problems`` lists every bad line of an input file, as for :class:`HarnessError`.
    """

    def __init__(self, message: str, problems: Sequence[CaseProblem] = ()) -> None:
        self.problems: list[CaseProblem] = list(problems)
        super().__init__(message)


class ModelAccessError(TuningError):
    """A model version was trained on documents the caller may not read; worded as an unknown version, so that a
    caller cannot learn it exists."""


class BenchmarkError(RagtuneError):
    """A benchmark's input data is missing or malformed."""


__all__ = [
    "BenchmarkError",
    "ConfigError",
    "CorpusError",
    "HarnessError",
    "IngestError",
    "ModelAccessError",
    "ModelError",
    "ProjectNotFoundError",
    "RagtuneError",
    "RetrievalError",
    "StoreError",
    "TuningError",
]
