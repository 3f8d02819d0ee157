"""Answer text helpers shared by the content and staleness scorers: SQuAD normalisation, whole-token containment,
token F1, and numbers (with units, thousands separators, percent and currency) compared within a tolerance."""

from __future__ import annotations

import re
import string
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation, localcontext

from ragtune.answer.citations import MARKER

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)


def strip_markers(text: str) -> str:
    """The answer without its ``[n]`` citation markers, which are not part of what it says."""
    return MARKER.sub(" ", text)


def normalize_answer(text: str) -> str:
    """SQuAD v2's ``normalize_answer``: lower case, ASCII punctuation removed, articles removed, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def tokens(text: str) -> list[str]:
    return normalize_answer(text).split()


def contains_tokens(haystack: list[str], needle: list[str]) -> bool:
    """Whether ``needle`` occurs in ``haystack`` as a run of whole tokens (so '60' is not found in '600')."""
    n = len(needle)
    if n == 0 or n > len(haystack):
        return False
    first = needle[0]
    return any(haystack[i] == first and haystack[i : i + n] == needle for i in range(len(haystack) - n + 1))


def token_f1(prediction: str, gold: str) -> float:
    """SQuAD v2's ``compute_f1``: harmonic mean of token precision and recall over the bag of normalized tokens."""
    pred, ref = tokens(prediction), tokens(gold)
    if not pred or not ref:
        # SQuAD: when either side is empty, F1 is 1 if both are, else 0
        return float(pred == ref)
    same = sum((Counter(pred) & Counter(ref)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


# ---------------------------------------------------------------------------------------------------------------
# Numbers

_CURRENCY = {
    "$": "USD",
    "usd": "USD",
    "dollar": "USD",
    "dollars": "USD",
    "€": "EUR",
    "eur": "EUR",
    "euro": "EUR",
    "euros": "EUR",
    "£": "GBP",
    "gbp": "GBP",
    "pound": "GBP",
    "pounds": "GBP",
    "¥": "JPY",
    "jpy": "JPY",
    "yen": "JPY",
    "₹": "INR",
    "inr": "INR",
    "chf": "CHF",
}
_SCALE = {
    "k": Decimal(1000),
    "thousand": Decimal(1000),
    "mn": Decimal(10) ** 6,
    "million": Decimal(10) ** 6,
    "millions": Decimal(10) ** 6,
    "bn": Decimal(10) ** 9,
    "billion": Decimal(10) ** 9,
    "billions": Decimal(10) ** 9,
    "trillion": Decimal(10) ** 12,
}
_CODES = "usd|eur|gbp|jpy|inr|chf"
# A number starts where no letter, digit or point touches it on the left (so 'H100' and 'v2' are not numbers);
# a minus sign counts only where it cannot be a hyphen ('COVID-19', '2026-01-05'). A comma or a narrow/no-break
# space separates thousands only before groups of exactly three digits; decimal commas are not read. Of the
# one-letter scales only 'k' is read ('10k'): '100m' is as often metres as millions.
_NUMBER = re.compile(
    rf"(?:(?P<pre>[$€£¥₹]|\b(?:{_CODES})\b)\s?)?"
    r"(?P<sign>(?<![\w.\-−])[-−])?"
    r"(?<![\w.])(?P<num>[0-9]{1,3}(?:[,\u00a0\u202f][0-9]{3})+(?![0-9])(?:\.[0-9]+)?|[0-9]+(?:\.[0-9]+)?|\.[0-9]+)"
    r"(?:\s?(?P<scale>thousand|millions?|billions?|trillion|mn|bn|k)\b)?"
    rf"(?:\s?(?P<post>%|percent\b|per\s?cent\b|\b(?:{_CODES}|dollars?|euros?|pounds?|yen)\b))?",
    re.IGNORECASE,
)


_YEAR = re.compile(r"[12][0-9]{3}")


@dataclass(frozen=True)
class Number:
    """A number read from text: its value (scale words applied), its unit ('%', a currency code or '') and the text."""

    value: Decimal
    unit: str
    text: str

    @property
    def is_year(self) -> bool:
        """A bare four-digit whole number from 1000 to 2999 ('1979', not '1,979' or '1979 €'): read as a year."""
        return not self.unit and _YEAR.fullmatch(self.text) is not None


def parse_numbers(text: str) -> list[Number]:
    """Every number in ``text`` (citation markers ignored), in order."""
    found = []
    for m in _NUMBER.finditer(strip_markers(text)):
        digits = re.sub(r"[,\u00a0\u202f]", "", m["num"])
        try:
            value = Decimal(digits)
        except InvalidOperation:  # the pattern only lets digits through; kept so odd input can never raise
            continue
        if m["scale"]:
            value *= _SCALE[m["scale"].lower()]
        if m["sign"]:
            value = -value
        unit = ""
        for part in (m["pre"], m["post"]):
            if part:
                key = re.sub(r"\s+", "", part.lower())
                unit = "%" if key in {"%", "percent"} else _CURRENCY[key]
        found.append(Number(value, unit, m.group(0).strip()))
    return found


def close(found: Number, expected: Number, tolerance: float) -> bool:
    """``found`` is within ``tolerance`` (relative to the expected value) and carries no conflicting unit. An
    expected year must be found exactly: 1% of 1979 is 20 years."""
    if found.unit and expected.unit and found.unit != expected.unit:
        return False
    if expected.is_year:
        return found.value == expected.value
    with localcontext() as ctx:
        ctx.prec = 60  # exact enough for any realistic figure; Decimal also keeps huge numbers finite
        return abs(found.value - expected.value) <= Decimal(repr(tolerance)) * abs(expected.value)


_MONTHS = {
    name: i
    for i, names in enumerate(
        (("january", "jan"), ("february", "feb"), ("march", "mar"), ("april", "apr"), ("may",), ("june", "jun"),
         ("july", "jul"), ("august", "aug"), ("september", "sep", "sept"), ("october", "oct"),
         ("november", "nov"), ("december", "dec")),
        start=1,
    )
    for name in names
}  # fmt: skip
_MONTH = r"(?P<{g}>" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_DAY = r"(?P<{g}>[0-3]?[0-9])(?:st|nd|rd|th)?"
_DATE = re.compile(
    r"\b(?:"
    r"(?P<iy>[12][0-9]{3})-(?P<im>[01]?[0-9])-(?P<id>[0-3]?[0-9])"  # 1999-09-01
    + r"|" + _MONTH.format(g="m1") + r"\s+" + _DAY.format(g="d1") + r"(?:,?\s+(?P<y1>[12][0-9]{3}))?"  # September 1, 1999
    + r"|" + _DAY.format(g="d2") + r"\s+(?:of\s+)?" + _MONTH.format(g="m2") + r"(?:,?\s+(?P<y2>[12][0-9]{3}))?"  # 1 September 1999
    + r"|" + _MONTH.format(g="m3") + r"\s+(?P<y3>[12][0-9]{3})"  # September 1999
    + r")\b",
    re.IGNORECASE,
)  # fmt: skip


@dataclass(frozen=True)
class Date:
    """A calendar date read from text, as much of it as was written: month always, day and year when given."""

    month: int
    day: int | None
    year: int | None
    text: str

    def matches(self, expected: Date) -> bool:
        """Same month, and the same day and year wherever the expected date gives them."""
        return (
            self.month == expected.month
            and (expected.day is None or self.day == expected.day)
            and (expected.year is None or self.year == expected.year)
        )


def parse_dates(text: str) -> list[Date]:
    """Every date written as people write them ('September 1', '1 Sept 1999', '1999-09-01', 'September 1999')."""
    found = []
    for m in _DATE.finditer(strip_markers(text)):
        day: int | None
        year: int | None
        if m["iy"]:
            month, day, year = int(m["im"]), int(m["id"]), int(m["iy"])
        else:
            name = m["m1"] or m["m2"] or m["m3"]
            month = _MONTHS[name.lower()]
            raw_day = m["d1"] or m["d2"]
            day = int(raw_day) if raw_day else None
            raw_year = m["y1"] or m["y2"] or m["y3"]
            year = int(raw_year) if raw_year else None
        if not 1 <= month <= 12 or (day is not None and not 1 <= day <= 31):
            continue
        found.append(Date(month, day, year, m.group(0)))
    return found


def dates_and_numbers(text: str) -> tuple[list[Date], list[Number]]:
    """The dates of ``text``, and the numbers outside them: the day and year of a date are not loose numbers."""
    plain = strip_markers(text)
    return parse_dates(plain), parse_numbers(_DATE.sub(" ", plain))
