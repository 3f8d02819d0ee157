"""OpenTelemetry export of traces, following the OpenInference conventions, so that Arize Phoenix and similar
tools show every answer as a span tree: the ``ragtune.ask`` chain, then ``retrieve`` (with ``rerank`` inside),
``assemble`` and ``generate``.

The spans are rebuilt from the stored trace once the answer is done, not recorded live: the OpenTelemetry trace id
is the stored trace's id, and the times come from ``created_at`` (the end of the trace) and the stage timings laid
end to end. Chunk texts are never exported, only ids, scores and why each chunk was used or dropped, so forgetting
a document leaves nothing of its text in the collector (see docs/tracing.md).

OpenTelemetry is imported only once ``[telemetry] otlp_endpoint`` is set: start-up stays cheap without it.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from ragtune.config import TelemetrySection
from ragtune.errors import ConfigError
from ragtune.traces.store import Trace

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.trace import Tracer

EXPORT_TIMEOUT_S = 2.0
"""The most an export adds to an answer (connecting, then each read); a collector that is down never fails one."""

# Pipeline order of the stages laid end to end under the root; "rerank" is timed inside "retrieve".
_STAGES = ("retrieve", "assemble", "generate")
# Chunk-log fields sent as document metadata. A list of what may leave rather than of what may not, so that a field
# added to the chunk log later (a heading, a title) stays home until someone decides otherwise.
_DOC_METADATA = ("doc_id", "version", "rank", "ranks", "span", "status", "n", "tokens", "reason", "detail")
_CITATION_FIELDS = ("n", "doc_id", "version", "chunk_id", "start", "end", "mode")  # no title: ids only
_MAX_ATTRIBUTES = 4096  # the SDK keeps 128 per span by default; three per retrieved chunk would overflow that
_TRACE_ID = re.compile(r"[0-9a-f]{32}")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP token (RFC 9110)

_Value = str | bool | int | float | list[str] | list[int]

_log = logging.getLogger(__name__)
_lock = threading.Lock()
_pipelines: dict[tuple[str, str], _Pipeline] = {}
_warned: set[str] = set()
# After a failed export an endpoint is skipped for this long, so a collector that accepts connections but never
# answers costs one timeout per interval rather than one per answer.
BACKOFF_S = 30.0
_down_until: dict[str, float] = {}
# The id the next root span takes; a context variable so that concurrent answers on a server never swap ids.
_next_trace_id: ContextVar[int | None] = ContextVar("ragtune_next_trace_id", default=None)


def export_trace(settings: TelemetrySection, trace: Trace) -> None:
    """Send one trace to ``settings.otlp_endpoint`` as OpenInference spans; nothing happens when it is empty.

    A collector that cannot be reached costs at most :data:`EXPORT_TIMEOUT_S` and one logged warning per endpoint
    per process, never an exception. A bad configuration (no OpenTelemetry installed, a malformed endpoint or
    headers variable) raises :class:`ConfigError`.
    """
    endpoint = settings.otlp_endpoint.strip()
    if not endpoint:
        return
    pipeline = _pipeline(endpoint, settings.service_name)
    headers = _headers(settings.headers_env)
    if time.monotonic() < _down_until.get(endpoint, 0.0):
        _log.debug(
            "skipping the export of trace %s: %s failed less than %.0f s ago", trace.trace_id, endpoint, BACKOFF_S
        )
        return
    try:
        body = _encode(pipeline, trace)
    except Exception as err:  # an answer must never fail because its telemetry could not be built
        _log.debug("building spans for trace %s failed", trace.trace_id, exc_info=True)
        _warn_once(endpoint, f"could not build spans: {err!r}")
        return
    problem = _post(endpoint, body, headers)
    if problem is not None:
        _down_until[endpoint] = time.monotonic() + BACKOFF_S
        _warn_once(endpoint, problem)
    else:
        _down_until.pop(endpoint, None)


# the OpenTelemetry side -------------------------------------------------------------------------------------------


@dataclass
class _Pipeline:
    """One TracerProvider per endpoint and service name, kept for the process: a server answers many questions."""

    tracer: Tracer
    take: Callable[[int], list[ReadableSpan]]


def _pipeline(endpoint: str, service_name: str) -> _Pipeline:
    with _lock:
        key = (endpoint, service_name)
        if key not in _pipelines:
            _pipelines[key] = _new_pipeline(endpoint, service_name)
        return _pipelines[key]


def _new_pipeline(endpoint: str, service_name: str) -> _Pipeline:
    url = urlsplit(endpoint)
    if url.scheme not in ("http", "https") or not url.netloc:
        raise ConfigError(
            f"[telemetry] otlp_endpoint = {endpoint!r} is not an http(s) URL; "
            "write the full traces URL, e.g. http://127.0.0.1:6006/v1/traces"
        )
    try:
        from openinference.semconv.resource import ResourceAttributes

        # imported now, though used later, so that a missing package is this error and not a warning per answer
        from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans  # noqa: F401
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import SpanLimits, SpanProcessor, TracerProvider
        from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
        from opentelemetry.sdk.trace.sampling import ALWAYS_ON
    except ImportError as err:
        raise ConfigError(
            "[telemetry] otlp_endpoint is set but OpenTelemetry is not installed; pip install 'ragtune[otel]'"
        ) from err
    from ragtune import __version__

    # Both classes are defined here, not at module level, so that importing this module never imports OpenTelemetry.
    class StoredTraceIds(RandomIdGenerator):
        """Random span ids; the root takes the stored trace's id, so ragtune and the collector name it alike."""

        def generate_trace_id(self) -> int:
            return _next_trace_id.get() or super().generate_trace_id()

    class Collector(SpanProcessor):
        """Holds finished spans by trace until export_trace sends the whole trace in one request."""

        def __init__(self) -> None:
            self._lock = threading.Lock()
            self._spans: dict[int, list[ReadableSpan]] = {}

        def on_end(self, span: ReadableSpan) -> None:
            if span.context is not None:
                with self._lock:
                    self._spans.setdefault(span.context.trace_id, []).append(span)

        def take(self, trace_id: int) -> list[ReadableSpan]:
            with self._lock:
                return self._spans.pop(trace_id, [])

    collector = Collector()
    provider = TracerProvider(
        sampler=ALWAYS_ON,  # every stored trace is exported, whatever OTEL_TRACES_SAMPLER says for the user's app
        resource=Resource.create({SERVICE_NAME: service_name, ResourceAttributes.PROJECT_NAME: service_name}),
        shutdown_on_exit=False,  # nothing is buffered between calls, so there is nothing to flush at exit
        id_generator=StoredTraceIds(),
        span_limits=SpanLimits(max_span_attributes=_MAX_ATTRIBUTES),
    )
    provider.add_span_processor(collector)  # never set as the global provider: the user's own setup stays theirs
    return _Pipeline(provider.get_tracer("ragtune", __version__), collector.take)


