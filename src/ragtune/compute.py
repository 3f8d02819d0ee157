"""One thread per process runs the heavy compute: torch's (the embedder, transformers) and llama.cpp's.

Both use the same OpenMP runtime (torch loads its libgomp first, and llama.cpp's libggml-cpu takes the loaded one by
its soname). OpenMP keeps a pool of worker threads for every thread that ever ran a parallel region, and once the
pools hold more threads than there are cores it stops spinning between regions. Every llama.cpp token is a few
regions, so each then waits on a futex: on 2 cores, single-stream decoding fell from about 105 to about 55
tokens/s when a query had been embedded on another thread first, or when the server decoded on a thread other than
the one its earlier answers used (measured; docs/decisions.md). With all of it on this one thread there is one
pool, whoever asks: the CLI's main thread, the server's worker threads, a stream's producer.

:func:`call` runs a function there and returns its result (or raises its exception); :func:`iterate` advances an
iterator there one item at a time, so that other work (a search's query embedding) can run between two tokens of a
stream. Code already on the compute thread runs inline.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_jobs: queue.SimpleQueue[tuple[Callable[[], Any], queue.SimpleQueue[tuple[bool, Any]]]] = queue.SimpleQueue()
_thread: threading.Thread | None = None


def _serve() -> None:
    while True:
        job, reply = _jobs.get()
        try:
            reply.put((True, job()))
        except BaseException as exc:  # handed to the caller, who raises it in its own thread
            reply.put((False, exc))


def on_compute_thread() -> bool:
    return threading.current_thread() is _thread


def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` on the compute thread."""
    global _thread
    if on_compute_thread():
        return fn(*args, **kwargs)
    with _lock:
        if _thread is None:
            _thread = threading.Thread(target=_serve, name="ragtune-compute", daemon=True)
            _thread.start()
    reply: queue.SimpleQueue[tuple[bool, Any]] = queue.SimpleQueue()
    _jobs.put((lambda: fn(*args, **kwargs), reply))
    ok, value = reply.get()
    if not ok:
        raise value
    return value  # type: ignore[no-any-return]


_DONE = object()


def iterate(make: Callable[[], Iterator[T]]) -> Iterator[T]:
    """The items of ``make()``, each computed on the compute thread; closing this iterator closes that one there."""
    if on_compute_thread():
        yield from make()
        return
    inner: Iterator[T] = call(make)
    try:
        while True:
            item = call(next, inner, _DONE)
            if item is _DONE:
                return
            yield item
    finally:
        close = getattr(inner, "close", None)
        if close is not None:
            call(close)
