"""The answering pipeline: retrieve, assemble, prompt, generate, check citations, trace.

:class:`Answerer` serves ``ragtune ask``, the server and the evaluation harness; ``ask_many`` batches generation,
which is where a local model's throughput comes from.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Generator as PyGenerator
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from ragtune.answer.citations import Citation, StreamedCitations, cite
from ragtune.answer.context import Context, assemble, passage_hits
from ragtune.answer.prompt import NO_SOURCES_ANSWER, closed_book_messages, rag_messages
from ragtune.corpus.model import iso
from ragtune.errors import ConfigError
from ragtune.generation.base import Decoding, Generation, Generator, Message, stream_generation
from ragtune.index.index import Filters
from ragtune.retrieval.search import Retriever, SearchResult
from ragtune.store.db import utcnow
from ragtune.traces.store import Trace, save_trace

if TYPE_CHECKING:
    from ragtune.project import Project

Arm = Literal["closed-book", "rag", "oracle"]
ARMS: tuple[Arm, ...] = ("closed-book", "rag", "oracle")
TUNED: dict[str, Arm] = {"adapter": "closed-book", "hybrid": "rag"}
"""Arm families answered by a registered fine-tune: ``adapter:REF`` alone, ``hybrid:REF`` with RAG context."""


def pipeline_arm(arm: str) -> Arm:
    """The pipeline an arm runs: itself for closed-book, rag and oracle; closed-book for ``adapter:REF`` and rag
    for ``hybrid:REF`` (REF: a model version such as v3, or an alias such as production)."""
    for known in ARMS:
        if arm == known:
            return known
    family, sep, ref = arm.partition(":")
    if sep and ref and family in TUNED:
        return TUNED[family]
    raise ConfigError(f"unknown arm {arm!r}; ragtune ask knows {', '.join(ARMS)}, adapter:VERSION, hybrid:VERSION")


@dataclass
class Question:
    """One question and who asks it, when."""

    text: str
    arm: str = "rag"
    as_of: datetime | None = None
    groups: tuple[str, ...] = ()
    k: int | None = None
    caller: str | None = None
    evidence: tuple[str, ...] = ()  # gold document ids: what the oracle arm puts in the prompt
    evidence_texts: tuple[str, ...] = ()  # gold passages given as text: the oracle arm adds them as they are
    system: str | None = None  # the caller's system text, added after the arm's rules
    history: tuple[Message, ...] = ()  # earlier user and assistant turns, oldest first

    def search_query(self) -> str:
        """What retrieval searches for: the question, after the user turn before it when there is one, so that a
        follow-up ("and on the Team plan?") keeps its subject. Assistant turns are not searched."""
        earlier = [m["content"] for m in self.history if m["role"] == "user" and m["content"].strip()]
        return f"{earlier[-1]}\n{self.text}" if earlier else self.text


@dataclass
class Answer:
    answer: str
    citations: list[Citation]
    trace_id: str
    arm: str
    invalid_citations: list[int] = field(default_factory=list)
    trace: Trace | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "answer": self.answer,
            "citations": [
                {
                    "n": c.n,
                    "doc_id": c.doc_id,
                    "version": c.version,
                    "chunk_id": c.chunk_id,
                    "span": [c.start, c.end],
                    "title": c.title,
                    "mode": c.mode,
                }
                for c in self.citations
            ],
            "invalid_citations": self.invalid_citations,
            "trace_id": self.trace_id,
            "arm": self.arm,
        }


@dataclass
class _Pending:
    question: Question
    messages: list[Message] | None
    context: Context | None
    search: SearchResult | None
    timings: dict[str, float]
    started: float
    generator: Generator | None = None


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 3)


class Answerer:
    """Answers questions over one project with its configured generator.

    >>> answerer = Answerer(Project.open())
    >>> answerer.ask(Question("What is the Pro plan's rate limit?")).answer
    """

    def __init__(self, project: Project, generator: Generator | None = None, *, record: bool = True) -> None:
        self.project = project
        self._generator = generator
        self.record = record

    @property
    def generator(self) -> Generator:
        if self._generator is None:
            self._generator = self.project.generator
        return self._generator

    def generator_for(self, arm: str, groups: Sequence[str] = ()) -> Generator:
        """The generator given to this Answerer, else the fine-tune an adapter:/hybrid: arm names (if the asker's
        ``groups`` may use it: a version trained on restricted documents is refused as unknown), else the
        project's."""
        if self._generator is None and pipeline_arm(arm) != arm:
            from ragtune.generation.base import tuned_generator

            return tuned_generator(self.project, arm.partition(":")[2], caller_groups=groups)
        return self.generator

    def retriever(self) -> Retriever:
        p = self.project
        return Retriever(p.store, p.index, p.embedder, p.config.retrieval)

    def ask(self, question: Question, decoding: Decoding | None = None) -> Answer:
        """One question answered alone, as ``ragtune ask`` and the server answer it (the interactive backend)."""
        for item in self.ask_stream(question, decoding):
            if isinstance(item, Answer):
                return item
        raise AssertionError("ask_stream ended without an answer")  # pragma: no cover

    def ask_stream(self, question: Question, decoding: Decoding | None = None) -> PyGenerator[str | Answer, None, None]:
        """One answer as it is written: pieces of text (citation markers checked as they close), then the
        :class:`Answer`, whose ``answer`` is the checked text (with attributed markers the stream could not know)."""
        p = self._prepare(question, interactive=True, decoding=decoding)
        if p.messages is None or p.generator is None:
            answer = self._finish(p, None, 0.0)
            yield answer.answer
            yield answer
            return
        markers = StreamedCitations(s.n for s in p.context.sources) if p.context else StreamedCitations(())
        t0 = time.perf_counter()
        gen: Generation | None = None
        for item in stream_generation(p.generator, p.messages, decoding):
            if isinstance(item, Generation):
                gen = item
                continue
            piece = markers.feed(item)
            if piece:
                p.timings.setdefault("first_token", _ms(t0))
                yield piece
        tail = markers.flush()
        if tail:
            p.timings.setdefault("first_token", _ms(t0))
            yield tail
        assert gen is not None, "a stream ends with its Generation"
        gen.ms = _ms(t0)
        yield self._finish(p, gen, gen.ms, decoding)

    def ask_many(self, questions: Sequence[Question], *, progress: bool = False) -> list[Answer]:
        """Answer a batch: retrieval one question at a time, generation batched."""
        pending = [self._prepare(q) for q in questions]
        todo = [p for p in pending if p.messages is not None]
        by_id: dict[int, tuple[Generation, float]] = {}
        # one generation batch per model: a batch mixing a fine-tune's arm with the base's goes to each in turn
        for generator in {id(p.generator): p.generator for p in todo if p.generator is not None}.values():
            group = [p for p in todo if p.generator is generator]
            t0 = time.perf_counter()
            generations = generator.generate([p.messages for p in group if p.messages], progress=progress)
            share = _ms(t0) / len(group)
            by_id |= {id(p): (g, share) for p, g in zip(group, generations, strict=True)}
        return [self._finish(p, *by_id.get(id(p), (None, 0.0))) for p in pending]

    # stages --------------------------------------------------------------------------------------------------

    def _prepare(self, q: Question, *, interactive: bool = False, decoding: Decoding | None = None) -> _Pending:
        arm = pipeline_arm(q.arm)
        if not q.text.strip():
            raise ConfigError("empty question; ask something")
        if interactive and self._generator is None and arm == q.arm:
            generator = self.project.interactive_generator  # a fine-tune, or a generator given, answers as it is
        else:
            generator = self.generator_for(q.arm, q.groups)
        started = time.perf_counter()
        timings: dict[str, float] = {}
        history = self._fitting_history(q, generator, decoding)
        if arm == "closed-book":
            messages = closed_book_messages(q.text, system=q.system, history=history)
            return _Pending(q, messages, None, None, timings, started, generator)
        settings = self.project.config.answer
        t = time.perf_counter()
        filters = Filters(as_of=q.as_of, groups=q.groups)
        if arm == "oracle":
            if not q.evidence and not q.evidence_texts:
                raise ConfigError("the oracle arm needs the gold evidence (document ids or passages) of the question")
            # the gold documents as they stood at as_of, still subject to the asker's groups, best chunks first;
            # then the passages the question carries as text (the case author's data, not the corpus's)
            k = q.k or settings.sources
            result = self.retriever().search_within(q.search_query(), q.evidence, k, filters) if q.evidence else SearchResult([], {}, 0)  # fmt: skip
            result.hits += passage_hits(q.evidence_texts)
        else:
            result = self.retriever().search(q.search_query(), q.k or settings.sources, filters)
        timings["retrieve"] = _ms(t)
        timings["rerank"] = result.timings_ms.get("rerank", 0.0)
        t = time.perf_counter()
        context = assemble(result.hits, settings.context_tokens, generator.count_tokens, settings.dedupe_overlap)
        rag = rag_messages(q.text, context.sources, system=q.system, history=history) if context.sources else None
        timings["assemble"] = _ms(t)
        return _Pending(q, rag, context, result, timings, started, generator)

    def _fitting_history(self, q: Question, generator: Generator, decoding: Decoding | None) -> list[Message]:
        """The earlier turns that fit the model's window beside the sources and the answer, newest kept first."""
        history = list(q.history)
        if not history:
            return history
        limit = (decoding or Decoding()).resolve(self.project.config.generator).max_new_tokens or 0
        room = generator.context_window - limit - self.project.config.answer.context_tokens - 256
        while history and generator.count_prompt(history) > room:
            history = history[2:] if len(history) > 1 else []
        return history

    def _finish(
        self, p: _Pending, gen: Generation | None, generate_ms: float, decoding: Decoding | None = None
    ) -> Answer:
        q = p.question
        sources = p.context.sources if p.context else []
        if gen is None:
            text, tokens_in, tokens_out = NO_SOURCES_ANSWER, 0, 0
            p.timings["generate"] = 0.0
        else:
            text, tokens_in, tokens_out = gen.text, gen.tokens_in, gen.tokens_out
            p.timings["generate"] = round(gen.ms if gen.ms else generate_ms, 3)
        checked = cite(text, sources, attribute_missing=self.project.config.answer.attribute_citations, question=q.text)
        p.timings["total"] = _ms(p.started)
        trace = Trace(
            trace_id=uuid.uuid4().hex,
            created_at=utcnow(),
            kind="ask",
            arm=q.arm,
            question=q.text,
            answer=checked.answer,
            model=p.generator.identity() if gen is not None and p.generator is not None else {"backend": "none"},
            index_state=self._index_state(p.search),
            timings=p.timings,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            chunks=self._chunk_log(p),
            citations=[c.to_json() for c in checked.citations],
            as_of=iso(q.as_of) if q.as_of else None,
            groups=list(q.groups),
            caller=q.caller,
            body={
                "invalid_citations": checked.invalid,
                "raw_answer": text,
                "finish_reason": gen.finish_reason if gen else "no-sources",
                "context_tokens": p.context.tokens if p.context else 0,
                "context_budget": p.context.budget if p.context else 0,
            }
            | ({"evidence": list(q.evidence)} if q.evidence else {})
            | ({"evidence_texts": list(q.evidence_texts)} if q.evidence_texts else {})
            | ({"decoding": decoding.to_json()} if decoding and decoding.to_json() else {})
            | ({"history_turns": len(q.history), "search_query": q.search_query()} if q.history else {})
            | ({"system": q.system} if q.system else {}),
        )
        if self.record:
            save_trace(self.project.store, trace)
            from ragtune.traces.export import export_trace

            export_trace(self.project.config.telemetry, trace)
        return Answer(checked.answer, checked.citations, trace.trace_id, q.arm, checked.invalid, trace)

    def _index_state(self, search: SearchResult | None) -> dict[str, Any]:
        if search is None:
            return {}
        p = self.project
        return {
            "embedder": p.embedder.name,
            "generation": p.store.generation(),
            "visible_chunks": search.visible_chunks,
            "fusion": p.config.retrieval.fusion,
            "rerank": p.config.retrieval.rerank,
        }

    @staticmethod
    def _chunk_log(p: _Pending) -> list[dict[str, Any]]:
        if p.context is None or p.search is None:
            return []
        used = {s.hit.chunk_id: s for s in p.context.sources}
        dropped = {d.hit.chunk_id: d for d in p.context.dropped}
        log = []
        for rank, hit in enumerate(p.search.hits, start=1):
            entry: dict[str, Any] = {
                "rank": rank,
                "chunk_id": hit.chunk_id,
                "doc_id": hit.doc_id,
                "version": hit.version,
                "score": hit.score,
                "ranks": hit.ranks,
                "span": [hit.start, hit.end],
            }
            if hit.chunk_id in used:
                entry |= {"status": "used", "n": used[hit.chunk_id].n, "tokens": used[hit.chunk_id].tokens}
            else:
                d = dropped[hit.chunk_id]
                entry |= {"status": "dropped", "reason": d.reason, "detail": d.detail}
            log.append(entry)
        return log
