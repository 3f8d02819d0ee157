"""Issue 13, point 1: an arm's latency figures are what one request waits for, never a batch's wall time charged to
each of its cases; batch throughput is reported on its own."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ragtune.generation.base import Generation, Message
from ragtune.harness.compare import compare_arms
from ragtune.harness.runs import execute_run, latency_positions, load_results, summarize_run
from tests.harness_runs.conftest import write_cases
from tests.harness_runs.fakes import Scripted

CALL_S = 0.25  # every generate call takes this long, whatever its batch size: as a batched GPU or CPU decoder would


class SlowScripted(Scripted):
    def __init__(self) -> None:
        super().__init__({}, default="I don't know.")
        self.calls: list[int] = []

    def generate(
        self, batch: Sequence[Sequence[Message]], *, max_new_tokens: int | None = None, progress: bool = False
    ) -> list[Generation]:
        self.calls.append(len(batch))
        time.sleep(CALL_S)
        # the generator reports the batch's wall time for every answer, as the batched decoder does
        return [Generation(g.text, g.tokens_in, g.tokens_out, g.finish_reason, CALL_S * 1000) for g in super().generate(batch)]  # fmt: skip


def _cases(n: int) -> list[dict[str, Any]]:
    return [{"id": f"c{i}", "question": f"Question number {i}?", "answers": ["x"]} for i in range(n)]


def test_latency_positions_spread_over_the_file() -> None:
    assert latency_positions(10, 3) == [0, 4, 9] or latency_positions(10, 3) == [0, 5, 9]
    assert latency_positions(4, 10) == [0, 1, 2, 3]
    assert latency_positions(10, 0) == [] and latency_positions(0, 5) == []
    assert latency_positions(7, 1) == [0]
    assert len(latency_positions(1000, 50)) == 50


def test_p50_is_one_request_and_throughput_is_the_batch(handbook: Any, tmp_path: Path) -> None:
    gen = SlowScripted()
    handbook.generator = gen
    handbook.config.eval.batch_size = 12
    handbook.config.eval.latency_sample = 3
    cases = write_cases(tmp_path / "cases.jsonl", _cases(12))
    execute_run(handbook, cases, ["closed-book"], name="lat")

    # nine cases in one batch, then three alone: four generate calls in all
    assert gen.calls == [9, 1, 1, 1]
    rows = {r["case_id"]: r for r in load_results(handbook.store, "lat")["closed-book"]}
    timed = {cid for cid, r in rows.items() if r["request_ms"] is not None}
    assert timed == {f"c{i}" for i in latency_positions(12, 3)}
    for cid, r in rows.items():
        if cid in timed:
            assert CALL_S * 1000 <= r["request_ms"] < CALL_S * 1000 * 3  # one call, plus retrieval and scoring
        else:  # the batch's wall time shared by its nine cases, not charged to each
            assert r["latency_ms"] < CALL_S * 1000 / 2

    s = summarize_run(handbook, "lat")["arms"]["closed-book"]
    assert s["latency_n"] == 3
    assert CALL_S * 1000 <= s["p50_ms"] <= s["p95_ms"] <= s["p99_ms"] < CALL_S * 1000 * 3
    # nine answers in about one call: far more answers per second than one request at a time could give
    assert s["throughput"]["answers_per_s"] > 2 / CALL_S
    assert s["throughput"]["tokens_out_per_s"] > 0


def test_no_sample_means_no_latency_figure_and_a_target_says_why(handbook: Any, tmp_path: Path) -> None:
    handbook.generator = SlowScripted()
    handbook.config.eval.latency_sample = 0
    handbook.config.targets.p95_ms = 1000
    cases = write_cases(tmp_path / "cases.jsonl", _cases(4))
    execute_run(handbook, cases, ["closed-book"], name="none")
    s = summarize_run(handbook, "none")["arms"]["closed-book"]
    assert s["p95_ms"] is None and s["latency_n"] == 0
    assert s["targets"]["p95_ms"] == {"max": 1000, "value": None, "met": False}
    from ragtune.harness.summary import target_conditions, unmet

    assert "latency_sample" in unmet(s, target_conditions(handbook.config.targets))[0]


def test_all_timed_alone_warms_the_model_first(handbook: Any, tmp_path: Path) -> None:
    gen = SlowScripted()
    handbook.generator = gen
    handbook.config.eval.latency_sample = 10
    cases = write_cases(tmp_path / "cases.jsonl", _cases(3))
    execute_run(handbook, cases, ["closed-book"], name="warm")
    assert gen.calls == [1, 1, 1]  # the first answered untimed (it warms the model), the two others timed alone
    rows = load_results(handbook.store, "warm")["closed-book"]
    assert [r["request_ms"] is None for r in rows] == [True, False, False]
    assert summarize_run(handbook, "warm")["arms"]["closed-book"]["latency_n"] == 2


def test_compare_uses_request_times(handbook: Any, tmp_path: Path) -> None:
    handbook.generator = SlowScripted()
    handbook.config.eval.latency_sample = 2
    cases = write_cases(tmp_path / "cases.jsonl", _cases(5))
    execute_run(handbook, cases, ["closed-book"], name="a")
    execute_run(handbook, cases, ["closed-book"], name="b")
    out = compare_arms(handbook.store, ("a", "closed-book"), ("b", "closed-book"))
    assert out["metrics"]["p50_ms"]["a"] >= CALL_S * 1000 and out["metrics"]["p50_ms"]["b"] >= CALL_S * 1000


class Alone(SlowScripted):
    """The interactive backend of a project: answers "alone" to every question."""

    def identity(self) -> dict[str, str]:
        return {"backend": "alone", "model": "scripted"}

    def reply(self, messages: Sequence[Message]) -> str:
        return "alone"


def test_the_timed_sample_answers_on_the_serving_backend(handbook: Any, tmp_path: Path) -> None:
    """`ragtune ask` and the server answer on `Project.interactive_generator`; the harness times its sample there,
    keeps those answers, and says so in the arm's identity, while its batches stay on the batch generator."""
    batch, alone = SlowScripted(), Alone()
    handbook.generator = batch
    handbook.interactive_generator = alone
    handbook.config.eval.latency_sample = 2
    cases = write_cases(tmp_path / "cases.jsonl", _cases(6))
    header = execute_run(handbook, cases, ["closed-book"], name="serving")
    assert batch.calls == [4] and alone.calls == [1, 1]
    rows = load_results(handbook.store, "serving")["closed-book"]
    assert [r["answer"] == "alone" for r in rows] == [r["request_ms"] is not None for r in rows]
    identity = header.settings["arms"]["closed-book"]
    assert identity["model"]["backend"] == "scripted" and identity["requests_model"]["backend"] == "alone"
