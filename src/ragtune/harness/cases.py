"""Case files: JSONL, one case a line, validated whole before anything runs (docs/cases.md).

Every bad line is reported at once, as ``file:line: field: problem``, so a user fixes a file in one pass instead of
one error per run. The JSON Schema of a line (docs/case.schema.json) is generated here from the pydantic model::

    cases = load_cases(Path("cases.jsonl"))            # HarnessError listing every bad line
    python -m ragtune.harness.cases --schema > docs/case.schema.json
"""

from __future__ import annotations

import difflib
import errno
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from ragtune.corpus.loaders import (
    NotRegularFileError,
    open_regular,
    parse_json_line,
    shown_key,
)
from ragtune.errors import CaseProblem, HarnessError
from ragtune.harness.model import Case, FormatSpec, IfevalSpec

# The model that owns each nested object, to list the allowed fields when a line has an unknown one.
_MODELS: dict[tuple[str, ...], type[BaseModel]] = {
    (): Case,
    ("format",): FormatSpec,
    ("format", "ifeval"): IfevalSpec,
}

# What pydantic's type errors expect, in words.
_EXPECTED = {
    "string_type": "a string",
    "list_type": "an array",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
    "date_type": "a date string YYYY-MM-DD",
    "bool_type": "true or false",
}


def load_cases(path: Path) -> list[Case]:
    """The cases of a JSONL file, or one :class:`HarnessError` whose ``problems`` lists every bad line."""
    cases: list[Case] = []
    problems: list[CaseProblem] = []
    for item in _scan(path):
        if isinstance(item, Case):
            cases.append(item)
        else:
            problems.append(item)
    if problems:
        bad = len({p.line for p in problems})
        lines = f"{bad} bad line; fix it" if bad == 1 else f"{bad} bad lines; fix them"
        raise HarnessError(f"{path}: {lines} and run again", problems)
    if not cases:
        raise HarnessError(f"{path}: no cases (only blank or comment lines); add one JSON object per line")
    return cases


def validate_cases(path: Path) -> list[CaseProblem]:
    """Every problem in a case file, in line order; empty when the file is valid.

    Bad content never raises; a missing, unreadable or non-UTF-8 file is a :class:`HarnessError`.
    """
    return [item for item in _scan(path) if isinstance(item, CaseProblem)]


def case_line(case: Case) -> str:
    """One case as a compact JSONL line (fields left at their defaults are omitted)."""
    return case.model_dump_json(exclude_defaults=True)


def _scan(path: Path) -> Iterator[Case | CaseProblem]:
    """Cases and problems in line order, reading one line at a time so large files never sit in memory whole."""
    where = str(path)
    first_line: dict[str, int] = {}
    for number, text in iter_lines(path):
        stripped = text.strip()
        if not stripped or stripped.startswith("#"):
            continue  # blank lines and comments; no JSON value starts with '#', so this is unambiguous
        data, problem = _parse_line(stripped)
        if problem is not None:
            yield CaseProblem(where, number, "", problem)
            continue
        if not isinstance(data, dict):
            yield CaseProblem(where, number, "", f"a case must be a JSON object, not {_json_type(data)}")
            continue
        problems: list[CaseProblem] = []
        case: Case | None = None
        try:
            # strict: a JSON file says what it means; "3" is not a number and 1700000000 is not a date
            case = Case.model_validate_json(stripped, strict=True)
        except ValidationError as exc:
            problems = [CaseProblem(where, number, *explain_error(err)) for err in exc.errors(include_url=False)]
        except RecursionError:  # a validator that recurses, such as re.compile on a regex of 500 nested groups
            problems = [CaseProblem(where, number, "", "nested too deeply to check (a regex or a value); simplify it")]
        if case is not None:
            problems += [CaseProblem(where, number, *p) for p in ifeval_problems(case)]
        # checked on the raw line, so that a bad schema shows up in the same pass as the line's other problems
        fmt = data.get("format")
        schema = fmt.get("json_schema") if isinstance(fmt, dict) else None
        if isinstance(schema, dict):
            schema_problem = _check_json_schema(schema)
            if schema_problem is not None:
                problems.append(CaseProblem(where, number, *schema_problem))
        case_id = data.get("id")
        if isinstance(case_id, str) and case_id.strip():
            # registered even when the line is bad otherwise, so that fixing it cannot reveal a new duplicate
            if case_id in first_line:
                problems.append(
                    CaseProblem(where, number, "id", f"duplicate id {case_id!r} (first on line {first_line[case_id]})")
                )
            else:
                first_line[case_id] = number
        if problems:
            yield from problems
        elif case is not None:
            yield case


