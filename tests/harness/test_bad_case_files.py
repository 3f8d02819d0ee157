"""Case files and imported data sets that used to end `ragtune cases validate`, `ragtune eval` or an import with an
internal error (exit 70) or a hang (issue 12, points 4 and 8): each bad line is one problem naming FILE:LINE."""

from __future__ import annotations

import builtins
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ragtune.errors import HarnessError
from ragtune.harness.cases import load_cases, validate_cases
from ragtune.harness.interop import import_ifeval, import_ragas
from ragtune.harness.scorers import ifeval as ifeval_scorer
from tests.conftest import no_hang, write

GOOD = '{"id": "good", "question": "What is the Pro plan\'s rate limit?", "answers": ["600 requests per minute"]}'


def nested_schema(levels: int) -> dict[str, Any]:
    schema: dict[str, Any] = {}
    for _ in range(levels):
        schema = {"items": schema}
    return schema


def case(**fields: Any) -> str:
    return json.dumps({"id": "bad", "question": "q", **fields})


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("[" * 100_000, "JSON nested more than 100 levels deep"),
        ('{"id": "n", "question": "q", "answers": [' + "9" * 5001 + "]}", "a number of more than 4,300 digits"),
        ('{"id": "s", "question": "bad \\ud800 here", "answers": ["a"]}', "lone surrogate (\\ud800 at character 5 of"),
        (case(format={"json_schema": nested_schema(150)}), "JSON nested more than 100 levels deep"),
        (case(format={"regex": "(" * 500 + "a" + ")" * 500}), "nested too deeply to check"),
    ],
    ids=["deep-array", "5001-digits", "surrogate", "deep-schema", "deep-regex"],
)
def test_each_bad_line_is_one_problem_naming_its_line(tmp_path: Path, line: str, expected: str) -> None:
    path = write(tmp_path / "cases.jsonl", f"{GOOD}\n{line}\n" + GOOD.replace('"good"', '"good2"') + "\n")
    problems = validate_cases(path)
    assert len(problems) == 1, [str(p) for p in problems]
    assert str(problems[0]).startswith(f"{path}:2: ") and expected in str(problems[0]), str(problems[0])
    with pytest.raises(HarnessError) as caught:
        load_cases(path)
    assert [p.line for p in caught.value.problems] == [2]


def test_unknown_ifeval_ids_are_problems_with_a_hint(tmp_path: Path) -> None:
    spec = {"instruction_id_list": ["punctuation:no_comma", "punctuation:no_coma", "made:up"], "kwargs": [{}, {}, {}]}
    path = write(tmp_path / "cases.jsonl", case(format={"ifeval": spec}) + "\n")
    problems = [str(p) for p in validate_cases(path)]
    assert len(problems) == 2
    assert problems[0].startswith(
        f'{path}:1: format.ifeval.instruction_id_list[1]: unknown IFEval instruction id "punctuation:no_coma" '
        "(did you mean 'punctuation:no_comma'? known ids: change_case:capital_word_frequency, "
    )
    assert problems[1].startswith(f"{path}:1: format.ifeval.instruction_id_list[2]: unknown IFEval instruction id")
    assert "startend:quotation" in problems[1]


