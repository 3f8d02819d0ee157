"""Synthetic runs written into a real project store: real cases, real scorers, stored by runs.py's own functions."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragtune.corpus.ingest import ingest_paths
from ragtune.corpus.loaders import Defaults
from ragtune.corpus.model import parse_when
from ragtune.harness.cases import load_cases
from ragtune.harness.model import Output
from ragtune.harness.runs import begin_run, store_result, variant_scores
from ragtune.harness.scorers import ScoringContext, score_output
from ragtune.project import Project
from ragtune.store.db import utcnow
from tests.conftest import write

AS_OF = "2026-02-01"

CORPUS: list[tuple[str, str, dict[str, Any]]] = [
    ("pricing.md", "# Pricing\n\nThe Pro plan's API rate limit is 600 requests per minute.\n", {"owner": "docs-team"}),
    ("support.md", "# Support\n\nSupport answers tickets from 8:00 to 18:00 CET on weekdays.\n",
     {"owner": "support-team", "may_train": False}),
    ("seats.md", "# Seats\n\nThe Team plan allows 20 seats.\n", {"owner": "docs-team"}),
    ("refunds.md", "# Refunds\n\nRefunds are granted within 14 days of purchase.\n", {}),
    ("trial.md", "# Trial\n\nThe free trial lasts 30 days.\n", {"owner": "docs-team"}),
    ("uptime.md", "# Uptime\n\nThe Enterprise plan guarantees 99.9% uptime.\n", {"owner": "docs-team"}),
    ("noise.md", "# Blog\n\nOur team loves coffee and hiking trips.\n", {"owner": "docs-team"}),
]  # fmt: skip


def build_corpus(project: Project, docs: Path) -> None:
    """Week 1 on 2026-01-01; on 2026-01-15 the Pro rate limit changes to 900 (pricing.md@2)."""
    for name, text, rights in CORPUS:
        write(docs / name, text)
        ingest_paths(project, [docs / name], Defaults(source="docs", license="CC-BY-4.0",
                                                      valid_from=parse_when("2026-01-01"), **rights))  # fmt: skip
    write(docs / "pricing.md", CORPUS[0][1].replace("600", "900"))
    ingest_paths(project, [docs / "pricing.md"], Defaults(source="docs", license="CC-BY-4.0", owner="docs-team",
                                                          valid_from=parse_when("2026-01-15")))  # fmt: skip


def chunk(doc: str, version: int = 1) -> str:
    return f"docs/{doc}@{version}#0"


def log(*entries: tuple[str, str] | tuple[str, str, str]) -> list[dict[str, Any]]:
    """A chunk log: (chunk_id, 'used') or (chunk_id, 'dropped', reason), ranked in the order given."""
    out = []
    for rank, entry in enumerate(entries, start=1):
        chunk_id, status = entry[0], entry[1]
        doc_id, _, rest = chunk_id.partition("@")
        item: dict[str, Any] = {"rank": rank, "chunk_id": chunk_id, "doc_id": doc_id, "version": int(rest.split("#")[0]),
                                "score": 1.0 / rank, "status": status}  # fmt: skip
        if status == "dropped":
            item |= {"reason": entry[2], "detail": "needs 120 tokens, 3 of 900 left" if entry[2] == "budget" else "overlaps"}  # fmt: skip
        out.append(item)
    return out


@dataclass
class Ans:
    """One arm's output for one case."""

    answer: str = "I don't know."
    chunks: list[dict[str, Any]] = field(default_factory=list)
    variants: dict[str, str] = field(default_factory=dict)
    latency_ms: float = 100.0
    cost: float = 0.0
    error: str | None = None


