"""Agreement of citation attribution's support check with labels built from the bundled example, without the LLM.

    .venv/bin/python bench/citation_agreement.py [--json]

Week 1 of the bundled handbook is ingested into a temporary project. For each fact case whose reference answer
week 1 states in a chunk of its gold evidence, two true sentences are built: the evidence sentence that states
the answer (verbatim from the chunk) and the answer phrased as a sentence from the question ("The Team plan allows
20 seats."). They are labelled against chunks:

- positive: each true sentence against its gold chunk;
- ``changed``: the sentence with the answer's value changed (the case's value in another week when it has one,
  else a shifted number, else another case's answer of the same shape), none stated in the gold chunk;
- ``swapped``: the answer swapped for another case's answer that the same chunk does state (a hard negative:
  every word is in the chunk, only the pairing is wrong);
- ``distractor``: the true sentence against the best-ranked chunk retrieved for the question that does not
  state the answer.

Four checks are compared with the labels: the old rule (half of the sentence's stemmed terms in the chunk), 75% of
the content terms alone, the new rule (``ragtune.answer.citations.support``: the sentence's values, units,
identifiers and names in the chunk, and 75% of its content terms), and the new rule with MiniLM cosine ≥ 0.5.
Figures: accuracy, precision and recall of "supported", and Cohen's kappa, overall, without the swapped pairs, by
kind of pair, and kappa by coverage threshold. The pairs are built from the same cases the rule was written
against, so read the figures as in-sample.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ragtune.answer.citations import (
    SUPPORT_MIN_COVERAGE,
    Evidence,
    best_cosines,
    given_names,
    split_sentences,
    support,
    values,
)
from ragtune.index.analyzer import Analyzer


@dataclass(frozen=True)
class Chunk:
    chunk_id: str
    text: str
    heading: str = ""
    title: str = ""


@dataclass(frozen=True)
class Pair:
    case: str
    kind: str  # positive, changed, swapped, distractor
    form: str  # evidence (the chunk's own sentence) or answer (the answer phrased from the question)
    sentence: str
    chunk: Chunk
    label: bool
    context: tuple[Chunk, ...] = ()  # the other chunks retrieved for the question: attribution's other sources
    question: str = ""


def _flat(text: str) -> str:
    return " ".join(text.split())


def states(text: str, value: str) -> bool:
    """Whether ``text`` states ``value`` word for word (white space and case aside)."""
    return _flat(value).lower() in _flat(text).lower()


# sentences from a case -------------------------------------------------------------------------------------------

_ASKS = [
    (re.compile(r"(?:what|which) (?P<v>is|are|was) (?P<s>.+)", re.I), "{s} {v} {a}"),
    (re.compile(r"what does (?P<s>.+) mean", re.I), "{s} means {a}"),
    (
        re.compile(r"how (?:many|much)(?: [\w ]+?)? (?:does|do) (?P<s>.+?) (?P<v>allow|include|cost)(?P<r>.*)", re.I),
        "{s} {v+s}{r} {a}",
    ),
    (
        re.compile(r"how many [\w ]+? can (?P<s>.+?) (?P<v>hold|have|create or update)(?P<r>.*)", re.I),
        "{s} can {v}{r} {a}",
    ),
    (re.compile(r"how many [\w ]+? is (?P<s>.+?) (?P<v>retried)", re.I), "{s} is {v} {a}"),
    (re.compile(r"how long does (?P<s>.+?) (?P<v>last|stay)(?P<r>.*)", re.I), "{s} {v+s}{r} {a}"),
    (
        re.compile(r"how long (?P<v>are|is) (?P<s>.+?) (?P<p>kept|valid|remembered)(?P<r>.*)", re.I),
        "{s} {v} {p}{r} for {a}",
    ),
    (re.compile(r"when (?P<v>was|will) (?P<s>.+?) (?P<p>founded|be switched off)", re.I), "{s} {v} {p} in {a}"),
    (re.compile(r"where is (?P<s>.+?) (?P<p>based|published)", re.I), "{s} is {p} in {a}"),
    (re.compile(r"who is (?P<s>.+)", re.I), "{s} is {a}"),
    (re.compile(r"in which \w+ can (?P<s>.+?) (?P<v>host)(?P<r>.*)", re.I), "{s} can {v}{r} in {a}"),
    (re.compile(r"up to what amount can (?P<s>.+?) (?P<v>approve)(?P<r>.*)", re.I), "{s} can {v}{r} up to {a}"),
    (re.compile(r"how large a \w+ may (?P<s>.+?) (?P<v>grant)(?P<r>.*)", re.I), "{s} may {v} {a}{r}"),
    (re.compile(r"what \w+ do (?P<s>.+?) (?P<v>get|start with)(?P<r>.*)", re.I), "{s} {v} {a}{r}"),
    (re.compile(r"which \w+ (?P<v>builds) (?P<s>.+)", re.I), "{a} {v} {s}"),
    (re.compile(r"how many \w+ (?P<v>use) (?P<s>.+)", re.I), "{a} {v} {s}"),
    (re.compile(r"in how many \w+ is (?P<s>.+?) (?P<v>used)", re.I), "{s} is {v} in {a}"),
    (re.compile(r"how many \w+ can (?P<s>.+?) (?P<v>invite)", re.I), "{s} can {v} {a}"),
    (re.compile(r"over what window are (?P<s>.+?) (?P<v>counted)(?P<r>.*)", re.I), "{s} are {v} over a {a}{r}"),
    (re.compile(r"how quickly must (?P<s>.+?) (?P<v>answer)", re.I), "{s} must {v} {a}"),
]
_WH = re.compile(r"^(?:in |over |up to )?(?:how (?:many|much|long|large|quickly)|what|which|who|where|when)\b\s*", re.I)


def answer_sentence(question: str, answer: str) -> str:
    """The answer stated as one sentence built from the question, as an answering model would put it: "How many
    seats does the Team plan allow?" gives "The Team plan allows 20 seats."; other questions "<question>: <answer>"."""
    q = question.strip().rstrip("?").strip()
    for pattern, template in _ASKS:
        if m := pattern.fullmatch(q):
            parts = {k: v or "" for k, v in m.groupdict().items()}
            text = template.replace("{v+s}", parts.get("v", "") + "s").format(a=answer, **parts)
            break
    else:
        text = f"{_WH.sub('', q)}: {answer}"
    text = " ".join(text.split())
    return text[:1].upper() + text[1:] + "."


