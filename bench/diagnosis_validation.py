"""Diagnosis validation: SQuAD 2.0 scenarios with known, injected causes, run through the real models.

Each scenario injects one cause through the real pipeline (SQLite store, MiniLM index, SmolLM2-135M), then checks
that ``diagnose_run`` attributes it (docs/benchmarks.md, "Diagnosis validation"):

- **gap**: the gold paragraph is forgotten (``ragtune forget``)             -> knowledge / gap
- **stale**: the paragraph's file gets a new version with a changed number, but the index is not re-ingested; the
  case asks after the change (answers: the new value, stale_answers: the old one)  -> retrieval / stale_index.
  The same question asked before the change (answers: the old value) is a control.
- **behaviour**: the answer must follow a strict format rag's answers break: a bare value (regex), which the
  ``concise`` and ``extract`` prompt variants ask for (kept when one of them follows it: -> prompt_fixable), or
  JSON, which no variant asks for (kept when none follows it: -> needs_training)  -> behaviour / *
- **retrieval**: the gold paragraph stays, buried under near-duplicates of it whose answer is altered
                                                                              -> retrieval / miss, ranking or budget
- **control**: unperturbed cases                                              -> correct (not attributed)

Candidates are screened so that the cause really happens: the oracle arm (the model given the gold paragraph)
answers the original question right; stale, behaviour and control cases are also asked of the rag arm in their
final form (the format rule, the stale index) and kept only when rag shows the injected failure (or, for controls,
is right); behaviour cases are also asked of the prompts arm, whose variants must fix the bare-value form and must
not fix the JSON one. A gap case's answer is stated by no other paragraph; a retrieval case is kept only when, after
the burial, no gold chunk reaches rag's context. After the injection every case but the behaviour ones is asked of
rag again (a forgotten paragraph or a near-duplicate can change another question's context): gap and retrieval
cases must fail, controls and the stale cases' before-the-change questions must be right. Then one run over closed-book, oracle, rag and prompts is diagnosed,
and scenario mixes are diagnosed as runs of their own for the run-level verdict. Generation is greedy, and a
conversation already answered (in screening, or by an earlier mix) is answered from memory, not generated again.

    PYTHONPATH=src .venv/bin/python bench/diagnosis_validation.py                  # ~10 cases per scenario
    PYTHONPATH=src .venv/bin/python bench/diagnosis_validation.py --per-scenario 4 --json
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragtune.generation.base import Wrapped
from ragtune.harness.scorers.staleness import gives

if TYPE_CHECKING:
    from ragtune.diagnosis.facts import ArmResult, RunData
    from ragtune.generation.base import Generation, Generator, Message
    from ragtune.project import Project

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "squad_v2_dev_half"
ARMS = ["closed-book", "oracle", "rag", "prompts"]
TOLERANCE = 0.01  # the scorers' default numeric tolerance: 'states a value' means what accuracy means by it
VALID_FROM, BEFORE, AFTER = "2024-01-01", "2024-03-01", "2024-09-01"  # the change happens on 2024-06-01
SOURCE, MIRROR = "squad", "mirror"

BARE_VALUE = r"[^\[\]\n]{1,50}"
"""A bare value: one line, no citation markers, at most 50 characters (the ``concise`` variant asks for one)."""
EXTRACT_SYSTEM = "You extract answers from a text. Reply with the answer's words only."
EXTRACT_INSTRUCTION = "Answer with the value only, in as few words as possible."
EXTRACT_EXAMPLES = [  # written for this bench: three short texts of our own, answered with the bare value
    ("Text: The Millbrook bridge opened in 1931. It was designed by the engineer Ada Renner and carries 12,000 cars "
     "a day.\n\nQuestion: Who designed the Millbrook bridge?", "Ada Renner"),
    ("Text: Lake Orvel is fed by three rivers. Its fish farms, opened in 1987, export trout to Norway.\n\nQuestion: "
     "What fish do the Lake Orvel farms export?", "trout"),
    ("Text: The Kestrel line was closed in 1964 after a fire destroyed its depot at Hallam.\n\nQuestion: When was "
     "the Kestrel line closed?", "1964"),
]  # fmt: skip
"""The ``extract`` prompt variant's few-shot examples: the variant a team would write for the bare-value format."""
ANSWER_JSON = {
    "type": "object",
    "required": ["answer"],
    "properties": {"answer": {"type": "string"}},
    "additionalProperties": False,
}

FACTS = ("gap", "stale", "retrieval")
EXPECTED: dict[str, tuple[str, frozenset[str]]] = {
    # injected role -> (family, causes that count as right)
    "gap": ("knowledge", frozenset({"gap"})),
    "stale": ("retrieval", frozenset({"stale_index"})),
    "format-regex": ("behaviour", frozenset({"prompt_fixable"})),
    "format-json": ("behaviour", frozenset({"needs_training"})),
    "retrieval": ("retrieval", frozenset({"miss", "ranking", "budget"})),
}
SIDE = {"gap": "facts", "stale": "facts", "retrieval": "facts", "format-regex": "prompt", "format-json": "training"}
"""The side of the change each injection calls for (docs/diagnosis.md): what the expected verdicts follow from."""


