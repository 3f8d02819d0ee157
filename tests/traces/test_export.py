"""OpenTelemetry export on a real OTLP/HTTP receiver on loopback: span tree, OpenInference attributes, the stored
trace id and timings, no chunk text; a collector that is down costs a warning, never an answer."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from ragtune.answer.pipeline import Answerer, Question
from ragtune.config import TelemetrySection
from ragtune.corpus.ingest import ingest_paths
from ragtune.corpus.loaders import Defaults
from ragtune.errors import ConfigError
from ragtune.generation.base import Generation, Message
from ragtune.project import Project
from ragtune.traces import export
from ragtune.traces.export import export_trace
from ragtune.traces.store import Trace, load_trace
from tests.conftest import write

TRACE_ID = "5b8efff798038103d269b633813fc60c"
CREATED = "2026-03-02T10:15:30+00:00"
HEADERS_ENV = "RAGTUNE_TEST_OTLP_HEADERS"


# a real OTLP/HTTP receiver ----------------------------------------------------------------------------------------


@dataclass
class Span:
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    resource: dict[str, Any]

    @property
    def ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6


@dataclass
class Receiver:
    """Accepts POST /v1/traces like a collector and keeps what arrived."""

    url: str = ""
    status: int = 200
    bodies: list[bytes] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)

    def spans(self) -> list[Span]:
        out = []
        for body in self.bodies:
            for rs in ExportTraceServiceRequest.FromString(body).resource_spans:
                resource = {a.key: value(a.value) for a in rs.resource.attributes}
                for ss in rs.scope_spans:
                    for s in ss.spans:
                        attrs = {a.key: value(a.value) for a in s.attributes}
                        out.append(
                            Span(s.name, s.trace_id.hex(), s.span_id.hex(), s.parent_span_id.hex(),
                                 s.start_time_unix_nano, s.end_time_unix_nano, attrs, resource)
                        )  # fmt: skip
        return out

    def by_name(self) -> dict[str, Span]:
        spans = self.spans()
        named = {s.name: s for s in spans}
        assert len(named) == len(spans), "one span per name in these traces"
        return named


def value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [value(x) for x in v.array_value.values]
    return getattr(v, kind) if kind else None


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    got = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.path != "/v1/traces" or self.headers["Content-Type"] != "application/x-protobuf":
                self.send_error(404)
                return
            got.bodies.append(body)
            got.headers.append({k.lower(): v for k, v in self.headers.items()})
            reply = ExportTraceServiceResponse().SerializeToString()
            self.send_response(got.status)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: Any) -> None:  # keep the test output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    got.url = f"http://127.0.0.1:{server.server_address[1]}/v1/traces"
    yield got
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def _fresh_state(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts as a new process would: no providers yet, no warnings given."""
    monkeypatch.setattr(export, "_pipelines", {})
    monkeypatch.setattr(export, "_warned", set())


# traces as pure data ----------------------------------------------------------------------------------------------


def rag_trace(**changes: Any) -> Trace:
    chunks = [
        {"rank": 1, "chunk_id": "docs/pricing.md@2#0", "doc_id": "docs/pricing.md", "version": 2, "score": 0.91,
         "ranks": {"keyword": 1, "dense": 2}, "span": [0, 120], "status": "used", "n": 1, "tokens": 40},
        {"rank": 2, "chunk_id": "docs/support.md@1#3", "doc_id": "docs/support.md", "version": 1, "score": 0.52,
         "ranks": {"keyword": None, "dense": 1}, "span": [300, 420], "status": "used", "n": 2, "tokens": 38},
        {"rank": 3, "chunk_id": "docs/pricing.md@1#0", "doc_id": "docs/pricing.md", "version": 1, "score": 0.31,
         "ranks": {"keyword": 2, "dense": 4}, "span": [0, 118], "status": "dropped", "reason": "duplicate",
         "detail": "overlaps docs/pricing.md@2#0 (ranked higher) by >= 80%",
         # fields the chunk log does not hold today, standing in for any added later: they must not leave
         "text": "SECRET chunk text", "title": "SECRET title", "heading": "SECRET heading"},
    ]  # fmt: skip
    fields: dict[str, Any] = {
        "trace_id": TRACE_ID,
        "created_at": CREATED,
        "kind": "ask",
        "arm": "rag",
        "question": "How much is the Pro plan?",
        "answer": "The Pro plan costs 49 euros a month [1].",
        "model": {"backend": "openai", "model": "gpt-4o-mini", "source": "https://api.openai.com/v1"},
        "index_state": {"embedder": "all-MiniLM-L6-v2", "generation": 7, "visible_chunks": 42, "fusion": "zscore",
                        "rerank": "sentence-maxsim"},
        "timings": {"retrieve": 12.5, "rerank": 4.25, "assemble": 1.125, "generate": 300.0, "total": 320.5},
        "tokens_in": 412,
        "tokens_out": 11,
        "chunks": chunks,
        "citations": [{"n": 1, "doc_id": "docs/pricing.md", "version": 2, "chunk_id": "docs/pricing.md@2#0",
                       "start": 0, "end": 120, "title": "SECRET title", "mode": "model"}],
        "as_of": "2026-01-01T00:00:00+00:00",
        "groups": ["finance", "staff"],
        "caller": "support-bot",
        "body": {"invalid_citations": [4], "raw_answer": "The Pro plan costs 49 euros a month [1][4].",
                 "finish_reason": "stop", "context_tokens": 78, "context_budget": 1500},
    }  # fmt: skip
    return Trace(**(fields | changes))


