"""The interactive path against its peer, side by side in one run: `ragtune ask`, ragtune's streamed chat answer,
and `llama_cpp.server` on the same GGUF answering the same prompts.

    .venv/bin/python bench/interactive.py            # 12 handbook questions (RAG, week 1)
    .venv/bin/python bench/interactive.py -n 20 --json > bench/out/interactive.json

A project holds the handbook as of week 1 (bench/ask_latency.py builds it). For each question, in turn and with
the order alternating so that neither side always runs on a warmer machine:

- **ask**: ``Answerer(project).ask(Question(...))``, what ``ragtune ask`` and ``POST /ask`` run, warm; its
  wall time is what the request waits for (retrieval, prompt, generation, citations, trace);
- **ragtune stream**: the same question through ``ragtune serve`` (its own process)'s ``/v1/chat/completions`` with
  ``stream=True`` and the official ``openai`` client: the time to the first content chunk, and to the last;
- **ask-transformers**: the same ``ask`` on the batch backend (transformers over the dequantized GGUF), what
  ``ragtune ask`` ran before ``[generator] interactive``;
- **peer stream**: ``llama_cpp.server`` (the same GGUF, 2 threads, ``--logits_all false`` and the same window)
  given the exact messages ragtune's RAG arm built for that question, streamed through the same client, greedy,
  the same ``max_tokens``.

Tokens per second are decoding rates: answer tokens (counted with the GGUF's tokenizer, the same for both sides)
after the first, over the time from the first chunk to the last. Every question is asked once per side, and each
side has its own model (ask in this process, `ragtune serve` and the peer in processes of their own, as users run
them), so no side finds another's prompt in its KV cache; each reuses the prefix its previous question shares.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ask_latency import build_week1, handbook_facts, percentile

from tests.generation.test_openai_peer import start_llama_server, stop


def _stream(client: Any, model: str, messages: list[dict[str, str]], max_tokens: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    first = None
    text = ""
    for chunk in client.chat.completions.create(
        model=model, messages=messages, stream=True, max_tokens=max_tokens, temperature=0
    ):
        piece = chunk.choices[0].delta.content if chunk.choices else None
        if piece:
            first = first if first is not None else time.perf_counter() - t0
            text += piece
    return {"first_s": first, "total_s": time.perf_counter() - t0, "text": text.strip()}


def _serve(root: Path) -> tuple[str, subprocess.Popen[bytes]]:
    """`ragtune serve` on the project, in a process of its own as a user runs it (and as the peer runs)."""
    from tests.generation.test_openai_peer import free_port

    port = free_port()
    log = tempfile.TemporaryFile()  # noqa: SIM115  (lives as long as the server)
    proc = subprocess.Popen(
        [sys.executable, "-m", "ragtune.cli.main", "serve", "--project", str(root), "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as reply:
                if json.loads(reply.read())["models_loaded"]:
                    return f"http://127.0.0.1:{port}/v1", proc
        except OSError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    proc.kill()
    log.seek(0)
    raise RuntimeError(f"ragtune serve did not start: {log.read().decode(errors='replace')[-2000:]}")


def run(n: int) -> dict[str, Any]:
    from openai import OpenAI

    from ragtune.answer.pipeline import Answerer, Question
    from ragtune.project import Project

    facts = [f for f in handbook_facts(n + 1) if not f.groups][: n + 1]
    with tempfile.TemporaryDirectory() as tmp:
        root = build_week1(Path(tmp) / "handbook")
        project = Project.open(root)
        interactive = project.interactive_generator
        limit = project.config.generator.max_new_tokens
        url, server = _serve(root)
        # the peer at its best: llama_cpp.server keeps every prompt token's logits by default (logits_all), which
        # a chat completion never reads; a window as large as ragtune's
        peer = start_llama_server("--logits_all", "false", "--n_ctx", str(interactive.context_window))
        try:
            ours, theirs = OpenAI(base_url=url, api_key="x", max_retries=0), OpenAI(base_url=peer.url, api_key="x")
            answerer = Answerer(project, record=False)
            rows = []
            for i, fact in enumerate(facts):
                messages = answerer._prepare(Question(fact.question), interactive=True).messages or []
                sides: dict[str, dict[str, Any]] = {}
                order = ["ask", "ragtune", "peer", "ask-transformers"]
                order = order if i % 2 else order[::-1]
                for side in order:
                    if side == "ask":
                        t0 = time.perf_counter()
                        answer = Answerer(project).ask(Question(fact.question))
                        sides["ask"] = {"total_s": time.perf_counter() - t0, "text": answer.answer}
                        sides["ask"]["tokens_in"] = answer.trace.tokens_in if answer.trace else 0
                    elif side == "ask-transformers":  # what `ragtune ask` ran before: the batch backend, alone
                        t0 = time.perf_counter()
                        answer = Answerer(project, project.generator).ask(Question(fact.question))
                        sides[side] = {"total_s": time.perf_counter() - t0, "text": answer.answer}
                        sides[side]["first_s"] = (answer.trace.timings.get("first_token") if answer.trace else 0) / 1000
                    elif side == "ragtune":
                        question = [{"role": "user", "content": fact.question}]
                        sides["ragtune"] = _stream(ours, "ragtune-rag", question, limit)
                    else:
                        sides["peer"] = _stream(theirs, "smollm2", messages, limit)
                for side in sides.values():
                    side["tokens"] = interactive.count_tokens(side["text"])
                if i == 0:
                    continue  # the warm-up question: not counted
                rows.append({"question": fact.question, **sides})
                print(
                    f"{i:>2}/{n}  ask {sides['ask']['total_s']:.2f}s  ragtune first {sides['ragtune']['first_s']:.3f}s "
                    f"total {sides['ragtune']['total_s']:.2f}s  peer first {sides['peer']['first_s']:.3f}s total "
                    f"{sides['peer']['total_s']:.2f}s  ask-transformers {sides['ask-transformers']['total_s']:.2f}s",
                    file=sys.stderr,
                )
        finally:
            stop(peer)
            server.terminate()
            server.wait(30)
            project.close()
    return {"n": len(rows), "backend": interactive.identity(), "max_new_tokens": limit, "rows": rows}


def _rate(side: dict[str, Any]) -> float | None:
    span = side["total_s"] - (side.get("first_s") or 0.0)
    return (side["tokens"] - 1) / span if side["tokens"] > 1 and span > 0 else None


def summarize(result: dict[str, Any]) -> dict[str, Any]:
    rows = result["rows"]

    def stat(side: str, key: str) -> dict[str, float]:
        xs = [r[side][key] * 1000 for r in rows if r[side].get(key) is not None]
        return {"p50_ms": round(percentile(xs, 50), 1), "p95_ms": round(percentile(xs, 95), 1)}

    rates = {s: [x for x in (_rate(r[s]) for r in rows) if x] for s in ("ragtune", "peer")}
    ours, theirs = statistics.median(rates["ragtune"]), statistics.median(rates["peer"])
    same = sum(r["ragtune"]["text"] == r["peer"]["text"] for r in rows)
    return {
        "n": result["n"],
        "backend": result["backend"],
        "ask_total": stat("ask", "total_s"),
        "ask_transformers_total": stat("ask-transformers", "total_s"),
        "ask_speedup_p50": round(
            percentile([r["ask-transformers"]["total_s"] for r in rows], 50)
            / percentile([r["ask"]["total_s"] for r in rows], 50),
            2,
        ),
        "mean_prompt_tokens": round(statistics.mean(r["ask"]["tokens_in"] for r in rows), 1),
        "ragtune_first_token": stat("ragtune", "first_s"),
        "ragtune_total": stat("ragtune", "total_s"),
        "peer_first_token": stat("peer", "first_s"),
        "peer_total": stat("peer", "total_s"),
        "tokens_per_s": {"ragtune": round(ours, 1), "peer": round(theirs, 1), "ratio": round(ours / theirs, 3)},
        "mean_answer_tokens": round(statistics.mean(r["ragtune"]["tokens"] for r in rows), 1),
        "same_text_as_peer": f"{same}/{len(rows)}",
        # the two backends of `ragtune ask` (greedy llama.cpp, greedy transformers) on the same prompts and weights
        "same_text_ask_transformers": f"{sum(r['ask']['text'] == r['ask-transformers']['text'] for r in rows)}/{len(rows)}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=12, help="questions measured (after one warm-up)")
    parser.add_argument("--json", action="store_true", help="print the summary and every row as JSON")
    args = parser.parse_args()
    result = run(args.n)
    summary = summarize(result)
    if args.json:
        print(json.dumps({"summary": summary, **result}, indent=2))
        return
    for key, value in summary.items():
        print(f"{key:<22} {value}")


if __name__ == "__main__":
    main()
