"""Case files: every bad line reported at once with its line and field, and the JSON Schema agrees with the model."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from ragtune.errors import CaseProblem, HarnessError
from ragtune.harness.cases import case_json_schema, case_line, load_cases, main, validate_cases
from ragtune.harness.model import Case

ROOT = Path(__file__).resolve().parents[2]
GOOD = '{"id": "q1", "question": "What is the Pro plan\'s rate limit?", "answers": ["600 requests per minute"]}'


def cases_file(tmp_path: Path, *lines: str, name: str = "cases.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def only_problem(tmp_path: Path, line: str) -> CaseProblem:
    problems = validate_cases(cases_file(tmp_path, GOOD, line))
    assert len(problems) == 1, problems
    assert problems[0].line == 2
    return problems[0]


@pytest.mark.parametrize(
    ("line", "field", "words"),
    [
        (
            '{"id": "a", "question": "q", "answers": ["x"], "answer": "y"}',
            "answer",
            "did you mean 'answers'? allowed: id",
        ),
        ('{"id": "a", "question": "q", "format": {"regx": "a"}}', "format.regx", "allowed: json_schema, regex"),
        ('{"question": "q", "answers": ["x"]}', "id", "required field is missing"),
        ('{"id": "a", "answers": ["x"]}', "question", "required field is missing"),
        ('{"id": "a", "question": "   ", "answers": ["x"]}', "question", "must not be blank"),
        ('{"id": 7, "question": "q", "answers": ["x"]}', "id", "expected a string, got a number (7)"),
        ('{"id": "a", "question": "q", "answers": "x"}', "answers", 'expected an array, got a string ("x")'),
        ('{"id": "a", "question": "q", "answers": ["x"], "tags": ["ok", 3]}', "tags[1]", "expected a string"),
        ('{"id": "a", "question": "q", "answers": ["x"], "as_of": "2024-13-01"}', "as_of", "not a date in the form"),
        ('{"id": "a", "question": "q", "answers": ["x"], "as_of": 20240101}', "as_of", "expected a date string"),
        ('{"id": "a", "question": "q", "format": {}}', "format", "give exactly one of json_schema, regex"),
        ('{"id": "a", "question": "q", "format": {"regex": "a", "max_words": 3}}', "format", "(got regex, max_words)"),
        ('{"id": "a", "question": "q", "format": {"regex": "a("}}', "format.regex", "not a valid regular expression"),
        ('{"id": "a", "question": "q", "format": {"max_words": "3"}}', "format.max_words", "expected an integer"),
        ('{"id": "a", "question": "q", "format": {"max_words": 0}}', "format.max_words", "must be at least 1, got 0"),
        ('{"id": "a", "question": "q", "format": {"labels": []}}', "format.labels", "at least 1 item"),
        ('{"id": "a", "question": "q", "format": "json"}', "format", "expected an object, got a string"),
        (
            '{"id": "a", "question": "q", "format": {"ifeval": {"instruction_id_list": ["a", "b"], "kwargs": [{}]}}}',
            "format.ifeval",
            "kwargs has 1 entries but instruction_id_list has 2",
        ),
        (
            '{"id": "a", "question": "q", "format": {"json_schema": {"type": "strin"}}}',
            "format.json_schema.type",
            "not a valid JSON Schema",
        ),
        (
            '{"id": "a", "question": "q", "format": {"json_schema": {"properties": {"n": {"minimum": "x"}}}}}',
            "format.json_schema.properties.n.minimum",
            "not a valid JSON Schema ('x' is not of type 'number')",
        ),
        (
            '{"id": "a", "question": "q", "format": {"json_schema": {"$schema": "https://example.com/mine"}}}',
            "format.json_schema.$schema",
            "unknown JSON Schema dialect",
        ),
        ('{"id": "a", "question": "q"}', "", "a case needs answers, a format or evidence"),
        ('{"id": "a", "question": "q", ', "", "not valid JSON (Expecting property name"),
        ('["a", "q"]', "", "a case must be a JSON object, not an array"),
    ],
)
def test_each_kind_of_bad_line_names_its_line_and_field(tmp_path: Path, line: str, field: str, words: str) -> None:
    problem = only_problem(tmp_path, line)
    assert problem.field == field
    assert words in problem.problem


def test_every_bad_line_is_reported_at_once(tmp_path: Path) -> None:
    path = cases_file(
        tmp_path,
        GOOD.replace("q1", "q0"),
        '{"id": "a", "question": "q", "format": {"regex": "a("}}',
        GOOD,
        '{"id": "b", "question": "q", "answers": "x", "tags": [1]}',  # two problems on one line
        "not json",
    )
    with pytest.raises(HarnessError) as caught:
        load_cases(path)
    err = caught.value
    assert str(err) == f"{path}: 3 bad lines; fix them and run again"
    assert [(p.line, p.field) for p in err.problems] == [
        (2, "format.regex"),
        (4, "answers"),
        (4, "tags[0]"),
        (5, ""),
    ]
    assert str(err.problems[0]) == (
        f"{path}:2: format.regex: not a valid regular expression (missing ), unterminated subpattern at position 1)"
    )
    assert str(err.problems[3]).startswith(f"{path}:5: not valid JSON")  # no field: the line as a whole


def test_duplicate_ids_name_the_first_line(tmp_path: Path) -> None:
    path = cases_file(tmp_path, GOOD, GOOD.replace("q1", "q2"), GOOD)
    [problem] = validate_cases(path)
    assert (problem.line, problem.field) == (3, "id")
    assert problem.problem == "duplicate id 'q1' (first on line 1)"


def test_an_id_on_a_bad_line_still_counts_for_duplicates(tmp_path: Path) -> None:
    # fixing line 1 must not reveal a new problem on line 2: both are reported in the first pass
    path = cases_file(tmp_path, '{"id": "q1", "question": "q"}', GOOD)
    assert [(p.line, p.field) for p in validate_cases(path)] == [(1, ""), (2, "id")]


def test_blank_and_comment_lines_are_skipped_and_numbering_stays_right(tmp_path: Path) -> None:
    path = cases_file(tmp_path, "# pricing questions", "", GOOD, "   ", "  # q2 is disabled for now", '{"id": 1}')
    problems = validate_cases(path)
    assert {p.line for p in problems} == {6}
    path = cases_file(tmp_path, "# only a comment", GOOD, "", GOOD.replace("q1", "q2"))
    assert [c.id for c in load_cases(path)] == ["q1", "q2"]


def test_bom_and_crlf_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "windows.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + GOOD.encode() + b"\r\n" + GOOD.replace("q1", "q2").encode() + b"\r\n")
    assert [c.id for c in load_cases(path)] == ["q1", "q2"]


def test_non_utf8_file_is_an_error_naming_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(GOOD.encode() + b'\n{"id": "caf\xe9", "question": "q", "answers": ["x"]}\n')
    with pytest.raises(HarnessError, match=r"latin1\.jsonl:2: not valid UTF-8 \(byte 0xe9 at column 12\)") as caught:
        validate_cases(path)
    assert "iconv" in str(caught.value) and caught.value.problems == []


def test_missing_file_and_folder_are_errors_naming_them(tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match=r"nope\.jsonl: no such file"):
        validate_cases(tmp_path / "nope.jsonl")
    with pytest.raises(HarnessError, match="is a folder"):
        load_cases(tmp_path)


def test_a_file_without_cases_is_an_error_for_load_but_not_for_validate(tmp_path: Path) -> None:
    path = cases_file(tmp_path, "# nothing yet", "")
    assert validate_cases(path) == []
    with pytest.raises(HarnessError, match="no cases"):
        load_cases(path)


def test_large_file_streams(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    with path.open("w", encoding="utf-8") as out:
        for n in range(20_000):
            out.write(json.dumps({"id": f"c{n}", "question": f"q{n}", "answers": ["a"]}) + "\n")
        out.write('{"id": "c5", "question": "q", "answers": ["a"]}\n')
    [problem] = validate_cases(path)
    assert (problem.line, problem.problem) == (20_001, "duplicate id 'c5' (first on line 6)")


def test_case_line_round_trips(tmp_path: Path) -> None:
    case = Case.model_validate(
        {
            "id": "q1",
            "question": "Rate limit?",
            "answers": ["600"],
            "as_of": "2024-06-01",
            "format": {"ifeval": {"instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}},
        }
    )
    line = case_line(case)
    assert "stale_answers" not in line  # defaults are left out
    assert load_cases(cases_file(tmp_path, line)) == [case]


# --- the JSON Schema ---------------------------------------------------------------------------------------------

VALID = [
    GOOD,
    '{"id": "q2", "question": "Rate limit?", "answers": ["600 requests per minute"], "stale_answers": ["300"], '
    '"evidence": ["docs/pricing.md"], "as_of": "2024-06-01", "groups": ["sales"], "tags": ["pricing"]}',
    '{"id": "e1", "question": "Who owns the handbook?", "evidence": ["handbook.md"]}',
    '{"id": "f1", "question": "Status as JSON", "format": {"json_schema": {"type": "object", "required": ["ok"]}}}',
    '{"id": "f2", "question": "Order number?", "format": {"regex": "[A-Z]{2}-[0-9]{6}"}}',
    '{"id": "f3", "question": "Sentiment?", "format": {"labels": ["positive", "negative"]}}',
    '{"id": "f4", "question": "Summarise.", "format": {"max_words": 50, "regex": null}}',
    '{"id": "f5", "question": "No commas.", "format": {"ifeval": {"instruction_id_list": ["punctuation:no_comma"], '
    '"kwargs": [{}]}}}',
    '{"id": "f6", "question": "Draft-07 schema", "format": {"json_schema": {"$schema": '
    '"http://json-schema.org/draft-07/schema#", "type": "string"}}}',
    '{"id": "x", "question": "q", "answers": ["a"], "format": null, "as_of": null}',
]
INVALID = [
    '{"id": "a", "question": "q", "answers": ["x"], "answer": "y"}',
    '{"question": "q", "answers": ["x"]}',
    '{"id": "a", "answers": ["x"]}',
    '{"id": "", "question": "q", "answers": ["x"]}',
    '{"id": "a", "question": " \\t ", "answers": ["x"]}',
    '{"id": "a", "question": "q", "answers": "x"}',
    '{"id": "a", "question": "q", "answers": ["x"], "tags": [3]}',
    '{"id": "a", "question": "q", "answers": ["x"], "groups": null}',
    '{"id": "a", "question": "q", "answers": ["x"], "as_of": "2024-13-01"}',
    '{"id": "a", "question": "q", "answers": ["x"], "as_of": "2024-1-5"}',
    '{"id": "a", "question": "q", "answers": ["x"], "as_of": 20240101}',
    '{"id": "a", "question": "q"}',
    '{"id": "a", "question": "q", "answers": [], "evidence": [], "format": null}',
    '{"id": "a", "question": "q", "format": {}}',
    '{"id": "a", "question": "q", "format": {"regex": null}}',
    '{"id": "a", "question": "q", "format": {"regex": "a", "labels": ["b"]}}',
    '{"id": "a", "question": "q", "format": {"regex": "a("}}',
    '{"id": "a", "question": "q", "format": {"max_words": 0}}',
    '{"id": "a", "question": "q", "format": {"max_words": "3"}}',
    '{"id": "a", "question": "q", "format": {"labels": []}}',
    '{"id": "a", "question": "q", "format": {"json_schema": {"type": "strin"}}}',
    '{"id": "a", "question": "q", "format": {"json_schema": []}}',
    '{"id": "a", "question": "q", "format": {"ifeval": {"instruction_id_list": [], "kwargs": []}}}',
    '{"id": "a", "question": "q", "format": {"ifeval": {"instruction_id_list": ["x"]}}}',
    '{"id": "a", "question": "q", "format": "json"}',
]
# What JSON Schema cannot say; the model (and `ragtune cases validate`) rejects these, the schema lets them through.
MODEL_ONLY = [
    '{"id": "a", "question": "q", "format": {"ifeval": {"instruction_id_list": ["a", "b"], "kwargs": [{}]}}}',
    '{"id": "a", "question": "q", "format": {"max_words": 3.0}}',  # JSON Schema counts 3.0 as an integer
    '{"id": "a", "question": "q", "format": {"json_schema": {"$schema": "https://example.com/mine"}}}',
]


@pytest.fixture(scope="module")
def schema_validator() -> Draft202012Validator:
    return Draft202012Validator(case_json_schema(), format_checker=FormatChecker())


@pytest.mark.parametrize("line", VALID + INVALID + MODEL_ONLY)
def test_schema_and_model_agree(tmp_path: Path, schema_validator: Draft202012Validator, line: str) -> None:
    model_ok = validate_cases(cases_file(tmp_path, line)) == []
    schema_ok = schema_validator.is_valid(json.loads(line))
    assert model_ok == (line in VALID), validate_cases(cases_file(tmp_path, line))
    expected_schema_ok = line in VALID or line in MODEL_ONLY
    assert schema_ok == expected_schema_ok, [e.message for e in schema_validator.iter_errors(json.loads(line))]


def test_schema_is_valid_draft_2020_12() -> None:
    schema = case_json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


def test_committed_schema_is_the_generated_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--schema"]) == 0
    generated = capsys.readouterr().out
    committed = (ROOT / "docs" / "case.schema.json").read_text(encoding="utf-8")
    assert committed == generated, "run `python -m ragtune.harness.cases --schema > docs/case.schema.json`"
    assert json.loads(generated) == case_json_schema()


def test_the_examples_in_docs_are_valid_cases(tmp_path: Path) -> None:
    doc = (ROOT / "docs" / "cases.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```jsonl?\n(.*?)^```", doc, flags=re.MULTILINE | re.DOTALL)
    lines = [line for block in blocks for line in block.splitlines() if line.startswith('{"id"')]
    assert len(lines) >= 8
    path = cases_file(tmp_path, *lines)
    assert len(load_cases(path)) == len(lines)


def test_a_bad_schema_is_reported_with_the_lines_other_problems(tmp_path: Path) -> None:
    line = '{"id": "a", "question": "q", "tags": "x", "format": {"json_schema": {"type": "strin"}}}'
    problems = validate_cases(cases_file(tmp_path, line))
    assert [p.field for p in problems] == ["tags", "format.json_schema.type"]


@pytest.mark.parametrize("odd", ["\x85", "\u2028", "\u2029", "\x0b", "\x1c", "\U000dcafd"])
def test_a_value_with_a_line_breaking_character_stays_on_one_line(tmp_path: Path, odd: str) -> None:
    path = tmp_path / "cases.jsonl"
    line = {"id": "c1", "question": "Q?", "answers": ["a"], "as_of": f"2024{odd}01"}
    path.write_text(json.dumps(line, ensure_ascii=False) + "\n", encoding="utf-8", errors="surrogatepass")
    [problem] = validate_cases(path)
    assert problem.field == "as_of" and len(str(problem).splitlines()) == 1, str(problem)


def test_a_blank_gold_passage_is_refused(tmp_path: Path) -> None:
    line = '{"id": "a", "question": "q", "answers": ["x"], "evidence_texts": ["The text.", "  "]}'
    problems = validate_cases(cases_file(tmp_path, line))
    assert [(p.field, p.problem) for p in problems] == [("evidence_texts", "a passage must not be blank")]