def write_run(
    project: Project, folder: Path, name: str, arms: list[str], specs: list[tuple[dict[str, Any], dict[str, Ans]]]
) -> Path:
    """Write the cases to a file and store one result per (arm, case), scored by the real scorers."""
    path = write(folder / f"{name}.jsonl", "".join(json.dumps(c) + "\n" for c, _ in specs))
    cases = load_cases(path)
    store = project.store
    begin_run(store, name, path, cases, arms, {})
    ctx = ScoringContext(store=store)
    scorers = project.config.eval.scorers
    for arm in arms:
        for position, (case, (_, outputs)) in enumerate(zip(cases, specs, strict=True)):
            a = outputs.get(arm, Ans())
            answer = next(iter(a.variants.values())) if a.variants and arm == "prompts" else a.answer
            out = Output(case.id, arm, "" if a.error else answer, chunks=a.chunks, variants=a.variants,
                         latency_ms=a.latency_ms, tokens_in=10, tokens_out=5, error=a.error)  # fmt: skip
            scores = score_output(case, out, ctx, scorers) + variant_scores(case, out, ctx, scorers)
            store_result(store, name, position, out, scores, 0.01, a.cost, request_ms=a.latency_ms)
    with store.transaction() as db:
        db.execute("UPDATE runs SET finished_at = ? WHERE run = ?", (utcnow(precise=True), name))
    return path


def case(
    cid: str, question: str, answers: list[str], evidence: list[str] | None = None, **extra: Any
) -> dict[str, Any]:
    return {"id": cid, "question": question, "answers": answers, "evidence": evidence or [], "as_of": AS_OF, **extra}


STYLED = {"plain": "The free trial lasts 30 days in total.", "concise": "It lasts 30 days in total, as a rule.",
          "fewshot": "The free trial of the product lasts 30 days."}  # fmt: skip

MAIN: list[tuple[dict[str, Any], dict[str, Ans]]] = [
    (case("stale_model", "What is the Pro plan's API rate limit?", ["900 requests per minute"], ["docs/pricing.md"],
          stale_answers=["600 requests per minute"]),
     {"rag": Ans("The limit is 600 requests per minute.", log((chunk("pricing.md", 2), "used"))),
      "oracle": Ans("It is 900 requests per minute.")}),
    (case("stale_index", "How many seats does the Team plan allow?", ["25 seats"], ["docs/seats.md"],
          stale_answers=["20 seats"]),
     {"rag": Ans("The Team plan allows 20 seats.", log((chunk("seats.md"), "used")))}),
    (case("gap", "What credit does a missed SLA give?", ["10% credit"], ["docs/credits.md"]),
     {"rag": Ans("I don't know.", log((chunk("noise.md"), "used")))}),
    (case("miss", "How long is the free trial?", ["30 days"], ["docs/trial.md"]),
     {"rag": Ans("14 days.", log((chunk("noise.md"), "used"), (chunk("uptime.md"), "used"))),
      "oracle": Ans("The trial lasts 30 days.")}),
    (case("ranking", "Within how many days are refunds granted?", ["14 days"], ["docs/refunds.md"]),
     {"rag": Ans("Within 30 days.", log((chunk("noise.md"), "used"), (chunk("refunds.md"), "dropped", "duplicate"))),
      "oracle": Ans("Within 14 days.")}),
    (case("budget", "What uptime does the Enterprise plan guarantee?", ["99.9%"], ["docs/uptime.md"]),
     {"rag": Ans("It guarantees 95% uptime.", log((chunk("noise.md"), "used"), (chunk("uptime.md"), "dropped", "budget"))),
      "oracle": Ans("99.9% uptime.")}),
    (case("distraction", "When does support answer tickets?", ["8:00 to 18:00"], ["docs/support.md"]),
     {"rag": Ans("Support answers around the clock.", log((chunk("noise.md"), "used"), (chunk("support.md"), "used"))),
      "oracle": Ans("From 8:00 to 18:00 CET.")}),
    (case("grounding", "For how many days can the product be tried for free?", ["30 days"], ["docs/trial.md"]),
     {"rag": Ans("A week.", log((chunk("trial.md"), "used"))), "oracle": Ans("It lasts a week.")}),
    (case("prompt_fix", "What is the Pro plan's rate limit per minute? Digits only.", ["900"], ["docs/pricing.md"],
          format={"regex": "^[0-9]+$"}),
     {"rag": Ans("900 requests per minute.", log((chunk("pricing.md", 2), "used"))),
      "prompts": Ans(variants={"plain": "The limit is 900.", "concise": "900", "fewshot": "900 a minute."})}),
    (case("needs_training", "Does the Pro plan allow 900 requests per minute? Answer yes or no.", ["yes"],
          ["docs/pricing.md"], format={"labels": ["yes", "no"]}),
     {"rag": Ans("Yes, it does.", log((chunk("pricing.md", 2), "used"))),
      "prompts": Ans(variants={"plain": "Yes, it does.", "concise": "Yes.", "fewshot": "yes, 900"})}),
    (case("style", "In at most three words: how long is the free trial?", ["30 days"], ["docs/trial.md"],
          format={"max_words": 3}),
     {"rag": Ans("The free trial lasts 30 days.", log((chunk("trial.md"), "used"))), "prompts": Ans(variants=STYLED)}),
    (case("contradiction", "What is the capital of France?", ["Paris"], ["docs/noise.md"]),
     {"rag": Ans("London.", log((chunk("noise.md"), "used"))), "oracle": Ans("Rome."), "closed-book": Ans("Paris.")}),
    (case("error", "How long is the trial period?", ["30 days"], ["docs/trial.md"]),
     {"rag": Ans(error="the endpoint returned 500")}),
    (case("no_evidence", "Who founded the company?", ["Ada"]), {"rag": Ans("Bob founded it.")}),
    (case("ok", "How long does the free trial last?", ["30 days"], ["docs/trial.md"]),
     {"rag": Ans("30 days.", log((chunk("trial.md"), "used")))}),
    (case("op_latency", "How long is the trial, in days?", ["30 days"], ["docs/trial.md"]),
     {"rag": Ans("30 days.", log((chunk("trial.md"), "used")), latency_ms=5000.0)}),
    (case("op_cost", "Trial length?", ["30 days"], ["docs/trial.md"]),
     {"rag": Ans("30 days.", log((chunk("trial.md"), "used")), cost=0.05)}),
]  # fmt: skip
"""One case per row of DESIGN.md's table (plus unclear ones), over closed-book, oracle, rag and prompts."""

