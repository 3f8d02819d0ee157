"""The OpenAI-compatible face: ``GET /v1/models`` (and ``/v1/models/{id}``) and ``POST /v1/chat/completions``.

The arms are the models: ``ragtune-rag`` answers from the caller's visible corpus with [n] citations, and
``ragtune-closed-book`` from the model alone. The question is the last user message. A reply is a real
ChatCompletion (or, with ``stream: true``, a stream of chunks ending in ``data: [DONE]``) plus two extra top-level
fields, ``citations`` and ``trace_id``, which OpenAI clients keep and expose as extra attributes.
"""

from __future__ import annotations

import base64
import json
import queue
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import closing
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, StreamingResponse

from ragtune.answer.pipeline import Answer, Answerer, Question
from ragtune.errors import RagtuneError
from ragtune.generation.base import Decoding
from ragtune.server.auth import Caller
from ragtune.server.errors import ApiError, error_body, status_for
from ragtune.server.routes import answer
from ragtune.server.schemas import ChatRequest, EmbeddingsRequest
from ragtune.server.state import ServerState, get_caller, get_state

MODELS: dict[str, str] = {"ragtune-rag": "rag", "ragtune-closed-book": "closed-book"}
EMBEDDING_MODEL = "ragtune-embedder"

router = APIRouter(prefix="/v1")
State = Annotated[ServerState, Depends(get_state)]
Authed = Annotated[Caller, Depends(get_caller)]


TUNED_PREFIX = "ragtune-"
"""``ragtune-adapter:REF`` and ``ragtune-hybrid:REF`` serve a registered fine-tune (REF: a version or an alias)."""


def _arm_of(model: str) -> str | None:
    if model in MODELS:
        return MODELS[model]
    family, sep, ref = model.removeprefix(TUNED_PREFIX).partition(":")
    if model.startswith(TUNED_PREFIX) and sep and ref and family in ("adapter", "hybrid"):
        return f"{family}:{ref}"
    return None


@router.get("/models")
def list_models(caller: Authed, state: State) -> dict[str, Any]:
    from ragtune.tuning.data import may_use
    from ragtune.tuning.registry import list_versions

    # a version trained on documents the caller may not read is not listed (nor served: the registry refuses it)
    aliases = sorted(
        a for v in list_versions(state.project.store) if may_use(v.groups, caller.groups) for a in v.aliases
    )
    tuned = [f"{TUNED_PREFIX}{family}:{alias}" for alias in aliases for family in ("adapter", "hybrid")]
    return {
        "object": "list",
        "data": [
            {"id": name, "object": "model", "created": state.started, "owned_by": "ragtune"}
            for name in (*MODELS, *tuned, EMBEDDING_MODEL)
        ],
    }


@router.get("/models/{model_id:path}")
def retrieve_model(model_id: str, caller: Authed, state: State) -> dict[str, Any]:
    """One model of :func:`list_models`, as OpenAI's ``models.retrieve`` reads it; one the caller may not see is
    answered exactly as one that does not exist."""
    models: list[dict[str, Any]] = list_models(caller, state)["data"]
    for model in models:
        if model["id"] == model_id:
            return model
    raise ApiError(404, f"model {model_id!r} does not exist; GET /v1/models lists the models you may use",
                   "model_not_found")  # fmt: skip


@router.post("/embeddings")
def embeddings(body: EmbeddingsRequest, caller: Authed, state: State) -> dict[str, Any]:
    """The project's embedder (all-MiniLM-L6-v2 by default) as ``ragtune-embedder``: unit-length float vectors."""
    if body.model != EMBEDDING_MODEL:
        raise ApiError(
            404, f"model {body.model!r} does not exist; embeddings come from {EMBEDDING_MODEL!r}", "model_not_found"
        )
    texts = body.texts()
    embedder = state.project.embedder
    vectors = embedder.encode(texts)
    tokens = sum(len(embedder.token_spans(t)) for t in texts)
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": _encode_vector(row, body.encoding_format)}
            for i, row in enumerate(vectors)
        ],
        "model": EMBEDDING_MODEL,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


