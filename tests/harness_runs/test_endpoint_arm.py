"""endpoint:NAME against a real OpenAI-compatible server on loopback: answers, citations kept, priced per token."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from ragtune.config import EndpointSection
from ragtune.harness.runs import execute_run, load_results, summarize_run

CITATION = {"n": 1, "doc_id": "docs/pricing.md", "version": 1, "chunk_id": "docs/pricing.md@1#0", "mode": "model"}


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        question = body["messages"][-1]["content"]
        if "France" in question:
            self.send_response(500)
            self.end_headers()
            return
        reply = {
            "id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "600 requests per minute [1]."}}],
            "usage": {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500},
            "citations": [CITATION], "trace_id": "t" * 32,
        }  # fmt: skip
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()


def test_endpoint_arm_keeps_citations_and_prices_tokens(handbook: Any, cases_file: Path, server: str) -> None:
    handbook.config.endpoints["prod"] = EndpointSection(
        base_url=server, model="ragtune-rag", price_in_per_1k=0.5, price_out_per_1k=2.0
    )
    execute_run(handbook, cases_file, ["endpoint:prod"], name="e")
    rows = {r["case_id"]: r for r in load_results(handbook.store, "e")["endpoint:prod"]}
    assert rows["rate"]["label"] == "correct" and rows["rate"]["cost_usd"] == pytest.approx(0.5 + 1.0)
    assert rows["rate"]["scores"]["citations.support"][0] == "scored"  # the endpoint's citations were kept
    assert "answered 500" in rows["capital"]["error"]  # a failing request is an error, unscored, not a wrong answer
    s = summarize_run(handbook, "e")["arms"]["endpoint:prod"]
    assert (s["n"], s["errors"]) == (3, 2) and s["cost_per_1k"] == pytest.approx(1500 * 3 / 5)
