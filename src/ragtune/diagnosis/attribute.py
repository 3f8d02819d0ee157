"""Attribution by intervention: for each failed case of the primary arm, the family and cause of the failure, read off
what the other arms and the retrieval facts show (DESIGN.md's table; the rules are in docs/diagnosis.md).

Every attribution says *what* failed (the stage), *why* (the evidence: chunk ids as doc@version, the stale value and
the version it came from, the broken rule and the offending answer) and *next* (a concrete step with the ragtune
command). Arms that contradict each other make a case ``unclear``, never a forced family. When the arm that would
separate two causes is missing, the facts present decide, the attribution's confidence is ``low`` and ``why`` names
the missing arm, whose command ``next`` gives first::

    primary, _ = choose_primary(data, "")
    attributions = Attributor(data, Corpus(store), primary, project.config, summaries).attribute_all()
"""

from __future__ import annotations

import shlex
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from ragtune.config import Config
from ragtune.corpus.model import iso, parse_when
from ragtune.diagnosis.facts import Corpus, RunData, VersionInfo
from ragtune.diagnosis.taxonomy import UNCLEAR, UNCLEAR_REASONS, cause
from ragtune.errors import HarnessError
from ragtune.harness.model import Case
from ragtune.harness.scorers.staleness import gives
from ragtune.harness.store import ArmResult

Confidence = Literal["high", "medium", "low"]

STYLE_RULES = ("max_words", "ifeval")
"""Format rule kinds that are style (length, tone, punctuation) rather than structure; see also the 'style' tag."""

_TOLERANCE = 0.01  # the scorers' default numeric tolerance: 'gives a value' means the same here as in staleness


@dataclass
class Attribution:
    """One failed case: which arm failed, the family and cause, what failed, why we say so, and what to do next.

    >>> a = diagnose_run(project, "baseline").cases[0]
    >>> a.family, a.cause, a.next     # ('retrieval', 'miss', "see where the gold ranks: `ragtune search ...")
    """

    case_id: str
    arm: str
    family: str
    cause: str
    what: str
    why: str
    next: str
    confidence: Confidence = "high"
    question: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def unclear(self) -> bool:
        return self.family == UNCLEAR

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        return {"id": out.pop("case_id"), **out}


def choose_primary(data: RunData, configured: str = "") -> tuple[str, str]:
    """The arm whose failures are diagnosed, and why that one."""
    arms = data.info.arms
    if configured:
        if configured not in arms:
            raise HarnessError(f"primary arm {configured!r} is not in run {data.info.run!r} ({', '.join(arms)})")
        return configured, "chosen explicitly"
    if "rag" in arms:
        return "rag", "the run's rag arm: the retrieval-augmented system under test"
    candidates = [a for a in arms if a != "oracle"]
    if not candidates:
        raise HarnessError(
            f"run {data.info.run!r} has only the oracle arm, which needs gold evidence and so is no deployable "
            "system; evaluate closed-book or rag too"
        )

    def accuracy(arm: str) -> float:
        scored = [r.score("accuracy") for r in data.arm_results(arm)]
        values = [float(s.value or 0.0) for s in scored if s is not None]
        return sum(values) / len(values) if values else -1.0

    best = max(candidates, key=lambda a: (accuracy(a), -arms.index(a)))
    return best, "the run has no rag arm: its best-scoring arm other than oracle"


def _when(stamp: str | None) -> str:
    """An ISO timestamp as a date when it is midnight UTC (as validity dates from bare dates are)."""
    if stamp is None:
        return "now"
    return stamp[:10] if stamp.endswith(("T00:00:00+00:00", "T23:59:59+00:00")) else stamp


def _short(text: str, limit: int = 90) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


