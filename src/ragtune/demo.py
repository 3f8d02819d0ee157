"""The bundled example, end to end: a handbook whose facts change over four weeks.

Week 1 is ingested with each source's rights; the arms are evaluated on a mix of the bundled cases, diagnosed and
a verdict recommended; then each later week's edits are applied and re-ingested, the changed facts are checked to
be retrievable (and answered) at once, while ``--as-of`` still finds the old values; last, the run's HTML report is
written into the project.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import Any

from ragtune.answer.pipeline import Answerer, Question
from ragtune.corpus.ingest import ingest_paths
from ragtune.corpus.loaders import Defaults
from ragtune.corpus.model import parse_groups, parse_when
from ragtune.errors import ConfigError
from ragtune.index.index import Filters
from ragtune.project import Project, init_project
from ragtune.retrieval.search import Retriever

MARKER = ".ragtune-demo"
Say = Callable[[str], None]


def example_dir() -> Path:
    return Path(str(files("ragtune") / "examples" / "handbook"))


def _found(retriever: Retriever, question: str, value: str, filters: Filters, k: int = 3) -> tuple[bool, str]:
    hits = retriever.search(question, k=k, filters=filters).hits
    top = f"{hits[0].doc_id}@{hits[0].version}" if hits else "-"
    return any(value in " ".join(h.text.split()) for h in hits), top


def _apply_week(example: Path, week: int, root: Path) -> None:
    src = example / f"week{week}"
    for path in sorted(src.rglob("*")):
        if path.is_file() and path.name != "removed.txt":
            target = root / path.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    removed = src / "removed.txt"
    if removed.is_file():
        for line in removed.read_text(encoding="utf-8").splitlines():
            if line.strip():
                (root / line.strip()).unlink(missing_ok=True)


def ingest_week(
    project: Project, example: Path, root: Path, week_info: dict[str, Any], sources: list[dict[str, Any]]
) -> dict[str, int]:
    """Apply one week of the example's edits under ``root`` and ingest every source with its rights; the totals."""
    week = int(week_info["week"])
    valid_from = parse_when(week_info["valid_from"])
    _apply_week(example, week, root)
    totals = {"added": 0, "updated": 0, "unchanged": 0, "retired": 0, "chunks": 0, "errors": 0}
    for src in sources:
        path = root / (src.get("folder") or src["file"])
        report = ingest_paths(
            project,
            [path],
            Defaults(
                source=src["source"],
                license=src["license"],
                may_retrieve=src.get("may_retrieve", True),
                may_train=src["may_train"],
                groups=parse_groups(src.get("groups")),
                owner=src.get("owner"),
                valid_from=valid_from,
            ),
            sync=True,
        )
        for key in ("added", "updated", "unchanged", "retired"):
            totals[key] += len(getattr(report, key))
        totals["chunks"] += report.chunks
        totals["errors"] += len(report.errors)
    return totals


ANSWERED_PER_WEEK = 2  # changed facts asked of the model each week; each costs a few seconds on CPU

DEMO_ARMS = ["closed-book", "oracle", "rag", "prompts", "adapter:v1", "hybrid:v1"]
DEMO_MAX_NEW_TOKENS = 48
"""Answers in the demo are short facts or one formatted line: 48 tokens keep a 2-core machine under 10 minutes."""
DEMO_TRAIN_EPOCHS = 2
"""A short LoRA: two passes over the style examples (about 14 steps) already teach the answer format."""
DEMO_MIX = {"format": 10, "current": 4, "past": 3, "stable": 3}
"""How many of the bundled cases of each kind the demo evaluates (all 80: `ragtune eval` in the demo folder)."""


def demo_cases(example: Path) -> list[dict[str, Any]]:
    """The demo's mix of the bundled cases, in file order: formatted answers, current and past facts, stable ones."""
    cases = [json.loads(line) for line in (example / "cases.jsonl").read_text(encoding="utf-8").splitlines() if line]
    quota = dict(DEMO_MIX)
    chosen = []
    for case in cases:
        kind = "format" if case.get("format") else next((t for t in ("current", "past", "stable") if t in case.get("tags", [])), None)  # fmt: skip
        if kind is not None and quota.get(kind, 0) > 0:
            quota[kind] -= 1
            chosen.append(case)
    return chosen


