"""Arms: the ways of answering a case that a run compares (docs/eval.md).

An arm turns a batch of cases into one :class:`Output` each. Built-ins register themselves through
:func:`register_arm`, exactly as a user's extension would; a name ending in ``:`` registers a family
(``endpoint:`` serves ``endpoint:prod``, ``endpoint:staging``...)::

    arm = make_arm("oracle", project)
    outputs = arm.answer(cases)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ragtune.answer.prompt import CLOSED_BOOK_SYSTEM
from ragtune.config import EndpointSection, FewShotExample, PromptVariantSection
from ragtune.errors import HarnessError, RagtuneError
from ragtune.harness.model import Case, Output

if TYPE_CHECKING:
    from ragtune.answer.pipeline import Answer, Question
    from ragtune.generation.base import Generator, Message
    from ragtune.harness.cache import GenerationCache
    from ragtune.project import Project


class Arm(Protocol):
    """One way of answering; ``cost_usd`` prices one output given its share of the batch's CPU seconds."""

    name: str

    def identity(self) -> dict[str, Any]: ...

    def answer(self, cases: Sequence[Case]) -> list[Output]: ...

    def cost_usd(self, output: Output, cpu_s: float) -> float: ...


@runtime_checkable
class CachingArm(Protocol):
    """An arm that generates locally and takes the run's generation cache (``None``: generate everything)."""

    cache: GenerationCache | None


ArmFactory = Callable[[str, "Project"], Arm]
"""``(full arm name, project) -> Arm``; building one loads no model."""

ARMS: dict[str, ArmFactory] = {}
"""Registered arm names (and ``family:`` prefixes), built-ins first."""


def register_arm(name: str, *, replace: bool = False) -> Callable[[ArmFactory], ArmFactory]:
    """Decorator: make an arm available under ``name`` (or, ending in ``:``, every ``name<suffix>``)."""

    def deco(factory: ArmFactory) -> ArmFactory:
        if name in ARMS and not replace and ARMS[name] is not factory:
            raise HarnessError(f"an arm named {name!r} is already registered; pass replace=True to override it")
        ARMS[name] = factory
        return factory

    return deco


def known_arms() -> str:
    return ", ".join(n + "NAME" if n.endswith(":") else n for n in ARMS)


def make_arm(name: str, project: Project) -> Arm:
    """The arm called ``name``; an unknown name is a HarnessError listing the known ones."""
    if name in ARMS and not name.endswith(":"):
        return ARMS[name](name, project)
    family, sep, suffix = name.partition(":")
    if sep and suffix and f"{family}:" in ARMS:
        return ARMS[f"{family}:"](name, project)
    raise HarnessError(f"unknown arm {name!r}; known: {known_arms()}")


def parse_arms(text: str) -> list[str]:
    """``"a,b,c"`` as a list, refusing blanks and repeats (a repeated arm would double its cases)."""
    names = [n.strip() for n in text.split(",")]
    if not all(names):
        raise HarnessError(f"--arms {text!r}: an empty arm name; give names separated by commas")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise HarnessError(f"--arms {text!r}: {', '.join(repeated)} given twice")
    return names


def _local_cost(project: Project, cpu_s: float) -> float:
    return cpu_s / 3600.0 * project.config.costs.cpu_hour_usd


# closed-book, rag, oracle: the answering pipeline --------------------------------------------------------------


