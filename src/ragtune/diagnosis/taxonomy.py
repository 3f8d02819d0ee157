"""The failure taxonomy: stable, machine-readable names of families, causes, verdicts and unclear reasons.

These names are part of ragtune's output contract (``ragtune diagnose --json``, the report): add to them, never
rename. Each cause carries the rule that assigns it and the stage it blames, which docs/diagnosis.md tabulates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Family = Literal["knowledge", "retrieval", "generation", "behaviour", "operations"]
FAMILIES: tuple[Family, ...] = ("knowledge", "retrieval", "generation", "behaviour", "operations")

UNCLEAR = "unclear"
"""The family of a failure the arms cannot attribute; its ``cause`` is one of :data:`UNCLEAR_REASONS`."""

UnclearReason = Literal["contradiction", "missing_arm", "arm_error", "no_evidence"]
UNCLEAR_REASONS: dict[UnclearReason, str] = {
    "contradiction": "the arms contradict each other (e.g. the oracle is wrong but closed-book is right)",
    "missing_arm": "the arm that would separate the causes is not in the run, and no other fact decides",
    "arm_error": "the primary arm failed to answer (an error, or nothing could be scored)",
    "no_evidence": "the case names no gold evidence and no arm answered it, so nothing locates the failure",
}

Side = Literal["facts", "training", "prompt", "operations"]
"""What kind of change fixes a cause: the verdict weighs the sides of the attributed failures."""

Verdict = Literal["RAG", "FINE-TUNE", "HYBRID", "PROMPT-FIX", "HARNESS-FIRST", "NO-CHANGE"]
VERDICTS: tuple[Verdict, ...] = ("RAG", "FINE-TUNE", "HYBRID", "PROMPT-FIX", "HARNESS-FIRST", "NO-CHANGE")

SIDE_VERDICT: dict[Side, Verdict] = {"facts": "RAG", "training": "FINE-TUNE", "prompt": "PROMPT-FIX"}


@dataclass(frozen=True)
class Cause:
    """One cause: its family, the side that fixes it, the stage that failed and the rule that assigns it."""

    family: Family
    name: str
    side: Side
    what: str
    rule: str


CAUSES: dict[tuple[str, str], Cause] = {
    (c.family, c.name): c
    for c in [
        Cause("knowledge", "missing", "facts",
              "knowledge: the model alone does not know the fact",
              "the model-alone arm is wrong; the oracle (or rag) arm is right; the gold evidence is in the corpus"),
        Cause("knowledge", "stale", "facts",
              "knowledge: the model gives a superseded value from its own memory",
              "the answer gives a stale value (staleness scorer) that no chunk of its context states"),
        Cause("knowledge", "gap", "facts",
              "corpus: no current document holds the answer",
              "no gold document is in the current corpus, or none of their current text states an acceptable "
              "answer while the oracle is wrong too"),
        Cause("retrieval", "miss", "facts",
              "retrieval: the gold passage is not among the retrieved chunks",
              "oracle right (or absent), the primary arm wrong, no chunk of a gold document retrieved"),
        Cause("retrieval", "ranking", "facts",
              "retrieval: the gold passage was retrieved but ranked out of the context",
              "a gold chunk was retrieved but dropped before the context for a reason other than the budget "
              "(a near-duplicate of a better-ranked chunk)"),
        Cause("retrieval", "budget", "facts",
              "context assembly: the gold passage was retrieved but cut by the token budget",
              "a gold chunk was retrieved and dropped because the context budget was full"),
        Cause("retrieval", "stale_index", "facts",
              "index: the context held an out-of-date version of the fact",
              "the answer gives a stale value that a chunk in its context states (the corpus was not re-ingested, "
              "or a superseded version was let in)"),
        Cause("generation", "distraction", "facts",
              "generation: the gold passage was in the context, but the answer is wrong",
              "a gold chunk reached the context; the oracle is right (or absent); the primary arm is wrong"),
        Cause("generation", "grounding", "training",
              "generation: the model answers wrong even when given the gold evidence",
              "the oracle is wrong too (and closed-book is not right), the gold text states the answer"),
        Cause("behaviour", "prompt_fixable", "prompt",
              "behaviour: right content, wrong format; a prompt variant fixes it",
              "content right, format rule broken; some variant of the prompts arm follows the rule"),
        Cause("behaviour", "needs_training", "training",
              "behaviour: right content, wrong format under every prompt variant",
              "content right, a structural format rule (JSON schema, regex, labels) broken by every prompt variant"),
        Cause("behaviour", "style", "training",
              "behaviour: right content, breaks a style rule under every prompt variant",
              "as needs_training, for a style rule (max_words, IFEval instructions, or a case tagged 'style...')"),
        Cause("operations", "latency", "operations",
              "operations: right answer, slower than the latency target",
              "the arm's p95 latency misses [targets] p95_ms and this answer took longer than it"),
        Cause("operations", "cost", "operations",
              "operations: right answer, dearer than the cost target",
              "the arm's cost per 1k requests misses [targets] cost_per_1k_usd and this answer cost more than it"),
    ]
}  # fmt: skip
"""Every cause by (family, name)."""


def cause(family: str, name: str) -> Cause:
    return CAUSES[(family, name)]


def causes_of(family: Family) -> list[str]:
    return [c.name for c in CAUSES.values() if c.family == family]


def taxonomy_markdown() -> str:
    """The taxonomy table of docs/diagnosis.md (tests/diagnosis/test_docs.py checks that the doc holds it)."""
    lines = ["| family | cause | side (verdict) | what failed | rule |", "|---|---|---|---|---|"]
    for c in CAUSES.values():
        verdict = SIDE_VERDICT.get(c.side, "SLA check")
        lines.append(f"| `{c.family}` | `{c.name}` | {c.side} ({verdict}) | {c.what} | {c.rule} |")
    for reason, text in UNCLEAR_REASONS.items():
        lines.append(f"| `{UNCLEAR}` | `{reason}` | none | unclear | {text} |")
    return "\n".join(lines)