DEMO_PROMPTS = """
# The prompts arm's variants for the demo: the plain prompt, and the style guide's rules as a prompt (with and
# without examples): the fair test of whether prompting alone can fix the format before fine-tuning is considered.
[eval.prompts.plain]
system = "Answer the question in one or two short sentences. If you do not know, say: I don't know."

[eval.prompts.style]
system = \"\"\"You are Lumen Relay Support. Start every answer to a customer with the customer's plan in square \
brackets, for example [Pro], or [Unknown plan]. Keep it under 60 words. End with the line: — Lumen Relay Support. \
To triage a ticket, answer with exactly one line of JSON with the keys plan, category and severity.\"\"\"

[eval.prompts.style-fewshot]
system = \"\"\"You are Lumen Relay Support. Start every answer to a customer with the customer's plan in square \
brackets, for example [Pro], or [Unknown plan]. End with the line: — Lumen Relay Support.\"\"\"

[[eval.prompts.style-fewshot.examples]]
question = "As Lumen Relay Support, answer a customer: How long are backups kept?"
answer = "[Unknown plan] Backups are kept for 35 days.\\n— Lumen Relay Support"

[[eval.prompts.style-fewshot.examples]]
question = "Triage this ticket as one line of JSON with plan, category and severity: Our Pro invoice is wrong."
answer = '{"plan": "Pro", "category": "billing", "severity": 3}'
"""


def _train(project: Project, example: Path, say: Say) -> dict[str, Any]:
    """A governed data set from the example's style examples (rights, personal data, duplicates and leakage
    against the bundled cases screened), and a short LoRA on it, registered as v1."""
    from ragtune.tuning import build_dataset
    from ragtune.tuning.train import TrainSettings
    from ragtune.tuning.versions import train_version

    report = build_dataset(
        project, "style", jsonl=[example / "train-style.jsonl"], eval_cases=[example / "cases.jsonl"]
    ).to_json()
    excluded = {k: v for k, v in report["excluded"].items() if v}
    say(
        f"training data 'style': {report['kept']} of {report['candidates']} examples kept"
        + (f" (excluded: {', '.join(f'{k} {v}' for k, v in excluded.items())})" if excluded else "")
    )
    settings = TrainSettings.from_config(project.config).model_copy(update={"epochs": DEMO_TRAIN_EPOCHS})
    version = train_version(project, "style", settings=settings, progress=False)
    r = version.result
    say(
        f"trained {version.version} (LoRA on the packaged model): {r['steps']} steps in {r['wall_seconds']:.0f}s, "
        f"holdout loss {r['initial_holdout_loss']:.2f} -> {r['best_holdout_loss']:.2f}"
    )
    return {"dataset": report, "version": version.version, "result": r}


