"""Personal-data scan for training examples: e-mail addresses, phone numbers, payment card numbers, IBANs and
account numbers.

Phone numbers are found by ``phonenumbers`` (Google's libphonenumber rules: a number must be valid for its region,
so version strings, dates and prices are not taken for phones); IBANs are checked by ``python-stdnum`` (country
length and the mod-97 check digits) and card numbers by the Luhn check, so a random 16-digit id is not masked::

    found = scan("Mail jo@example.org or call +44 20 7946 0958")
    mask("Mail jo@example.org", found)        # 'Mail [EMAIL]'
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

PiiKind = Literal["email", "phone", "credit_card", "iban", "account_number"]

# What each kind becomes under ``pii = "mask"``.
PLACEHOLDERS: dict[PiiKind, str] = {
    "email": "[EMAIL]",
    "phone": "[PHONE]",
    "credit_card": "[CREDIT_CARD]",
    "iban": "[IBAN]",
    "account_number": "[ACCOUNT_NUMBER]",
}
PII_KINDS: tuple[PiiKind, ...] = tuple(PLACEHOLDERS)

_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![\w-])")
# Two letters, two check digits, then 10 to 30 letters or digits, in groups of four or run together.
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")
# 13 to 19 digits, optionally grouped by single spaces or dashes.
_CARD = re.compile(r"(?<![\d.,-])\d(?:[ -]?\d){12,18}(?![\d.,]\d)")
# A run of digits right after words that announce an account ("account number: 12345678", "acct # 0012-3456").
_ACCOUNT = re.compile(
    r"\b(?:account|acct|a/c|bank account|routing)(?:\s+(?:number|no\.?|num|#))?\s*[:#]?\s*"
    r"(?P<number>\d(?:[ -]?\d){5,29})\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class PiiMatch:
    """One piece of personal data: its kind and character span."""

    kind: PiiKind
    start: int
    end: int


def _luhn_ok(digits: str) -> bool:
    from stdnum import luhn

    return bool(luhn.is_valid(digits))


def _iban_ok(text: str) -> bool:
    from stdnum import iban

    return bool(iban.is_valid(text))


def scan(text: str, phone_regions: Sequence[str] = ("US",)) -> list[PiiMatch]:
    """Every piece of personal data in ``text``, in order, never overlapping (the earlier, then longer, wins).

    ``phone_regions`` are the regions (ISO 3166 codes) whose national formats count as phone numbers; numbers
    written with a leading ``+`` are found whatever the regions.
    """
    candidates: list[PiiMatch] = []
    for m in _EMAIL.finditer(text):
        candidates.append(PiiMatch("email", m.start(), m.end()))
    for m in _IBAN.finditer(text):
        if _iban_ok(m.group()):
            candidates.append(PiiMatch("iban", m.start(), m.end()))
    for m in _CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if 13 <= len(digits) <= 19 and _luhn_ok(digits):
            candidates.append(PiiMatch("credit_card", m.start(), m.end()))
    for m in _ACCOUNT.finditer(text):
        candidates.append(PiiMatch("account_number", m.start("number"), m.end("number")))
    candidates += _phones(text, phone_regions)
    # Earlier first; at the same start the longer span; then the more specific kind (the order of PII_KINDS).
    candidates.sort(key=lambda c: (c.start, -(c.end - c.start), PII_KINDS.index(c.kind)))
    out: list[PiiMatch] = []
    for c in candidates:
        if out and c.start < out[-1].end:
            continue
        out.append(c)
    return out


def _phones(text: str, regions: Sequence[str]) -> list[PiiMatch]:
    if not any(ch.isdigit() for ch in text):
        return []  # the matcher costs about a millisecond a call; most turns hold no digits at all
    import phonenumbers
    from phonenumbers import Leniency

    found: dict[tuple[int, int], PiiMatch] = {}
    for region in regions or (None,):
        for m in phonenumbers.PhoneNumberMatcher(text, region, leniency=Leniency.VALID):
            found.setdefault((m.start, m.end), PiiMatch("phone", m.start, m.end))
    return list(found.values())


def mask(text: str, matches: Sequence[PiiMatch]) -> str:
    """``text`` with each match replaced by its kind's placeholder (``[EMAIL]``, ``[PHONE]``, ...)."""
    out, last = [], 0
    for m in sorted(matches, key=lambda m: m.start):
        out.append(text[last : m.start])
        out.append(PLACEHOLDERS[m.kind])
        last = m.end
    out.append(text[last:])
    return "".join(out)
