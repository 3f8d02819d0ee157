"""The OpenAI-compatible backend against an independent real server on loopback: llama-cpp-python's
``llama_cpp.server`` running the same GGUF, driven through the official ``openai`` client."""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from ragtune.config import EmbedderSection, GeneratorSection
from ragtune.errors import ModelError
from ragtune.generation.local import smollm2_gguf
from ragtune.generation.openai_backend import OpenAIGenerator
from ragtune.index.openai_embedder import OpenAIEmbedder

pytestmark = [pytest.mark.slow, pytest.mark.integration]

KEY = "peer-test-key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Peer:
    url: str
    proc: subprocess.Popen[bytes]


def start_llama_server(*extra: str, timeout: float = 60.0) -> Peer:
    port = free_port()
    cmd = [
        # llama_cpp.server itself, with ragtune's guard against llama.cpp's AMX crash (generation/llama_amx.py)
        sys.executable, "-m", "ragtune.generation.llama_amx", "--model", str(smollm2_gguf()), "--model_alias", "smollm2",
        "--host", "127.0.0.1", "--port", str(port), "--n_threads", "2", *extra,
    ]  # fmt: skip
    # a file, not a pipe: llama.cpp logs a lot at start-up, and a full pipe would stall the server
    log = tempfile.TemporaryFile()  # noqa: SIM115  (lives as long as the server)
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"llama_cpp.server exited: {log.read().decode(errors='replace')[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2) as reply:
                if reply.status in (200, 401):
                    return Peer(f"http://127.0.0.1:{port}/v1", proc)
        except urllib.error.HTTPError as exc:
            if exc.code == 401:  # up, and asking for the key
                return Peer(f"http://127.0.0.1:{port}/v1", proc)
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError("llama_cpp.server did not start in time")


def stop(peer: Peer) -> None:
    peer.proc.terminate()
    try:
        peer.proc.wait(10)
    except subprocess.TimeoutExpired:
        peer.proc.kill()


@pytest.fixture(scope="module")
def peer() -> Iterator[Peer]:
    """llama_cpp.server with an API key, a 1,024-token window (to provoke overflows) and embeddings on."""
    p = start_llama_server("--api_key", KEY, "--n_ctx", "1024", "--embedding", "true")
    yield p
    stop(p)


def settings(peer: Peer, **kw: object) -> GeneratorSection:
    base = {"backend": "openai", "base_url": peer.url, "model": "smollm2", "api_key_env": "PEER_KEY",
            "max_new_tokens": 24}  # fmt: skip
    return GeneratorSection.model_validate(base | kw)


def test_generates_through_the_official_client(peer: Peer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEER_KEY", KEY)
    gen = OpenAIGenerator(settings(peer))
    batch = [[{"role": "user", "content": f"What is {a} plus {a}? Answer with the number."}] for a in (2, 3, 4)]
    out = gen.generate(batch)
    assert len(out) == 3
    for g in out:
        assert g.text
        assert g.tokens_in > 5 and 0 < g.tokens_out <= 24
        assert g.finish_reason in ("stop", "length")
    # greedy decoding with a fixed seed repeats
    assert [g.text for g in gen.generate(batch)] == [g.text for g in out]
    assert gen.identity() == {"backend": "openai", "model": "smollm2", "source": peer.url}


def test_a_bad_key_is_one_clear_error(peer: Peer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEER_KEY", "wrong")
    with pytest.raises(ModelError, match=r"API key was rejected \(401\); put a valid key in \$PEER_KEY"):
        OpenAIGenerator(settings(peer)).generate([[{"role": "user", "content": "hi"}]])
    monkeypatch.delenv("PEER_KEY")
    with pytest.raises(ModelError, match=r"\$PEER_KEY \(it is not set\)"):
        OpenAIGenerator(settings(peer)).generate([[{"role": "user", "content": "hi"}]])


def test_a_context_overflow_is_reported_with_the_fix(peer: Peer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEER_KEY", KEY)
    long = "The relay forwards messages between devices. " * 300  # ~2,700 tokens > the peer's 1,024
    with pytest.raises(ModelError, match=r"context overflow .*lower \[answer\] context_tokens"):
        OpenAIGenerator(settings(peer)).generate([[{"role": "user", "content": long}]])


def test_an_unreachable_endpoint_names_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    gen = OpenAIGenerator(GeneratorSection(backend="openai", base_url=url, model="m", timeout_s=5))
    started = time.monotonic()
    with pytest.raises(ModelError, match=rf"{url}: unreachable .*start the server or fix base_url"):
        gen.generate([[{"role": "user", "content": "hi"}]])
    assert time.monotonic() - started < 10


def test_per_token_embeddings_are_refused_clearly(peer: Peer, monkeypatch: pytest.MonkeyPatch) -> None:
    """llama_cpp.server returns one vector per token for a chat model; that must not pass for a text embedding."""
    monkeypatch.setenv("PEER_KEY", KEY)
    emb = OpenAIEmbedder(
        EmbedderSection(backend="openai", base_url=peer.url, model="smollm2", api_key_env="PEER_KEY", batch_size=2)
    )
    with pytest.raises(ModelError, match="one vector per token, not one per text; serve it with pooling"):
        emb.encode(["Pro plan rate limit", "office opening hours"])
    # chunk sizes are measured in MiniLM word pieces, whatever embeds them
    assert emb.token_spans("rate limits") == [(0, 4), (5, 11)]
