"""A real uvicorn server on a free loopback port, in a background thread, serving a test project."""

from __future__ import annotations

import threading
import time
import tomllib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from ragtune.config import parse_config
from ragtune.generation.base import Generation, Message
from ragtune.project import Project

ADMIN_TOKEN = "admin-token-0123456789"
FINANCE_TOKEN = "finance-token-0123456789"
PUBLIC_TOKEN = "public-token-0123456789"

PRICING = "# Pricing\n\n## Pro\n\nThe Pro plan's API rate limit is 600 requests per minute."
REFUNDS = "# Refund approval\n\nA support lead may refund up to 250 euros without approval from finance."


class EchoGenerator:
    """A stand-in generator that cites source [1]: enough to see what a caller's answer was built from."""

    name = "echo"
    context_window = 8192

    def identity(self) -> dict[str, str]:
        return {"backend": "echo", "model": "echo"}

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def count_prompt(self, messages: Sequence[Message]) -> int:
        return sum(self.count_tokens(m["content"]) for m in messages)

    def generate(
        self, batch: Sequence[Sequence[Message]], *, max_new_tokens: int | None = None, progress: bool = False
    ) -> list[Generation]:
        return [Generation("As the sources say [1].", self.count_prompt(m), 6, "stop", 1.0) for m in batch]


@dataclass
class Live:
    """A running server and a client for it."""

    url: str
    project: Project
    app: Any

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=120)


def configure(project: Project, server_toml: str) -> Project:
    """Give the project the ``[server]`` tables in ``server_toml``, parsed as ragtune.toml would be."""
    project.config.server = parse_config(tomllib.loads(server_toml)).server
    return project


@pytest.fixture
def serve() -> Iterator[Callable[..., Live]]:
    """Start ``create_app(project)`` under a real uvicorn on 127.0.0.1 (port chosen by the OS); stopped after."""
    import uvicorn

    from ragtune.server.app import create_app

    running: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(project: Project, environ: dict[str, str] | None = None, *, warm_up: bool = False) -> Live:
        app = create_app(project, warm_up=warm_up, environ=environ or {})
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 120
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        running.append((server, thread))
        port = server.servers[0].sockets[0].getsockname()[1]
        return Live(f"http://127.0.0.1:{port}", project, app)

    yield start
    for server, thread in running:
        server.should_exit = True
        thread.join(timeout=30)


def assert_error(reply: httpx.Response, status: int, code: str | None = None, says: str = "") -> dict[str, Any]:
    """The reply is ``status`` with an OpenAI-shaped JSON error and no traceback."""
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"].startswith("application/json")
    body = reply.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert {"message", "type", "code"} <= set(error)
    assert isinstance(error["message"], str) and error["message"] and "\n" not in error["message"]
    assert "Traceback" not in reply.text
    if code is not None:
        assert error["code"] == code, error
    assert says in error["message"], error
    return dict(error)