def evidence_sentence(chunk: Chunk, answer: str) -> str | None:
    """The sentence of the chunk that states the answer."""
    return next((s for s in (_flat(x) for x in split_sentences(chunk.text)) if states(s, answer)), None)


def replace_value(sentence: str, answer: str, new: str) -> str:
    at = _flat(sentence).lower().find(_flat(answer).lower())
    flat = _flat(sentence)
    return flat[:at] + new + flat[at + len(_flat(answer)) :]


def shifted(answer: str, chunk_text: str) -> str | None:
    """The answer with its first number changed to one the chunk does not state (None without a number)."""
    m = re.search(r"\d+(?:,\d{3})*", answer)
    if m is None:
        return None
    n = int(m.group(0).replace(",", ""))
    have = values(chunk_text)
    for new in (n * 2, n + 1, n + 7, n * 3 + 1):
        text = f"{new:,}" if "," in m.group(0) else str(new).zfill(len(m.group(0)))
        if f"n:{new}" not in have:
            return answer[: m.start()] + text + answer[m.end() :]
    return None


def shape(answer: str) -> tuple[bool, bool]:
    return any(c.isdigit() for c in answer), answer[:1].isupper()


def changed_value(case: dict[str, Any], answer: str, chunk: Chunk, others: Sequence[dict[str, Any]]) -> str | None:
    """A wrong value the chunk does not state: the fact's value in another week, a shifted number, or another
    case's answer of the same shape (closest in length)."""
    family = case["id"].rsplit("-", 1)[0]
    siblings = [
        a for o in others if o["id"] != case["id"] and o["id"].rsplit("-", 1)[0] == family for a in o["answers"]
    ]
    for alt in siblings:
        if alt != answer and not states(chunk.text, alt):
            return str(alt)
    if (new := shifted(answer, chunk.text)) is not None:
        return new
    pool = sorted(
        {a for o in others for a in o["answers"] if a != answer and shape(a) == shape(answer)},
        key=lambda a: (abs(len(a.split()) - len(answer.split())), a),
    )
    return next((a for a in pool if not states(chunk.text, a)), None)