class PipelineArm:
    """closed-book, rag or oracle through :class:`Answerer`, generation batched.

    ``base`` and ``generator`` let a family reuse the pipeline: ``hybrid:v3`` is the ``rag`` pipeline answered by
    the v3 adapter's generator.
    """

    def __init__(
        self, name: str, project: Project, *, base: str | None = None, generator: Generator | None = None
    ) -> None:
        self.name = name
        self.project = project
        self.base = base or name
        self._generator = generator
        self.cache: GenerationCache | None = None  # set by the harness (execute_run): repeated prompts are read back

    @property
    def generator(self) -> Generator:
        return self._generator or self.project.generator

    def identity(self) -> dict[str, Any]:
        ident: dict[str, Any] = {"arm": self.name, "model": self.generator.identity()}
        if self._generator is None and self.base in ("closed-book", "rag", "oracle"):
            alone = self.project.interactive_generator.identity()
            if alone != ident["model"]:
                ident["requests_model"] = alone  # what the timed sample (and `ragtune ask`) answer with
        return ident

    def cost_usd(self, output: Output, cpu_s: float) -> float:
        return _local_cost(self.project, cpu_s)

    def question(self, case: Case) -> Question:
        from ragtune.answer.pipeline import Question
        from ragtune.corpus.model import parse_when

        as_of = parse_when(case.as_of, end_of_day=True) if case.as_of else None
        return Question(
            case.question, self.base, as_of, tuple(case.groups),
            evidence=tuple(case.evidence), evidence_texts=tuple(case.evidence_texts),
        )  # fmt: skip

    def answer(self, cases: Sequence[Case]) -> list[Output]:
        from ragtune.answer.pipeline import Answerer
        from ragtune.harness.cache import CachedGenerator, CachingAnswerer

        record = self.project.config.eval.traces
        generator = self.cache.wrap(self.generator) if self.cache is not None else self._generator
        answerer = (
            CachingAnswerer(self.project, generator, record=record)
            if isinstance(generator, CachedGenerator)
            else Answerer(self.project, generator, record=record)
        )

        def output(case: Case, question: Question, answer: Answer) -> Output:
            cached = isinstance(answerer, CachingAnswerer) and answerer.was_cached(question)
            return replace(self._output(case, answer), cached=cached)

        outputs: dict[str, Output] = {}
        todo = []
        for case in cases:
            if self.base == "oracle" and not case.evidence and not case.evidence_texts:
                outputs[case.id] = Output(case.id, self.name, "", error="the case lists no evidence for the oracle")
            else:
                todo.append(case)
        try:
            questions = [self.question(c) for c in todo]
            answers = answerer.ask_many(questions)
            outputs |= {c.id: output(c, q, a) for c, q, a in zip(todo, questions, answers, strict=True)}
        except RagtuneError:
            # one bad case must not sink its batch: ask again one at a time, keeping each failure with its case
            for case in todo:
                try:
                    question = self.question(case)
                    outputs[case.id] = output(case, question, answerer.ask_many([question])[0])
                except RagtuneError as exc:
                    outputs[case.id] = Output(case.id, self.name, "", error=str(exc))
        return [outputs[c.id] for c in cases]

    def answer_alone(self, case: Case) -> Output:
        """One case answered as ``ragtune ask`` and the server answer a request: alone, on the interactive backend
        (``[generator] interactive``), so that the harness times what a user waits for (through the cache when it
        is on: an answer from the cache is then not timed)."""
        from ragtune.answer.pipeline import Answerer
        from ragtune.harness.cache import CachedGenerator, CachingAnswerer

        if self.base == "oracle" and not case.evidence and not case.evidence_texts:
            return self.answer([case])[0]
        serving = self._generator or self.project.interactive_generator
        generator = self.cache.wrap(serving) if self.cache is not None else serving
        record = self.project.config.eval.traces
        answerer = (
            CachingAnswerer(self.project, generator, record=record)
            if isinstance(generator, CachedGenerator)
            else Answerer(self.project, generator, record=record)
        )
        question = self.question(case)
        try:
            answer = answerer.ask(question)
        except RagtuneError as exc:
            return Output(case.id, self.name, "", error=str(exc))
        cached = isinstance(answerer, CachingAnswerer) and answerer.was_cached(question)
        return replace(self._output(case, answer), cached=cached)

    def _output(self, case: Case, answer: Answer) -> Output:
        trace = answer.trace
        assert trace is not None
        t = trace.timings
        # what one request waited for: its own retrieval and assembly, and the generation batch it rode in
        latency = t.get("retrieve", 0.0) + t.get("assemble", 0.0) + t.get("generate", 0.0)
        return Output(
            case_id=case.id,
            arm=self.name,
            answer=answer.answer,
            citations=answer.to_json()["citations"],
            chunks=trace.chunks,
            latency_ms=round(latency, 3),
            tokens_in=trace.tokens_in,
            tokens_out=trace.tokens_out,
            trace_id=answer.trace_id if self.project.config.eval.traces else None,
        )


for _name in ("closed-book", "rag", "oracle"):
    register_arm(_name)(PipelineArm)


# prompts: the model alone under several prompt variants ------------------------------------------------------

BUILTIN_VARIANTS: dict[str, PromptVariantSection] = {
    "plain": PromptVariantSection(system=CLOSED_BOOK_SYSTEM),
    "concise": PromptVariantSection(
        system=CLOSED_BOOK_SYSTEM, instruction="Answer with the value only, in as few words as possible."
    ),
    "fewshot": PromptVariantSection(
        system=CLOSED_BOOK_SYSTEM,
        examples=[
            FewShotExample(question="At what temperature does water boil at sea level?", answer="100 °C."),
            FewShotExample(question="How many days are in a leap year?", answer="366 days."),
        ],
    ),
}
"""The variants of the ``prompts`` arm when ``[eval.prompts]`` names none: the first one's answer is scored."""


def variant_messages(variant: PromptVariantSection, question: str) -> list[Message]:
    messages: list[Message] = [{"role": "system", "content": variant.system}]
    for ex in variant.examples:
        messages += [{"role": "user", "content": ex.question}, {"role": "assistant", "content": ex.answer}]
    text = f"{question}\n\n{variant.instruction}" if variant.instruction else question
    return [*messages, {"role": "user", "content": text}]