def _evaluate(project: Project, root: Path, example: Path, say: Say) -> dict[str, Any]:
    """Every demo arm answers the demo cases; the run is diagnosed and a verdict printed."""
    from ragtune.diagnosis import diagnose_run
    from ragtune.harness.runs import execute_run, summarize_run

    cases_path = root / "cases-demo.jsonl"
    cases_path.write_text("".join(json.dumps(c) + "\n" for c in demo_cases(example)), encoding="utf-8")
    say(f"evaluating {len(DEMO_ARMS)} arms ({', '.join(DEMO_ARMS)}) on {sum(DEMO_MIX.values())} cases...")
    started = time.perf_counter()
    execute_run(project, cases_path, DEMO_ARMS, name=DEMO_RUN)
    summary = summarize_run(project, DEMO_RUN)
    for arm, s in summary["arms"].items():
        acc, fmt = s["accuracy"], s["format_ok"]
        ci = acc.get("ci95") or (None, None)
        say(
            f"  {arm:<12} accuracy {_pct(acc['value'])} [{_pct(ci[0])}, {_pct(ci[1])}]  format {_pct(fmt['value'])}"
            f"  p95 {s['p95_ms'] or 0:,.0f} ms"
        )
    diagnosis = diagnose_run(project, DEMO_RUN)
    rec = diagnosis.recommendation
    say(f"  verdict: {rec.verdict} (confidence {rec.confidence}): {rec.reason}")
    for examples in diagnosis.examples(1).values():
        for a in examples:
            say(f"  e.g. {a.case_id}: {a.family}/{a.cause}: {a.why[:140]}")
    return {
        "run": DEMO_RUN,
        "seconds": round(time.perf_counter() - started, 1),
        "summary": summary,
        "verdict": rec.verdict,
        "confidence": rec.confidence,
    }


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _report(project: Project, root: Path, freshness_s: list[float], say: Say) -> dict[str, Any]:
    """The run's HTML report, diagnosed again now that re-ingesting a changed fact has been timed."""
    from ragtune.diagnosis import diagnose_run
    from ragtune.report import build_report, write_report

    update = {"reingest_s": round(max(freshness_s), 2)} if freshness_s else None
    diagnosis = diagnose_run(project, DEMO_RUN, update_costs=update).to_json()
    path = root / "report.html"
    write_report(path, build_report(project, DEMO_RUN, diagnosis=diagnosis))
    say(f"report: {path.as_uri()}")
    return {"path": str(path), "verdict": diagnosis["recommendation"]["verdict"], "update_costs": update}


DEMO_RUN = "demo-week1"


def _example_answer(project: Project, say: Say) -> dict[str, Any]:
    """One cited answer from the packaged model, to show what `ragtune ask` gives."""
    question = "What is the Pro plan's API rate limit?"
    answer = Answerer(project).ask(Question(question))
    say(f'ask "{question}"\n  -> {answer.answer}')
    for c in answer.citations:
        say(f"     [{c.n}] {c.doc_id}@{c.version} ({c.mode})")
    return answer.to_json() | {"question": question}


def _answer_changed(
    project: Project, facts: list[dict[str, Any]], week: int, edited: float, say: Say
) -> dict[str, Any]:
    """Ask the packaged model the facts that just changed: freshness is the time from the edit to the answer."""
    questions = [
        Question(f["question"], groups=("finance",) if f["doc_id"].startswith("internal/") else ()) for f in facts
    ]
    answers = Answerer(project).ask_many(questions)
    seconds = time.perf_counter() - edited
    results = [
        {"fact": f["id"], "value": f["values"][str(week)], "answer": a.answer, "trace_id": a.trace_id,
         "current_value_in_answer": _norm(f["values"][str(week)]) in _norm(a.answer)}
        for f, a in zip(facts, answers, strict=True)
    ]  # fmt: skip
    right = sum(r["current_value_in_answer"] for r in results)
    say(
        f"  the packaged model answered {right}/{len(results)} changed facts with the new value, "
        f"{seconds:.1f}s after the edit, without retraining"
    )
    return {"seconds_from_edit": round(seconds, 2), "right": right, "asked": len(results), "facts": results}


def _norm(text: str) -> str:
    return " ".join(text.lower().replace(",", "").split())