def swapped_value(case: dict[str, Any], answer: str, chunk: Chunk, others: Sequence[dict[str, Any]]) -> str | None:
    """Another case's answer that the same chunk states (not a part of this answer, nor it of that one)."""
    family = case["id"].rsplit("-", 1)[0]
    pool = sorted(
        {
            a
            for o in others
            if o["id"].rsplit("-", 1)[0] != family
            for a in o["answers"]
            if states(chunk.text, a) and a.lower() not in answer.lower() and answer.lower() not in a.lower()
        }
    )
    return next((a for a in pool if shape(a) == shape(answer)), None)


def case_pairs(
    case: dict[str, Any],
    gold: Chunk,
    distractor: Chunk | None,
    others: Sequence[dict[str, Any]],
    retrieved: Sequence[Chunk] = (),
) -> list[Pair]:
    """The labelled pairs of one case, given the gold chunk stating its answer, a distractor chunk, and the chunks
    retrieved for the question (the sources attribution would see beside the one it judges)."""
    answer = next(a for a in case["answers"] if states(gold.text, a))
    forms = {"answer": answer_sentence(case["question"], answer)}
    if (ev := evidence_sentence(gold, answer)) is not None:
        forms["evidence"] = ev
    changed = changed_value(case, answer, gold, others)
    swapped = swapped_value(case, answer, gold, others)
    pairs: list[Pair] = []

    def add(kind: str, form: str, sentence: str, chunk: Chunk, label: bool) -> None:
        context = tuple(c for c in {c.chunk_id: c for c in (gold, *retrieved)}.values() if c.chunk_id != chunk.chunk_id)
        pairs.append(Pair(case["id"], kind, form, sentence, chunk, label, context, case["question"]))

    for form, sentence in forms.items():
        add("positive", form, sentence, gold, True)
        if changed is not None:
            add("changed", form, replace_value(sentence, answer, changed), gold, False)
        if swapped is not None:
            add("swapped", form, replace_value(sentence, answer, swapped), gold, False)
        if distractor is not None:
            add("distractor", form, sentence, distractor, False)
    return pairs


# checks and agreement --------------------------------------------------------------------------------------------


def old_check(sentence: str, chunk: Chunk, analyzer: Analyzer) -> bool:
    """The first attribution rule, as it was: half the stemmed terms in the chunk (and its heading), two at least."""
    terms = set(analyzer.terms(sentence))
    vocab = set(analyzer.terms(chunk.text + " " + chunk.heading))
    return len(terms) >= 2 and len(terms & vocab) / len(terms) >= 0.5


def agreement(labels: Sequence[bool], predicted: Sequence[bool]) -> dict[str, Any]:
    """Accuracy, precision and recall of "supported", and Cohen's kappa, with the confusion counts."""
    tp = sum(1 for y, p in zip(labels, predicted, strict=True) if y and p)
    fp = sum(1 for y, p in zip(labels, predicted, strict=True) if not y and p)
    fn = sum(1 for y, p in zip(labels, predicted, strict=True) if y and not p)
    tn = len(labels) - tp - fp - fn
    n = len(labels)
    observed = (tp + tn) / n if n else 0.0
    expected = ((tp + fp) * (tp + fn) + (tn + fn) * (tn + fp)) / (n * n) if n else 0.0
    kappa = (observed - expected) / (1 - expected) if expected < 1 else (1.0 if observed == 1 else 0.0)
    return {
        "n": n,
        "accuracy": round(observed, 4),
        "precision": round(tp / (tp + fp), 4) if tp + fp else None,
        "recall": round(tp / (tp + fn), 4) if tp + fn else None,
        "kappa": round(kappa, 4),
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
    }


SWEEP = (0.5, 0.6, 0.67, 0.75, 0.8, 0.9)
"""Coverage thresholds reported (Cohen's kappa of the new rule without cosine at each)."""

Check = Callable[[Sequence[Pair]], list[bool]]


def new_check(
    pairs: Sequence[Pair],
    analyzer: Analyzer,
    cosines: Sequence[float | None] | None = None,
    min_coverage: float = SUPPORT_MIN_COVERAGE,
    check_values: bool = True,
) -> list[bool]:
    """``ragtune.answer.citations.support`` on each pair, as attribution runs it (``check_values=False``: the
    coverage threshold alone, to show what the value rules add)."""
    cos = cosines or [None] * len(pairs)
    out = []
    for p, c in zip(pairs, cos, strict=True):
        evidence = Evidence.of(p.chunk.text, analyzer, heading=p.chunk.heading, title=p.chunk.title)
        known = frozenset(t for x in p.context for t in analyzer.terms(f"{x.title}\n{x.heading}\n{x.text}"))
        given = given_names(p.question, analyzer)
        verdict = support(
            p.sentence,
            evidence,
            analyzer,
            known=known,
            given=given,
            cosine=c,
            min_coverage=min_coverage,
            check_values=check_values,
        )
        out.append(verdict.supported)
    return out


