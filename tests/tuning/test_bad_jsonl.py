"""`tune data --from-jsonl` reads lines as the ingest and case readers do: a deep, huge, NaN or surrogate line is
one problem naming its line, and nothing is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragtune.errors import TuningError
from ragtune.tuning.sources import from_jsonl
from tests.conftest import write

GOOD = '{"messages": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hi."}]}'


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested more than 100 levels"),
        ('{"messages": [], "origin": {"n": ' + "7" * 5001 + "}}", "digits"),
        (GOOD[:-1] + ', "origin": {"score": NaN}}', "NaN is not a number JSON knows"),
        (GOOD.replace("Hi.", "Hi \\ud800"), "lone surrogate"),
    ],
    ids=["deep", "5001-digits", "nan", "surrogate"],
)
def test_bad_chat_lines_are_one_problem_each(tmp_path: Path, line: str, expected: str) -> None:
    path = write(tmp_path / "chat.jsonl", GOOD + "\n" + line + "\n" + GOOD + "\n")
    with pytest.raises(TuningError) as caught:
        from_jsonl(path)
    (problem,) = caught.value.problems
    assert problem.line == 2 and expected in str(problem) and "\n" not in str(problem)