class PromptsArm:
    """The model closed-book under every prompt variant; the first variant's answer is the arm's answer, every
    variant's answer is kept in ``Output.variants``."""

    def __init__(self, name: str, project: Project) -> None:
        self.name = name
        self.project = project
        self.variants = dict(project.config.eval.prompts) or dict(BUILTIN_VARIANTS)
        self.cache: GenerationCache | None = None  # set by the harness (execute_run)

    def identity(self) -> dict[str, Any]:
        return {"arm": self.name, "model": self.project.generator.identity(), "variants": list(self.variants)}

    def cost_usd(self, output: Output, cpu_s: float) -> float:
        return _local_cost(self.project, cpu_s)  # every variant's generation, as the arm ran them all

    def answer(self, cases: Sequence[Case]) -> list[Output]:
        from ragtune.harness.cache import CachedGenerator

        names = list(self.variants)
        batch = [variant_messages(self.variants[v], c.question) for c in cases for v in names]
        generator = self.cache.wrap(self.project.generator) if self.cache is not None else self.project.generator
        # the variants' prompts quote no document: the question and the configured examples only
        keys = [generator.expect(m, []) for m in batch] if isinstance(generator, CachedGenerator) else []
        try:
            gens = generator.generate(batch) if batch else []
        except RagtuneError as exc:
            return [Output(c.id, self.name, "", error=str(exc)) for c in cases]
        outputs = []
        for i, case in enumerate(cases):
            mine = gens[i * len(names) : (i + 1) * len(names)]
            first = mine[0]
            # one variant read back is enough for its figures not to be a real generation's
            cached = isinstance(generator, CachedGenerator) and any(
                generator.was_cached(k) for k in keys[i * len(names) : (i + 1) * len(names)]
            )
            outputs.append(
                Output(
                    case_id=case.id,
                    arm=self.name,
                    answer=first.text,
                    variants={v: g.text for v, g in zip(names, mine, strict=True)},
                    latency_ms=round(first.ms, 3),
                    tokens_in=first.tokens_in,
                    tokens_out=first.tokens_out,
                    cached=cached,
                )
            )
        return outputs


register_arm("prompts")(PromptsArm)


# endpoint:NAME: any configured OpenAI-compatible model ---------------------------------------------------------


class EndpointArm:
    """The question sent as-is to ``[endpoints.NAME]``; ragtune-style ``citations`` in the reply are kept."""

    times_each_request = True
    """Each request's wall time under the configured concurrency is its latency: no case is timed alone."""

    def __init__(self, name: str, project: Project) -> None:
        self.name = name
        key = name.partition(":")[2]
        try:
            self.settings: EndpointSection = project.config.endpoints[key]
        except KeyError:
            known = ", ".join(project.config.endpoints) or "none"
            raise HarnessError(
                f"arm {name!r}: no [endpoints.{key}] table in ragtune.toml (configured: {known}); add one with "
                "base_url and model"
            ) from None
        self._client: Any = None

    def identity(self) -> dict[str, Any]:
        return {"arm": self.name, "model": {"backend": "openai", "model": self.settings.model,
                                            "source": self.settings.base_url}}  # fmt: skip

    def cost_usd(self, output: Output, cpu_s: float) -> float:
        s = self.settings
        return output.tokens_in / 1000 * s.price_in_per_1k + output.tokens_out / 1000 * s.price_out_per_1k

    def answer(self, cases: Sequence[Case]) -> list[Output]:
        from ragtune.openai_client import make_client

        s = self.settings
        if self._client is None:
            self._client = make_client(s.base_url, s.api_key_env, s.timeout_s, f"endpoints.{self.name}")
        with ThreadPoolExecutor(max_workers=min(s.concurrency, max(len(cases), 1))) as pool:
            return list(pool.map(self._one, cases))

    def _one(self, case: Case) -> Output:
        from ragtune.openai_client import call

        s = self.settings
        t0 = time.perf_counter()
        try:
            reply = call(
                s.base_url,
                s.api_key_env,
                s.model,
                lambda: self._client.chat.completions.create(
                    model=s.model,
                    messages=[{"role": "user", "content": case.question}],
                    max_tokens=s.max_new_tokens,
                    temperature=0,
                ),
            )
        except RagtuneError as exc:
            return Output(case.id, self.name, "", latency_ms=(time.perf_counter() - t0) * 1000, error=str(exc))
        ms = (time.perf_counter() - t0) * 1000
        extra = reply.model_extra or {}
        citations = extra.get("citations")
        usage = reply.usage
        return Output(
            case_id=case.id,
            arm=self.name,
            answer=(reply.choices[0].message.content or "").strip(),
            citations=[c for c in citations if isinstance(c, dict)] if isinstance(citations, list) else [],
            latency_ms=round(ms, 3),
            tokens_in=int(usage.prompt_tokens) if usage else 0,
            tokens_out=int(usage.completion_tokens) if usage else 0,
            trace_id=str(extra["trace_id"]) if extra.get("trace_id") else None,
        )


register_arm("endpoint:")(EndpointArm)


# adapter:VERSION and hybrid:VERSION: a registered fine-tune alone, or answering with RAG context ---------------


def _tuned(name: str, project: Project) -> Arm:
    """``adapter:REF`` is closed-book and ``hybrid:REF`` is rag, both answered by the model version REF (a version
    such as v3, or an alias such as production) from the registry."""
    from ragtune.generation.base import tuned_generator

    family, _, ref = name.partition(":")
    generator = tuned_generator(project, ref)  # resolves REF now: an unknown version fails before any work
    return PipelineArm(name, project, base="closed-book" if family == "adapter" else "rag", generator=generator)


register_arm("adapter:")(_tuned)
register_arm("hybrid:")(_tuned)