# data ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Paragraph:
    pid: str
    title: str
    text: str


@dataclass(frozen=True)
class Question:
    qid: str
    text: str
    answers: tuple[str, ...]
    pid: str

    @property
    def short(self) -> str:
        return min(self.answers, key=len)


def read_squad(folder: Path) -> tuple[dict[str, Paragraph], list[Question]]:
    """The paragraphs (file order) and the answerable questions of the BEIR export of SQuAD 2.0."""
    beir = folder / "beir_format"
    paragraphs: dict[str, Paragraph] = {}
    with (beir / "corpus.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            paragraphs[row["_id"]] = Paragraph(row["_id"], row.get("title", ""), row["text"])
    questions = []
    with (beir / "queries.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            meta = row.get("metadata") or {}
            answers = tuple(dict.fromkeys(a.strip() for a in meta.get("answers") or [] if a.strip()))
            if meta.get("is_impossible") or not answers or meta.get("source_paragraph") not in paragraphs:
                continue
            questions.append(Question(row["_id"], row["text"], answers, meta["source_paragraph"]))
    return paragraphs, questions


# pure logic: sentences, numbers, near-duplicates ---------------------------------------------------------------------

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
_WORD = re.compile(r"[A-Za-z0-9]+")
_STOP = frozenset(
    {
        "a",
        "an",
        "the",
        "of",
        "in",
        "on",
        "at",
        "to",
        "for",
        "by",
        "with",
        "from",
        "and",
        "or",
        "is",
        "was",
        "were",
        "are",
        "be",
        "been",
        "what",
        "which",
        "who",
        "whom",
        "whose",
        "when",
        "where",
        "why",
        "how",
        "did",
        "does",
        "do",
        "that",
        "this",
        "these",
        "those",
        "it",
        "its",
        "as",
    }
)
_INTEGER = re.compile(r"(?<![\w.,])(\d{1,3}(?:,\d{3})+|\d+)(?![\w]|[.,]\d)")


def sentences(text: str) -> list[str]:
    """``text`` cut into sentences (a simple rule: end punctuation, space, then a capital or a digit)."""
    return [s for s in _SENTENCE.split(text.strip()) if s]


def content_words(text: str) -> set[str]:
    return {w.lower() for w in _WORD.findall(text)} - _STOP


def overlap(question: str, text: str) -> float:
    """Share of the question's content words that ``text`` contains: high for simple extractive questions."""
    wanted = content_words(question)
    return len(wanted & content_words(text)) / len(wanted) if wanted else 0.0


def answer_sentence(text: str, answers: Sequence[str]) -> str | None:
    """The first sentence of ``text`` holding an acceptable answer verbatim."""
    for sentence in sentences(text):
        if any(a in sentence for a in answers):
            return sentence
    return None


def states(text: str, answers: Sequence[str]) -> bool:
    """Whether ``text`` states one of ``answers``, by the rule the accuracy and staleness scorers use."""
    return any(gives(text, a, TOLERANCE) for a in answers)


@dataclass(frozen=True)
class Change:
    """A new version of a paragraph with one number changed: the new text, and the answers after and before."""

    old: str
    new: str
    text: str
    answers: tuple[str, ...]
    stale_answers: tuple[str, ...]


def shifted(value: int) -> int:
    """Another plausible value, well outside the scorers' 1% numeric tolerance: years move 30, others double."""
    if 1000 <= value <= 2100:
        return value + 30 if value + 30 <= 2030 else value - 30
    return value * 2 + 1


def change_number(paragraph: str, answers: Sequence[str]) -> Change | None:
    """Change the one number of the shortest answer everywhere it is that answer; None when that is ambiguous.

    The number must occur exactly once in the answer and once in the paragraph (so no unrelated fact changes with
    it), and the new value must be stated nowhere in the paragraph already.
    """
    short = min(answers, key=len)
    found = _INTEGER.findall(short)
    if len(found) != 1:
        return None
    old = found[0]
    where = [m for m in _INTEGER.finditer(paragraph) if m.group(1) == old]
    if len(where) != 1:
        return None
    value = shifted(int(old.replace(",", "")))
    new = f"{value:,}" if "," in old else str(value)
    if gives(paragraph, new, TOLERANCE):
        return None
    m = where[0]
    text = paragraph[: m.start(1)] + new + paragraph[m.end(1) :]

    def swap(answer: str) -> str:
        return _INTEGER.sub(lambda x: new if x.group(1) == old else x.group(0), answer)

    after = tuple(dict.fromkeys(swap(a) for a in answers if old in a))
    before = tuple(a for a in answers if old in a)
    if not after or states(text, before) or not states(text, after):
        return None
    return Change(old, new, text, after, before)


def shape(answer: str) -> tuple[int, bool, bool]:
    """Word count, has a digit, starts with a capital: alternatives of the same shape read naturally in place."""
    return len(answer.split()), any(c.isdigit() for c in answer), answer[:1].isupper()


def alternatives_for(answers: Sequence[str], pool: Sequence[str], n: int, rng: random.Random) -> list[str]:
    """``n`` distinct values of the short answer's shape from ``pool`` that state none of ``answers``."""
    short = min(answers, key=len)
    fits = sorted(
        {
            p
            for p in pool
            if shape(p) == shape(short) and not states(p, answers) and not any(gives(a, p, TOLERANCE) for a in answers)
        }
    )
    rng.shuffle(fits)
    return fits[:n]


def near_duplicates(text: str, answers: Sequence[str], alternatives: Sequence[str]) -> list[str] | None:
    """Near-duplicates of ``text``, one per alternative value put in place of the answer: even ones are the whole
    paragraph less one other sentence (near-duplicates by the context's overlap rule), odd ones the answer's
    sentence and its neighbour. None when the answer is not in the text or a copy would still state it."""
    found = next((a for a in sorted(answers, key=len, reverse=True) if a in text), None)
    if found is None:
        return None
    copies = []
    for i, alt in enumerate(alternatives):
        parts = sentences(text.replace(found, alt))
        k = next((j for j, s in enumerate(parts) if alt in s), 0)
        if i % 2 == 0:
            others = [j for j in range(len(parts)) if j != k]
            drop = others[(i // 2) % len(others)] if others else -1
            copy = " ".join(s for j, s in enumerate(parts) if j != drop)
        else:
            start = max(0, k - (i // 2) % 2)
            copy = " ".join(parts[start : start + 2])
        if states(copy, answers):
            return None
        copies.append(copy)
    return copies


def expected_verdict(n_cases: int, injected: Counter[str], max_failure_rate: float = 0.1, severe: float = 0.3) -> str:
    """The verdict docs/diagnosis.md's rules give when every injected failure is attributed to its own side and
    every other case is right (``injected``: side -> count). Ties go to the cheaper change: prompt, facts, training."""
    failed = sum(injected.values())
    if failed == 0 or failed / n_cases <= max_failure_rate:
        return "NO-CHANGE"
    share = {side: injected.get(side, 0) / failed for side in ("prompt", "facts", "training")}
    if share["facts"] >= severe and share["training"] >= severe:
        return "HARNESS-FIRST"
    best = max(share, key=lambda s: (share[s], -("prompt", "facts", "training").index(s)))
    return {"prompt": "PROMPT-FIX", "facts": "RAG", "training": "FINE-TUNE"}[best]


# the generation memory --------------------------------------------------------------------------------------------


class ReusedGenerations(Wrapped):
    """The project's generator, answering a conversation it has already answered from memory.

    Decoding is greedy and each prompt is prefilled alone, so asking the same conversation again would give the
    same answer; remembering it keeps screening and the mixes from paying for generation twice.

    >>> project.generator = ReusedGenerations(project.generator)
    """

    def __init__(self, inner: Generator) -> None:
        super().__init__(inner)
        self.memory: dict[str, Generation] = {}
        self.generated = 0
        self.reused = 0

    def generate(
        self, batch: Sequence[Sequence[Message]], *, max_new_tokens: int | None = None, progress: bool = False
    ) -> list[Generation]:
        keys = [json.dumps([max_new_tokens, list(m)], sort_keys=True) for m in batch]
        todo = {k: m for k, m in zip(keys, batch, strict=True) if k not in self.memory}
        if todo:
            made = self.inner.generate(list(todo.values()), max_new_tokens=max_new_tokens)
            self.memory.update(zip(todo, made, strict=True))
        self.generated += len(todo)
        self.reused += len(keys) - len(todo)
        return [self.memory[k] for k in keys]


# scenarios --------------------------------------------------------------------------------------------------------


@dataclass
class Candidate:
    """One question in one role, with its screening and final case forms."""

    role: str  # gap, stale, format-regex, format-json, retrieval, control
    question: Question
    paragraph: Paragraph
    change: Change | None = None
    copies: list[str] = field(default_factory=list)

    @property
    def doc_id(self) -> str:
        return f"{SOURCE}/{self.paragraph.pid}.txt"

    @property
    def asked(self) -> str:
        """Behaviour cases quote the paragraph in the question (an extraction feature): the prompt variants, which
        answer without retrieval, can then get the content right, so only the form separates them."""
        if self.role.startswith("format-"):
            return f"Text: {self.paragraph.text}\n\nQuestion: {self.question.text}"
        return self.question.text

    def case(self, case_id: str, *, before: bool = False) -> dict[str, Any]:
        q = self.question
        out: dict[str, Any] = {"id": case_id, "question": self.asked, "answers": list(q.answers),
                               "evidence": [self.doc_id], "tags": [self.role]}  # fmt: skip
        if self.role == "stale" and self.change is not None:
            if before:
                out |= {"as_of": BEFORE, "tags": ["stale-before"]}
            else:
                out |= {"answers": list(self.change.answers), "stale_answers": list(self.change.stale_answers),
                        "as_of": AFTER}  # fmt: skip
        elif self.role == "format-regex":
            out["format"] = {"regex": BARE_VALUE}
        elif self.role == "format-json":
            out["format"] = {"json_schema": ANSWER_JSON}
        return out


def candidates(
    paragraphs: dict[str, Paragraph], questions: list[Question], seed: int, copies: int
) -> dict[str, Iterator[Candidate]]:
    """Candidate pools by role, one question per paragraph and each paragraph in one role only."""
    rng = random.Random(seed)
    by_paragraph: dict[str, list[Question]] = {}
    for q in questions:
        short = q.short
        sentence = answer_sentence(paragraphs[q.pid].text, q.answers)
        # short extractive answers to questions worded like their sentence: what a 135M model can read off a passage
        if len(short.split()) <= 3 and sentence is not None and overlap(q.text, sentence) >= 0.5:
            by_paragraph.setdefault(q.pid, []).append(q)
    order = sorted(by_paragraph)
    rng.shuffle(order)
    texts = {pid: p.text for pid, p in paragraphs.items()}
    pool = sorted({q.short for q in questions})
    used: set[str] = set()

    def pick(role: str, accept: Callable[[Question, Paragraph], Candidate | None]) -> Iterator[Candidate]:
        for pid in order:
            if pid in used:
                continue
            for q in by_paragraph[pid]:
                made = accept(q, paragraphs[pid])
                if made is not None and pid not in used:
                    used.add(pid)
                    yield made
                    break

    def stale(q: Question, p: Paragraph) -> Candidate | None:
        change = change_number(p.text, q.answers)
        return Candidate("stale", q, p, change=change) if change else None

    def gap(q: Question, p: Paragraph) -> Candidate | None:
        others = (t for pid, t in texts.items() if pid != p.pid)
        return None if any(states(t, q.answers) for t in others) else Candidate("gap", q, p)

    def buried(q: Question, p: Paragraph) -> Candidate | None:
        alts = alternatives_for(q.answers, pool, copies, random.Random(f"{seed}:{q.qid}"))
        made = near_duplicates(p.text, q.answers, alts) if len(alts) == copies else None
        return Candidate("retrieval", q, p, copies=made) if made else None

    def plain(role: str) -> Callable[[Question, Paragraph], Candidate | None]:
        return lambda q, p: Candidate(role, q, p)

    return {
        "stale": pick("stale", stale),
        "retrieval": pick("retrieval", buried),
        "gap": pick("gap", gap),
        "format-regex": pick("format-regex", plain("format-regex")),
        "format-json": pick("format-json", plain("format-json")),
        "control": pick("control", plain("control")),
    }


# the project ------------------------------------------------------------------------------------------------------


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def prompt_variants() -> str:
    """``[eval.prompts]`` tables: the built-in plain, concise and fewshot, and ``extract``, written for the
    bare-value format (what a team whose rule is a bare value would try first)."""
    from ragtune.config import FewShotExample, PromptVariantSection
    from ragtune.harness.arms import BUILTIN_VARIANTS

    def toml(text: str) -> str:
        return json.dumps(text)  # a JSON string is a valid TOML basic string

    variants = dict(BUILTIN_VARIANTS)
    # the examples are asked as the cases are: the instruction follows the question
    variants["extract"] = PromptVariantSection(
        system=EXTRACT_SYSTEM,
        instruction=EXTRACT_INSTRUCTION,
        examples=[FewShotExample(question=f"{q}\n\n{EXTRACT_INSTRUCTION}", answer=a) for q, a in EXTRACT_EXAMPLES],
    )
    lines = []
    for name, v in variants.items():
        lines += [f"[eval.prompts.{name}]", f"system = {toml(v.system)}", f"instruction = {toml(v.instruction)}"]
        for ex in v.examples:
            lines += [f"[[eval.prompts.{name}.examples]]", f"question = {toml(ex.question)}",
                      f"answer = {toml(ex.answer)}"]  # fmt: skip
    return "\n" + "\n".join(lines) + "\n"


def make_project(folder: Path, paragraphs: Sequence[Paragraph], max_new_tokens: int, sources: int) -> Project:
    from ragtune.config import CONFIG_FILE, load_config, render_template
    from ragtune.corpus.ingest import ingest_paths
    from ragtune.corpus.loaders import Defaults
    from ragtune.corpus.model import parse_when
    from ragtune.project import Project, init_project

    root, _ = init_project(folder)
    config = load_config(root / CONFIG_FILE)
    config.generator.max_new_tokens = max_new_tokens
    config.answer.sources = sources
    (root / CONFIG_FILE).write_text(render_template(config) + prompt_variants(), encoding="utf-8")
    project = Project.open(root)
    docs = root / SOURCE
    docs.mkdir()
    for p in paragraphs:
        (docs / f"{p.pid}.txt").write_text(p.text + "\n", encoding="utf-8")
    defaults = Defaults(source=SOURCE, owner="bench", valid_from=parse_when(VALID_FROM))
    report = ingest_paths(project, [docs], defaults, sync=True)
    if not report.ok:
        raise SystemExit(f"ingest failed: {report.errors[:3]}")
    project.generator = ReusedGenerations(project.generator)
    return project


def run_cases(project: Project, name: str, cases: Sequence[dict[str, Any]], arms: list[str]) -> RunData:
    """Run ``cases`` over ``arms`` as run ``name``; the stored results, as diagnosis reads them."""
    from ragtune.diagnosis.facts import load_run_data
    from ragtune.harness.runs import execute_run

    path = project.root / f"{name}.jsonl"
    path.write_text("".join(json.dumps(c) + "\n" for c in cases), encoding="utf-8")
    done = [0]

    def progress(n: int, total: int) -> None:
        done[0] += n
        log(f"  {name}: {done[0]}/{total} answers")

    t0 = time.perf_counter()
    execute_run(project, path, arms, name=name, progress=progress)
    log(f"  {name}: {len(cases)} cases x {len(arms)} arms in {time.perf_counter() - t0:.0f} s")
    return load_run_data(project.store, name, project.root)


def says(answer: str, values: Sequence[str]) -> bool:
    """Whether ``answer`` contains one of ``values`` as whole words: screening is stricter than the accuracy scorer,
    whose 1% numeric tolerance takes 2013 for 2003."""
    from ragtune.harness.scorers.content import find_match

    return find_match(answer, list(values))[0] is not None


def shows(c: Candidate, label: str, answer: str, *, before: bool = False) -> str | None:
    """None when rag's result in the final form shows what the candidate's role needs, else why not (``before``:
    the stale case's question asked before the change, which must be answered right with the old value)."""
    role = "control" if before else c.role
    want = {"stale": "stale", "format-regex": "format", "format-json": "format", "control": "correct"}.get(
        role, "wrong"
    )
    if label != want:
        return f"rag {label}, not {want}" + (" before the change" if before else "")
    if role == "stale" and c.change is not None and not says(answer, c.change.stale_answers):
        return "rag's stale value only within the numeric tolerance"
    if want in ("format", "correct") and not says(answer, c.question.answers):
        return "rag right only within the numeric tolerance"
    return None


def fixes_form(c: Candidate, prompts: ArmResult) -> str | None:
    """None when the prompt variants do to the form what the behaviour role needs, else why not: for a bare value
    one variant follows the rule (a prompt fixes it), for JSON none does (only training can)."""
    formed = [v for v in prompts.variants if prompts.variant_formatted(v)]
    if c.role == "format-regex" and not formed:
        return "no prompt variant gives a bare value"
    if c.role == "format-json" and formed:
        return f"prompt variant {formed[0]} gives JSON"
    return None


def screen(project: Project, pools: dict[str, Iterator[Candidate]], need: dict[str, int], rounds: int = 4) -> tuple[dict[str, list[Candidate]], dict[str, Counter[str]]]:  # fmt: skip
    """Screen candidates until each role has ``need`` of them (or its pool or the rounds run out).

    Retrieval candidates first go to the oracle arm, which must read the answer off the gold paragraph (the
    retrieval rules need the oracle right). Stale, behaviour and control candidates go to the rag arm in their final
    form, which needs no corpus change yet, and are kept when rag shows the injected failure: the old value from
    the stale index (label ``stale``), right content in the wrong form (``format``), or, for controls, the right
    answer. Behaviour candidates also go to the prompts arm: a bare value is kept when a variant follows the rule,
    JSON when none does. Gap, retrieval, stale and control candidates are checked again after the injection
    (:func:`confirm`).
    """
    kept: dict[str, list[Candidate]] = {r: [] for r in need}
    stats: dict[str, Counter[str]] = {r: Counter() for r in need}
    factor = {"retrieval": 2.5, "gap": 1.0, "stale": 3.5, "control": 4.5, "format-regex": 3.0, "format-json": 1.5}
    for r in range(1, rounds + 1):
        batch: list[Candidate] = []
        for role, n in need.items():
            short = n - len(kept[role])
            if short > 0:
                batch += [c for _, c in zip(range(round(short * factor[role] + 0.49)), pools[role], strict=False)]
        if not batch:
            break
        ids = {f"s{r}-{i:03d}": c for i, c in enumerate(batch)}
        for c in batch:
            stats[c.role]["screened"] += 1
        passed = {i: c for i, c in ids.items() if c.role == "gap"}
        first = {i: c for i, c in ids.items() if c.role == "retrieval"}
        if first:
            data = run_cases(project, f"screen-oracle-{r}", [c.case(i) for i, c in first.items()], ["oracle"])
            for i, c in first.items():
                o = data.results[i]["oracle"]
                if o.label == "correct" and says(o.answer, c.question.answers):
                    passed[i] = c
                else:
                    stats[c.role]["oracle wrong"] += 1
        for arms, roles in ((["rag"], ("stale", "control")), (["rag", "prompts"], ("format-regex", "format-json"))):
            second = {i: c for i, c in ids.items() if c.role in roles}
            if not second:
                continue
            data = run_cases(project, f"screen-{'-'.join(arms)}-{r}", [c.case(i) for i, c in second.items()], arms)
            for i, c in second.items():
                rag = data.results[i]["rag"]
                why = shows(c, rag.label, rag.answer)
                if why is None and "prompts" in arms:
                    why = fixes_form(c, data.results[i]["prompts"])
                if why is None:
                    passed[i] = c
                else:
                    stats[c.role][why] += 1
        for i in ids:
            c = ids[i]
            if i in passed and len(kept[c.role]) < need[c.role]:
                kept[c.role].append(c)
    return kept, stats


def inject(project: Project, kept: dict[str, list[Candidate]], stats: dict[str, Counter[str]]) -> None:
    """Forget the gap cases' paragraphs, write the stale cases' new versions (not ingested: a stale index), ingest
    the retrieval cases' near-duplicates, and drop the retrieval cases whose gold still reaches rag's context."""
    from ragtune.answer.context import assemble
    from ragtune.corpus.forget import forget
    from ragtune.corpus.ingest import ingest_paths
    from ragtune.corpus.loaders import Defaults
    from ragtune.corpus.model import parse_when
    from ragtune.index.index import Filters
    from ragtune.retrieval.search import Retriever

    if kept["gap"]:
        receipt = forget(project, [c.doc_id for c in kept["gap"]])
        log(f"gap: forgot {receipt.totals.get('documents', 0)} paragraphs")
    for c in kept["stale"]:
        assert c.change is not None
        (project.root / c.doc_id).write_text(c.change.text + "\n", encoding="utf-8")
    log(f"stale: {len(kept['stale'])} paragraphs changed on disk, not re-ingested")
    mirror = project.root / MIRROR
    mirror.mkdir(exist_ok=True)
    for c in kept["retrieval"]:
        for i, text in enumerate(c.copies):
            (mirror / f"{c.paragraph.pid}-copy{i}.txt").write_text(text + "\n", encoding="utf-8")
    if kept["retrieval"]:
        ingest_paths(project, [mirror], Defaults(source=MIRROR, owner="bench", valid_from=parse_when(VALID_FROM)))
    settings = project.config.answer
    retriever = Retriever(project.store, project.index, project.embedder, project.config.retrieval)
    buried = []
    for c in kept["retrieval"]:
        hits = retriever.search(c.question.text, settings.sources, Filters()).hits
        context = assemble(hits, settings.context_tokens, project.generator.count_tokens, settings.dedupe_overlap)
        if any(s.hit.doc_id == c.doc_id for s in context.sources):
            stats["retrieval"]["gold still in rag's context after the burial"] += 1
        else:
            buried.append(c)
    log(f"retrieval: {len(buried)} of {len(kept['retrieval'])} gold paragraphs pushed out of rag's context")
    kept["retrieval"] = buried


CONFIRMED = ("gap", "retrieval", "stale", "control")


def confirm(project: Project, kept: dict[str, list[Candidate]], per: int, stats: dict[str, Counter[str]]) -> None:
    """After the injection, ask rag again: it must fail on the gap and retrieval cases (a gap is no gap when another
    passage answers, a burial none when the model answers anyway), and be right on the controls and on the stale
    cases' questions before the change (a forgotten paragraph or a near-duplicate can reach another question's
    context). The first ``per`` of each role that hold are kept. The measured run asks the same conversations
    again, so these answers are reused there."""
    todo = {f"c-{i:03d}": c for i, c in enumerate(c for role in CONFIRMED for c in kept[role])}
    if not todo:
        return
    cases = [c.case(i) for i, c in todo.items()]
    cases += [c.case(f"{i}-before", before=True) for i, c in todo.items() if c.role == "stale"]
    data = run_cases(project, "screen-rag-injected", cases, ["rag"])
    for role in CONFIRMED:
        kept[role] = []
    for i, c in todo.items():
        rag = data.results[i]["rag"]
        why = shows(c, rag.label, rag.answer)
        if why is None and c.role == "stale":
            early = data.results[f"{i}-before"]["rag"]
            why = shows(c, early.label, early.answer, before=True)
        if why is not None:
            stats[c.role][why + " after the injection"] += 1
        elif len(kept[c.role]) < per:
            kept[c.role].append(c)


# scoring ----------------------------------------------------------------------------------------------------------


def variant_facts(prompts: ArmResult) -> dict[str, dict[str, Any]]:
    """Each prompt variant's answer and what the accuracy and format scorers said of it."""
    out = {}
    for v, text in prompts.variants.items():
        acc, fmt = (prompts.score(f"variant.{v}.{s}") for s in ("accuracy", "format"))
        out[v] = {"answer": text, "accuracy": acc.passed if acc else None, "format": fmt.passed if fmt else None}
    return out


def scenario_of(role: str) -> str:
    return "behaviour" if role.startswith("format-") else role


def judge(role: str, attributed: tuple[str, str] | None) -> bool:
    """Whether an attribution (None: the case came out right) matches the injected cause."""
    if role in ("control", "stale-before"):
        return attributed is None
    if attributed is None:
        return False
    family, causes = EXPECTED[role]
    return attributed[0] == family and attributed[1] in causes


def share(hits: int, n: int) -> dict[str, Any]:
    return {"correct": hits, "n": n, "accuracy": round(hits / n, 4) if n else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="The squad_v2_dev_half folder (with beir_format/).")
    parser.add_argument("--per-scenario", type=int, default=10, help="Injected cases per scenario (and controls).")
    parser.add_argument(
        "--paragraphs", type=int, default=300, help="Paragraphs ingested (the first N, whole articles)."
    )
    parser.add_argument("--copies", type=int, default=8, help="Near-duplicates burying each retrieval case's gold.")
    parser.add_argument("--sources", type=int, default=3, help="[answer] sources: retrieved chunks in rag's context.")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="Print the results as JSON (progress goes to stderr).")
    args = parser.parse_args()
    if not (args.data / "beir_format" / "corpus.jsonl").is_file():
        raise SystemExit(
            f"no SQuAD 2.0 data at {args.data}/beir_format (corpus.jsonl, queries.jsonl): this benchmark reads "
            "../shared/data/squad_v2_dev_half; pass --data FOLDER"
        )
    started = time.perf_counter()
    from ragtune.diagnosis import diagnose_run

    paragraphs, questions = read_squad(args.data)
    subset = list(paragraphs.values())[: args.paragraphs]
    ids = {p.pid for p in subset}
    questions = [q for q in questions if q.pid in ids]
    per = args.per_scenario
    half = (per + 1) // 2
    # spares for the roles confirmed after the injection, which drops some
    need = {"stale": per + 2, "retrieval": per + 6, "gap": per + 3, "format-regex": half, "format-json": per - half,
            "control": per + 3}  # fmt: skip
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="ragtune-diagval-") as tmp:
        t = time.perf_counter()
        project = make_project(Path(tmp) / "proj", subset, args.max_new_tokens, args.sources)
        timings["ingest_s"] = round(time.perf_counter() - t, 1)
        log(f"ingested {len(subset)} paragraphs in {timings['ingest_s']} s; {len(questions)} answerable questions")
        gen = project.generator
        assert isinstance(gen, ReusedGenerations)
        pools = candidates({p.pid: p for p in subset}, questions, args.seed, args.copies)
        t = time.perf_counter()
        kept, screening = screen(project, pools, need)
        timings["screen_s"] = round(time.perf_counter() - t, 1)
        t = time.perf_counter()
        inject(project, kept, screening)
        confirm(project, kept, per, screening)
        chosen = [c for role in kept.values() for c in role]
        timings["inject_s"] = round(time.perf_counter() - t, 1)

        cases: list[dict[str, Any]] = []
        roles: dict[str, str] = {}
        for role in ("gap", "stale", "format-regex", "format-json", "retrieval", "control"):
            for i, c in enumerate(c for c in chosen if c.role == role):
                cid = f"{role}-{i:02d}"
                cases.append(c.case(cid))
                roles[cid] = role
                if role == "stale":
                    cases.append(c.case(f"stale-before-{i:02d}", before=True))
                    roles[f"stale-before-{i:02d}"] = "stale-before"
        t = time.perf_counter()
        data = run_cases(project, "validation", cases, ARMS)
        diagnosis = diagnose_run(project, "validation")
        timings["run_s"] = round(time.perf_counter() - t, 1)
        attributed = {a.case_id: a for a in diagnosis.cases if a.family != "operations"}

        rows = []
        for case in cases:
            cid = case["id"]
            a = attributed.get(cid)
            got = (a.family, a.cause) if a else None
            results = data.results[cid]
            rows.append({"id": cid, "role": roles[cid], "attributed": "/".join(got) if got else "correct",
                         "right": judge(roles[cid], got), "confidence": a.confidence if a else None,
                         "question": case["question"][-160:], "answers": case["answers"],
                         "labels": {arm: r.label for arm, r in results.items()},
                         "rag_answer": results["rag"].answer, "why": a.why if a else "",
                         "variants": variant_facts(results["prompts"]) if case.get("format") else None})  # fmt: skip
        by_scenario: dict[str, list[bool]] = {}
        for row in rows:
            by_scenario.setdefault(scenario_of(row["role"]), []).append(row["right"])
        injected = [r for r in rows if r["role"] not in ("control", "stale-before")]
        confusion: dict[str, Counter[str]] = {}
        for row in rows:
            confusion.setdefault(row["role"], Counter())[row["attributed"]] += 1
        fixable = {r: Counter(x["attributed"] for x in rows if x["role"] == r) for r in ("format-regex", "format-json")}

        # scenario mixes, each diagnosed as a run of its own ----------------------------------------------------
        def pick(*prefixes: str, limit: int | None = None) -> list[dict[str, Any]]:
            out = [c for c in cases if roles[c["id"]] in prefixes]
            return out[:limit] if limit is not None else out

        controls = pick("control", "stale-before")
        n_json = len(pick("format-json"))
        mixes = {
            "facts (gap + stale + retrieval)": pick("gap", "stale", "retrieval"),
            "format, bare value (regex)": pick("format-regex"),
            "format, JSON": pick("format-json"),
            "knowledge + behaviour (gap + stale + JSON)": pick("gap", limit=(n_json + 1) // 2)
            + pick("stale", limit=n_json // 2)
            + pick("format-json"),
            "healthy (controls + 1 gap)": controls + pick("gap", limit=1),
            "everything": cases,
        }
        t = time.perf_counter()
        mix_rows = []
        for k, (name, mix) in enumerate(mixes.items()):
            injected_sides = Counter(SIDE[roles[c["id"]]] for c in mix if roles[c["id"]] in SIDE)
            expected = expected_verdict(len(mix), injected_sides)
            run = "validation" if mix is cases else f"mix-{k}"
            if mix is not cases:
                run_cases(project, run, mix, ARMS)
            d = diagnosis if mix is cases else diagnose_run(project, run)
            rec = d.recommendation
            mix_rows.append({"mix": name, "n": len(mix), "injected": dict(injected_sides), "expected": expected,
                             "verdict": rec.verdict, "right": rec.verdict == expected, "confidence": rec.confidence,
                             "reason": rec.reason, "confidence_reason": rec.confidence_reason})  # fmt: skip
        timings["mixes_s"] = round(time.perf_counter() - t, 1)
        timings["total_s"] = round(time.perf_counter() - started, 1)
        result = {
            "command": "bench/diagnosis_validation.py " + " ".join(sys.argv[1:]),
            "settings": {
                "paragraphs": len(subset),
                "per_scenario": per,
                "copies": args.copies,
                "sources": args.sources,
                "max_new_tokens": args.max_new_tokens,
                "seed": args.seed,
                "arms": ARMS,
                "prompt_variants": list(project.config.eval.prompts),
                "model": gen.identity(),
            },
            "screening": {role: dict(s) | {"kept": len(kept.get(role, []))} for role, s in screening.items()},
            "attribution": {
                "overall": share(sum(r["right"] for r in injected), len(injected)),
                "by_scenario": {s: share(sum(v), len(v)) for s, v in by_scenario.items()},
                "behaviour_causes": {r: dict(v) for r, v in fixable.items()},
            },
            "confusion": {role: dict(v) for role, v in confusion.items()},
            "verdicts": mix_rows,
            "cases": rows,
            "generations": {"generated": gen.generated, "reused": gen.reused},
            "timings": timings,
        }
        project.close()
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_report(result)


def print_report(result: dict[str, Any]) -> None:
    att = result["attribution"]
    o = att["overall"]
    print(f"per-case attribution accuracy (injected cases): {o['correct']}/{o['n']} = {o['accuracy']:.0%}")
    for s, v in att["by_scenario"].items():
        print(f"  {s:<14} {v['correct']:>3}/{v['n']:<3} {v['accuracy']:.0%}")
    print("behaviour causes:", json.dumps(att["behaviour_causes"]))
    print("confusion (injected role -> attributed):")
    for role, counts in result["confusion"].items():
        print(f"  {role:<14} " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])))
    print("verdict per mix:")
    for m in result["verdicts"]:
        mark = "ok  " if m["right"] else "MISS"
        print(f"  {mark} {m['mix']:<44} n={m['n']:<3} expected {m['expected']:<13} got {m['verdict']:<13} "
              f"({m['confidence']}: {m['confidence_reason']})")  # fmt: skip
    for row in result["cases"]:
        if not row["right"]:
            print(f"  missed {row['id']}: {row['attributed']} labels={row['labels']} rag={row['rag_answer'][:100]!r}")
    print("screening:", json.dumps(result["screening"]))
    print("generations:", json.dumps(result["generations"]), "timings:", json.dumps(result["timings"]))


if __name__ == "__main__":
    main()
