"""Scorers: each turns one arm's output for one case into a value and a reason (docs/scorers.md).

Importing this package registers the built-ins in :data:`SCORERS`, through the same :func:`register_scorer` a
user's extension calls; heavy dependencies (jsonschema, if-verifiable) load when a scorer first needs them.

>>> from ragtune.harness.scorers import ScoringContext, score_output
>>> [s.scorer for s in score_output(case, output, ScoringContext())]
"""

from __future__ import annotations

import importlib

from ragtune.harness.scorers.base import (
    SCORERS,
    Scorer,
    ScoringContext,
    ScoringSettings,
    arm_failed,
    register_scorer,
    score_output,
)

BUILTINS = ("content", "judge", "staleness", "citations", "formats", "retrieval")
"""The built-in scorer modules, imported (so registered) in this order: the order of score_output's results."""

for _module in BUILTINS:
    importlib.import_module(f"{__name__}.{_module}")

__all__ = [
    "SCORERS",
    "Scorer",
    "ScoringContext",
    "ScoringSettings",
    "arm_failed",
    "register_scorer",
    "score_output",
]
