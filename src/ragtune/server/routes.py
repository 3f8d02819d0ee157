"""ragtune's own endpoints: /health, /search, /ask, /ingest, /forget, /traces/{id} and /openapi.json.

Each takes the caller from its token; searches and answers see that caller's access groups and nothing a body
says. Endpoints are plain functions, so FastAPI runs them in its thread pool beside each other.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from ragtune import __version__
from ragtune.answer.pipeline import Answer, Answerer, Question
from ragtune.corpus.forget import forget
from ragtune.corpus.ingest import ingest_documents
from ragtune.corpus.model import parse_when
from ragtune.errors import StoreError
from ragtune.generation.base import Decoding
from ragtune.index.index import Filters
from ragtune.retrieval.search import Hit, Retriever
from ragtune.server.auth import Caller, require_admin
from ragtune.server.errors import ApiError, status_for
from ragtune.server.schemas import AskRequest, ForgetRequest, IngestRequest, SearchRequest
from ragtune.server.state import ServerState, get_caller, get_state
from ragtune.traces.store import Trace, load_trace

router = APIRouter()
State = Annotated[ServerState, Depends(get_state)]
Authed = Annotated[Caller, Depends(get_caller)]


def answer(state: ServerState, question: Question, decoding: Decoding | None = None) -> Answer:
    """Answer one question for the caller it names; answers take turns (see state.py for why)."""
    with state.answering, state.corpus.read():
        return Answerer(state.project).ask(question, decoding)


def hit_json(h: Hit) -> dict[str, Any]:
    """A search hit in the shape `ragtune search --json` prints, with the document's title."""
    return {
        "doc_id": h.doc_id,
        "version": h.version,
        "chunk_id": h.chunk_id,
        "score": h.score,
        "text": h.text,
        "title": h.title,
        "heading": h.heading,
        "source": h.source,
        "span": [h.start, h.end],
        "ranks": h.ranks,
    }


@router.get("/health")
def health(state: State) -> dict[str, Any]:
    """Liveness and what is served; needs no token, and tells nothing a document holds. ``documents`` and
    ``chunks`` are null while an ingest or a forget is under way."""
    p = state.project
    documents = chunks = None
    # a liveness probe must not wait out a long ingest: while the corpus changes, the counts are left out
    with state.corpus.read(wait=False) as held:
        if held:
            documents = p.store.db.execute("SELECT COUNT(*) FROM documents WHERE status = 'active'").fetchone()[0]
            chunks = p.store.db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
    gen, emb = p.config.generator, p.config.embedder
    try:
        generator_model = p.generator.identity().get("model", gen.model)
        embedder_model = p.embedder.name
    except Exception:  # health reports rather than fails; warm_error already says what went wrong
        generator_model, embedder_model = gen.model, emb.model
    body: dict[str, Any] = {
        "status": "ok" if state.warm_error is None else "degraded",
        "version": __version__,
        "project": p.config.project.name,
        "documents": documents,
        "chunks": chunks,
        "generator": {"backend": gen.backend, "model": generator_model},
        "embedder": {"backend": emb.backend, "model": embedder_model},
        "models_loaded": state.warm,
        "auth": "token" if state.callers.token_required else "loopback-only",
    }
    if state.warm_error:
        body["error"] = state.warm_error
    return body


@router.post("/search")
def search(body: SearchRequest, caller: Authed, state: State) -> dict[str, Any]:
    """Hybrid search over what the caller may read."""
    body.refuse_groups()
    p = state.project
    as_of = parse_when(body.as_of, end_of_day=True) if body.as_of else None
    with state.corpus.read():
        retriever = Retriever(p.store, p.index, p.embedder, p.config.retrieval)
        result = retriever.search(body.query, body.k, Filters(as_of=as_of, groups=caller.groups), mode=body.mode)
    return {
        "results": [hit_json(h) for h in result.hits],
        "timings_ms": result.timings_ms,
        "visible_chunks": result.visible_chunks,
    }


@router.post("/ask")
def ask(body: AskRequest, caller: Authed, state: State) -> dict[str, Any]:
    """A cited answer, as `ragtune ask --json` prints it; the trace records the caller."""
    body.refuse_groups()
    as_of = parse_when(body.as_of, end_of_day=True) if body.as_of else None
    q = Question(body.question, body.arm, as_of, caller.groups, body.k, caller.name)
    return answer(state, q).to_json()


@router.post("/ingest")
def ingest(body: IngestRequest, caller: Authed, state: State) -> dict[str, Any]:
    """Ingest documents (admin callers); returns the ingest report once every change is searchable."""
    require_admin(caller, "ingest")
    body.refuse_groups()
    p = state.project
    documents = body.raw_documents(p.config.corpus.default_license)
    with state.corpus.write():
        report = ingest_documents(p, documents, rights_change=body.rights_change)
    return report.to_json()


@router.post("/forget")
def forget_documents(body: ForgetRequest, caller: Authed, state: State) -> dict[str, Any]:
    """Forget documents everywhere (admin callers); returns the deletion receipt."""
    require_admin(caller, "forget")
    body.refuse_groups()
    if not body.doc_ids and not body.source:
        raise ApiError(400, "nothing to forget; give doc_ids or a source")
    with state.corpus.write():
        receipt = forget(state.project, body.doc_ids, body.source)
    return receipt.to_json()


@router.get("/traces/{trace_id}")
def trace(trace_id: str, caller: Authed, state: State) -> dict[str, Any]:
    """One trace; a caller reads its own, an admin any."""
    # A non-admin's prefix is looked up among its own traces only: otherwise "ambiguous" would tell it that
    # someone else's trace shares the prefix. Another caller's trace is then the same 404 as a missing one.
    only = None if caller.admin else caller.name
    try:
        with state.corpus.read():
            found: Trace | None = load_trace(
                state.project.store, trace_id, caller=only, readable=lambda t: _may_read(state, caller, t)
            )
    except StoreError as exc:
        if status_for(exc) != 404:
            raise
        found = None
    if found is None or (only is not None and found.caller != only) or not _may_read(state, caller, found):
        raise ApiError(404, f"no trace {trace_id.strip().lower()!r}", "trace_not_found")
    return found.to_json()


def _may_read(state: ServerState, caller: Caller, found: Trace) -> bool:
    """An admin reads another caller's trace only if its own groups may see every document the trace touched:
    being allowed to change the corpus does not make a finance answer readable outside finance."""
    if found.caller == caller.name:
        return True
    held = set(caller.groups)
    for doc_id in found.doc_ids:
        row = state.project.store.db.execute("SELECT groups FROM documents WHERE doc_id = ?", (doc_id,)).fetchone()
        groups = set(json.loads(row[0])) if row else set()
        if groups and not groups & held:
            return False
    return True


@router.get("/openapi.json", include_in_schema=False)
def openapi(request: Request, caller: Authed) -> dict[str, Any]:
    """The OpenAPI schema of this server, for tools that generate clients; it needs a token like the rest."""
    schema: dict[str, Any] = request.app.openapi()
    return schema
