"""Shared fixtures: network blocked beyond loopback, the real MiniLM loaded once, fresh projects on disk."""

from __future__ import annotations

import ipaddress
import os
import signal
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

_real_connect = socket.socket.connect


def _guarded_connect(self: socket.socket, address: object) -> None:
    host = address[0] if isinstance(address, tuple) else None
    if host is not None:
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise OSError(f"tests may not reach the network ({host}); use loopback")
    _real_connect(self, address)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)


@pytest.fixture(scope="session")
def embedder():  # type: ignore[no-untyped-def]
    """The real packaged all-MiniLM-L6-v2, loaded once per test session."""
    from ragtune.index.embedder import SentenceTransformerEmbedder, minilm_path

    emb = SentenceTransformerEmbedder(minilm_path(), name="all-MiniLM-L6-v2")
    emb.encode(["warm up"])
    return emb


@pytest.fixture(scope="session")
def generator():  # type: ignore[no-untyped-def]
    """The real packaged SmolLM2-135M-Instruct (transformers, CPU), loaded once per test session.

    The dequantized cache lives in the usual RAGTUNE_HOME, so only the first session on a machine pays the ~20 s
    conversion; tests of the cache itself use their own RAGTUNE_HOME.
    """
    from ragtune.config import GeneratorSection
    from ragtune.generation.base import make_generator

    gen = make_generator(GeneratorSection(max_new_tokens=48))
    gen.count_tokens("warm up")
    return gen


@pytest.fixture
def project(tmp_path: Path, embedder):  # type: ignore[no-untyped-def]
    """A fresh project on disk (real SQLite file, real indexes) using the session's MiniLM."""
    from ragtune.project import Project, init_project

    root, _ = init_project(tmp_path / "proj")
    proj = Project.open(root)
    proj.embedder = embedder
    yield proj
    proj.close()


@pytest.fixture
def docs(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "proj" / "docs"
    folder.mkdir(parents=True, exist_ok=True)
    yield folder


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@contextmanager
def no_hang(seconds: int = 20) -> Iterator[None]:
    """Fail the test instead of hanging it (a FIFO opened for reading blocks until a writer comes)."""

    def fire(signum: int, frame: object) -> None:
        raise TimeoutError(f"still reading after {seconds} s: the read blocked")

    old = signal.signal(signal.SIGALRM, fire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
