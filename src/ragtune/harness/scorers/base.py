"""The scorer seam: settings, the context scorers read, the registry and the function that runs them.

A scorer is a callable ``(case, output, ctx) -> Score | None``: a :class:`Score` (scored, or unscored with the
reason), or ``None`` when it does not apply to the case (no format rule, no acceptable answers). Built-in scorers
register themselves with :func:`register_scorer`, exactly as a user's extension would.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from ragtune.answer.citations import ATTRIBUTION_MIN_SUPPORT
from ragtune.errors import HarnessError
from ragtune.harness.model import Case, Output, Score

if TYPE_CHECKING:
    from ragtune.generation.base import Generator
    from ragtune.index.analyzer import Analyzer
    from ragtune.index.embedder import Embedder
    from ragtune.store.db import Store


class ScoringSettings(BaseModel):
    """Thresholds and modes of the built-in scorers (each field's description is its documentation).

    >>> ScoringSettings(numeric_tolerance=0.05).f1_threshold
    0.5
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    numeric_tolerance: float = Field(
        0.01, ge=0, le=1, description="content.numeric: largest relative difference from an expected number."
    )
    f1_threshold: float = Field(0.5, ge=0, le=1, description="content.f1 passes at or above this token F1.")
    similarity_threshold: float = Field(
        0.7, ge=0, le=1, description="content.similarity passes at or above this cosine similarity."
    )
    citation_min_support: float = Field(
        ATTRIBUTION_MIN_SUPPORT,
        gt=0,
        le=1,
        description="citations.support: share of a cited sentence's content terms the chunk must contain "
        "(the same share ragtune's citation attribution uses).",
    )
    ifeval_mode: Literal["strict", "loose"] = Field(
        "strict", description="format (IFEval rules): 'strict' as IFEval's strict accuracy, or 'loose'."
    )
    punkt_fallback: bool = Field(
        True,
        description="format (IFEval rules): when NLTK's punkt_tab model is not installed, count sentences with "
        "NLTK's untrained Punkt tokenizer (noted in the score) instead of leaving those instructions unchecked.",
    )
    judge_max_new_tokens: int = Field(128, ge=8, description="content.judge: most tokens the judge may write.")


@dataclass
class ScoringContext:
    """What scorers may need beyond the case and the output; every part is optional.

    >>> ctx = ScoringContext(store=project.store, embedder=project.embedder)
    >>> score_output(case, output, ctx)
    """

    store: Store | None = None
    embedder: Embedder | None = None
    judge: Generator | None = None
    settings: ScoringSettings = field(default_factory=ScoringSettings)
    _chunks: dict[str, tuple[str, str] | None] = field(default_factory=dict, init=False, repr=False)

    @cached_property
    def analyzer(self) -> Analyzer:
        """The index's keyword analyzer, so that 'content terms' mean the same here as in search."""
        from ragtune.index.analyzer import Analyzer

        return Analyzer()

    def chunk_text(self, chunk_id: str) -> tuple[str, str] | None:
        """``(heading, text)`` of a chunk in the store, or None when there is no store or no such chunk."""
        if self.store is None:
            return None
        if chunk_id not in self._chunks:
            row = self.store.db.execute(
                "SELECT c.heading, substr(v.text, c.start + 1, c.end - c.start) FROM chunks c "
                "JOIN versions v ON v.doc_id = c.doc_id AND v.version = c.version WHERE c.chunk_id = ?",
                (chunk_id,),
            ).fetchone()
            self._chunks[chunk_id] = (str(row[0]), str(row[1])) if row else None
        return self._chunks[chunk_id]

    def document_exists(self, doc_id: str) -> bool | None:
        """Whether the current corpus holds the document (active, with a version); None without a store."""
        if self.store is None:
            return None
        row = self.store.db.execute(
            "SELECT 1 FROM documents d WHERE d.doc_id = ? AND d.status = 'active' "
            "AND EXISTS (SELECT 1 FROM versions v WHERE v.doc_id = d.doc_id)",
            (doc_id,),
        ).fetchone()
        return row is not None


Scorer = Callable[[Case, Output, ScoringContext], Score | None]
"""``(case, output, ctx) -> Score | None``; None means the scorer does not apply to this case."""

SCORERS: dict[str, Scorer] = {}
"""Every registered scorer by name, in registration order (built-ins first)."""


def register_scorer(name: str, *, replace: bool = False) -> Callable[[Scorer], Scorer]:
    """Decorator: make a scorer available under ``name``; replacing one needs ``replace=True``."""

    def deco(scorer: Scorer) -> Scorer:
        if name in SCORERS and not replace and SCORERS[name] is not scorer:
            raise HarnessError(f"a scorer named {name!r} is already registered; pass replace=True to override it")
        SCORERS[name] = scorer
        return scorer

    return deco


def arm_failed(name: str, output: Output) -> Score | None:
    """Unscored when the arm raised instead of answering: an error is not a wrong answer."""
    if output.error:
        return Score.unscored(name, f"the arm failed, so there is no answer to score: {output.error}")
    return None


def _checked(name: str, result: Score | None) -> Score | None:
    """Hold every score to the contract (a finite value in [0, 1], or unscored), whoever wrote the scorer."""
    if result is None or result.status == "unscored":
        return result
    value = result.value
    if value is None or not math.isfinite(value) or not 0.0 <= value <= 1.0:
        return Score.unscored(name, f"the scorer returned {value!r}, not a value in [0, 1]; it is not counted")
    return result


def score_output(
    case: Case, output: Output, ctx: ScoringContext | None = None, names: Iterable[str] | None = None
) -> list[Score]:
    """Run the named scorers (all registered ones by default) on one output; scorers that do not apply are left out.

    A scorer that raises yields an unscored score naming the exception, so one broken extension cannot sink a run.
    """
    ctx = ctx or ScoringContext()
    wanted = list(SCORERS) if names is None else list(names)
    unknown = [n for n in wanted if n not in SCORERS]
    if unknown:
        raise HarnessError(f"unknown scorer {', '.join(map(repr, unknown))}; known: {', '.join(SCORERS)}")
    scores = []
    for name in wanted:
        try:
            result = _checked(name, SCORERS[name](case, output, ctx))
        except Exception as exc:  # a third-party scorer's bug must not lose the other scores of the case
            result = Score.unscored(name, f"the scorer raised {type(exc).__name__}: {exc}")
        if result is not None:
            scores.append(result)
    return scores