def checks(analyzer: Analyzer, embedder: Any | None = None) -> dict[str, Check]:
    """The checks compared: the old rule, the new one without and with its value rules, and the new one with
    MiniLM cosine (given an embedder)."""

    def old(pairs: Sequence[Pair]) -> list[bool]:
        return [old_check(p.sentence, p.chunk, analyzer) for p in pairs]

    def new(pairs: Sequence[Pair], cosines: Sequence[float | None] | None = None) -> list[bool]:
        return new_check(pairs, analyzer, cosines)

    def coverage_only(pairs: Sequence[Pair]) -> list[bool]:
        return new_check(pairs, analyzer, check_values=False)

    out: dict[str, Check] = {
        "old: 50% term overlap": old,
        "75% content terms alone": coverage_only,
        "new: values + 75% content terms": new,
    }
    if embedder is not None:

        def with_cosine(pairs: Sequence[Pair]) -> list[bool]:
            chunks = list({p.chunk.chunk_id: p.chunk for p in pairs}.values())
            column = {c.chunk_id: j for j, c in enumerate(chunks)}
            matrix = best_cosines(embedder, [p.sentence for p in pairs], [c.text for c in chunks])
            return new(pairs, [float(matrix[i, column[p.chunk.chunk_id]]) for i, p in enumerate(pairs)])

        out["new + MiniLM cosine ≥ 0.5"] = with_cosine
    return out


def evaluate(pairs: Sequence[Pair], compared: dict[str, Check]) -> dict[str, Any]:
    labels = [p.label for p in pairs]
    result: dict[str, Any] = {"pairs": len(pairs), "checks": {}, "without_swapped": {}, "by_kind": {}, "misses": {}}
    kinds = sorted({p.kind for p in pairs})
    for name, check in compared.items():
        predicted = check(pairs)
        result["checks"][name] = agreement(labels, predicted)
        kept = [(p.label, y) for p, y in zip(pairs, predicted, strict=True) if p.kind != "swapped"]
        result["without_swapped"][name] = agreement([a for a, _ in kept], [b for _, b in kept])
        by_kind: dict[str, Any] = {}
        for kind in kinds:
            rows = [(p.label, y) for p, y in zip(pairs, predicted, strict=True) if p.kind == kind]
            by_kind[kind] = {"n": len(rows), "agree": round(sum(a == b for a, b in rows) / len(rows), 4)}
        result["by_kind"][name] = by_kind
        result["misses"][name] = [
            {"case": p.case, "kind": p.kind, "form": p.form, "sentence": p.sentence, "chunk": p.chunk.chunk_id}
            for p, y in zip(pairs, predicted, strict=True)
            if y != p.label
        ]
    return result


# the bundled example ---------------------------------------------------------------------------------------------


def fact_cases(example: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (example / "cases.jsonl").read_text(encoding="utf-8").splitlines() if line]
    return [c for c in rows if c.get("answers") and not c.get("format")]


