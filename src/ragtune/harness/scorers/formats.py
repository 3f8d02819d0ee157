"""Format: does the answer follow the case's form rule (JSON Schema, regex, labels, word limit or IFEval)?

One rule per case (:class:`~ragtune.harness.model.FormatSpec`); each kind has its checker in ``RULES``. All but
IFEval are pass/fail (1.0 or 0.0); IFEval's value is the share of its instructions followed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from ragtune.harness.model import Case, FormatSpec, Output, Score
from ragtune.harness.scorers.base import ScoringContext, arm_failed, register_scorer

NAME = "format"

_FENCED_JSON = re.compile(r"```[ \t]*json[ \t]*\r?\n(.*?)\r?\n?```", re.IGNORECASE | re.DOTALL)


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def _strict_json(text: str) -> Any:
    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")  # Python's json reads NaN and Infinity; JSON has neither

    return json.loads(text, parse_constant=refuse)


def read_json(answer: str) -> tuple[Any, str]:
    """The answer as JSON, whole or from its first ```json fenced block; returns (value, where it was read)."""
    try:
        return _strict_json(answer.strip()), "the answer"
    except ValueError as whole:
        fenced = _FENCED_JSON.search(answer)
        if fenced is None:
            raise ValueError(f"the answer is not JSON ({whole})") from None
        try:
            return _strict_json(fenced.group(1).strip()), "a ```json fenced block"
        except ValueError as exc:
            raise ValueError(f"its ```json block is not JSON ({exc})") from None


def _path(error: Any) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)


def check_json_schema(spec: FormatSpec, answer: str, question: str, ctx: ScoringContext) -> Score:
    import jsonschema

    schema = spec.json_schema
    assert schema is not None
    cls = jsonschema.validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        return Score.unscored(NAME, f"the case's JSON schema is invalid: {exc.message}")
    try:
        value, where = read_json(answer)
    except ValueError as exc:
        return Score.ok(NAME, 0.0, str(exc), rule="json_schema")
    errors = sorted(cls(schema, format_checker=cls.FORMAT_CHECKER).iter_errors(value), key=lambda e: e.path)
    if not errors:
        return Score.ok(NAME, 1.0, f"JSON read from {where} is valid against the schema", rule="json_schema")
    first = errors[0]
    return Score.ok(
        NAME,
        0.0,
        f"JSON read from {where} breaks the schema in {len(errors)} place(s); first at {_path(first)}: {first.message}",
        rule="json_schema",
        errors=[f"{_path(e)}: {e.message}" for e in errors[:10]],
    )


def check_regex(spec: FormatSpec, answer: str, question: str, ctx: ScoringContext) -> Score:
    assert spec.regex is not None
    text = answer.strip()
    if re.fullmatch(spec.regex, text):
        return Score.ok(NAME, 1.0, f"the whole answer matches /{spec.regex}/", rule="regex")
    return Score.ok(NAME, 0.0, f"the answer {_short(text)} does not match /{spec.regex}/ as a whole", rule="regex")


def check_labels(spec: FormatSpec, answer: str, question: str, ctx: ScoringContext) -> Score:
    """Exactly one label, ignoring surrounding space and case, and nothing else: 'Positive.' is not 'positive'."""
    assert spec.labels is not None
    text = answer.strip().casefold()
    label = next((label for label in spec.labels if label.strip().casefold() == text), None)
    if label is not None:
        return Score.ok(NAME, 1.0, f"the answer is the label {label!r}", rule="labels", label=label)
    shown = ", ".join(map(repr, spec.labels[:10])) + (", …" if len(spec.labels) > 10 else "")
    return Score.ok(NAME, 0.0, f"the answer {_short(answer.strip())} is not one of {shown}", rule="labels")


def check_max_words(spec: FormatSpec, answer: str, question: str, ctx: ScoringContext) -> Score:
    assert spec.max_words is not None
    words = len(answer.split())
    verdict = "within" if words <= spec.max_words else "over"
    return Score.ok(
        NAME,
        1.0 if words <= spec.max_words else 0.0,
        f"{words} words, {verdict} the limit of {spec.max_words}",
        rule="max_words",
        words=words,
    )


def check_ifeval(spec: FormatSpec, answer: str, question: str, ctx: ScoringContext) -> Score:
    from ragtune.harness.scorers.ifeval import score_ifeval

    assert spec.ifeval is not None
    # some IFEval instructions refer to the prompt ('repeat the request first'): the case's question is the prompt
    return score_ifeval(NAME, spec.ifeval, answer, ctx.settings, prompt=question)


RULES: dict[str, Callable[[FormatSpec, str, str, ScoringContext], Score]] = {
    "json_schema": check_json_schema,
    "regex": check_regex,
    "labels": check_labels,
    "max_words": check_max_words,
    "ifeval": check_ifeval,
}
"""The checker of each FormatSpec kind: ``(spec, answer, question, ctx) -> Score``."""


@register_scorer(NAME)
def format_(case: Case, output: Output, ctx: ScoringContext) -> Score | None:
    """The case's format rule applied to the answer; None when the case has no format rule."""
    if case.format is None:
        return None
    if failed := arm_failed(NAME, output):
        return failed
    return RULES[case.format.kind](case.format, output.answer, case.question, ctx)