def run_demo(folder: Path, say: Say = lambda _: None) -> dict[str, Any]:
    """Build the demo project in ``folder`` (replacing an earlier demo there) and return what it measured."""
    folder = folder.resolve()
    if folder.exists() and any(folder.iterdir()):
        if not (folder / MARKER).exists():
            raise ConfigError(f"{folder}: exists and is not an earlier ragtune demo; choose another --dir")
        shutil.rmtree(folder)
    example = example_dir()
    timeline = json.loads((example / "timeline.json").read_text(encoding="utf-8"))
    sources = json.loads((example / "sources.json").read_text(encoding="utf-8"))
    root, _ = init_project(folder)
    (root / MARKER).write_text("created by `ragtune demo`; safe to delete\n")
    toml = root / "ragtune.toml"
    toml.write_text(
        toml.read_text(encoding="utf-8").replace("max_new_tokens = 160", f"max_new_tokens = {DEMO_MAX_NEW_TOKENS}", 1)
        + DEMO_PROMPTS,
        encoding="utf-8",
    )
    project = Project.open(root)
    retriever = Retriever(project.store, project.index, project.embedder, project.config.retrieval)
    out: dict[str, Any] = {"project": str(root), "product": timeline.get("product"), "weeks": []}
    facts = timeline["facts"]
    freshness: list[float] = []  # seconds from each week's edit to the model answering its changed facts

    for week_info in timeline["weeks"]:
        week = int(week_info["week"])
        started = time.perf_counter()
        totals = ingest_week(project, example, root, week_info, sources)
        ingest_s = time.perf_counter() - started
        changed = [
            f
            for f in facts
            if week > 1 and f["values"].get(str(week)) != f["values"].get(str(week - 1)) and f["values"].get(str(week))
        ]
        checks = []
        for fact in changed:
            groups = ("finance",) if fact["doc_id"].startswith("internal/") else ()
            ok, top = _found(retriever, fact["question"], fact["values"][str(week)], Filters(groups=groups))
            checks.append({"fact": fact["id"], "value": fact["values"][str(week)], "found_in_top3": ok, "top": top})
        entry = {
            "week": week,
            "valid_from": week_info["valid_from"],
            **totals,
            "ingest_seconds": round(ingest_s, 2),
            "changed_facts": checks,
        }
        out["weeks"].append(entry)
        found = sum(c["found_in_top3"] for c in checks)
        say(
            f"week {week} ({week_info['valid_from']}): {totals['added']} new, {totals['updated']} changed, "
            f"{totals['retired']} retired documents, ingested in {ingest_s:.1f}s"
            + (f"; changed facts retrievable at once: {found}/{len(checks)}" if checks else "")
        )
        if week == 1:
            entry["example_answer"] = _example_answer(project, say)
            out["training"] = _train(project, example, say)
            out["evaluation"] = _evaluate(project, root, example, say)
        elif changed:
            entry["answers"] = _answer_changed(project, changed[:ANSWERED_PER_WEEK], week, started, say)
            freshness.append(entry["answers"]["seconds_from_edit"])

    # Time travel: each changed fact's first value, asked as of week 1.
    first = timeline["weeks"][0]["valid_from"]
    as_of = parse_when(first, end_of_day=True)
    history = []
    for fact in facts:
        old = fact["values"].get("1")
        if not old or old == fact["values"].get(str(len(timeline["weeks"]))):
            continue
        groups = ("finance",) if fact["doc_id"].startswith("internal/") else ()
        ok, top = _found(retriever, fact["question"], old, Filters(as_of=as_of, groups=groups))
        history.append({"fact": fact["id"], "value": old, "found_in_top3": ok, "top": top})
    out["as_of"] = {"date": first, "facts": history}
    say(
        f"as of {first}, the old values are still retrievable: {sum(h['found_in_top3'] for h in history)}/{len(history)}"
    )

    # Access groups: the finance-only refund policy is invisible without the group.
    question = "How much can a support lead refund without approval?"
    public = [h.doc_id for h in retriever.search(question, k=10).hits]
    finance = [h.doc_id for h in retriever.search(question, k=3, filters=Filters(groups=("finance",))).hits]
    out["access"] = {
        "question": question,
        "without_group": public,
        "with_finance_group": finance,
        "restricted_hidden": not any(d.startswith("internal/") for d in public),
    }
    say(
        f"access groups: finance-only documents hidden from others: {out['access']['restricted_hidden']}; "
        f"visible to finance: {finance[:1]}"
    )
    out["report"] = _report(project, root, freshness, say)
    project.close()
    return out
