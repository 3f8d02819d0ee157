"""The server's edges: text that is not Unicode, the OpenAPI pages, slow and idle connections, trace-id prefixes
that would tell of other callers' traces, and a port already in use."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import typing
from collections.abc import Callable, Iterator
from typing import Any, Literal

import httpx
import pytest

from ragtune.errors import ConfigError, StoreError
from ragtune.project import Project
from ragtune.traces.store import Trace, load_trace, save_trace
from tests.server.conftest import (
    ADMIN_TOKEN,
    FINANCE_TOKEN,
    PRICING,
    PUBLIC_TOKEN,
    EchoGenerator,
    Live,
    assert_error,
    configure,
)
from tests.server.test_server import CALLERS, ENV

LONE = "\ud800"  # valid JSON as "\ud800"; as a Python str it cannot be encoded to UTF-8


@pytest.fixture
def live(project: Project, serve: Callable[..., Live]) -> Live:
    project.generator = EchoGenerator()
    running = serve(configure(project, CALLERS), ENV)
    with running.client(ADMIN_TOKEN) as c:
        c.post("/ingest", json={"documents": [{"doc_id": "handbook/pricing.md", "text": PRICING}]}).raise_for_status()
    return running


def post_raw(live: Live, path: str, body: Any, token: str = ADMIN_TOKEN) -> httpx.Response:
    # httpx encodes json= as UTF-8, which a lone surrogate cannot be; json.dumps escapes it as JSON allows
    with live.client(token) as c:
        return c.post(path, content=json.dumps(body).encode("ascii"), headers={"Content-Type": "application/json"})


# ---------------------------------------------------------------- lone surrogates

DOC = {"doc_id": "d", "text": "Some text."}
CHAT = {"model": "ragtune-rag", "messages": [{"role": "user", "content": "What is the rate limit?"}]}
SURROGATES: list[tuple[str, dict[str, Any], str]] = [
    ("/search", {"query": f"rate {LONE} limit"}, "query"),
    ("/search", {"query": "x", "as_of": LONE}, "as_of"),
    ("/search", {"query": "x", "mode": LONE}, "mode"),
    ("/ask", {"question": f"What {LONE}?"}, "question"),
    ("/ask", {"question": "x", "arm": LONE}, "arm"),
    ("/ask", {"question": "x", "as_of": LONE}, "as_of"),
    ("/ingest", {"documents": [{**DOC, "doc_id": f"a{LONE}"}]}, "documents.0.doc_id"),
    ("/ingest", {"documents": [{**DOC, "text": "Text \udfff here."}]}, "documents.0.text"),
    ("/ingest", {"documents": [{**DOC, "title": LONE}]}, "documents.0.title"),
    ("/ingest", {"documents": [{**DOC, "source": LONE}]}, "documents.0.source"),
    ("/ingest", {"documents": [{**DOC, "license": LONE}]}, "documents.0.license"),
    ("/ingest", {"documents": [{**DOC, "owner": LONE}]}, "documents.0.owner"),
    ("/ingest", {"documents": [{**DOC, "groups": ["ok", LONE]}]}, "documents.0.groups"),
    ("/ingest", {"documents": [{**DOC, "groups": LONE}]}, "documents.0.groups"),
    ("/ingest", {"documents": [{**DOC, "valid_from": LONE}]}, "documents.0.valid_from"),
    ("/ingest", {"documents": [{**DOC, "extra": {"note": [LONE]}}]}, "documents.0.extra"),
    ("/ingest", {"documents": [{**DOC, "extra": {LONE: 1}}]}, "documents.0.extra"),
    ("/forget", {"doc_ids": ["ok", LONE]}, "doc_ids"),
    ("/forget", {"source": LONE}, "source"),
    ("/v1/chat/completions", {**CHAT, "model": LONE}, "model"),
    ("/v1/chat/completions", {**CHAT, "messages": [{"role": LONE, "content": "hi"}]}, "messages.0.role"),
    ("/v1/chat/completions", {**CHAT, "messages": [{"role": "user", "content": LONE}]}, "messages.0.content"),
    (
        "/v1/chat/completions",
        {**CHAT, "messages": [{"role": "user", "content": [{"type": "text", "text": LONE}]}]},
        "messages.0.content",
    ),
    ("/v1/chat/completions", {**CHAT, "stream": True, "stream_options": {"x": LONE}}, "stream_options"),
    (
        "/v1/chat/completions",
        {**CHAT, "messages": [{"role": "user", "content": "hi", "name": LONE}]},
        "messages.0.name",
    ),
    ("/v1/chat/completions", {**CHAT, "stop": LONE}, "stop"),
    ("/v1/chat/completions", {**CHAT, "stop": ["ok", LONE]}, "stop"),
    ("/v1/embeddings", {"model": "ragtune-embedder", "input": LONE}, "input"),
    ("/v1/embeddings", {"model": "ragtune-embedder", "input": ["ok", LONE]}, "input"),
    ("/v1/embeddings", {"model": LONE, "input": "x"}, "model"),
    ("/v1/embeddings", {"model": "ragtune-embedder", "input": "x", "encoding_format": LONE}, "encoding_format"),
]


def test_lone_surrogates_are_refused_naming_the_field(live: Live) -> None:
    for path, body, field in SURROGATES:
        reply = post_raw(live, path, body)
        error = assert_error(reply, 422, "invalid_value", f"field '{field}': not valid Unicode text")
        assert "lone surrogate" in error["message"], (path, field)
    with live.client(ADMIN_TOKEN) as c:  # nothing was stored, and the server still answers
        assert c.post("/search", json={"query": "rate limit"}).json()["results"][0]["doc_id"] == "handbook/pricing.md"
    assert httpx.get(f"{live.url}/health").json()["documents"] == 1


def test_every_text_field_of_every_body_is_checked() -> None:
    """A new field that can hold a string takes the check too: each carries the validator and has a case above."""
    from pydantic import BaseModel, BeforeValidator

    from ragtune.server import schemas

    def texty(tp: Any) -> bool:  # can this annotation hold a string? (nested models answer for their own fields)
        if tp in (str, Any) or typing.get_origin(tp) in (Literal, dict):
            return True
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            return False
        return any(texty(a) for a in typing.get_args(tp) if not isinstance(a, BeforeValidator))

    def checked(tp: Any) -> bool:
        return any(a is schemas.Unicode or checked(a) for a in typing.get_args(tp))

    models = [m for m in vars(schemas).values() if isinstance(m, type) and issubclass(m, BaseModel)]
    models = [m for m in models if m.__module__ == schemas.__name__]
    assert len(models) >= 8
    tested = {field.rsplit(".", 1)[-1] for _, _, field in SURROGATES}
    for model in models:
        for name, info in model.model_fields.items():
            if name == "groups" and issubclass(model, schemas._Scoped):
                continue  # any value at all is refused with 400: groups come from the token
            if not texty(info.annotation):
                continue
            where = f"{model.__name__}.{name}"
            assert schemas.Unicode in info.metadata or checked(info.annotation), f"{where} is not checked"
            assert name in tested, f"{where} has no case in SURROGATES"


# ---------------------------------------------------------------- the OpenAPI schema and pages


def test_openapi_needs_a_token_and_the_pages_are_off(live: Live) -> None:
    with httpx.Client(base_url=live.url) as anonymous:
        assert_error(anonymous.get("/openapi.json"), 401, "missing_api_key")
        for page in ("/docs", "/redoc", "/docs/oauth2-redirect"):
            assert anonymous.get(page).status_code in (401, 404)
    with live.client(PUBLIC_TOKEN) as c:
        schema = c.get("/openapi.json")
        assert schema.status_code == 200 and "/search" in schema.json()["paths"]
        assert "/openapi.json" not in schema.json()["paths"]
        for page in ("/docs", "/redoc"):
            assert_error(c.get(page), 404, "not_found")


# ---------------------------------------------------------------- idle and partial connections


@pytest.fixture
def timed(project: Project) -> Iterator[Callable[..., tuple[int, list[str]]]]:
    """``start(keep_alive_s, read_timeout_s)``: the app under the uvicorn configuration `ragtune serve` uses, on
    sockets bound as it binds them; returns the port and the server's error log lines."""
    import uvicorn

    from ragtune.server.app import create_app
    from ragtune.server.connections import bind, server_config

    running: list[tuple[uvicorn.Server, threading.Thread]] = []
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage() + (" (traceback)" if record.exc_info else ""))

    handler = Collect(logging.WARNING)
    logging.getLogger("uvicorn.error").addHandler(handler)

    def start(keep_alive_s: int, read_timeout_s: float) -> tuple[int, list[str]]:
        if not project.loaded("generator"):  # /health would load SmolLM2 otherwise
            project.generator = EchoGenerator()
        app = create_app(project, warm_up=False, environ={"RAGTUNE_API_TOKEN": ADMIN_TOKEN})
        sockets = bind("127.0.0.1", 0)
        config = server_config(
            app, "127.0.0.1", 0, log_level="warning", keep_alive_s=keep_alive_s, read_timeout_s=read_timeout_s
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": sockets}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 60
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the test server did not start"
            time.sleep(0.02)
        running.append((server, thread))
        return int(sockets[0].getsockname()[1]), lines

    yield start
    logging.getLogger("uvicorn.error").removeHandler(handler)
    for server, thread in running:
        server.should_exit = True
        thread.join(timeout=30)


def closed_after(sock: socket.socket, limit: float, trickle: bytes = b"") -> tuple[float, bytes]:
    """Wait (sending ``trickle`` a byte every 0.2 s, if given) until the server closes ``sock``; returns the
    seconds it took and what the server sent."""
    t0 = time.monotonic()
    received = b""
    sock.settimeout(0.2)
    while time.monotonic() - t0 < limit:
        if trickle:
            try:
                sock.sendall(trickle[:1])
                trickle = trickle[1:] or trickle
            except OSError:
                break
        try:
            data = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            break
        if not data:
            break
        received += data
    return time.monotonic() - t0, received


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def read_response(sock: socket.socket) -> bytes:
    """One whole response (head and Content-Length body) from ``sock``."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed after {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.lower().split(b"\r\n") if line.startswith(b"content-length")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def test_a_connection_that_sends_nothing_is_closed(timed: Callable[..., tuple[int, list[str]]]) -> None:
    port, _ = timed(keep_alive_s=1, read_timeout_s=1.5)
    with connect(port) as sock:
        took, received = closed_after(sock, limit=10)
    assert 1.3 <= took < 4, took
    assert received == b""  # nothing was asked, so nothing is answered


def test_a_request_line_sent_slowly_is_cut_off(timed: Callable[..., tuple[int, list[str]]]) -> None:
    """Slowloris: a byte every 0.2 s keeps the connection busy, but does not move the deadline."""
    port, _ = timed(keep_alive_s=1, read_timeout_s=1.5)
    with connect(port) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\n")
        took, received = closed_after(sock, limit=10, trickle=b"X-Slow: " + b"a" * 200)
    assert 1.3 <= took < 4, took
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), received
    assert json.loads(body)["error"]["code"] == "request_timeout"


def test_a_body_sent_slowly_is_cut_off(timed: Callable[..., tuple[int, list[str]]]) -> None:
    port, log = timed(keep_alive_s=1, read_timeout_s=1.5)
    with connect(port) as sock:
        sock.sendall(
            b"POST /search HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 400\r\n"
            + f"Authorization: Bearer {ADMIN_TOKEN}\r\n\r\n".encode()
            + b'{"query": "'
        )
        took, received = closed_after(sock, limit=10, trickle=b"x" * 300)
    assert 1.3 <= took < 4, took
    assert received.startswith(b"HTTP/1.1 408 "), received
    reply = httpx.get(f"http://127.0.0.1:{port}/health")  # the server is fine, and logged no traceback
    assert reply.status_code == 200
    assert not [line for line in log if "traceback" in line or "Exception" in line], log


def test_many_slow_connections_are_all_closed(timed: Callable[..., tuple[int, list[str]]]) -> None:
    port, _ = timed(keep_alive_s=1, read_timeout_s=1.5)
    socks = [connect(port) for _ in range(100)]
    try:
        for sock in socks:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n")
        t0 = time.monotonic()
        for sock in socks:
            closed_after(sock, limit=10 - (time.monotonic() - t0))
        assert time.monotonic() - t0 < 5
    finally:
        for sock in socks:
            sock.close()
    assert httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200


def test_an_idle_keep_alive_connection_is_closed(timed: Callable[..., tuple[int, list[str]]]) -> None:
    port, _ = timed(keep_alive_s=1, read_timeout_s=3)
    request = b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n"
    with connect(port) as sock:
        for _ in range(5):  # requests 0.7 s apart, 3.5 s in all: each has a deadline of its own, so it stays open
            sock.sendall(request)
            assert read_response(sock).startswith(b"HTTP/1.1 200 ")
            time.sleep(0.7)
        sock.sendall(request)
        assert read_response(sock).startswith(b"HTTP/1.1 200 ")
        took, received = closed_after(sock, limit=10)
    assert 0.8 <= took < 2.5, took  # the keep-alive timeout, well before the request deadline
    assert received == b""


def test_a_large_body_sent_steadily_arrives_whole(timed: Callable[..., tuple[int, list[str]]]) -> None:
    """Body bytes earn time (a second per 16 KB): 100 KB over 2 s passes a 1 s deadline; a trickle does not."""
    port, _ = timed(keep_alive_s=1, read_timeout_s=1)
    payload = json.dumps({"query": "rate limit " * 9000}).encode()

    def steady() -> Iterator[bytes]:
        for i in range(0, len(payload), 5000):
            time.sleep(0.1)
            yield payload[i : i + 5000]

    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"}
    t0 = time.monotonic()
    reply = httpx.post(f"http://127.0.0.1:{port}/search", content=steady(), headers=headers, timeout=60)
    assert reply.status_code == 200, reply.text
    assert time.monotonic() - t0 > 1.5


def test_a_slow_answer_is_not_cut_off(project: Project, timed: Callable[..., tuple[int, list[str]]]) -> None:
    """The deadline covers reading the request; the app may take longer than it to answer."""

    class Slow(EchoGenerator):
        def generate(self, batch: Any, **kwargs: Any) -> Any:
            time.sleep(2.5)
            return super().generate(batch, **kwargs)

    project.generator = Slow()
    port, _ = timed(keep_alive_s=1, read_timeout_s=1)
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=60) as c:
        c.post("/ingest", json={"documents": [{"doc_id": "p", "text": PRICING}]}).raise_for_status()
        reply = c.post("/ask", json={"question": "What is the Pro plan's rate limit?"})
    assert reply.status_code == 200, reply.text


# ---------------------------------------------------------------- trace-id prefixes


def stored_trace(project: Project, trace_id: str, caller: str | None) -> None:
    trace = Trace(
        trace_id=trace_id,
        created_at="2026-01-01T00:00:00+00:00",
        kind="ask",
        arm="rag",
        question="q?",
        answer="a.",
        model={},
        index_state={},
        timings={},
        tokens_in=1,
        tokens_out=1,
        chunks=[],
        citations=[],
        caller=caller,
    )
    save_trace(project.store, trace)


def test_a_prefix_only_considers_the_callers_own_traces(live: Live) -> None:
    mine, theirs = "abcdef01" + "0" * 24, "abcdef02" + "0" * 24
    stored_trace(live.project, mine, "public")
    stored_trace(live.project, theirs, "finance")
    with live.client(PUBLIC_TOKEN) as c:
        assert c.get("/traces/abcdef").json()["trace_id"] == mine  # not "ambiguous": the other is not theirs
        assert c.get("/traces/ABCDEF0").json()["trace_id"] == mine
        other = assert_error(c.get("/traces/abcdef02"), 404, "trace_not_found")
        missing = assert_error(c.get("/traces/abcdef03"), 404, "trace_not_found")
        assert (other["message"], missing["message"]) == ("no trace 'abcdef02'", "no trace 'abcdef03'")
        assert_error(c.get(f"/traces/{theirs}"), 404, "trace_not_found")
    with live.client(FINANCE_TOKEN) as c:
        assert c.get("/traces/abcdef").json()["trace_id"] == theirs
    with live.client(ADMIN_TOKEN) as c:  # an admin reads any trace, so its prefixes range over all of them
        assert_error(c.get("/traces/abcdef"), 400, says="ambiguous")
        assert c.get("/traces/abcdef02").json()["caller"] == "finance"
    stored_trace(live.project, "abcdef09" + "0" * 24, "public")
    with live.client(PUBLIC_TOKEN) as c:  # two of its own: now it is ambiguous, for this caller
        assert_error(c.get("/traces/abcdef"), 400, says="ambiguous")


def test_load_trace_filters_by_caller(project: Project) -> None:
    stored_trace(project, "fedcba01" + "0" * 24, "a")
    stored_trace(project, "fedcba02" + "0" * 24, None)
    assert load_trace(project.store, "fedcba", caller="a").trace_id.startswith("fedcba01")
    with pytest.raises(StoreError, match="no trace"):
        load_trace(project.store, "fedcba02", caller="a")
    with pytest.raises(StoreError, match="ambiguous"):
        load_trace(project.store, "fedcba")


# ---------------------------------------------------------------- a port in use


def test_bind_names_the_address_it_cannot_take() -> None:
    from ragtune.server.connections import bind

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=rf"cannot listen on 127\.0\.0\.1:{port}: .*in use.*--port"):
            bind("127.0.0.1", port)
    with pytest.raises(ConfigError, match=r"cannot listen on 192\.0\.2\.1:8377: .*--host"):
        bind("192.0.2.1", 8377)  # TEST-NET-1: an address of no machine
    free = bind("127.0.0.1", 0)
    assert len(free) == 1
    free[0].close()


@pytest.mark.integration
def test_serve_on_a_port_in_use_fails_at_once(project: Project) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("RAGTUNE_API_TOKEN", "RAGTUNE_PROJECT")}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cmd = [sys.executable, "-m", "ragtune.cli.main", "serve", "--port", str(port), "--log-level", "info"]
        proc = subprocess.run(
            [*cmd, "--project", str(project.root)], env=env, capture_output=True, text=True, timeout=120
        )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr  # no model loaded, no uvicorn start-up: the one line
    assert f"127.0.0.1:{port}" in lines[0] and "already in use" in lines[0] and "--port" in lines[0]
