"""`ragtune serve` over real HTTP: a uvicorn server on loopback, the real store, indexes and MiniLM, and a stand-in
generator (the real SmolLM2 runs in test_openai_client.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from ragtune.errors import ConfigError, ModelError
from ragtune.project import Project
from ragtune.server.auth import Callers, check_bind
from ragtune.server.errors import ApiError
from tests.server.conftest import (
    ADMIN_TOKEN,
    FINANCE_TOKEN,
    PRICING,
    PUBLIC_TOKEN,
    REFUNDS,
    EchoGenerator,
    Live,
    assert_error,
    configure,
)

CALLERS = """
[server]
groups = []

[server.callers.finance]
token_env = "TEST_FINANCE_TOKEN"
groups = ["finance"]

[server.callers.public]
token_env = "TEST_PUBLIC_TOKEN"
"""
ENV = {"RAGTUNE_API_TOKEN": ADMIN_TOKEN, "TEST_FINANCE_TOKEN": FINANCE_TOKEN, "TEST_PUBLIC_TOKEN": PUBLIC_TOKEN}
REFUND_QUESTION = "How much can a support lead refund without approval?"


def ingest(live: Live, *documents: dict[str, Any]) -> dict[str, Any]:
    with live.client(ADMIN_TOKEN) as c:
        reply = c.post("/ingest", json={"documents": list(documents)})
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


@pytest.fixture
def live(project: Project, serve: Callable[..., Live]) -> Iterator[Live]:
    """Three callers (admin, finance, public), a public pricing page and a finance-only refund policy."""
    project.generator = EchoGenerator()
    running = serve(configure(project, CALLERS), ENV)
    report = ingest(
        running,
        {"doc_id": "handbook/pricing.md", "text": PRICING, "license": "CC-BY-4.0"},
        {"doc_id": "internal/refund-approval.txt", "text": REFUNDS, "groups": ["finance"], "may_train": False},
    )
    assert sorted(report["added"]) == ["handbook/pricing.md", "internal/refund-approval.txt"] and report["ok"]
    yield running


def test_create_app_loads_no_model(project: Project) -> None:
    from ragtune.server.app import create_app

    create_app(project, environ={})
    assert not project.loaded("generator") and not project.loaded("index")


def test_health_needs_no_token(live: Live) -> None:
    reply = httpx.get(f"{live.url}/health")
    assert reply.status_code == 200
    body = reply.json()
    assert body["status"] == "ok" and body["version"] and body["auth"] == "token"
    assert (body["documents"], body["chunks"]) == (2, 2)
    assert body["generator"] == {"backend": "smollm2", "model": "echo"}


AUTHED = [
    ("GET", "/v1/models", None),
    ("POST", "/v1/chat/completions", {"model": "ragtune-rag", "messages": [{"role": "user", "content": "hi"}]}),
    ("POST", "/search", {"query": "rate limit"}),
    ("POST", "/ask", {"question": "What is the rate limit?"}),
    ("POST", "/ingest", {"documents": [{"doc_id": "x", "text": "x"}]}),
    ("POST", "/forget", {"doc_ids": ["handbook/pricing.md"]}),
    ("GET", "/traces/0123456789abcdef", None),
]


@pytest.mark.parametrize(("method", "path", "body"), AUTHED)
def test_every_endpoint_but_health_needs_a_token(live: Live, method: str, path: str, body: Any) -> None:
    with httpx.Client(base_url=live.url) as c:
        missing = c.request(method, path, json=body)
        wrong = c.request(method, path, json=body, headers={"Authorization": "Bearer not-the-token"})
        basic = c.request(method, path, json=body, headers={"Authorization": f"Basic {ADMIN_TOKEN}"})
    assert_error(missing, 401, "missing_api_key", "missing bearer token")
    assert missing.headers["www-authenticate"] == "Bearer"
    assert_error(wrong, 401, "invalid_api_key", "invalid token")
    assert_error(basic, 401, "invalid_api_key", "malformed")
    with live.client(ADMIN_TOKEN) as c:  # nothing was changed by the refused calls
        assert c.post("/search", json={"query": "rate limit"}).json()["results"][0]["doc_id"] == "handbook/pricing.md"


def test_only_admin_callers_ingest_and_forget(live: Live) -> None:
    with live.client(FINANCE_TOKEN) as c:
        assert_error(
            c.post("/ingest", json={"documents": [{"doc_id": "x", "text": "x"}]}), 403, "admin_required", "'finance'"
        )
        assert_error(c.post("/forget", json={"doc_ids": ["handbook/pricing.md"]}), 403, "admin_required")
    assert httpx.get(f"{live.url}/health").json()["documents"] == 2


def test_access_groups_come_from_the_token(live: Live) -> None:
    def search(token: str) -> list[str]:
        with live.client(token) as c:
            reply = c.post("/search", json={"query": REFUND_QUESTION, "k": 10})
        assert reply.status_code == 200, reply.text
        return [r["doc_id"] for r in reply.json()["results"]]

    def cited(token: str, path: str, body: dict[str, Any]) -> list[str]:
        with live.client(token) as c:
            reply = c.post(path, json=body)
        assert reply.status_code == 200, reply.text
        return [x["doc_id"] for x in reply.json()["citations"]]

    secret = "internal/refund-approval.txt"
    assert secret not in search(PUBLIC_TOKEN)
    assert secret not in search(ADMIN_TOKEN)  # admin may change the corpus, but reads with [server] groups only
    assert search(FINANCE_TOKEN)[0] == secret
    ask = {"question": REFUND_QUESTION}
    assert secret not in cited(PUBLIC_TOKEN, "/ask", ask)
    assert cited(FINANCE_TOKEN, "/ask", ask) == [secret]
    chat = {"model": "ragtune-rag", "messages": [{"role": "user", "content": REFUND_QUESTION}]}
    assert secret not in cited(PUBLIC_TOKEN, "/v1/chat/completions", chat)
    assert cited(FINANCE_TOKEN, "/v1/chat/completions", chat) == [secret]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/search", {"query": REFUND_QUESTION}),
        ("/ask", {"question": REFUND_QUESTION}),
        ("/v1/chat/completions", {"model": "ragtune-rag", "messages": [{"role": "user", "content": REFUND_QUESTION}]}),
        ("/ingest", {"documents": [{"doc_id": "x", "text": "x"}]}),
        ("/forget", {"doc_ids": ["x"]}),
    ],
)
def test_groups_in_a_body_are_refused(live: Live, path: str, body: dict[str, Any]) -> None:
    with live.client(PUBLIC_TOKEN if path not in ("/ingest", "/forget") else ADMIN_TOKEN) as c:
        reply = c.post(path, json={**body, "groups": ["finance"]})
    assert_error(reply, 400, "groups_not_allowed", "groups come from the caller's token")


def test_oversized_bodies_are_refused(project: Project, serve: Callable[..., Live]) -> None:
    live = serve(configure(project, "[server]\nmax_request_kb = 1\n"), {"RAGTUNE_API_TOKEN": ADMIN_TOKEN})
    big = {"query": "x" * 2000}
    with live.client(ADMIN_TOKEN) as c:
        assert_error(c.post("/search", json=big), 413, "request_too_large", "1 KB limit")

        def chunked() -> Iterator[bytes]:  # no Content-Length: the server has to count
            yield b'{"query": "'
            for _ in range(40):
                yield b"x" * 100
            yield b'"}'

        reply = c.post("/search", content=chunked(), headers={"Content-Type": "application/json"})
        assert "content-length" not in reply.request.headers
        assert_error(reply, 413, "request_too_large")
        assert c.post("/search", json={"query": "x" * 500}).status_code == 200


def test_errors_are_json_in_the_openai_shape(live: Live) -> None:
    with live.client(PUBLIC_TOKEN) as c:
        assert_error(c.get("/no/such/endpoint"), 404, "not_found", "no such endpoint")
        assert_error(c.get("/search"), 405, "method_not_allowed")
        assert_error(c.post("/search", json={}), 422, "invalid_value", "missing field 'query'")
        assert_error(c.post("/search", json={"query": "x", "k": 0}), 422, says="field 'k'")
        assert_error(c.post("/search", json={"query": "x", "typo": 1}), 422, says="unknown field 'typo'")
        bad_json = c.post("/search", content=b'{"query": ', headers={"Content-Type": "application/json"})
        assert_error(bad_json, 422, says="not valid JSON")
        as_form = c.post("/search", content=b'{"query": "x"}', headers={"Content-Type": "text/plain"})
        assert_error(as_form, 422, says="Content-Type: application/json")
        assert_error(c.post("/search"), 422, says="must be a JSON object")
        assert_error(c.post("/search", json={"query": "   "}), 400, says="empty query")  # RetrievalError
        assert_error(c.post("/search", json={"query": "x", "as_of": "soon"}), 400, says="is not a date")
        chat = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
        assert_error(c.post("/v1/chat/completions", json=chat), 404, "model_not_found", "'gpt-4o'")
        no_user = {"model": "ragtune-rag", "messages": [{"role": "system", "content": "be brief"}]}
        assert_error(c.post("/v1/chat/completions", json=no_user), 400, says="no question")
        assert_error(c.get("/traces/abc"), 400, says="too short")
        assert_error(c.get("/traces/0123456789abcdef0123456789abcdef"), 404, "trace_not_found")


@pytest.mark.parametrize(
    ("error", "status", "says"),
    [
        (ModelError("the model fell over; check [generator]"), 502, "the model fell over"),
        (RuntimeError("secret internals\nline two"), 500, "internal error: RuntimeError"),
    ],
)
def test_failures_inside_answers_are_one_line(
    project: Project, serve: Callable[..., Live], error: Exception, status: int, says: str
) -> None:
    class Broken(EchoGenerator):
        def generate(self, batch: Any, **kwargs: Any) -> Any:
            raise error

    project.generator = Broken()
    live = serve(project, {})
    with live.client() as c:
        c.post("/ingest", json={"documents": [{"doc_id": "a", "text": PRICING}]}).raise_for_status()
        found = assert_error(c.post("/ask", json={"question": "rate limit?"}), status, says=says)
    assert "secret internals" not in found["message"]


def test_ingest_then_search_then_forget(live: Live) -> None:
    doc = {
        "doc_id": "handbook/holidays.md",
        "text": "# Holidays\n\nThe office is closed on 24 December.",
        "owner": "hr",
    }
    report = ingest(live, doc)
    assert report["added"] == ["handbook/holidays.md"] and report["chunks"] == 1
    assert ingest(live, doc)["unchanged"] == ["handbook/holidays.md"]
    with live.client(PUBLIC_TOKEN) as c:
        hits = c.post("/search", json={"query": "When is the office closed?", "k": 1}).json()["results"]
    assert hits[0]["doc_id"] == "handbook/holidays.md" and hits[0]["title"] == "handbook/holidays.md"
    with live.client(ADMIN_TOKEN) as c:
        receipt = c.post("/forget", json={"doc_ids": ["handbook/holidays.md", "nope"]}).json()
        assert receipt["totals"]["documents"] == 1 and receipt["not_found"] == ["nope"]
        assert receipt["receipt_id"].startswith("rcpt-")
        assert_error(c.post("/forget", json={}), 400, says="nothing to forget")
        dup = {"documents": [{"doc_id": "a", "text": "one"}, {"doc_id": "a", "text": "two"}]}
        assert_error(c.post("/ingest", json=dup), 400, says="duplicate doc_id")
        bad_date = {"documents": [{"doc_id": "b", "text": "b", "valid_from": "someday"}]}
        assert_error(c.post("/ingest", json=bad_date), 400, says="documents[0] (b)")
    with live.client(PUBLIC_TOKEN) as c:
        hits = c.post("/search", json={"query": "When is the office closed?", "k": 10}).json()["results"]
    assert all(h["doc_id"] != "handbook/holidays.md" for h in hits)


def test_traces_belong_to_their_caller(live: Live) -> None:
    with live.client(PUBLIC_TOKEN) as c:
        trace_id = c.post("/ask", json={"question": "What is the Pro plan's rate limit?"}).json()["trace_id"]
        mine = c.get(f"/traces/{trace_id}")
        assert mine.status_code == 200 and mine.json()["caller"] == "public" and mine.json()["groups"] == []
    with live.client(FINANCE_TOKEN) as c:
        assert_error(c.get(f"/traces/{trace_id}"), 404, "trace_not_found")
        chat = {"model": "ragtune-closed-book", "messages": [{"role": "user", "content": "Hello?"}]}
        reply = c.post("/v1/chat/completions", json=chat).json()
        own = c.get(f"/traces/{reply['trace_id']}").json()
        assert (own["caller"], own["arm"], own["groups"]) == ("finance", "closed-book", ["finance"])
    with live.client(ADMIN_TOKEN) as c:
        assert c.get(f"/traces/{trace_id[:8]}").json()["trace_id"] == trace_id


def test_without_any_token_loopback_callers_are_the_admin(project: Project, serve: Callable[..., Live]) -> None:
    project.generator = EchoGenerator()
    live = serve(configure(project, "[server]\ngroups = ['finance']\n"), {})
    with live.client() as c:
        ingested = c.post("/ingest", json={"documents": [{"doc_id": "r", "text": REFUNDS, "groups": "finance"}]})
        assert ingested.status_code == 200 and ingested.json()["added"] == ["r"]
        answer = c.post("/ask", json={"question": REFUND_QUESTION}).json()
        assert answer["citations"][0]["doc_id"] == "r"  # [server] groups apply to the tokenless admin
        assert c.get(f"/traces/{answer['trace_id']}").json()["caller"] == "admin"
    assert httpx.get(f"{live.url}/health").json()["auth"] == "loopback-only"
    callers = Callers(project.config.server, {})
    with pytest.raises(ApiError) as refused:
        callers.authenticate(None, "10.1.2.3")
    assert refused.value.status == 401


def test_caller_configuration_errors(project: Project) -> None:
    same = configure(project, CALLERS).config.server
    with pytest.raises(ConfigError, match="'finance' and 'public' have the same token"):
        Callers(same, {"TEST_FINANCE_TOKEN": "t", "TEST_PUBLIC_TOKEN": "t"})
    named_admin = configure(project, "[server.callers.admin]\ntoken_env = 'X'\n").config.server
    with pytest.raises(ConfigError, match="choose another name"):
        Callers(named_admin, {"X": "t"})
    partial = Callers(same, {"TEST_FINANCE_TOKEN": "t"})
    assert partial.token_required and partial.unset == ["public ($TEST_PUBLIC_TOKEN is not set)"]
    assert partial.authenticate("Bearer t", "10.1.2.3").groups == ("finance",)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_loopback_binds_need_no_token(host: str) -> None:
    check_bind(host, {})


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "192.168.1.5", "example.com"])
def test_other_binds_need_the_token(host: str) -> None:
    with pytest.raises(ConfigError, match="set RAGTUNE_API_TOKEN"):
        check_bind(host, {})
    check_bind(host, {"RAGTUNE_API_TOKEN": "t"})


@pytest.mark.integration
def test_cli_refuses_to_bind_beyond_loopback_without_a_token(project: Project) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("RAGTUNE_API_TOKEN", "RAGTUNE_PROJECT")}
    proc = subprocess.run(
        [sys.executable, "-m", "ragtune.cli.main", "serve", "--host", "0.0.0.0", "--project", str(project.root)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "refusing to serve on 0.0.0.0" in lines[0] and "set RAGTUNE_API_TOKEN" in lines[0]


def test_searches_stay_whole_while_the_corpus_changes(live: Live) -> None:
    """Searches in four threads while documents are ingested and forgotten: no request may fail or mix views."""
    failures: list[str] = []
    done = threading.Event()

    def searcher() -> None:
        with live.client(PUBLIC_TOKEN) as c:
            while not done.is_set():
                reply = c.post("/search", json={"query": "What is the Pro plan's rate limit?", "k": 5})
                if reply.status_code != 200:
                    failures.append(reply.text)

    threads = [threading.Thread(target=searcher) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for i in range(4):
            ingest(live, {"doc_id": f"extra/{i}.md", "text": f"# Note {i}\n\nThe Pro plan note number {i}."})
        with live.client(ADMIN_TOKEN) as c:
            assert c.post("/forget", json={"source": "api"}).status_code == 200
    finally:
        done.set()
        for t in threads:
            t.join()
    assert failures == []


def test_read_write_lock() -> None:
    from ragtune.server.state import ReadWriteLock

    lock = ReadWriteLock()
    order: list[str] = []
    with lock.read() as held:
        assert held

        def write() -> None:
            with lock.write():
                order.append("write")

        writer = threading.Thread(target=write)
        writer.start()
        writer.join(0.2)
        assert writer.is_alive() and order == []  # the writer waits for the reader
        with lock.read(wait=False) as second:
            assert not second  # a waiting writer holds back new readers
        order.append("read")
    writer.join(5)
    assert order == ["read", "write"]
