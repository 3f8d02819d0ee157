"""What a document is before it is stored: its text, and the rights and ownership that travel with it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any

from ragtune.errors import CorpusError

# The rights of a document that a re-ingest keeps unless asked to change them (the source is where it was read).
RIGHTS_FIELDS = ("license", "owner", "may_retrieve", "may_train", "groups")


@dataclass(frozen=True)
class Rights:
    """Ownership, licence, permitted uses and access groups of a document.

    >>> Rights(source="handbook", license="CC-BY-4.0", may_train=False, groups=("finance",))
    """

    source: str
    license: str
    may_retrieve: bool = True
    may_train: bool = True
    groups: tuple[str, ...] = ()
    owner: str | None = None


@dataclass(frozen=True)
class RawDocument:
    """One document as read from a file or a JSONL line, before versioning."""

    doc_id: str
    title: str
    text: str
    rights: Rights
    where: str  # file, or file:line, for messages
    path: str
    valid_from: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # the rights fields the input named (flags, JSONL metadata, an API body); on a known document the others keep
    # what is stored, so a re-ingest that names no rights changes none
    given: frozenset[str] = frozenset(RIGHTS_FIELDS)


def parse_when(value: str | date | datetime, *, end_of_day: bool = False) -> datetime:
    """A date or ISO 8601 datetime as an aware UTC datetime.

    A bare date means its start (for ``valid_from``) or, with ``end_of_day``, its last second (for ``as_of``:
    "as of 2026-01-12" includes what became valid during that day).
    """
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, date):
        dt = datetime.combine(value, time.max if end_of_day else time.min).replace(microsecond=0)
    else:
        text = value.strip()
        try:
            if len(text) == 10:
                return parse_when(date.fromisoformat(text), end_of_day=end_of_day)
            dt = datetime.fromisoformat(text)
        except ValueError:
            raise CorpusError(f"{value!r} is not a date; use YYYY-MM-DD or an ISO 8601 datetime") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).replace(microsecond=0).isoformat()


def parse_groups(value: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """``"a, b"`` or ``["a", "b"]`` as a sorted tuple of distinct, non-empty group names."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)
    groups = set()
    for item in items:
        if not isinstance(item, str):
            raise CorpusError(f"group names must be strings, got {item!r}")
        if item.strip():
            groups.add(item.strip())
    return tuple(sorted(groups))