@router.post("/chat/completions", response_model=None)
def chat_completions(body: ChatRequest, caller: Authed, state: State) -> JSONResponse | StreamingResponse:
    body.refuse_groups()
    body.check_supported()
    arm = _arm_of(body.model)
    if arm is None:
        raise ApiError(
            404,
            f"model {body.model!r} does not exist; this server serves {', '.join(MODELS)}, "
            f"{TUNED_PREFIX}adapter:VERSION and {TUNED_PREFIX}hybrid:VERSION",
            "model_not_found",
            param="model",
        )
    text, system, history = body.conversation()
    question = Question(text, arm, None, caller.groups, None, caller.name, system=system, history=history)
    decoding = Decoding(body.max_completion_tokens or body.max_tokens, body.temperature, body.seed, body.stops())
    created = int(time.time())
    if not body.stream:
        return JSONResponse(completion(answer(state, question, decoding), body.model, created))
    include_usage = bool((body.stream_options or {}).get("include_usage"))
    pieces = _Producer(state, question, decoding)
    first = pieces.next()  # retrieval, the prompt and the first token: a failure here is an ordinary JSON error
    if isinstance(first, Exception):
        raise first
    return StreamingResponse(
        _sse(stream_chunks(pieces.rest(first), body.model, created, include_usage)),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


_END = object()


class _Producer:
    """An answer written in a thread of its own, piece by piece, into a queue the response reads.

    The generator holds its model's lock while it writes, and a thread lock must be released by the thread that
    took it: the response's own iteration hops between worker threads, so the writing stays in one. A client that
    goes away stops the writing at the next piece.
    """

    def __init__(self, state: ServerState, question: Question, decoding: Decoding) -> None:
        self._queue: queue.Queue[Any] = queue.Queue()
        self._stop = threading.Event()
        threading.Thread(target=self._run, args=(state, question, decoding), daemon=True).start()

    def _run(self, state: ServerState, question: Question, decoding: Decoding) -> None:
        try:
            with (
                state.answering,
                state.corpus.read(),
                closing(Answerer(state.project).ask_stream(question, decoding)) as items,
            ):
                for item in items:
                    self._queue.put(item)
                    if self._stop.is_set():
                        break
        except Exception as exc:  # the response reports it (before the first byte: as a JSON error)
            self._queue.put(exc)
        finally:
            self._queue.put(_END)

    def next(self) -> Any:
        return self._queue.get()

    def rest(self, first: Any) -> Iterator[str | Answer | Exception]:
        try:
            item = first
            while item is not _END:
                yield item
                item = self._queue.get()
        finally:
            self._stop.set()


def _finish_reason(result: Answer) -> str:
    reason = result.trace.body.get("finish_reason") if result.trace else None
    return "length" if reason == "length" else "stop"  # "no-sources" ends normally: the reply says so


def _usage(result: Answer) -> dict[str, int]:
    tokens_in = result.trace.tokens_in if result.trace else 0
    tokens_out = result.trace.tokens_out if result.trace else 0
    return {"prompt_tokens": tokens_in, "completion_tokens": tokens_out, "total_tokens": tokens_in + tokens_out}


def completion(result: Answer, model: str, created: int) -> dict[str, Any]:
    """A ChatCompletion object for an answer, with its citations and trace id."""
    return {
        "id": f"chatcmpl-{result.trace_id}",
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": result.answer},
                "finish_reason": _finish_reason(result),
                "logprobs": None,
            }
        ],
        "usage": _usage(result),
        "citations": result.to_json()["citations"],
        "trace_id": result.trace_id,
    }


def stream_chunks(
    items: Iterable[str | Answer | Exception], model: str, created: int, include_usage: bool
) -> Iterator[dict[str, Any]]:
    """The ChatCompletionChunk objects of an answer as it is written: one per piece of text (the first also
    carries the role), then the finish reason with the citations, the trace id and the checked ``answer`` (which
    may hold markers ragtune attributed after the text was sent), then, with ``stream_options.include_usage``, the
    usage. An error after the first piece ends the stream with an error event."""
    head = {"id": "", "object": "chat.completion.chunk", "created": created, "model": model}
    usage_field: dict[str, Any] = {"usage": None} if include_usage else {}
    role: dict[str, str] = {"role": "assistant"}
    for item in items:
        if isinstance(item, Exception):
            status = status_for(item) if isinstance(item, RagtuneError) else 500
            message = str(item) if isinstance(item, RagtuneError) else f"internal error: {type(item).__name__}"
            yield error_body(status, message)
            return
        if isinstance(item, str):
            delta = role | {"content": item}
            role = {}
            yield {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": None, "logprobs": None}],
                   **usage_field}  # fmt: skip
            continue
        head["id"] = f"chatcmpl-{item.trace_id}"
        yield {
            **head,
            "choices": [{"index": 0, "delta": {}, "finish_reason": _finish_reason(item), "logprobs": None}],
            **usage_field,
            "citations": item.to_json()["citations"],
            "invalid_citations": item.invalid_citations,
            "answer": item.answer,
            "trace_id": item.trace_id,
        }
        if include_usage:
            yield {**head, "choices": [], "usage": _usage(item)}


def _encode_vector(row: Any, encoding_format: str) -> list[float] | str:
    # the official clients ask for base64 (little-endian float32) unless told otherwise: a third of the bytes
    if encoding_format == "base64":
        return base64.b64encode(np.asarray(row, dtype="<f4").tobytes()).decode("ascii")
    return [float(x) for x in row]


def _sse(chunks: Iterable[dict[str, Any]]) -> Iterator[str]:
    for chunk in chunks:
        yield f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"
    yield "data: [DONE]\n\n"