def _encode(pipeline: _Pipeline, trace: Trace) -> bytes:
    """The trace as one serialized OTLP ExportTraceServiceRequest."""
    from opentelemetry.context import Context
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    stored_id = trace.trace_id.lower()
    token = _next_trace_id.set(int(stored_id, 16) if _TRACE_ID.fullmatch(stored_id) else None)
    try:
        # an empty Context, not the current one: under a span of the user's own app, ours must still be a root
        trace_id = _emit(pipeline.tracer, _plan(trace), Context())
    finally:
        _next_trace_id.reset(token)
    return bytes(encode_spans(pipeline.take(trace_id)).SerializeToString())


def _emit(tracer: Tracer, span: _Span, parent: Context) -> int:
    from opentelemetry.trace import set_span_in_context

    otel_span = tracer.start_span(span.name, context=parent, attributes=span.attributes, start_time=span.start_ns)
    for child in span.children:
        _emit(tracer, child, set_span_in_context(otel_span))
    otel_span.end(end_time=span.end_ns)
    return otel_span.get_span_context().trace_id


def _post(endpoint: str, body: bytes, headers: Mapping[str, str]) -> str | None:
    """POST one OTLP/HTTP protobuf request: the problem in a few words, or None when the collector took it.

    One attempt, no retries: the OTLP exporter's retry loop waits seconds on a refused connection and logs every
    failure, which an answer path that must stay fast and quiet cannot afford.
    """
    request = urllib.request.Request(
        endpoint, data=body, method="POST", headers={**headers, "Content-Type": "application/x-protobuf"}
    )
    try:
        with urllib.request.urlopen(request, timeout=EXPORT_TIMEOUT_S) as response:
            response.read()
    except urllib.error.HTTPError as err:
        err.close()
        return f"HTTP {err.code} {err.reason}"
    except urllib.error.URLError as err:
        return str(err.reason)
    except (OSError, http.client.HTTPException) as err:  # a read timeout, a dropped connection
        return str(err) or type(err).__name__
    return None


