"""The HTTP API of a ragtune project, built by :func:`create_app` and served by ``ragtune serve``.

Building the app reads the configuration and the environment only; the index, the embedder and the generator
load when the server starts (the lifespan's warm-up), so the first request is not the one that waits for them.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from ragtune import __version__
from ragtune.project import Project
from ragtune.server import openai_api, routes
from ragtune.server.auth import Callers
from ragtune.server.errors import install_error_handlers, log
from ragtune.server.limits import BodyLimit
from ragtune.server.state import ServerState


def create_app(project: Project, *, warm_up: bool = True, environ: Mapping[str, str] | None = None) -> FastAPI:
    """The FastAPI app serving ``project``; tokens are read from ``environ`` (default: the process environment).

    >>> app = create_app(Project.open())
    >>> uvicorn.run(app, host="127.0.0.1", port=8377)
    """
    settings = project.config.server
    state = ServerState(project, Callers(settings, os.environ if environ is None else environ))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for name in state.callers.unset:
            log.warning("ragtune: caller %s cannot authenticate", name)
        if warm_up:
            await run_in_threadpool(state.warm_up)
        yield
        # the project belongs to whoever built the app (the CLI closes it), so it stays open here

    app = FastAPI(
        title="ragtune",
        version=__version__,
        summary="Search, cited answers and corpus changes over one ragtune project; OpenAI-compatible chat.",
        lifespan=lifespan,
        # The schema is served by routes.py behind the token, as every endpoint but /health is. No /docs or
        # /redoc: a browser opening a page cannot send a bearer token, and the pages load their scripts from a CDN.
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.ragtune = state
    install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_request_kb * 1024)
    app.include_router(routes.router)
    app.include_router(openai_api.router)
    return app