def test_known_ids_without_if_verifiable_are_ifevals_published_list(monkeypatch: pytest.MonkeyPatch) -> None:
    from if_verifiable.ifeval.instructions_registry import INSTRUCTION_DICT

    assert tuple(sorted(INSTRUCTION_DICT)) == ifeval_scorer.IFEVAL_INSTRUCTION_IDS
    real_import = builtins.__import__

    def without(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("if_verifiable"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    ifeval_scorer.known_instruction_ids.cache_clear()
    monkeypatch.setattr(builtins, "__import__", without)
    try:
        assert ifeval_scorer.known_instruction_ids() is ifeval_scorer.IFEVAL_INSTRUCTION_IDS
    finally:
        monkeypatch.undo()
        ifeval_scorer.known_instruction_ids.cache_clear()


@pytest.mark.parametrize("kind", ["fifo", "/dev/zero", "loop"])
def test_a_case_file_that_is_not_a_regular_file_is_one_error(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "cases.jsonl"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "loop":
        path.symlink_to(path.name)
    else:
        path.symlink_to(kind)
    expected = {
        "fifo": "not a regular file but a FIFO (named pipe)",
        "/dev/zero": "not a regular file but a device",
        "loop": "symbolic link loop",
    }[kind]
    with no_hang(), pytest.raises(HarnessError, match="^" + re.escape(f"{path}: {expected}")):
        validate_cases(path)  # returns at once: a FIFO is never opened for a blocking read


# --- importers ------------------------------------------------------------------------------------------------


def test_importer_skips_bad_jsonl_lines_with_their_reason(tmp_path: Path) -> None:
    good = '{"question": "Q?", "reference": "A."}'
    lines = [good, "[" * 100_000, '{"question": "Q?", "reference": ' + "1" * 5001 + "}", '{"question": "\\ud800"}']
    path = write(tmp_path / "set.jsonl", "\n".join(lines) + "\n")
    cases, report = import_ragas(path)
    assert [c.question for c in cases] == ["Q?"]
    reasons = {s.where: s.reason for s in report.skipped}
    assert reasons[f"{path}:2"].startswith("JSON nested more than 100 levels deep")
    assert reasons[f"{path}:3"].startswith("a number of more than 4,300 digits")
    assert reasons[f"{path}:4"].startswith("contains a lone surrogate (\\ud800 at character 1 of question)")


def test_importer_json_file_nested_too_deeply_is_one_error(tmp_path: Path) -> None:
    path = write(tmp_path / "set.json", "[" * 100_000)
    with pytest.raises(HarnessError, match=f"^{path}: JSON nested more than 100 levels deep"):
        import_ragas(path)
    path = write(tmp_path / "num.json", "[" + "1" * 5001 + "]")
    with pytest.raises(HarnessError, match=f"^{path}: a number of more than 4,300 digits"):
        import_ragas(path)


def test_csv_list_cells_that_no_parser_reads_stay_text(tmp_path: Path) -> None:
    # json.loads raises RecursionError, ast.literal_eval MemoryError or TypeError on these
    cells = ["[" * 5000, "[" + "-" * 100_000 + "1]", "[{[]: 1}]", "[1" + "+1" * 20_000 + "]"]
    rows = "".join(f'Q{i}?,A{i},"{cell}"\n' for i, cell in enumerate(cells))
    path = write(tmp_path / "set.csv", "question,reference,reference_context_ids\n" + rows)
    cases, report = import_ragas(path)
    assert [c.evidence for c in cases] == [[cell] for cell in cells] and report.skipped == []


def test_ifeval_import_skips_unknown_instruction_ids(tmp_path: Path) -> None:
    rows = [
        {"key": 1, "prompt": "Write.", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]},
        {"key": 2, "prompt": "Write.", "instruction_id_list": ["punctuation:nocomma"], "kwargs": [{}]},
    ]
    path = write(tmp_path / "input_data.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    cases, report = import_ifeval(path)
    assert [c.id for c in cases] == ["ifeval-1"]
    assert report.skipped[0].where == f"{path}:2"
    assert "unknown IFEval instruction id \"punctuation:nocomma\" (did you mean 'punctuation:no_comma'?" in (
        report.skipped[0].reason
    )


# --- the real CLI ---------------------------------------------------------------------------------------------


def ragtune(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("RAGTUNE_PROJECT", None)
    proc = subprocess.run(
        [sys.executable, "-m", "ragtune.cli.main", *args], cwd=cwd, env=env, text=True, capture_output=True, timeout=120
    )
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
    return proc


@pytest.mark.integration
def test_cli_validate_and_eval_list_each_bad_line(tmp_path: Path) -> None:
    ragtune("init", "proj", cwd=tmp_path)
    root = tmp_path / "proj"
    bad = [
        "[" * 100_000,
        '{"id": "n", "question": "q", "answers": [' + "9" * 5001 + "]}",
        '{"id": "s", "question": "bad \\ud800", "answers": ["a"]}',
        case(format={"ifeval": {"instruction_id_list": ["no:such_id"], "kwargs": [{}]}}),
    ]
    path = write(root / "cases.jsonl", GOOD + "\n" + "\n".join(bad) + "\n")
    proc = ragtune("cases", "validate", "cases.jsonl", cwd=root)
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert [line.split(": ", 1)[0] for line in lines[:4]] == [f"cases.jsonl:{n}" for n in (2, 3, 4, 5)]
    assert lines[4] == "error: cases.jsonl: 4 bad lines; fix them and run again"
    report = json.loads(ragtune("cases", "validate", str(path), "--json", cwd=root).stdout)
    assert [p["line"] for p in report["problems"]] == [2, 3, 4, 5]

    proc = ragtune("eval", "cases.jsonl", "--arms", "closed-book", cwd=root)
    assert proc.returncode == 1 and proc.stderr.startswith("error: cases.jsonl: 4 bad lines")
    assert [line.strip().split(": ", 1)[0] for line in proc.stderr.splitlines()[1:]] == [
        f"cases.jsonl:{n}" for n in (2, 3, 4, 5)
    ]
    os.mkfifo(root / "pipe.jsonl")
    proc = ragtune("cases", "validate", "pipe.jsonl", cwd=root)
    assert proc.returncode == 1
    assert proc.stderr == "error: pipe.jsonl: not a regular file but a FIFO (named pipe); give a .jsonl case file\n"
