"""Diagnosis by intervention: why each failed case failed, what to do next, and the recommendation for the run
(docs/diagnosis.md)::

    from ragtune.diagnosis import diagnose_run
    diagnosis = diagnose_run(project, "baseline")
    print(diagnosis.recommendation.verdict, diagnosis.to_json()["cases"][:3])
"""

from __future__ import annotations

from ragtune.diagnosis.attribute import Attribution, choose_primary
from ragtune.diagnosis.diagnose import Diagnosis, diagnose_run
from ragtune.diagnosis.readiness import READINESS_CHECKS, Blocker, ReadinessContext
from ragtune.diagnosis.recommend import Recommendation
from ragtune.diagnosis.taxonomy import CAUSES, FAMILIES, UNCLEAR, UNCLEAR_REASONS, VERDICTS

__all__ = [
    "CAUSES",
    "FAMILIES",
    "READINESS_CHECKS",
    "UNCLEAR",
    "UNCLEAR_REASONS",
    "VERDICTS",
    "Attribution",
    "Blocker",
    "Diagnosis",
    "ReadinessContext",
    "Recommendation",
    "choose_primary",
    "diagnose_run",
]