def bundled_pairs(root: Path) -> tuple[list[Pair], dict[str, Any], Any]:
    """Ingest week 1 into a project under ``root`` and build the labelled pairs of the bundled cases; the pairs,
    how they were made, and the project's embedder (for the cosine variant)."""
    from ragtune.demo import example_dir, ingest_week
    from ragtune.index.index import Filters
    from ragtune.project import Project, init_project
    from ragtune.retrieval.search import Retriever

    example = example_dir()
    project_root, _ = init_project(root / "project")
    project = Project.open(project_root)
    try:
        timeline = json.loads((example / "timeline.json").read_text(encoding="utf-8"))
        sources = json.loads((example / "sources.json").read_text(encoding="utf-8"))
        t0 = time.perf_counter()
        totals = ingest_week(project, example, root / "docs", timeline["weeks"][0], sources)
        ingest_s = time.perf_counter() - t0
        retriever = Retriever(project.store, project.index, project.embedder, project.config.retrieval)
        filters = Filters(groups=("finance",))  # the internal documents are the finance group's
        cases = fact_cases(example)
        pairs: list[Pair] = []
        skipped: list[str] = []
        seen: set[tuple[str, str]] = set()
        for case in cases:
            within = retriever.search_within(case["question"], case["evidence"], 50, filters).hits
            gold_hit = next((h for h in within if any(states(h.text, a) for a in case["answers"])), None)
            key = (case["question"], case["answers"][0])
            if gold_hit is None or key in seen:
                skipped.append(case["id"])  # week 1 does not state this answer (a later week's value), or a repeat
                continue
            seen.add(key)
            gold = Chunk(gold_hit.chunk_id, gold_hit.text, gold_hit.heading, gold_hit.title)
            # the sources attribution would see: what `ragtune ask` retrieves (6 by default)
            ranked = retriever.search(case["question"], project.config.answer.sources, filters).hits
            answer = next(a for a in case["answers"] if states(gold.text, a))
            other = next((h for h in ranked if h.chunk_id != gold.chunk_id and not states(h.text, answer)), None)
            distractor = Chunk(other.chunk_id, other.text, other.heading, other.title) if other else None
            retrieved = [Chunk(h.chunk_id, h.text, h.heading, h.title) for h in ranked]
            pairs.extend(case_pairs(case, gold, distractor, cases, retrieved))
        embedder = project.embedder
    finally:
        project.close()
    info = {
        "cases": len(cases),
        "used": len(seen),
        "skipped": skipped,
        "ingest": totals,
        "ingest_s": round(ingest_s, 1),
    }
    return pairs, info, embedder


def _rows(table: dict[str, dict[str, Any]]) -> list[str]:
    lines = [
        "| check | accuracy | precision | recall | Cohen's kappa | tp | fp | tn | fn |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in table.items():
        cells = [row[k] for k in ("accuracy", "precision", "recall", "kappa", "tp", "fp", "tn", "fn")]
        lines.append(f"| {name} | " + " | ".join("-" if c is None else str(c) for c in cells) + " |")
    return lines


def _table(result: dict[str, Any]) -> str:
    lines = _rows(result["checks"])
    lines += ["", "Without the swapped pairs:", "", *_rows(result["without_swapped"])]
    kinds = sorted(next(iter(result["by_kind"].values())))
    lines += [
        "",
        "Agreement by kind of pair:",
        "",
        "| check | " + " | ".join(f"{k} (n={result['by_kind_n'][k]})" for k in kinds) + " |",
        "|---" * (len(kinds) + 1) + "|",
    ]
    for name, by in result["by_kind"].items():
        lines.append(f"| {name} | " + " | ".join(str(by[k]["agree"]) for k in kinds) + " |")
    sweep = ", ".join(f"{t} {k}" for t, k in result["coverage_sweep"].items())
    lines += ["", f"Cohen's kappa of the new rule by coverage threshold: {sweep}"]
    return "\n".join(lines)


def run(pairs: Sequence[Pair], embedder: Any | None) -> dict[str, Any]:
    analyzer = Analyzer()
    t0 = time.perf_counter()
    result = evaluate(pairs, checks(analyzer, embedder))
    result["check_s"] = round(time.perf_counter() - t0, 2)
    labels = [p.label for p in pairs]
    result["coverage_sweep"] = {
        str(t): agreement(labels, new_check(pairs, analyzer, min_coverage=t))["kappa"] for t in SWEEP
    }
    counts: dict[str, int] = defaultdict(int)
    for p in pairs:
        counts[p.kind] += 1
    result["by_kind_n"] = dict(counts)
    return result


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--no-cosine", action="store_true", help="leave out the MiniLM cosine variant")
    parser.add_argument("--pairs", type=Path, help="also write the labelled pairs to this JSONL file")
    args = parser.parse_args(list(argv) if argv is not None else None)
    with tempfile.TemporaryDirectory(prefix="ragtune-citations-") as tmp:
        pairs, info, embedder = bundled_pairs(Path(tmp))
        result = run(pairs, None if args.no_cosine else embedder) | info
    if args.pairs:
        with args.pairs.open("w", encoding="utf-8") as f:
            for p in pairs:
                f.write(json.dumps(asdict(p), ensure_ascii=False) + "\n")
    if args.json:
        json.dump(result, sys.stdout, indent=2, ensure_ascii=False)
        print()
    else:
        print(f"{result['used']} of {result['cases']} fact cases stated in week 1; {result['pairs']} labelled pairs")
        print(_table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
