"""Attribution: each row of DESIGN.md's table, unclear cases and missing arms, on runs stored in a real SQLite file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ragtune.diagnosis import diagnose_run
from tests.diagnosis.builders import EXPECTED, MAIN, Ans, case, chunk, log, write_run


def test_every_row_of_the_table_is_attributed(world: Any) -> None:
    diagnosis = diagnose_run(world, "main")
    assert diagnosis.primary_arm == "rag"
    got = {a.case_id: (a.family, a.cause) for a in diagnosis.cases}
    assert got == EXPECTED  # 'ok' is right and within the targets: not a failure
    for a in diagnosis.cases:
        assert a.what and a.why and a.next and a.arm == "rag", a


def test_why_carries_the_evidence_and_next_the_command(world: Any) -> None:
    by = {a.case_id: a for a in diagnose_run(world, "main").cases}
    stale = by["stale_model"]
    assert "'600 requests per minute'" in stale.why and "docs/pricing.md@1" in stale.why
    assert stale.evidence["version"] == "docs/pricing.md@1"
    index = by["stale_index"]
    assert "docs/seats.md@1" in index.why and "20 seats" in index.why
    assert index.next.startswith("re-ingest the changed source: ragtune ingest") and "--source docs" in index.next
    miss = by["miss"]
    assert "docs/trial.md" in miss.why and chunk("noise.md") in miss.why and "ragtune search" in miss.next
    assert "budget" in by["budget"].why and "context_tokens" in by["budget"].next
    assert "duplicate" in by["ranking"].why and "rerank" in by["ranking"].next
    assert "gold rank 2" in by["distraction"].why
    assert "docs/trial.md@1" in by["grounding"].why and "ragtune tune data --from-cases" in by["grounding"].next
    assert "docs/credits.md" in by["gap"].why and "ragtune ingest" in by["gap"].next
    fix = by["prompt_fix"]
    assert fix.evidence["variant"] == "concise" and "'900 requests per minute.'" in fix.why and "regex" in fix.why
    assert "--arms prompts" in fix.next
    assert "every prompt variant" in by["needs_training"].why and "ragtune tune data" in by["needs_training"].next
    assert by["style"].evidence["rule"] == "max_words"
    assert "closed-book is right" in by["contradiction"].why
    assert "500" in by["error"].why
    assert "p95" in by["op_latency"].why and "$" in by["op_cost"].why
    assert all(by[c].confidence == "high" for c in ("miss", "ranking", "budget", "distraction", "prompt_fix"))
    assert all(a.confidence == "low" for a in by.values() if a.family == "unclear")


def test_model_alone_primary_gives_knowledge_missing(world: Any, tmp_path: Path) -> None:
    specs = [(case("m", "How long is the free trial?", ["30 days"], ["docs/trial.md"]),
              {"closed-book": Ans("Two weeks."), "oracle": Ans("30 days.")})]  # fmt: skip
    write_run(world, tmp_path, "alone", ["closed-book", "oracle"], specs)
    d = diagnose_run(world, "alone")
    assert d.primary_arm == "closed-book" and "no rag arm" in d.primary_reason
    [a] = d.cases
    assert (a.family, a.cause, a.confidence) == ("knowledge", "missing", "high")
    assert "--arms rag" in a.next


def test_a_missing_arm_lowers_confidence_and_says_so(world: Any, tmp_path: Path) -> None:
    keep = {"miss", "style"}
    write_run(world, tmp_path, "ragonly", ["rag"], [s for s in MAIN if s[0]["id"] in keep])
    by = {a.case_id: a for a in diagnose_run(world, "ragonly").cases}
    assert (by["miss"].family, by["miss"].cause, by["miss"].confidence) == ("retrieval", "miss", "low")
    assert "no scored oracle arm" in by["miss"].why
    assert (by["style"].family, by["style"].cause, by["style"].confidence) == ("behaviour", "style", "low")
    assert "no prompts arm" in by["style"].why and by["style"].next.startswith("first ragtune eval")


def test_superseded_version_in_context_is_a_stale_index(world: Any, tmp_path: Path) -> None:
    specs = [(case("old", "What is the Pro plan's API rate limit?", ["900 requests per minute"], ["docs/pricing.md"],
                   stale_answers=["600 requests per minute"]),
              {"rag": Ans("600 requests per minute.", log((chunk("pricing.md", 1), "used")))})]  # fmt: skip
    write_run(world, tmp_path, "old", ["rag"], specs)
    [a] = diagnose_run(world, "old").cases
    assert (a.family, a.cause) == ("retrieval", "stale_index") and a.evidence["superseded"] is True
    assert "superseded on 2026-01-15" in a.why and "validity dates" in a.next


def test_rag_right_but_oracle_wrong_is_unclear(world: Any, tmp_path: Path) -> None:
    specs = [(case("x", "How long is the free trial?", ["30 days"], ["docs/trial.md"]),
              {"closed-book": Ans("A week."), "oracle": Ans("A week."), "rag": Ans("30 days.")})]  # fmt: skip
    write_run(world, tmp_path, "contra", ["closed-book", "oracle", "rag"], specs)
    d = diagnose_run(world, "contra", primary="closed-book")
    [a] = d.cases
    assert (a.family, a.cause) == ("unclear", "contradiction")


def test_a_run_is_judged_by_the_corpus_it_saw_not_by_later_edits(world: Any, tmp_path: Path, docs: Path) -> None:
    from ragtune.corpus.ingest import ingest_paths
    from ragtune.corpus.loaders import Defaults
    from ragtune.corpus.model import parse_when
    from tests.conftest import write

    specs = [(case("seats", "How many seats does the Team plan allow?", ["25 seats"], ["docs/seats.md"],
                   stale_answers=["20 seats"]),
              {"rag": Ans("The Team plan allows 20 seats.", log((chunk("seats.md"), "used")))})]  # fmt: skip
    write_run(world, tmp_path, "then", ["rag"], specs)
    [before] = diagnose_run(world, "then").cases
    assert (before.family, before.cause, before.evidence["superseded"]) == ("retrieval", "stale_index", False)
    # no pause: the new version may land in the same second the run finished, and still counts as later
    write(docs / "seats.md", "# Seats\n\nThe Team plan allows 25 seats.\n")
    ingest_paths(world, [docs / "seats.md"], Defaults(source="docs", license="CC-BY-4.0", owner="docs-team",
                                                      valid_from=parse_when("2026-01-20")))  # fmt: skip
    [after] = diagnose_run(world, "then").cases
    # seats.md@2 arrived after the run: the run still saw an index that had not been re-ingested
    assert (after.family, after.cause, after.why) == (before.family, before.cause, before.why)


def test_a_variant_that_fixes_the_form_is_prompt_fixable_even_with_the_wrong_fact(world: Any, tmp_path: Path) -> None:
    # the prompts arm answers without retrieval: its content may be wrong where rag's is right; the form decides
    specs = [(case("digits", "What is the Pro plan's rate limit per minute? Digits only.", ["900"], ["docs/pricing.md"],
                   format={"regex": "^[0-9]+$"}),
              {"rag": Ans("900 requests per minute [1].", log((chunk("pricing.md", 2), "used"))),
               "prompts": Ans(variants={"plain": "The limit is 600 requests.", "concise": "600", "fewshot": "600"})})]  # fmt: skip
    write_run(world, tmp_path, "form", ["rag", "prompts"], specs)
    diagnosis = diagnose_run(world, "form")
    [a] = diagnosis.cases
    assert (a.family, a.cause) == ("behaviour", "prompt_fixable")
    assert a.evidence["fixing_variants"] == ["concise", "fewshot"] and "'concise'" in a.why
    rec = diagnosis.recommendation
    # the recommendation measures the variants by the same rule: the form they give, not the fact
    assert rec.verdict == "PROMPT-FIX"
    assert any("(prompts/concise) stopped giving the behaviour failures the right form (now 100%" in w
               for w in rec.would_change), rec.would_change  # fmt: skip