def _headers(env_name: str) -> dict[str, str]:
    """Extra headers from the variable named by ``headers_env``, as 'k1=v1,k2=v2' (values may be %-encoded)."""
    raw = os.environ.get(env_name, "") if env_name else ""
    headers = {}
    for i, item in enumerate(raw.split(","), start=1):
        if not item.strip():
            continue
        key, sep, value = (unquote(part.strip()) for part in item.partition("="))
        if not sep or not _HEADER_NAME.fullmatch(key) or any(c in value for c in "\r\n\0"):
            # the entry is not echoed: it most likely holds a token
            raise ConfigError(f"{env_name}: entry {i} is not a valid key=value header; write 'k1=v1,k2=v2'")
        headers[key] = value
    return headers


def _warn_once(endpoint: str, problem: str) -> None:
    with _lock:
        first = endpoint not in _warned
        _warned.add(endpoint)
    if first:
        _log.warning(
            "ragtune: could not export traces to %s (%s); they stay in the store (`ragtune trace --list`), "
            "and later failures for this endpoint are not reported",
            endpoint,
            problem,
        )
    else:
        _log.debug("could not export a trace to %s (%s)", endpoint, problem)


# the mapping: a stored trace as a tree of spans -------------------------------------------------------------------


@dataclass
class _Span:
    name: str
    start_ns: int
    end_ns: int
    attributes: dict[str, _Value]
    children: list[_Span] = field(default_factory=list)


def _plan(trace: Trace) -> _Span:
    """The span tree of one trace, with times rebuilt from ``created_at`` and the stage timings."""
    timings = trace.timings
    # a stage this module does not know yet still shows, as a CHAIN span after the known ones
    # (first_token is a moment inside generate, not a stage: an attribute of the generate span)
    inner = (*_STAGES, "rerank", "total", "first_token")
    stages = [s for s in _STAGES if s in timings] + [s for s in timings if s not in inner]
    if trace.model.get("backend") == "none":  # no sources, so no model ran: an LLM span would count a call
        stages = [s for s in stages if s != "generate"]
    durations = [(s, _ns(timings[s])) for s in stages]
    end = _epoch_ns(trace.created_at)
    # The stages fit inside the total unless a generator reports more time than passed (a fake, say); the root then
    # stretches to hold its children rather than let them spill out of it.
    start = end - max(_ns(timings.get("total", 0.0)), sum(d for _, d in durations))
    root = _Span(f"ragtune.{trace.kind}", start, end, _root_attributes(trace))
    cursor = start
    for stage, duration in durations:
        root.children.append(_Span(stage, cursor, cursor + duration, _stage_attributes(stage, trace)))
        cursor += duration
    rerank = _ns(timings.get("rerank", 0.0))
    retrieve = next((c for c in root.children if c.name == "retrieve"), None)
    if rerank > 0 and retrieve is not None:
        # reranking is the last step of the search, so it ends where retrieve ends
        rerank_start = max(retrieve.start_ns, retrieve.end_ns - rerank)
        retrieve.children.append(_Span("rerank", rerank_start, retrieve.end_ns, _stage_attributes("rerank", trace)))
    return root


def _root_attributes(trace: Trace) -> dict[str, _Value]:
    from openinference.semconv.trace import OpenInferenceMimeTypeValues, OpenInferenceSpanKindValues, SpanAttributes

    text = OpenInferenceMimeTypeValues.TEXT.value
    who = {"kind": trace.kind, "arm": trace.arm, "caller": trace.caller, "as_of": trace.as_of, "groups": trace.groups}
    attributes: dict[str, _Value] = {
        SpanAttributes.OPENINFERENCE_SPAN_KIND: OpenInferenceSpanKindValues.CHAIN.value,
        SpanAttributes.INPUT_VALUE: trace.question,
        SpanAttributes.INPUT_MIME_TYPE: text,
        SpanAttributes.OUTPUT_VALUE: trace.answer,
        SpanAttributes.OUTPUT_MIME_TYPE: text,
        # Phoenix lists and filters traces on metadata; the same facts are also flat ragtune.* attributes below
        SpanAttributes.METADATA: json.dumps(who, sort_keys=True),
        "ragtune.trace_id": trace.trace_id,
        "ragtune.groups": list(trace.groups),
        "ragtune.tokens_in": trace.tokens_in,
        "ragtune.tokens_out": trace.tokens_out,
        "ragtune.citations": json.dumps([{k: c.get(k) for k in _CITATION_FIELDS} for c in trace.citations]),
    }
    attributes |= _flat("ragtune", {k: v for k, v in who.items() if k != "groups"})
    attributes |= _flat("ragtune.model", trace.model) | _flat("ragtune.index", trace.index_state)
    if invalid := trace.body.get("invalid_citations"):
        attributes["ragtune.invalid_citations"] = [int(n) for n in invalid]
    return attributes