def _parse_line(text: str) -> tuple[Any, str | None]:
    """(JSON value, None), or (None, what is wrong): see :func:`ragtune.corpus.loaders.parse_json_line`."""
    return parse_json_line(text)


def ifeval_problems(case: Case) -> list[tuple[str, str]]:
    """(field, problem) for each IFEval instruction id of ``case`` that IFEval does not know."""
    spec = case.format.ifeval if case.format is not None else None
    if spec is None:
        return []
    from ragtune.harness.scorers.ifeval import known_instruction_ids

    known = known_instruction_ids()
    problems = []
    for i, instruction_id in enumerate(spec.instruction_id_list):
        if instruction_id not in known:
            close = difflib.get_close_matches(instruction_id, known, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            problems.append(
                (
                    f"format.ifeval.instruction_id_list[{i}]",
                    f"unknown IFEval instruction id {_show(instruction_id)} ({hint}known ids: {', '.join(known)})",
                )
            )
    return problems


def iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of a UTF-8 file, decoded line by line so that a bad byte is reported with its line.

    A missing, unreadable or non-UTF-8 file is a :class:`HarnessError` naming it, and so is a FIFO or a device,
    which is refused without being read (it would block, or never end).
    """
    try:
        handle = open_regular(path)
    except FileNotFoundError:
        raise HarnessError(f"{path}: no such file; check the path") from None
    except NotRegularFileError as exc:
        if exc.kind == "a folder":
            raise HarnessError(f"{path}: is a folder; give a .jsonl case file") from None
        raise HarnessError(f"{path}: not a regular file but {exc.kind}; give a .jsonl case file") from None
    except IsADirectoryError:
        raise HarnessError(f"{path}: is a folder; give a .jsonl case file") from None
    except PermissionError:
        raise HarnessError(f"{path}: permission denied; make the file readable") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise HarnessError(f"{path}: symbolic link loop; point the link at a file") from None
        raise HarnessError(f"{path}: cannot read ({exc.strerror}); check the file") from None
    with handle:
        try:
            for number, raw in enumerate(handle, start=1):
                try:
                    text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
                except UnicodeDecodeError as exc:
                    raise HarnessError(
                        f"{path}:{number}: not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1}); "
                        "convert the file to UTF-8, e.g. `iconv -f latin1 -t utf-8`"
                    ) from None
                yield number, text.rstrip("\r\n")
        except IsADirectoryError:  # some platforms open a folder and fail on the first read
            raise HarnessError(f"{path}: is a folder; give a .jsonl case file") from None


def explain_error(err: ErrorDetails) -> tuple[str, str]:
    """(field, problem) for one pydantic error, in the words of the case format rather than pydantic's (the
    importers use it too)."""
    loc = tuple(err["loc"])
    field = _field_path(loc)
    kind = err["type"]
    value = err.get("input")
    ctx = err.get("ctx") or {}
    if kind == "extra_forbidden":
        owner = _MODELS.get(tuple(str(part) for part in loc[:-1]))
        allowed = list(owner.model_fields) if owner else []
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        return field, f"unknown field ({hint}allowed: {', '.join(allowed)})"
    if kind == "missing":
        return field, "required field is missing"
    if kind == "value_error":
        return field, str(ctx.get("error", err["msg"]))
    if kind == "date_parsing":
        return field, f"{_show(value)} is not a date in the form YYYY-MM-DD ({ctx.get('error', err['msg'])})"
    if kind in _EXPECTED:
        shown = f" ({_show(value)})" if value is not None and not isinstance(value, bool) else ""
        return field, f"expected {_EXPECTED[kind]}, got {_json_type(value)}{shown}"
    if kind == "too_short":
        return field, f"must have at least {ctx.get('min_length', 1)} item"
    if kind == "string_too_short":
        return field, "must not be empty"
    if kind in ("greater_than_equal", "greater_than"):
        bound = ctx.get("ge", ctx.get("gt"))
        return field, f"must be {'at least' if kind == 'greater_than_equal' else 'more than'} {bound}, got {value}"
    return field, err["msg"]


def _field_path(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        name = shown_key(part)  # a key holding a newline must not break the one-line problem
        out += f"[{part}]" if isinstance(part, int) else (f".{name}" if out else name)
    return out


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _escaped(char: str) -> str:
    code = ord(char)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _show(value: object) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (ValueError, RecursionError):  # nested too deeply, or a number too long to print
        return _json_type(value)
    # JSON leaves NEL, LINE SEPARATOR and other unprintable characters as they are: escape them, so that a value
    # cannot break its one-line problem apart
    text = "".join(c if c.isprintable() else _escaped(c) for c in text)
    return text[:40] + "…" if len(text) > 41 else text


def _check_json_schema(schema: dict[str, Any]) -> tuple[str, str] | None:
    """(field, problem) when ``format.json_schema`` is not itself a valid JSON Schema; the model cannot check it."""
    from jsonschema import Draft202012Validator, SchemaError
    from jsonschema.validators import validator_for

    if "$schema" in schema and validator_for(schema, default=None) is None:
        return "format.json_schema.$schema", (
            f"unknown JSON Schema dialect {_show(schema['$schema'])}; "
            "use e.g. https://json-schema.org/draft/2020-12/schema or leave $schema out"
        )
    validator = validator_for(schema, default=Draft202012Validator)
    try:
        validator.check_schema(schema)
    except SchemaError as exc:
        field = _field_path(("format", "json_schema", *exc.path))
        return field, f"not a valid JSON Schema ({exc.message})"
    except RecursionError:  # the metaschema check recurses a few frames per level of the schema
        return "format.json_schema", "nested too deeply to check; flatten the schema (use $defs and $ref)"
    return None


def case_json_schema() -> dict[str, Any]:
    """The JSON Schema (Draft 2020-12) of one case line, generated from :class:`Case`.

    pydantic's schema is completed with the rules its validators enforce in code, where JSON Schema can say them:
    not-blank ids and questions, exactly one format rule, something to score, a valid regex and a valid schema.
    """
    schema = Case.model_json_schema()
    props = schema["properties"]
    for name in ("id", "question"):
        props[name]["pattern"] = r"\S"  # not blank: at least one non-space character
    props["evidence_texts"]["items"]["pattern"] = r"\S"  # no blank passage (Case._passages_not_blank)
    as_of = props["as_of"]["anyOf"][0]
    as_of["pattern"] = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"  # `format` alone is only an annotation by default
    # a case needs answers, a format or evidence (Case._something_to_score)
    schema["anyOf"] = [
        {"required": ["answers"], "properties": {"answers": {"minItems": 1}}},
        {"required": ["format"], "properties": {"format": {"type": "object"}}},
        {"required": ["evidence"], "properties": {"evidence": {"minItems": 1}}},
    ]
    fmt = schema["$defs"]["FormatSpec"]
    rules = list(FormatSpec.model_fields)
    # exactly one rule given and not null (FormatSpec._exactly_one)
    fmt["oneOf"] = [{"required": [rule], "properties": {rule: {"not": {"type": "null"}}}} for rule in rules]
    fmt["properties"]["regex"]["anyOf"][0]["format"] = "regex"
    fmt["properties"]["json_schema"]["anyOf"][0]["$ref"] = "https://json-schema.org/draft/2020-12/schema"
    ifeval = schema["$defs"]["IfevalSpec"]
    ifeval["$comment"] = "kwargs must have one entry per instruction id; JSON Schema cannot compare array lengths."
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$comment": "Generated by `python -m ragtune.harness.cases --schema` from ragtune.harness.model.Case; "
        "do not edit. `ragtune cases validate` also checks what JSON Schema cannot say: unique ids, ifeval "
        "kwargs aligned with instruction ids, and json_schema against its own $schema dialect.",
        **schema,
        "title": "ragtune case",
        "description": "One line of a ragtune case file (JSONL): a question, what counts as right, and the form "
        "the answer must take. See docs/cases.md.",
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args != ["--schema"]:
        print("usage: python -m ragtune.harness.cases --schema > docs/case.schema.json", file=sys.stderr)
        return 2
    print(json.dumps(case_json_schema(), indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
