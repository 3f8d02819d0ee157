"""What the worker threads share: the project, the callers, and the locks that keep them from tripping each other.

FastAPI runs the endpoints in a thread pool over one :class:`Project`. The store serializes its own transactions
and the generator its own decoding; two more rules are kept here:

- Readers (search, ask, traces, health) share the corpus; ingest and forget take it alone. An ingest swaps the
  index's segments and chunk table when it commits, and a search that read the table before the swap and the
  segments after would mix two corpora; forget also vacuums SQLite, which fails while another statement runs.
- Answers are written one at a time. The generator's lock covers decoding only, and the Hugging Face tokenizer
  it pads with is not safe to call from another thread meanwhile (Rust "Already borrowed"). Decoding dominates
  an answer's time, so this costs almost nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import cast

from fastapi import Request

from ragtune.errors import RagtuneError
from ragtune.project import Project
from ragtune.server.auth import Caller, Callers

log = logging.getLogger("uvicorn.error")


class ReadWriteLock:
    """Many readers or one writer; a waiting writer holds back new readers so it cannot starve.

    >>> lock = ReadWriteLock()
    >>> with lock.read(): ...
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writing = False
        self._writers_waiting = 0

    @contextmanager
    def read(self, wait: bool = True) -> Iterator[bool]:
        """Hold the lock for reading; yields whether it is held (``wait=False`` gives up at once on a writer)."""
        with self._cond:
            held = wait or not (self._writing or self._writers_waiting)
            if held:
                while self._writing or self._writers_waiting:
                    self._cond.wait()
                self._readers += 1
        try:
            yield held
        finally:
            if held:
                with self._cond:
                    self._readers -= 1
                    if not self._readers:
                        self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            try:
                while self._writing or self._readers:
                    self._cond.wait()
            finally:
                self._writers_waiting -= 1
            self._writing = True
        try:
            yield
        finally:
            with self._cond:
                self._writing = False
                self._cond.notify_all()


@dataclass
class ServerState:
    """One server's shared objects; ``app.state.ragtune`` holds it."""

    project: Project
    callers: Callers
    corpus: ReadWriteLock = field(default_factory=ReadWriteLock)
    answering: threading.Lock = field(default_factory=threading.Lock)
    started: int = field(default_factory=lambda: int(time.time()))
    warm: bool = False
    warm_error: str | None = None

    def warm_up(self) -> None:
        """Load the index, the embedder and the generator now, so the first request does not wait for them."""
        t0 = time.perf_counter()
        project = self.project
        try:
            with self.corpus.read():
                project.index.refresh()
            project.embedder.encode(["warm up"])
            project.generator.count_tokens("warm up")  # loads the weights (the first load ever also converts them)
            project.interactive_generator.count_tokens("warm up")  # single requests' backend, when it is another
        except Exception as exc:  # any failure: the server still starts, and says why
            # search may still work without the generator; /health says what failed, and answers return it as 502
            self.warm_error = str(exc) if isinstance(exc, RagtuneError) else f"{type(exc).__name__}: {exc}"
            log.error("ragtune: warm-up failed: %s", exc)
            return
        self.warm = True
        log.info("ragtune: models loaded in %.1f s", time.perf_counter() - t0)


def get_state(request: Request) -> ServerState:
    return cast(ServerState, request.app.state.ragtune)


async def get_caller(request: Request) -> Caller:
    """The authenticated caller of this request (a FastAPI dependency)."""
    client = request.client.host if request.client else None
    return get_state(request).callers.authenticate(request.headers.get("authorization"), client)
