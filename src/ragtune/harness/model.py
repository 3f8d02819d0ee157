"""A case: one question asked of every arm, with what counts as right, what used to be right, and the format the
answer must follow. Case files are JSONL, one case a line (docs/cases.md, schema in docs/case.schema.json)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IfevalSpec(_Strict):
    """IFEval verifiable instructions, as in google-research's instruction_following_eval input_data.jsonl."""

    instruction_id_list: list[str] = Field(min_length=1, description="Instruction ids, e.g. 'punctuation:no_comma'.")
    kwargs: list[dict[str, Any]] = Field(description="One argument mapping per instruction, in the same order.")

    @model_validator(mode="after")
    def _aligned(self) -> IfevalSpec:
        if len(self.kwargs) != len(self.instruction_id_list):
            raise ValueError(
                f"kwargs has {len(self.kwargs)} entries but instruction_id_list has {len(self.instruction_id_list)}"
            )
        return self


class FormatSpec(_Strict):
    """Exactly one rule the answer's form must follow."""

    json_schema: dict[str, Any] | None = Field(None, description="The answer must be JSON valid against this schema.")
    regex: str | None = Field(None, description="The whole answer must match this regular expression.")
    labels: list[str] | None = Field(None, min_length=1, description="The answer must be exactly one of these labels.")
    max_words: int | None = Field(None, ge=1, description="The answer may have at most this many words.")
    ifeval: IfevalSpec | None = Field(None, description="IFEval instructions the answer must follow.")

    @model_validator(mode="after")
    def _exactly_one(self) -> FormatSpec:
        given = [name for name in type(self).model_fields if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(
                f"give exactly one of json_schema, regex, labels, max_words, ifeval (got {', '.join(given) or 'none'})"
            )
        return self

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression ({exc})") from None
        return value

    @property
    def kind(self) -> str:
        return next(name for name in type(self).model_fields if getattr(self, name) is not None)


class Case(_Strict):
    """One evaluation case."""

    id: str = Field(min_length=1, description="Unique within the file.")
    question: str = Field(min_length=1, description="What the asker types.")
    answers: list[str] = Field(
        default_factory=list, description="Acceptable answers (optional when only format matters)."
    )
    stale_answers: list[str] = Field(default_factory=list, description="Values that used to be right.")
    evidence: list[str] = Field(default_factory=list, description="Gold document ids.")
    evidence_texts: list[str] = Field(
        default_factory=list,
        description="Gold passages as text, carried in the case file (a RAGAS test set's reference_contexts); the "
        "oracle arm gives them to the model as they are.",
    )
    as_of: date | None = Field(None, description="The date the question is asked at (YYYY-MM-DD).")
    format: FormatSpec | None = Field(None, description="The rule the answer's form must follow.")
    groups: list[str] = Field(default_factory=list, description="The asker's access groups.")
    tags: list[str] = Field(default_factory=list, description="Free labels for slicing results.")

    @field_validator("id", "question")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value

    @field_validator("evidence_texts")
    @classmethod
    def _passages_not_blank(cls, value: list[str]) -> list[str]:
        if any(not text.strip() for text in value):
            raise ValueError("a passage must not be blank")
        return value

    @model_validator(mode="after")
    def _something_to_score(self) -> Case:
        if not self.answers and self.format is None and not self.evidence:
            raise ValueError("a case needs answers, a format or evidence; otherwise nothing can be scored")
        return self


@dataclass
class Output:
    """What one arm produced for one case: the answer, how it was grounded, and what it cost.

    ``chunks`` is the trace's chunk log (rank, doc_id, version, chunk_id, score, status used/dropped, reason);
    ``variants`` holds every prompt variant's answer for the ``prompts`` arm (variant name -> answer).
    """

    case_id: str
    arm: str
    answer: str
    citations: list[dict[str, Any]] = field(default_factory=list)
    chunks: list[dict[str, Any]] = field(default_factory=list)
    variants: dict[str, str] = field(default_factory=dict)
    latency_ms: float = 0.0
    """What the arm measured for this answer; the harness stores its own figures (the batch share, and the request
    time of a case timed alone)."""
    tokens_in: int = 0
    tokens_out: int = 0
    trace_id: str | None = None
    error: str | None = None
    cached: bool = False
    """The answer came from the generation cache (harness/cache.py): its latency and cost were not measured."""


ScoreStatus = Literal["scored", "unscored"]


@dataclass
class Score:
    """One scorer's verdict on one output: a value in [0, 1] and a reason, or ``unscored`` and why (never NaN)."""

    scorer: str
    status: ScoreStatus
    value: float | None
    passed: bool | None
    reason: str
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def ok(cls, scorer: str, value: float, reason: str, *, threshold: float = 1.0, **details: Any) -> Score:
        return cls(scorer, "scored", float(value), value >= threshold, reason, details)

    @classmethod
    def unscored(cls, scorer: str, reason: str, **details: Any) -> Score:
        return cls(scorer, "unscored", None, None, reason, details)