def _stage_attributes(stage: str, trace: Trace) -> dict[str, _Value]:
    from openinference.semconv.trace import (
        DocumentAttributes,
        OpenInferenceLLMProviderValues,
        OpenInferenceLLMSystemValues,
        OpenInferenceMimeTypeValues,
        OpenInferenceSpanKindValues,
        RerankerAttributes,
        SpanAttributes,
    )

    kind = SpanAttributes.OPENINFERENCE_SPAN_KIND
    text = OpenInferenceMimeTypeValues.TEXT.value
    if stage == "retrieve":
        attributes: dict[str, _Value] = {
            kind: OpenInferenceSpanKindValues.RETRIEVER.value,
            SpanAttributes.INPUT_VALUE: trace.question,
            SpanAttributes.INPUT_MIME_TYPE: text,
        }
        for i, chunk in enumerate(trace.chunks):
            doc = f"{SpanAttributes.RETRIEVAL_DOCUMENTS}.{i}."
            attributes[doc + DocumentAttributes.DOCUMENT_ID] = str(chunk["chunk_id"])
            attributes[doc + DocumentAttributes.DOCUMENT_SCORE] = float(chunk["score"])
            metadata = {k: chunk[k] for k in _DOC_METADATA if k in chunk}
            attributes[doc + DocumentAttributes.DOCUMENT_METADATA] = json.dumps(metadata, sort_keys=True)
        return attributes
    if stage == "rerank":
        attributes = {
            kind: OpenInferenceSpanKindValues.RERANKER.value,
            RerankerAttributes.RERANKER_QUERY: trace.question,
        }
        if isinstance(reranker := trace.index_state.get("rerank"), str):
            attributes[RerankerAttributes.RERANKER_MODEL_NAME] = reranker
        return attributes
    if stage == "assemble":
        statuses = [c.get("status") for c in trace.chunks]
        attributes = {
            kind: OpenInferenceSpanKindValues.CHAIN.value,
            "ragtune.sources_used": statuses.count("used"),
            "ragtune.sources_dropped": statuses.count("dropped"),
        }
        context = {"tokens": trace.body.get("context_tokens"), "budget": trace.body.get("context_budget")}
        return attributes | _flat("ragtune.context", context)
    if stage == "generate":
        model = trace.model
        attributes = {
            kind: OpenInferenceSpanKindValues.LLM.value,
            SpanAttributes.LLM_MODEL_NAME: model.get("model") or model.get("backend", "unknown"),
            SpanAttributes.LLM_TOKEN_COUNT_PROMPT: trace.tokens_in,
            SpanAttributes.LLM_TOKEN_COUNT_COMPLETION: trace.tokens_out,
            SpanAttributes.LLM_TOKEN_COUNT_TOTAL: trace.tokens_in + trace.tokens_out,
            # what the model wrote, before citations were checked; the root holds the answer as given
            SpanAttributes.OUTPUT_VALUE: str(trace.body.get("raw_answer", trace.answer)),
            SpanAttributes.OUTPUT_MIME_TYPE: text,
        }
        if model.get("backend") == "openai":  # the API spoken; the host is only known for OpenAI's own
            attributes[SpanAttributes.LLM_SYSTEM] = OpenInferenceLLMSystemValues.OPENAI.value
            if "api.openai.com" in model.get("source", ""):
                attributes[SpanAttributes.LLM_PROVIDER] = OpenInferenceLLMProviderValues.OPENAI.value
        if isinstance(finish := trace.body.get("finish_reason"), str):
            attributes[SpanAttributes.LLM_FINISH_REASON] = finish
        if isinstance(first := trace.timings.get("first_token"), int | float):
            attributes["ragtune.first_token_ms"] = float(first)  # a streamed answer: its time to the first token
        return attributes
    return {kind: OpenInferenceSpanKindValues.CHAIN.value}


def _flat(prefix: str, values: Mapping[str, Any]) -> dict[str, _Value]:
    """``prefix.key`` attributes: scalars as they are, anything else as JSON, None left out."""
    out: dict[str, _Value] = {}
    for key, value in values.items():
        if value is not None:
            scalar = isinstance(value, str | bool | int | float)
            out[f"{prefix}.{key}"] = value if scalar else json.dumps(value, sort_keys=True)
    return out


def _ns(ms: float) -> int:
    return round(ms * 1_000_000)


def _epoch_ns(iso_utc: str) -> int:
    """Nanoseconds since the epoch, in integers so that no float rounding moves a span."""
    moment = datetime.fromisoformat(iso_utc)
    if moment.tzinfo is None:  # the store writes UTC; an older row without an offset is UTC too
        moment = moment.replace(tzinfo=UTC)
    return int(moment.replace(microsecond=0).timestamp()) * 1_000_000_000 + moment.microsecond * 1000