EXPECTED = {
    "stale_model": ("knowledge", "stale"),
    "stale_index": ("retrieval", "stale_index"),
    "gap": ("knowledge", "gap"),
    "miss": ("retrieval", "miss"),
    "ranking": ("retrieval", "ranking"),
    "budget": ("retrieval", "budget"),
    "distraction": ("generation", "distraction"),
    "grounding": ("generation", "grounding"),
    "prompt_fix": ("behaviour", "prompt_fixable"),
    "needs_training": ("behaviour", "needs_training"),
    "style": ("behaviour", "style"),
    "contradiction": ("unclear", "contradiction"),
    "error": ("unclear", "arm_error"),
    "no_evidence": ("unclear", "no_evidence"),
    "op_latency": ("operations", "latency"),
    "op_cost": ("operations", "cost"),
}

ARMS = ["closed-book", "oracle", "rag", "prompts"]


def set_targets(project: Project, p95_ms: float = 1000.0, cost_per_1k_usd: float = 1.0) -> None:
    """In ragtune.toml (for the CLI) and in the open project's config."""
    path = project.root / "ragtune.toml"
    text = path.read_text(encoding="utf-8")
    text = text.replace("p95_ms = 0.0", f"p95_ms = {p95_ms}").replace("cost_per_1k_usd = 0.0", f"cost_per_1k_usd = {cost_per_1k_usd}")  # fmt: skip
    path.write_text(text, encoding="utf-8")
    project.config.targets.p95_ms = p95_ms
    project.config.targets.cost_per_1k_usd = cost_per_1k_usd
