"""Where training examples come from: harness cases, stored traces, and chat-messages JSONL files.

Each reader yields :class:`Candidate` examples with their origin and the documents they derive from; screening
(rights, personal data, duplicates, leakage) happens in :mod:`ragtune.tuning.data`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails

from ragtune.corpus.loaders import parse_json_line
from ragtune.errors import CaseProblem, HarnessError, TuningError
from ragtune.harness.cases import explain_error, iter_lines, load_cases
from ragtune.store.db import Store
from ragtune.traces.store import answered_traces

Messages = list[dict[str, str]]


@dataclass(frozen=True)
class DocRef:
    """A document an example derives from; ``version`` None means "the version valid at ``as_of``, else the
    latest"."""

    doc_id: str
    version: int | None = None
    as_of: str | None = None


@dataclass
class Candidate:
    """An example before screening."""

    messages: Messages
    origin: dict[str, Any]
    docs: list[DocRef] = field(default_factory=list)


@dataclass
class Skipped:
    """Inputs that could not become an example at all (not the same as an excluded example)."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, reason: str) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1


def from_cases(path: Path, skipped: Skipped) -> Iterator[Candidate]:
    """One example per case with an acceptable answer: the question, then the first answer."""
    for case in load_cases(path):
        if not case.answers:
            skipped.add("case_without_answer")
            continue
        as_of = case.as_of.isoformat() if case.as_of else None
        yield Candidate(
            messages=[{"role": "user", "content": case.question}, {"role": "assistant", "content": case.answers[0]}],
            origin={"kind": "case", "file": str(path), "case_id": case.id},
            docs=[DocRef(doc_id, None, as_of) for doc_id in dict.fromkeys(case.evidence)],
        )


# "[1]", "[2, 3]": citation markers point into a context the example does not carry, so they are taken out.
_CITATION = re.compile(r"\s*\[\d+(?:\s*,\s*\d+)*\]")


def from_traces(store: Store, skipped: Skipped) -> Iterator[Candidate]:
    """One example per stored answer that used document chunks: the question, then the answer without its
    citation markers; the lineage is the trace and the doc@version of every chunk in its context."""
    for row in answered_traces(store):
        used = [c for c in json.loads(row["chunks"]) if c.get("status") == "used"]
        if not used:
            skipped.add("trace_without_documents")
            continue
        answer = _CITATION.sub("", row["answer"]).strip()
        if not answer or not row["question"].strip():
            skipped.add("trace_without_answer")
            continue
        refs = dict.fromkeys(DocRef(str(c["doc_id"]), int(c["version"])) for c in used)
        yield Candidate(
            messages=[{"role": "user", "content": row["question"]}, {"role": "assistant", "content": answer}],
            origin={"kind": "trace", "trace_id": row["trace_id"]},
            docs=list(refs),
        )


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Literal["system", "user", "assistant"]
    content: str = Field(min_length=1)


class _Source(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    doc_id: str = Field(min_length=1)
    version: int | None = Field(None, ge=1)


class ChatLine(BaseModel):
    """One line of a chat-messages JSONL file (the OpenAI and TRL conversational format), with optional lineage."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    messages: list[_Message] = Field(min_length=2, description="The conversation, ending with the assistant's turn.")
    source: list[_Source] = Field(
        default_factory=list,
        description="The document(s) the example derives from: {doc_id, version?} or a list of them; their "
        "training rights are checked.",
    )
    origin: dict[str, Any] | None = Field(None, description="Free metadata kept with the example's lineage.")

    @field_validator("source", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, dict) else value

    @model_validator(mode="after")
    def _turns(self) -> ChatLine:
        roles = [m.role for m in self.messages]
        if "user" not in roles:
            raise ValueError("messages need a user turn")
        if roles[-1] != "assistant":
            raise ValueError("the last message must be the assistant's (the turn the model learns)")
        return self


def _explain(err: ErrorDetails) -> tuple[str, str]:
    """(field, problem) in the words of the chat-messages format."""
    loc = list(err["loc"])
    if err["type"] == "extra_forbidden":
        owner: type[BaseModel] = ChatLine
        if "messages" in loc:
            owner = _Message
        elif "source" in loc:
            owner = _Source
        field_path = explain_error({**err, "type": "missing", "loc": tuple(loc)})[0]
        return field_path, f"unknown field (allowed: {', '.join(owner.model_fields)})"
    if err["type"] == "literal_error":
        field_path = explain_error({**err, "loc": tuple(loc)})[0]
        return field_path, f"{json.dumps(err.get('input'))} is not allowed; use one of {err['ctx']['expected']}"
    return explain_error({**err, "loc": tuple(loc)})


def from_jsonl(path: Path) -> list[Candidate]:
    """Every line of a chat-messages JSONL file, or one :class:`TuningError` listing every bad line."""
    out: list[Candidate] = []
    problems: list[CaseProblem] = []
    where = str(path)
    try:
        for number, text in iter_lines(path):
            stripped = text.strip()
            if not stripped or stripped.startswith("#"):
                continue
            data, problem = parse_json_line(stripped)
            if problem is not None:
                problems.append(CaseProblem(where, number, "", problem))
                continue
            if not isinstance(data, dict):
                problems.append(CaseProblem(where, number, "", "a line must be a JSON object"))
                continue
            try:
                # strict: "2" is not a version number
                line = ChatLine.model_validate(data, strict=True)
            except ValidationError as exc:
                problems += [CaseProblem(where, number, *_explain(err)) for err in exc.errors(include_url=False)]
                continue
            origin: dict[str, Any] = {"kind": "jsonl", "file": where, "line": number}
            if line.origin:
                origin["meta"] = line.origin
            out.append(
                Candidate(
                    messages=[{"role": m.role, "content": m.content} for m in line.messages],
                    origin=origin,
                    docs=list(dict.fromkeys(DocRef(s.doc_id, s.version) for s in line.source)),
                )
            )
    except HarnessError as exc:  # the file itself is missing, a folder, or not UTF-8
        raise TuningError(str(exc)) from None
    if problems:
        bad = len({p.line for p in problems})
        lines = f"{bad} bad line; fix it" if bad == 1 else f"{bad} bad lines; fix them"
        raise TuningError(f"{path}: {lines} and run again (nothing was written)", problems)
    return out
