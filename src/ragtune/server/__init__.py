"""``ragtune serve``: the HTTP API of a project (search, cited answers, ingest, forget, traces) with an
OpenAI-compatible chat endpoint.

>>> from ragtune.server import create_app
>>> from ragtune.server.connections import bind, server_config  # what `ragtune serve` runs it with
>>> uvicorn.Server(server_config(create_app(Project.open()), "127.0.0.1", 8377)).run(bind("127.0.0.1", 8377))
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ragtune.server.app import create_app
    from ragtune.server.auth import Caller, Callers, check_bind

_EXPORTS = {
    "create_app": "ragtune.server.app",
    "Caller": "ragtune.server.auth",
    "Callers": "ragtune.server.auth",
    "check_bind": "ragtune.server.auth",
}


def __getattr__(name: str) -> Any:
    # Lazy, so that importing one module of the package does not pull in FastAPI and the answer pipeline.
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'ragtune.server' has no attribute {name!r}")


__all__ = ["Caller", "Callers", "check_bind", "create_app"]