class Attributor:
    """Attributes every failed case of one run (see the module docstring)."""

    def __init__(
        self, data: RunData, corpus: Corpus, primary: str, config: Config, summaries: dict[str, dict[str, Any]]
    ) -> None:
        self.data = data
        self.corpus = corpus
        self.primary = primary
        self.config = config
        self.summaries = summaries
        self.cases_path = shlex.quote(data.info.cases_path)
        self.run = data.info.run

    # commands -----------------------------------------------------------------------------------------------

    def eval_cmd(self, arms: str, suffix: str) -> str:
        return f"ragtune eval {self.cases_path} --arms {arms} --name {self.run}-{suffix}"

    def tune_cmd(self) -> str:
        return f"ragtune tune data --from-cases {self.cases_path}"

    def ingest_cmd(self, doc_id: str) -> str:
        doc = self.corpus.doc(doc_id)
        if doc is None:
            return f"ragtune ingest PATH --source SOURCE --owner TEAM  # the file that states it, as {doc_id}"
        owner = "" if doc.owner else " --owner TEAM"
        return f"ragtune ingest {shlex.quote(doc.path or doc_id)} --source {shlex.quote(doc.source)}{owner}"

    # entry points -------------------------------------------------------------------------------------------

    def attribute_all(self) -> list[Attribution]:
        out = []
        for case_id, arms in self.data.results.items():
            found = self.attribute(case_id, arms)
            if found is not None:
                out.append(found)
        return out

    def attribute(self, case_id: str, arms: dict[str, ArmResult]) -> Attribution | None:
        """The attribution of one case, or None when its primary result is right and within the targets."""
        case = self.data.cases.get(case_id)
        labels = {a: r.label for a, r in arms.items()}
        p = arms.get(self.primary)
        base = {"case_id": case_id, "arm": self.primary, "question": case.question if case else None,
                "labels": labels}  # fmt: skip
        if p is None:
            return self._unclear(base, "missing_arm", f"the primary arm {self.primary!r} has no result for this case",
                                 self.eval_cmd(self.primary, "resume"))  # fmt: skip
        if p.correct:
            return self._operations(base, p)
        if p.error or p.label == "unscored":
            why = (
                f"{self.primary} did not answer: {p.error}"
                if p.error
                else f"{self.primary}'s answer could not be scored"
            )
            return self._unclear(base, "arm_error", why, f"ragtune runs show {self.run} --json  # then fix the arm and re-run")  # fmt: skip
        if p.label == "format":
            return self._behaviour(base, case, arms, p)
        if p.label == "stale":
            return self._stale(base, case, arms, p)
        return self._wrong(base, case, arms, p)

    # builders -----------------------------------------------------------------------------------------------

    def _make(self, base: dict[str, Any], family: str, name: str, why: str, nxt: str, confidence: Confidence = "high",
              **evidence: Any) -> Attribution:  # fmt: skip
        return Attribution(**base, family=family, cause=name, what=cause(family, name).what, why=why, next=nxt,
                           confidence=confidence, evidence=evidence)  # fmt: skip

    def _unclear(self, base: dict[str, Any], reason: str, why: str, nxt: str, **evidence: Any) -> Attribution:
        what = "unclear: " + UNCLEAR_REASONS[reason]  # type: ignore[index]
        return Attribution(**base, family=UNCLEAR, cause=reason, what=what, why=why, next=nxt, confidence="low",
                           evidence=evidence)  # fmt: skip

    # operations ---------------------------------------------------------------------------------------------

    def _operations(self, base: dict[str, Any], p: ArmResult) -> Attribution | None:
        targets, summary = self.config.targets, self.summaries.get(self.primary, {})
        p95, cost_1k = summary.get("p95_ms"), summary.get("cost_per_1k")
        if targets.p95_ms > 0 and p95 is not None and p95 > targets.p95_ms and (p.latency_ms or 0) > targets.p95_ms:
            why = (f"{self.primary}'s p95 latency is {p95:,.0f} ms against a target of {targets.p95_ms:,.0f} ms, and "
                   f"this answer took {p.latency_ms or 0:,.0f} ms when timed alone")  # fmt: skip
            nxt = (f"a smaller context ([answer] context_tokens = {self.config.answer.context_tokens}, sources = "
                   f"{self.config.answer.sources}), a faster arm or caching; then {self.eval_cmd(self.primary, 'fast')}")  # fmt: skip
            return self._make(base, "operations", "latency", why, nxt, latency_ms=p.latency_ms, p95_ms=p95,
                              target_ms=targets.p95_ms)  # fmt: skip
        bound = targets.cost_per_1k_usd
        if bound > 0 and cost_1k is not None and cost_1k > bound and p.cost_usd * 1000 > bound:
            why = (f"{self.primary} costs ${cost_1k:.4f} per 1k requests against a target of ${bound:.4f}; this "
                   f"answer alone would cost ${p.cost_usd * 1000:.4f} per 1k")  # fmt: skip
            nxt = f"a cheaper arm or a smaller context (fewer tokens in); then {self.eval_cmd(self.primary, 'cheap')}"
            return self._make(base, "operations", "cost", why, nxt, cost_usd=p.cost_usd, cost_per_1k=cost_1k,
                              target_per_1k=bound)  # fmt: skip
        return None

    # behaviour ----------------------------------------------------------------------------------------------

    def _behaviour(self, base: dict[str, Any], case: Case | None, arms: dict[str, ArmResult], p: ArmResult) -> Attribution:  # fmt: skip
        fmt = p.score("format")
        rule = case.format.kind if case and case.format else (fmt.details.get("rule") if fmt else None) or "format"
        style = rule in STYLE_RULES or bool(case and any("style" in t.lower() for t in case.tags))
        broken = f"{self.primary}'s answer {_short(p.answer)} breaks the {rule} rule ({fmt.reason if fmt else 'format failed'})"  # fmt: skip
        evidence: dict[str, Any] = {"rule": rule, "answer": p.answer, "reason": fmt.reason if fmt else None}
        trained = [a for a, r in arms.items() if a.startswith(("adapter:", "hybrid:")) and r.correct]
        also = f"; {', '.join(trained)} gets it right and well-formed" if trained else ""
        prompts = arms.get("prompts")
        # the form alone decides: the prompts arm answers without retrieval, so a variant that fixes the form of a
        # fact it cannot know would never count if its content had to be right too
        verdicts = {v: prompts.variant_formatted(v) for v in prompts.variants} if prompts else {}
        tried = {v: ok for v, ok in verdicts.items() if ok is not None}
        name = "style" if style else "needs_training"
        tune = self.tune_cmd()
        if prompts is not None and tried:
            fixing = [v for v, ok in tried.items() if ok]
            if fixing:
                v = fixing[0]
                why = f"{broken}; the prompt variant {v!r} answers {_short(prompts.variants[v])}, well-formed"
                nxt = (f"adopt the {v!r} prompt variant ([eval.prompts.{v}] in ragtune.toml, then your answer prompt); "
                       f"confirm with {self.eval_cmd('prompts', 'prompts')}")  # fmt: skip
                return self._make(base, "behaviour", "prompt_fixable", why, nxt, variant=v,
                                  variant_answer=prompts.variants[v], fixing_variants=fixing, **evidence)  # fmt: skip
            why = f"{broken}; every prompt variant ({', '.join(tried)}) breaks it too{also}"
            nxt = f"fine-tune (LoRA) for the format: {tune}, then `ragtune tune train`; compare with {self.eval_cmd('adapter:VERSION', 'adapter')}"  # fmt: skip
            return self._make(base, "behaviour", name, why, nxt, variants=dict(prompts.variants), **evidence)
        why = (f"{broken}; this run has no prompts arm, so it is untested whether a prompt fixes it (confidence "
               f"low){also}")  # fmt: skip
        nxt = f"first {self.eval_cmd('prompts', 'prompts')}; if no variant fixes it, {tune}"
        return self._make(base, "behaviour", name, why, nxt, "medium" if trained else "low", **evidence)

    # content wrong ------------------------------------------------------------------------------------------

    def _gold(self, case: Case | None, arms: dict[str, ArmResult]) -> list[str]:
        if case is not None and case.evidence:
            return list(case.evidence)
        for r in arms.values():
            ret = r.score("retrieval")
            if ret is not None and isinstance(ret.details.get("exists_by_doc"), dict):
                return list(ret.details["exists_by_doc"])
        return []

    def _as_of(self, case: Case | None) -> str | None:
        return iso(parse_when(case.as_of, end_of_day=True)) if case and case.as_of else None

    def _context(self, p: ArmResult, limit: int = 5) -> str:
        shown = []
        for c in p.chunks[:limit]:
            state = "in context" if c.get("status") == "used" else f"dropped: {c.get('reason', '?')}"
            shown.append(
                f"{c.get('doc_id')}@{c.get('version')} {c.get('chunk_id', '')} (rank {c.get('rank')}, {state})"
            )
        more = f", and {len(p.chunks) - limit} more" if len(p.chunks) > limit else ""
        return "; ".join(shown) + more if shown else "nothing"

    def _states_answer(self, gold: list[str], case: Case | None) -> tuple[bool | None, list[str]]:
        """Whether the gold documents' text valid at the case's date states an acceptable answer (None: unknown)."""
        if case is None or not case.answers:
            return None, []
        versions = [v for d in gold if (v := self.corpus.version_at(d, self._as_of(case))) is not None]
        if not versions:
            return None, []
        refs = [v.ref for v in versions]
        return any(gives(v.text, a, _TOLERANCE) for v in versions for a in case.answers), refs

    def _wrong(self, base: dict[str, Any], case: Case | None, arms: dict[str, ArmResult], p: ArmResult) -> Attribution:  # fmt: skip
        gold = self._gold(case, arms)
        cb, orc, rag = arms.get("closed-book"), arms.get("oracle"), arms.get("rag")
        answer = f"{self.primary} answered {_short(p.answer)}"
        if cb is not None and cb is not p and cb.correct and orc is not None and orc.content_wrong:
            return self._unclear(base, "contradiction",
                                 f"{answer}; the oracle, given the gold evidence, is wrong too ({_short(orc.answer)}) "
                                 f"while closed-book is right ({_short(cb.answer)}): the gold evidence may mislead "
                                 "or the case's answers may be off",
                                 f"check the case and its evidence ({', '.join(gold) or 'none named'}); "
                                 f"`ragtune cases validate {self.cases_path}`", gold=gold)  # fmt: skip
        if not gold:
            if cb is not None and cb is not p and cb.correct:
                return self._make(base, "generation", "distraction",
                                  f"{answer}; closed-book is right ({_short(cb.answer)}), so the retrieved context "
                                  f"({self._context(p)}) led it astray; the case names no gold evidence (confidence medium)",
                                  f"fewer, better chunks: lower [answer] sources (now {self.config.answer.sources}) or "
                                  f"turn on [retrieval] rerank; then {self.eval_cmd(self.primary, 'rerank')}",
                                  "medium", context=p.chunks)  # fmt: skip
            return self._unclear(base, "no_evidence", f"{answer}; the case names no gold evidence and no arm is right",
                                 f"add the gold document ids to the case's evidence, then {self.eval_cmd('closed-book,oracle,rag', 'evidence')}")  # fmt: skip
        exists = {d: self.corpus.exists(d) for d in gold}
        if not any(exists.values()):
            return self._make(base, "knowledge", "gap",
                              f"{answer}; its gold evidence ({', '.join(gold)}) is in no current document of the corpus",
                              f"add or own the content: {self.ingest_cmd(gold[0])}", gold=gold, exists=exists)  # fmt: skip
        missing_now = [d for d, e in exists.items() if not e]
        ret = p.score("retrieval")
        if orc is not None and orc.content_wrong:
            states, refs = self._states_answer(gold, case)
            if states is False:
                return self._make(base, "knowledge", "gap",
                                  f"{answer}; the oracle is wrong too ({_short(orc.answer)}) and the gold text "
                                  f"({', '.join(refs)}) states none of the acceptable answers "
                                  f"({', '.join(map(repr, case.answers if case else []))})",
                                  f"add the fact to the gold document or own it: {self.ingest_cmd(gold[0])}",
                                  gold=gold, versions=refs)  # fmt: skip
            if rag is not None and rag is not p and rag.correct:
                return self._unclear(base, "contradiction",
                                     f"{answer}; rag is right ({_short(rag.answer)}) but the oracle, given the gold "
                                     f"evidence, is wrong ({_short(orc.answer)}): the named evidence may not be the "
                                     "passage that answers",
                                     f"check the case's evidence ({', '.join(gold)}) against rag's citations; "
                                     f"`ragtune runs show {self.run}`", gold=gold)  # fmt: skip
            confidence: Confidence = "high" if states else "medium"
            why = (f"{answer}; given the gold evidence the oracle answers {_short(orc.answer)}, wrong as well"
                   + (f", though {', '.join(refs)} states the answer" if states else ""))  # fmt: skip
            nxt = (f"fine-tune on grounded answers ({self.tune_cmd()}) or configure a stronger "
                   "[generator] model; compare with " + self.eval_cmd("oracle,adapter:VERSION", "grounded"))  # fmt: skip
            return self._make(base, "generation", "grounding", why, nxt, confidence, gold=gold, versions=refs)
        oracle_known = orc is not None and orc.content_right
        no_oracle = "" if oracle_known else "; this run has no scored oracle arm, so it is unshown that the model answers right from the gold evidence (confidence low)"  # fmt: skip
        conf: Confidence = "high" if oracle_known else "low"
        gone = f"; since the run, {', '.join(missing_now)} left the corpus" if missing_now else ""
        if ret is not None:  # the primary arm retrieved: where did the gold go?
            rank, in_context = ret.details.get("rank"), bool(ret.details.get("in_context"))
            context = self._context(p)
            if in_context:
                return self._make(base, "generation", "distraction",
                                  f"{answer}; a gold chunk reached the context (best gold rank {rank}) among {context}"
                                  f"{no_oracle}{gone}",
                                  f"fewer, better chunks: lower [answer] sources (now {self.config.answer.sources}), turn "
                                  f"on [retrieval] rerank; then {self.eval_cmd(self.primary, 'rerank')}",
                                  conf, gold=gold, gold_rank=rank, context=p.chunks)  # fmt: skip
            if rank is not None:
                hit = next((c for c in p.chunks if c.get("doc_id") in gold and c.get("rank") == rank), {})
                reason = hit.get("reason")
                ref = f"{hit.get('doc_id')}@{hit.get('version')} ({hit.get('chunk_id')})"
                if reason == "budget":
                    return self._make(base, "retrieval", "budget",
                                      f"{answer}; the gold chunk {ref} was retrieved at rank {rank} but cut by the "
                                      f"context budget ({hit.get('detail', 'no room left')}); retrieved: {context}{no_oracle}",
                                      f"raise [answer] context_tokens (now {self.config.answer.context_tokens}) or lower "
                                      f"[answer] sources (now {self.config.answer.sources}); then {self.eval_cmd(self.primary, 'budget')}",
                                      conf, gold=gold, gold_rank=rank, chunk=hit)  # fmt: skip
                return self._make(base, "retrieval", "ranking",
                                  f"{answer}; the gold chunk {ref} was retrieved at rank {rank} but dropped "
                                  f"({reason or 'not used'}: {hit.get('detail', '')}); retrieved: {context}{no_oracle}",
                                  f"rerank ([retrieval] rerank = \"sentence-maxsim\") or dedupe less ([answer] "
                                  f"dedupe_overlap, now {self.config.answer.dedupe_overlap}); then {self.eval_cmd(self.primary, 'rerank')}",
                                  conf, gold=gold, gold_rank=rank, chunk=hit)  # fmt: skip
            question = shlex.quote(case.question) if case else "QUESTION"
            return self._make(base, "retrieval", "miss",
                              f"{answer}; no chunk of the gold evidence ({', '.join(gold)}) was among the "
                              f"{len(p.chunks)} retrieved: {context}{no_oracle}{gone}",
                              f"see where the gold ranks: `ragtune search {question} -k 50`; then tune [retrieval] "
                              f"keyword_weight/dense_weight, [corpus] chunk_tokens or rewrite the query, and "
                              f"{self.eval_cmd(self.primary, 'retrieval')}",
                              conf, gold=gold, retrieved=p.chunks)  # fmt: skip
        # a model-alone primary (closed-book, prompts, adapter): the knowledge/missing row of the table
        fixers = [a for a in ("oracle", "rag") if (r := arms.get(a)) is not None and r is not p and r.content_right]
        if rag is not None and rag is not p and rag.correct and orc is not None and orc.content_wrong:
            return self._unclear(base, "contradiction", f"{answer}; rag is right but the oracle is wrong",
                                 f"check the case's evidence ({', '.join(gold)})", gold=gold)  # fmt: skip
        conf = "high" if "oracle" in fixers else "medium" if fixers else "low"
        shown = (f"; given it, {' and '.join(fixers)} answer right" if fixers
                 else "; this run has no oracle or rag arm that answers it, so it is unshown that the evidence fixes it (confidence low)")  # fmt: skip
        return self._make(base, "knowledge", "missing",
                          f"{answer} from its own knowledge; the gold evidence ({', '.join(d for d in gold if exists[d])}) "
                          f"is in the corpus{shown}",
                          f"answer with retrieval: {self.eval_cmd('rag', 'rag')}", conf, gold=gold, fixed_by=fixers)  # fmt: skip

    def _stale(self, base: dict[str, Any], case: Case | None, arms: dict[str, ArmResult], p: ArmResult) -> Attribution:  # fmt: skip
        st = p.score("staleness")
        values = [str(v) for v in (st.details.get("stale_found") or [])] if st else []
        if not values and case:
            values = [v for v in case.stale_answers if gives(p.answer, v, _TOLERANCE)]
        gold = self._gold(case, arms)
        as_of = self._as_of(case)
        shown = ", ".join(map(repr, values)) or "a stale value"
        # the stale value in the context: the index (or validity filtering) served an out-of-date version
        for c in p.chunks:
            if c.get("status") != "used" or not c.get("chunk_id"):
                continue
            chunk = self.corpus.chunk(str(c["chunk_id"]))
            if chunk is None or not any(gives(chunk[2], v, _TOLERANCE) for v in values):
                continue
            doc_id, version, _ = chunk
            info = next((v for v in self.corpus.versions(doc_id) if v.version == version), None)
            superseded = info is not None and info.valid_to is not None and (as_of is None or info.valid_to <= as_of)
            ref = f"{doc_id}@{version} ({c['chunk_id']})"
            if superseded and info is not None:
                why = (f"{self.primary} answered {_short(p.answer)}, giving {shown}, which the context's {ref} states; "
                       f"that version was superseded on {_when(info.valid_to)}, before the case's date {_when(as_of)}")  # fmt: skip
                nxt = (f"honour validity dates: check the case's as_of and the --valid-from of the re-ingest; "
                       f"`ragtune docs show {shlex.quote(doc_id)}`, then {self.eval_cmd(self.primary, 'fresh')}")  # fmt: skip
            else:
                why = (f"{self.primary} answered {_short(p.answer)}, giving {shown}, which the context's {ref} still "
                       "states: the corpus holds the out-of-date value (the source was not re-ingested)")  # fmt: skip
                nxt = f"re-ingest the changed source: {self.ingest_cmd(doc_id)}; then {self.eval_cmd(self.primary, 'fresh')}"
            return self._make(base, "retrieval", "stale_index", why, nxt, stale_values=values, chunk=c,
                              version=f"{doc_id}@{version}", superseded=superseded)  # fmt: skip
        # not from the context: from the model's own memory
        origin = self._stale_origin(gold, values)
        came = (
            f"; it is the value of {origin.ref} (valid {_when(origin.valid_from)} to {_when(origin.valid_to)})"
            if origin
            else ""
        )
        ret = p.score("retrieval")
        in_context = bool(ret and ret.details.get("in_context"))
        where = (" although the current gold passage was in its context" if in_context
                 else f"; its context: {self._context(p)}" if p.chunks else "")  # fmt: skip
        nxt = (f"answer from a fresh index: {self.eval_cmd('rag', 'rag')}" if not p.chunks
               else f"make the current passage reach and win the context ([retrieval] rerank, fewer [answer] sources); then {self.eval_cmd(self.primary, 'fresh')}")  # fmt: skip
        return self._make(base, "knowledge", "stale",
                          f"{self.primary} answered {_short(p.answer)}, giving the superseded {shown} from its own "
                          f"memory{where}{came}",
                          nxt, stale_values=values, version=origin.ref if origin else None, gold=gold)  # fmt: skip

    def _stale_origin(self, gold: list[str], values: list[str]) -> VersionInfo | None:
        for doc_id in gold:
            for v in reversed(self.corpus.versions(doc_id)):
                if any(gives(v.text, s, _TOLERANCE) for s in values):
                    return v
        return None
