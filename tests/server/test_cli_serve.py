"""The real `ragtune serve` command in a subprocess: it binds, warms up, answers, and stops on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from ragtune.corpus.ingest import ingest_documents
from ragtune.corpus.model import RawDocument, Rights
from ragtune.project import Project
from tests.server.conftest import ADMIN_TOKEN, PRICING

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_ragtune_serve_with_a_token(project: Project, tmp_path: Path) -> None:
    rights = Rights(source="handbook", license="CC-BY-4.0")
    ingest_documents(project, [RawDocument("handbook/pricing.md", "Pricing", PRICING, rights, "t", "")])
    port = free_port()
    env = {**os.environ, "RAGTUNE_API_TOKEN": ADMIN_TOKEN, "HF_HUB_OFFLINE": "1"}
    env.pop("RAGTUNE_PROJECT", None)
    log = (tmp_path / "serve.log").open("w+")
    cmd = [sys.executable, "-m", "ragtune.cli.main", "serve", "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(
        [*cmd, "--project", str(project.root), "--json", "--log-level", "warning"],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        assert info["url"] == f"http://127.0.0.1:{port}" and info["auth"] == "token"
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, log.seek(0) or log.read()
            try:
                health = httpx.get(f"{url}/health", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "ragtune serve did not start"
                time.sleep(0.2)
        assert health.json()["models_loaded"] is True and health.json()["documents"] == 1
        assert httpx.post(f"{url}/search", json={"query": "rate limit"}).status_code == 401
        hits = httpx.post(
            f"{url}/search",
            json={"query": "What is the Pro plan's rate limit?"},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        ).json()["results"]
        assert hits[0]["doc_id"] == "handbook/pricing.md"
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
        log.seek(0)
        output = log.read()
        log.close()
    assert code in (0, -signal.SIGTERM), output  # uvicorn shuts down, then re-raises the signal it caught
    assert "Traceback" not in output