def settings(url: str, **changes: Any) -> TelemetrySection:
    return TelemetrySection(otlp_endpoint=url, **changes)


def epoch_ns(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp()) * 1_000_000_000


# the mapping ------------------------------------------------------------------------------------------------------


def test_spans_follow_openinference(receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(HEADERS_ENV, "authorization=Bearer%20t0ken, x-team = search")
    trace = rag_trace()
    export_trace(settings(receiver.url, service_name="handbook-bot", headers_env=HEADERS_ENV), trace)

    assert len(receiver.bodies) == 1, "the whole trace goes in one request, before export_trace returns"
    assert receiver.headers[0]["authorization"] == "Bearer t0ken" and receiver.headers[0]["x-team"] == "search"
    spans = receiver.by_name()
    assert set(spans) == {"ragtune.ask", "retrieve", "rerank", "assemble", "generate"}
    root, retrieve, rerank = spans["ragtune.ask"], spans["retrieve"], spans["rerank"]
    assert {s.trace_id for s in spans.values()} == {TRACE_ID}
    assert root.parent_id == ""
    assert {n: s.parent_id for n, s in spans.items() if n != "ragtune.ask"} == {
        "retrieve": root.span_id, "assemble": root.span_id, "generate": root.span_id, "rerank": retrieve.span_id,
    }  # fmt: skip
    assert root.resource["service.name"] == "handbook-bot"
    assert root.resource["openinference.project.name"] == "handbook-bot"

    kinds = {n: s.attributes["openinference.span.kind"] for n, s in spans.items()}
    assert kinds == {"ragtune.ask": "CHAIN", "retrieve": "RETRIEVER", "rerank": "RERANKER", "assemble": "CHAIN",
                     "generate": "LLM"}  # fmt: skip

    a = root.attributes
    assert (a["input.value"], a["output.value"]) == (trace.question, trace.answer)
    assert (a["ragtune.arm"], a["ragtune.kind"], a["ragtune.caller"]) == ("rag", "ask", "support-bot")
    assert a["ragtune.as_of"] == trace.as_of and a["ragtune.groups"] == ["finance", "staff"]
    assert (a["ragtune.tokens_in"], a["ragtune.tokens_out"]) == (412, 11)
    assert a["ragtune.model.model"] == "gpt-4o-mini" and a["ragtune.index.generation"] == 7
    assert a["ragtune.index.rerank"] == "sentence-maxsim" and a["ragtune.invalid_citations"] == [4]
    assert json.loads(a["ragtune.citations"]) == [
        {"n": 1, "doc_id": "docs/pricing.md", "version": 2, "chunk_id": "docs/pricing.md@2#0", "start": 0, "end": 120,
         "mode": "model"}
    ]  # fmt: skip
    assert json.loads(a["metadata"])["arm"] == "rag"

    llm = spans["generate"].attributes
    assert llm["llm.model_name"] == "gpt-4o-mini"
    assert (llm["llm.system"], llm["llm.provider"]) == ("openai", "openai")
    assert (llm["llm.token_count.prompt"], llm["llm.token_count.completion"], llm["llm.token_count.total"]) == (
        412, 11, 423,
    )  # fmt: skip
    assert llm["output.value"] == trace.body["raw_answer"] and llm["llm.finish_reason"] == "stop"
    assert "llm.token_count.prompt" not in a, "tokens counted once per trace, on the LLM span"

    docs = retrieve.attributes
    assert docs["input.value"] == trace.question
    for i, chunk in enumerate(trace.chunks):
        prefix = f"retrieval.documents.{i}.document."
        assert docs[prefix + "id"] == chunk["chunk_id"] and docs[prefix + "score"] == pytest.approx(chunk["score"])
        meta = json.loads(docs[prefix + "metadata"])
        assert (meta["doc_id"], meta["version"], meta["rank"], meta["status"]) == (
            chunk["doc_id"], chunk["version"], chunk["rank"], chunk["status"],
        )  # fmt: skip
    dropped = json.loads(docs["retrieval.documents.2.document.metadata"])
    assert (dropped["reason"], dropped["detail"]) == ("duplicate", trace.chunks[2]["detail"])
    assert not any(k.endswith("document.content") for k in docs)
    assert rerank.attributes["reranker.query"] == trace.question
    assert rerank.attributes["reranker.model_name"] == "sentence-maxsim"
    assemble = spans["assemble"].attributes
    assert (assemble["ragtune.sources_used"], assemble["ragtune.sources_dropped"]) == (2, 1)
    assert (assemble["ragtune.context.tokens"], assemble["ragtune.context.budget"]) == (78, 1500)
    assert b"SECRET" not in receiver.bodies[0], "no chunk text, title or heading leaves the machine"


def test_times_are_the_stored_timings_laid_end_to_end(receiver: Receiver) -> None:
    trace = rag_trace()
    export_trace(settings(receiver.url), trace)
    spans = receiver.by_name()
    root, t = spans["ragtune.ask"], trace.timings
    assert root.end_ns == epoch_ns(CREATED), "created_at is when the trace ended"
    assert root.ms == pytest.approx(t["total"], abs=1e-6)
    for stage in ("retrieve", "rerank", "assemble", "generate"):
        assert spans[stage].ms == pytest.approx(t[stage], abs=1e-6), stage
    assert spans["retrieve"].start_ns == root.start_ns
    assert spans["assemble"].start_ns == spans["retrieve"].end_ns
    assert spans["generate"].start_ns == spans["assemble"].end_ns <= root.end_ns
    # the rerank is timed inside the retrieve, as its last step
    assert spans["rerank"].end_ns == spans["retrieve"].end_ns and spans["rerank"].start_ns > spans["retrieve"].start_ns


def test_stages_longer_than_the_total_stay_inside_the_root(receiver: Receiver) -> None:
    # a generator may report more time than passed (a batch's shared time, a fake); children never spill out
    export_trace(settings(receiver.url), rag_trace(timings={"retrieve": 10.0, "assemble": 1.0, "generate": 50.0,
                                                            "total": 40.0}))  # fmt: skip
    spans = receiver.by_name()
    root = spans.pop("ragtune.ask")
    assert root.end_ns == epoch_ns(CREATED) and root.ms == pytest.approx(61.0)
    assert all(root.start_ns <= s.start_ns <= s.end_ns <= root.end_ns for s in spans.values())


def test_closed_book_and_no_sources_traces(receiver: Receiver) -> None:
    closed = rag_trace(arm="closed-book", timings={"generate": 80.0, "total": 81.0}, chunks=[], citations=[],
                       index_state={}, body={})  # fmt: skip
    export_trace(settings(receiver.url), closed)
    assert set(receiver.by_name()) == {"ragtune.ask", "generate"}

    receiver.bodies.clear()
    # nothing retrieved, so no model ran: no LLM span that would count a call that never happened
    empty = rag_trace(
        trace_id="0" * 31 + "1", model={"backend": "none"}, tokens_in=0, tokens_out=0, chunks=[], citations=[],
        timings={"retrieve": 3.0, "rerank": 0.0, "assemble": 0.01, "generate": 0.0, "total": 3.5},
    )  # fmt: skip
    export_trace(settings(receiver.url), empty)
    assert set(receiver.by_name()) == {"ragtune.ask", "retrieve", "assemble"}, "no rerank span when it took 0 ms"


def test_an_id_that_is_not_32_hex_digits_gets_a_fresh_one(receiver: Receiver) -> None:
    export_trace(settings(receiver.url), rag_trace(trace_id="eval-17"))
    spans = receiver.spans()
    assert len({s.trace_id for s in spans}) == 1 and spans[0].trace_id != "0" * 32
    assert {s.attributes.get("ragtune.trace_id") for s in spans if s.name == "ragtune.ask"} == {"eval-17"}


def test_user_otel_setup_is_left_alone(receiver: Receiver) -> None:
    from opentelemetry import trace as otel
    from opentelemetry.sdk.trace import TracerProvider

    before = otel.get_tracer_provider()
    theirs = TracerProvider().get_tracer("their-app")
    with theirs.start_as_current_span("their request"):  # ragtune answering inside the user's own span
        export_trace(settings(receiver.url), rag_trace())
        export_trace(settings(receiver.url), rag_trace(trace_id="f" * 32))
    assert otel.get_tracer_provider() is before, "no global tracer provider installed"
    roots = [s for s in receiver.spans() if s.name == "ragtune.ask"]
    assert [(r.trace_id, r.parent_id) for r in roots] == [(TRACE_ID, ""), ("f" * 32, "")]
    assert len(export._pipelines) == 1, "one provider per endpoint, reused"


# failures ---------------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_collector_warns_once_and_costs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1/traces"
    t0 = time.perf_counter()
    with caplog.at_level(logging.WARNING, logger="ragtune.traces.export"):
        for i in range(3):
            export_trace(settings(url), rag_trace(trace_id=f"{i:032x}"))
    assert time.perf_counter() - t0 < 1.0, "a refused connection is not retried"
    (record,) = caplog.records
    assert url in record.getMessage() and "ragtune trace --list" in record.getMessage()


def test_the_warning_is_one_line_on_stderr() -> None:
    # a separate process, with logging left unconfigured as the CLI leaves it: nothing else may print
    code = (
        "from ragtune.config import TelemetrySection\n"
        "from ragtune.traces.export import export_trace\n"
        "from ragtune.traces.store import Trace\n"
        f"s = TelemetrySection(otlp_endpoint='http://127.0.0.1:{free_port()}/v1/traces')\n"
        "for i in range(3):\n"
        "    export_trace(s, Trace(f'{i:032x}', '2026-01-01T00:00:00+00:00', 'ask', 'rag', 'q', 'a', {}, {},"
        " {'total': 1.0}, 0, 0, [], []))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    (line,) = proc.stderr.splitlines()
    assert line.startswith("ragtune: could not export traces to http://127.0.0.1:") and proc.stdout == ""


def test_silent_collector_is_cut_off_at_the_timeout(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(export, "EXPORT_TIMEOUT_S", 0.3)
    with socket.socket() as listener:  # accepts connections (the kernel does) and never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/v1/traces"
        t0 = time.perf_counter()
        with caplog.at_level(logging.WARNING, logger="ragtune.traces.export"):
            export_trace(settings(url), rag_trace())
        assert time.perf_counter() - t0 < 1.5
        # the next answers skip the silent collector for a while instead of each waiting for the timeout
        t1 = time.perf_counter()
        for i in range(5):
            export_trace(settings(url), rag_trace(trace_id=f"{i + 1:032x}"))
        assert time.perf_counter() - t1 < 0.2
    assert "timed out" in caplog.text


def test_collector_refusing_the_request_names_the_status(receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    receiver.status = 401
    with caplog.at_level(logging.WARNING, logger="ragtune.traces.export"):
        export_trace(settings(receiver.url), rag_trace())
    assert "HTTP 401" in caplog.text


def test_configuration_mistakes_are_config_errors(monkeypatch: pytest.MonkeyPatch, receiver: Receiver) -> None:
    with pytest.raises(ConfigError, match="not an http"):
        export_trace(settings("localhost:6006"), rag_trace())
    for bad, entry in (("authorization=Bearer x,sk-secret-token", 2), ("x-key=sk-secret%0Aevil: 1", 1)):
        monkeypatch.setenv(HEADERS_ENV, bad)
        with pytest.raises(ConfigError, match=f"entry {entry} is not a valid key=value header") as err:
            export_trace(settings(receiver.url, headers_env=HEADERS_ENV), rag_trace())
        assert "sk-secret" not in str(err.value), "a header value is never echoed"
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace", None)  # as if the extra were not installed
    with pytest.raises(ConfigError, match=r"pip install 'ragtune\[otel\]'"):
        export_trace(settings("http://127.0.0.1:6006/v1/traces"), rag_trace())


def test_no_endpoint_imports_no_opentelemetry() -> None:
    code = (
        "import sys\n"
        "from ragtune.config import TelemetrySection\n"
        "from ragtune.traces.export import export_trace\n"
        "from ragtune.traces.store import Trace\n"
        "export_trace(TelemetrySection(), Trace('ab' * 16, '2026-01-01T00:00:00+00:00', 'ask', 'rag', 'q', 'a', {},"
        " {}, {'total': 1.0}, 0, 0, [], []))\n"
        "print(sorted(m for m in sys.modules if m.startswith(('opentelemetry', 'openinference', 'google.protobuf'))))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"


# the real pipeline ------------------------------------------------------------------------------------------------

PRICING = "# Pricing\n\nThe Pro plan's API rate limit is 600 requests per minute.\n"
SUPPORT = "# Support\n\nSupport answers tickets from 8:00 to 18:00 CET on weekdays.\n"


class Canned:
    """The smallest Generator: one fixed reply, a word per token."""

    name = "canned"
    context_window = 4096

    def identity(self) -> dict[str, str]:
        return {"backend": "canned", "model": "canned-1"}

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def count_prompt(self, messages: Sequence[Message]) -> int:
        return sum(self.count_tokens(m["content"]) for m in messages)

    def generate(
        self, batch: Sequence[Sequence[Message]], *, max_new_tokens: int | None = None, progress: bool = False
    ) -> list[Generation]:
        reply = "See the pricing page [1]."
        # ms 0: the pipeline times the batch itself, so the stages fit inside the total as with a real model
        return [Generation(reply, self.count_prompt(m), len(reply.split()), "stop", 0.0) for m in batch]


def test_pipeline_exports_what_it_stores(project: Project, docs: Path, receiver: Receiver) -> None:
    write(docs / "pricing.md", PRICING)
    write(docs / "support.md", SUPPORT)
    ingest_paths(project, [docs], Defaults())
    project.config.telemetry.otlp_endpoint = receiver.url

    answer = Answerer(project, generator=Canned()).ask(Question("What is the Pro plan's rate limit?", caller="cli"))

    stored = load_trace(project.store, answer.trace_id)
    spans = receiver.by_name()
    root, retrieve, generate = spans["ragtune.ask"], spans["retrieve"], spans["generate"]
    assert {s.trace_id for s in spans.values()} == {stored.trace_id}
    assert set(spans) == {"ragtune.ask", "retrieve", "assemble", "generate"}  # rerank is off by default: 0 ms
    assert root.attributes["output.value"] == stored.answer == answer.answer
    assert root.attributes["ragtune.caller"] == "cli"
    assert root.end_ns == epoch_ns(stored.created_at)
    for name, span in spans.items():
        assert span.ms == pytest.approx(stored.timings["total" if name == "ragtune.ask" else name], abs=1e-6)
    ids = [retrieve.attributes[f"retrieval.documents.{i}.document.id"] for i in range(len(stored.chunks))]
    assert ids == [c["chunk_id"] for c in stored.chunks] and "docs/pricing.md@1#0" in ids
    assert retrieve.attributes["retrieval.documents.0.document.score"] == pytest.approx(stored.chunks[0]["score"])
    assert generate.attributes["llm.model_name"] == "canned-1" and "llm.system" not in generate.attributes
    assert generate.attributes["ragtune.first_token_ms"] == stored.timings["first_token"] <= generate.ms
    assert generate.attributes["llm.token_count.prompt"] == stored.tokens_in > 10
    assert generate.attributes["llm.token_count.completion"] == stored.tokens_out == 5
    for sentence in ("600 requests per minute", "8:00 to 18:00 CET", "# Pricing"):
        assert sentence.encode() not in receiver.bodies[0], "chunk text never leaves the machine"
