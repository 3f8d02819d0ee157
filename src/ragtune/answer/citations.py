"""Citations: find ``[n]`` markers in an answer, check each against the numbered sources, map them to
doc@version, chunk and span, and, when the model cited nothing, attribute sentences to a source that supports
them (marked ``attributed``, never passed off as the model's own).

Attribution rests on two parts, both usable alone: :func:`sentence_spans` splits text into sentences without
breaking numbers (``€1.20``, ``v2.1.3``), abbreviations, URLs, e-mail addresses or quotes, and :func:`support`
decides whether a chunk backs a sentence: every value the sentence states (numbers, amounts, dates) must be in the
chunk, said there of the same thing, and most of its content terms too.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from ragtune.answer.context import Source
from ragtune.index.analyzer import Analyzer

if TYPE_CHECKING:
    from ragtune.index.embedder import Embedder

MARKER = re.compile(r"\[(\d{1,3}(?:\s*[,;]\s*\d{1,3})*)\]")

_BLANKS_MARKER = re.compile(r"([ \t]*)" + MARKER.pattern)
"""A marker with the blanks before it: a struck marker takes them along ("600 [7]." becomes "600.")."""

ATTRIBUTION_MIN_SUPPORT = 0.5
"""The share of content terms the first attribution rule asked of a source. The ``citations.support`` scorer
still defaults to it; attribution itself now uses :func:`support` (values plus ``SUPPORT_MIN_COVERAGE``)."""

SUPPORT_MIN_COVERAGE = 0.75
"""Share of a sentence's content terms (stemmed; stop words, question words and numbers left out) the chunk must
hold, and the part of the chunk around each of the sentence's numbers too."""

SUPPORT_MIN_COSINE = 0.5
"""With an embedder, the best MiniLM cosine between the sentence and one of the chunk's sentences must reach this."""


# sentences -------------------------------------------------------------------------------------------------------

# A terminator run, any closing quotes or brackets, and citation markers written right after it ("fact.[1]"),
# followed by white space or the end: "1.20", "v2.1.3", "x.example/a" and "a@b.example" never match inside.
_TERMINATOR = re.compile(r"(?P<punct>[.!?…]+)[\"'”’»)\]}]*(?:[ \t]?\[\d{1,3}(?:\s*[,;]\s*\d{1,3})*\])*(?=\s|$)")
_LINE_BREAK = re.compile(r"[ \t]*\n\s*")
_BULLET = re.compile(r"(?:[-*+•–—]|\d{1,3}[.)]|[A-Za-z][.)]|#{1,6}|\|)(?:\s|$)")
_LIST_NUMBER = re.compile(r"\s*(?:[-*+•]\s*)?(?:\d{1,3}|[A-Za-z]|[ivxlc]{2,6})")
_INITIALISM = re.compile(r"(?:[A-Za-z]\.)+[A-Za-z]")  # U.S, e.g, a.m
_OPENERS = "([{\"'“‘«"

# fmt: off
# Never the end of a sentence: "e.g. Slack", "Dr. Marchand", "vs. Team".
_NEVER_END = frozenset({
    "e.g", "i.e", "cf", "vs", "viz", "approx", "ca", "al", "incl", "excl", "esp", "resp", "mr", "mrs", "ms", "dr",
    "prof", "st", "mt", "rev", "gen", "col", "lt", "capt", "sgt", "hon",
})
# Not an end before a number: "No. 5", "p. 12", "Jan. 5", "max. 20 seats".
_BEFORE_NUMBER = frozenset({
    "no", "nos", "nr", "p", "pp", "vol", "fig", "figs", "eq", "sec", "ch", "art", "ver", "v", "tel", "ext", "min",
    "max", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
})
# May end a sentence, but only when a capital follows: "Acme Inc. The", "and so on, etc. Then", "the U.S. and".
_MAY_END = frozenset({"etc", "inc", "ltd", "co", "corp", "llc", "plc", "jr", "sr", "bros", "esq"})
# fmt: on


def _next_visible(text: str, i: int) -> str:
    while i < len(text) and text[i].isspace():
        i += 1
    return text[i] if i < len(text) else ""


def _ends_sentence(text: str, m: re.Match[str]) -> bool:
    nxt = _next_visible(text, m.end())
    if not nxt:
        return True
    if nxt.islower():  # "approx. five", "3 p.m. tomorrow", '"Really?" he asked'
        return False
    if m.group("punct") != ".":
        return True
    start = m.start("punct")
    word_start = max(text.rfind(" ", 0, start), text.rfind("\n", 0, start), text.rfind("\t", 0, start)) + 1
    word = text[word_start:start].lstrip(_OPENERS)
    low = word.lower()
    if low in _NEVER_END:
        return False
    if low in _BEFORE_NUMBER and nxt.isdigit():
        return False
    if low in _MAY_END or _INITIALISM.fullmatch(word):
        return nxt.isupper()
    if len(word) == 1 and word.isupper() and nxt.isupper():  # an initial: "J. Smith"
        return False
    line_start = text.rfind("\n", 0, start) + 1
    return not _LIST_NUMBER.fullmatch(text[line_start:start])  # "1. First step" opens a list item


def _line_break_ends(text: str, m: re.Match[str]) -> bool:
    if not text[: m.start()].strip() or m.end() == len(text):
        return False
    if m.group(0).count("\n") > 1 or _BULLET.match(text, m.end()):
        return True  # a blank line, or a list item, heading or table row next
    before = text[: m.start()].rstrip()[-1:]
    return not (text[m.end()].islower() or before in ",;")  # a wrapped line goes on


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each sentence, trailing white space included: the spans tile ``text`` exactly.

    A sentence ends at ``.``, ``!``, ``?`` or ``…`` (with any closing quotes or brackets) before white space and a
    word that does not start in lower case, unless the period closes an abbreviation, an initial or a list number;
    and at a line break before a blank line, a list item, a heading, or a line that does not continue the last.
    """
    cuts = {0, len(text)}
    for m in _TERMINATOR.finditer(text):
        if _ends_sentence(text, m):
            end = m.end()
            while end < len(text) and text[end].isspace():
                end += 1
            cuts.add(end)
    for m in _LINE_BREAK.finditer(text):
        if _line_break_ends(text, m):
            cuts.add(m.end())
    ordered = sorted(cuts)
    return [(a, b) for a, b in itertools.pairwise(ordered) if b > a]


def split_sentences(text: str) -> list[str]:
    """The sentences of ``text``, stripped, blank ones left out."""
    return [s for a, b in sentence_spans(text) if (s := text[a:b].strip())]


def _with_marker(segment: str, n: int) -> str:
    """``[n]`` after the sentence's last word, before its final punctuation (as the prompt asks the model to cite:
    "fact [2]."); after a closing quote or bracket, at the very end; trailing white space stays after it."""
    body = segment.rstrip()
    tail = segment[len(body) :]
    stop = re.search(r"[.!?…:;,]+$", body)
    if stop and body[: stop.start()].strip():
        return f"{body[: stop.start()]} [{n}]{body[stop.start() :]}{tail}"
    return f"{body} [{n}]{tail}"


# support ---------------------------------------------------------------------------------------------------------

# Words that carry no claim: dropped before the analyzer, whose stop-word list is short and keeps these.
_FUNCTION_WORDS = re.compile(
    r"\b(?:what|which|who|whom|whose|when|where|why|how|many|much|does|do|did|has|have|had|can|could|would|"
    r"should|may|might|must|shall|its|our|your|yours|you|we|us|he|she|his|her|him|them|i|me|my|than|so|also|"
    r"just|only|very|any|all|each|both|some|yes|here|been|being|were|am|per|up|about|over|under|from|"
    r"it's|it|this|those|these|there|that|then|the|an?|"
    # how answers frame a fact ("The answer is: 250 euros.", "According to the source, ..."): no claim of their own
    r"answer|answers|according|source|sources|context|document|documents|based|says|said|states|stated|"
    r"mentions|mentioned|provided|information)\b",
    re.IGNORECASE,
)
_NUMBER = re.compile(
    r"(?P<cur>[€$£¥]\s?)?(?P<num>\d+(?:[.,:]\d+)*)(?P<pct>\s?%)?(?:\s?(?P<word>euros?|EUR|dollars?|USD|pounds?|GBP)\b)?"
)
_CURRENCY_WORDS = {"euro": "€", "eur": "€", "dollar": "$", "usd": "$", "pound": "£", "gbp": "£"}
_UNIT = re.compile(r"[ \t]*-?[ \t]*[^\W\d_]{2,}")  # "20 seats", "60-second"; not "20, seats" nor "3.4."
_WORD = re.compile(r"[^\W\d_]{2,}")
_ISO_DATE = re.compile(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b")
_SMALL = ("zero", "", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve")
_NUMBER_WORDS = {w: str(i) for i, w in enumerate(_SMALL) if w}  # not "one": as often a pronoun as a number
_TEENS = ("thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen")
_NUMBER_WORDS |= {w: str(13 + i) for i, w in enumerate(_TEENS)}
_TENS = ("twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_NUMBER_WORDS |= {w: str(20 + 10 * i) for i, w in enumerate(_TENS)}
_NUMBER_WORD = re.compile(r"\b(" + "|".join(_NUMBER_WORDS) + r")\b", re.IGNORECASE)
# fmt: off
_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
           "november", "december")
# fmt: on
_MONTH = re.compile(
    r"\b(?:(?i:january|february|march|april|june|july|august|september|october|november|december)|May|"
    r"(?:Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept?|Oct|Nov|Dec)\.?)(?!\w)"
)
_WEEKDAY = re.compile(r"\b(?i:monday|tuesday|wednesday|thursday|friday|saturday|sunday)s?\b")
_TOKEN = re.compile(r"[^\s\"'`()\[\]{}<>,;]+")
_CLAUSE_END = re.compile(r"[,.;:!?()\[\]]")
_UNIT_WINDOW = 3  # a chunk's "500 Relay Assist credits" backs "500 credits"; a sentence's "20 paid seats", "20 seats"


def _canonical(num: str) -> list[str]:
    """'1,000' -> 1000, '07:00' -> 7:00, '1.20' -> 1.2, '2026.1.2' stays; '1,2' (no thousands) -> 1 and 2."""
    if re.fullmatch(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?", num):
        num = num.replace(",", "")
    if "," in num:
        return [x for part in num.split(",") for x in _canonical(part)]
    if ":" in num:
        first, _, rest = num.partition(":")
        return [f"{int(first)}:{rest}"]
    if num.count(".") == 1:
        whole, frac = num.split(".")
        frac = frac.rstrip("0")
        return [f"{int(whole)}.{frac}" if frac else str(int(whole))]
    return [num if "." in num else str(int(num))]


def _normalised(text: str) -> str:
    """Markers out, ISO dates as '5 january 2026', small number words as digits."""

    def iso(m: re.Match[str]) -> str:
        month = int(m.group(2))
        return f"{int(m.group(3))} {_MONTHS[month - 1]} {m.group(1)}" if 1 <= month <= 12 else m.group(0)

    text = _ISO_DATE.sub(iso, MARKER.sub(" ", text))
    return _NUMBER_WORD.sub(lambda m: _NUMBER_WORDS[m.group(1).lower()], text)


def _values(text: str) -> set[str]:
    found: set[str] = set()
    for m in _NUMBER.finditer(text):
        word = (m.group("word") or "").lower()
        currency = (m.group("cur") or "").strip() or _CURRENCY_WORDS.get(word[:-1] if word.endswith("s") else word)
        nums = _canonical(m.group("num"))
        found |= {f"n:{n}" for n in nums}
        found |= {f"{currency}:{n}" for n in nums if currency}
    for m in _MONTH.finditer(text):
        word = m.group(0).lower().rstrip(".")
        found.add("month:" + next(name for name in _MONTHS if name.startswith(word[:3])))
    found |= {"day:" + m.group(0).lower()[:3] for m in _WEEKDAY.finditer(text)}
    return found


def _quantities(text: str, analyzer: Analyzer, window: int) -> list[tuple[str, frozenset[str]]]:
    """Each plain number with the stems of the content words among the ``window`` words after it, up to the next
    punctuation: ``("40", {"station"})``. Amounts, percentages and identifiers (``LR-4003``) have no unit here."""
    out = []
    for m in _NUMBER.finditer(text):
        before = text[max(0, m.start() - 2) : m.start()]
        if m.group("cur") or m.group("word") or m.group("pct") or re.search(r"[^\W\d_]-?$", before):
            continue
        if not _UNIT.match(text, m.end()):
            continue  # "is 3.4.", "20, and": no word right after the number
        stop = _CLAUSE_END.search(text, m.end())
        words = _WORD.findall(text, m.end(), stop.start() if stop else len(text))[:window]
        stems = frozenset(t for w in words for t in analyzer.terms(_FUNCTION_WORDS.sub(" ", w)))
        if stems:
            out += [(n, stems) for n in _canonical(m.group("num"))]
    return out


def values(text: str) -> frozenset[str]:
    """What ``text`` states that a paraphrase may not change: numbers (``n:1.2``), amounts (``€:1.2``), months
    (``month:june``) and weekdays (``day:mon``)."""
    return frozenset(_values(_normalised(text)))


def _identifiers(text: str) -> set[str]:
    """Code-like tokens a paraphrase keeps verbatim: ``lr_live_``, ``status.lumenrelay.example``, ``LR-4003``,
    URLs and e-mail addresses (lower-cased). Abbreviations and numbers with a unit ('60-second') are not."""
    out = set()
    for raw in _TOKEN.findall(MARKER.sub(" ", text)):
        token = raw.rstrip(".:!?").strip("*")
        low = token.lower()
        if not re.search(r"[^\W\d_]", token) or low.rstrip(".") in _NEVER_END | _MAY_END:
            continue
        if _INITIALISM.fullmatch(token.rstrip(".")) or re.fullmatch(r"\d[\d,.]*-[^\W\d_]+", token):
            continue
        if re.search(r"[_@/]", token) or re.search(r"[^\W\d_]\.[^\W\d_]", token) or re.search(r"\d", token):
            out.add(low)
    return out


def _names(sentence: str, analyzer: Analyzer, *, first: bool = False) -> set[str]:
    """Stems of capitalised words after the first (names, products, places): "based in Lyon"; with ``first``,
    the first word too (a question's "Brisecourt Labs ...?")."""
    body = re.sub(r"^[\s\-*•#>\d.)]*[\"'“‘(]*", "", MARKER.sub(" ", sentence))
    words = _WORD.findall(body)[0 if first else 1 :]
    caps = [w for w in words if w[0].isupper() and not _MONTH.fullmatch(w) and not _WEEKDAY.fullmatch(w)]
    return {t for w in caps for t in analyzer.terms(_FUNCTION_WORDS.sub(" ", w))}


def given_names(question: str, analyzer: Analyzer) -> frozenset[str]:
    """The names a question brings ("the Lumen Relay API"): an answer that repeats them claims nothing by it."""
    return frozenset(_names(question, analyzer, first=True))


def content_terms(text: str, analyzer: Analyzer) -> set[str]:
    """The sentence's claim words: the analyzer's stemmed terms without function words and numbers."""
    return {t for t in analyzer.terms(_FUNCTION_WORDS.sub(" ", MARKER.sub(" ", text))) if not t.isdigit()}


class Around(NamedTuple):
    """One sentence of a chunk, for the test around a number (:func:`_unbound`)."""

    values: frozenset[str]
    near: frozenset[str]  # terms of it, the sentence before it, the title and the heading
    own: frozenset[str]  # terms of it, the title and the heading
    names: frozenset[str]  # the names it uses


@dataclass(frozen=True)
class Evidence:
    """What a chunk states, for :func:`support`: its terms (heading and title included), values and units.

    >>> ev = Evidence.of("The Team plan costs €19 per seat per month.", Analyzer(), heading="Team")
    >>> support("The Team plan costs €19 a month.", ev, Analyzer()).supported   # True
    """

    text: str  # lower-cased, title and heading included: identifiers are looked up in it
    terms: frozenset[str]
    values: frozenset[str]
    units: frozenset[tuple[str, str]]  # (number, stem of a word after it)
    # per sentence of the chunk: its values, and the terms of it, the sentence before it, the title and heading
    local: tuple[Around, ...] = ()  # per sentence of the chunk

    @classmethod
    def of(cls, text: str, analyzer: Analyzer, *, heading: str = "", title: str = "") -> Evidence:
        whole = f"{title}\n{heading}\n{text}"
        norm = _normalised(whole)
        units = {(n, stem) for n, stems in _quantities(norm, analyzer, _UNIT_WINDOW) for stem in stems}
        head = set(analyzer.terms(f"{title}\n{heading}"))
        pieces = split_sentences(text) or [text]
        local = tuple(
            Around(
                frozenset(_values(_normalised(piece))),
                frozenset(head.union(analyzer.terms(" ".join(pieces[max(0, i - 1) : i + 1])))),
                frozenset(head.union(analyzer.terms(piece))),
                frozenset(_names(piece, analyzer)),
            )
            for i, piece in enumerate(pieces)
        )
        terms = frozenset(analyzer.terms(whole))
        return cls(whole.lower(), terms, frozenset(_values(norm)), frozenset(units), local)


@dataclass(frozen=True)
class Support:
    """The verdict of :func:`support`, with what it rests on."""

    supported: bool
    coverage: float  # share of the sentence's content terms found in the chunk
    missing: tuple[str, ...]  # what the sentence states that the chunk does not: values, units, identifiers, names
    terms: int  # content terms in the sentence
    cosine: float | None = None
    reason: str = ""


def _unbound(
    numbers: Sequence[str], terms: set[str], names: set[str], evidence: Evidence, min_coverage: float
) -> list[str]:
    """Numbers the chunk states only about something else. Each must sit in a sentence of the chunk that, with the
    sentence before it and the title and heading, holds ``min_coverage`` of the content terms, and that does not
    name something else in place of one of the sentence's names: "The Pro plan costs €19" is not backed by "The
    Team plan costs €19 per seat per month", though every word of it is in the chunk (nor by a chunk without
    "Pro" at all, though the question asked about the Pro plan)."""

    def said_of(around: Around) -> bool:
        replaced = bool(around.names - names) and bool(names - around.own)
        return len(terms & around.near) >= min_coverage * len(terms) and not replaced

    return [
        f"{v} in a sentence about this"
        for v in numbers
        if not any(v in around.values and said_of(around) for around in evidence.local)
    ]


def support(
    sentence: str,
    evidence: Evidence,
    analyzer: Analyzer,
    *,
    known: frozenset[str] = frozenset(),
    given: frozenset[str] = frozenset(),
    cosine: float | None = None,
    min_coverage: float = SUPPORT_MIN_COVERAGE,
    min_cosine: float = SUPPORT_MIN_COSINE,
    check_values: bool = True,
) -> Support:
    """Does the chunk back the sentence? The sentence's values (numbers, amounts, dates; a wrong number is the
    usual error), each number's unit ("40 stations") and its identifiers must be in the chunk; its capitalised
    names in the chunk or among the ``known`` terms of the other sources (the product's name, say, is seldom
    repeated in every chunk; an invented name is in none); at least ``min_coverage`` of its content terms (two at
    least) must be in the chunk, and as much around each of its numbers (:func:`_unbound`); and, when ``cosine``
    is given, that much similarity with one of the chunk's sentences. Names the question brings (``given``, see
    :func:`given_names`) and the chunk lacks are left out of every count."""
    echoed = given - evidence.terms
    terms = content_terms(sentence, analyzer) - echoed
    coverage = len(terms & evidence.terms) / len(terms) if terms else 0.0  # known names do not count here
    missing: list[str] = []
    if check_values:
        norm = _normalised(sentence)
        missing += sorted(_values(norm) - evidence.values)
        missing += sorted(
            f"{n} {'/'.join(sorted(stems))}"
            for n, stems in _quantities(norm, analyzer, 2)
            if f"n:{n}" in evidence.values and not any((n, stem) in evidence.units for stem in stems)
        )
        missing += sorted(i for i in _identifiers(sentence) if i not in evidence.text)
        names = _names(sentence, analyzer)
        missing += sorted(f"name:{n}" for n in names - evidence.terms - known - echoed)
        if not missing and terms:
            numbers = sorted(v for v in _values(norm) if v.startswith("n:"))
            missing += _unbound(numbers, terms, names, evidence, min_coverage)
    # a value the chunk states with its unit is a claim of its own: "The answer is: 250 euros." has one content
    # term, and its number
    claims = len(terms) + (len(_values(_normalised(sentence))) if check_values else 0)
    if claims < 2:
        reason = "fewer than two content terms"
    elif missing:
        reason = "the chunk does not state " + ", ".join(missing)
    elif coverage < min_coverage:
        reason = f"{coverage:.0%} of the content terms in the chunk (needs {min_coverage:.0%})"
    elif cosine is not None and cosine < min_cosine:
        reason = f"cosine {cosine:.2f} with the chunk's closest sentence (needs {min_cosine:.2f})"
    else:
        reason = ""
    return Support(not reason, coverage, tuple(missing), len(terms), cosine, reason)


def best_cosines(embedder: Embedder, sentences: Sequence[str], chunks: Sequence[str]) -> np.ndarray:
    """``[i, j]``: the highest cosine between sentence ``i`` and any sentence of chunk ``j`` (one encode call)."""
    pieces = [split_sentences(c) or [c] for c in chunks]
    flat = [p for ps in pieces for p in ps]
    vectors = embedder.encode([*sentences, *flat])
    sims = vectors[: len(sentences)] @ vectors[len(sentences) :].T
    out = np.full((len(sentences), len(chunks)), -1.0, dtype=np.float32)
    at = 0
    for j, ps in enumerate(pieces):
        if len(sentences):
            out[:, j] = sims[:, at : at + len(ps)].max(axis=1)
        at += len(ps)
    return out


# citations -------------------------------------------------------------------------------------------------------


@dataclass
class Citation:
    n: int
    doc_id: str
    version: int
    chunk_id: str
    start: int
    end: int
    title: str
    mode: str  # "model": the model wrote [n]; "attributed": ragtune matched the sentence to the source

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CitationCheck:
    answer: str
    citations: list[Citation]
    invalid: list[int]  # numbers the model cited that no source carries; removed from the answer


def _numbers(group: str) -> list[int]:
    return [int(x) for x in re.split(r"\s*[,;]\s*", group.strip())]


def _cite(source: Source, mode: str) -> Citation:
    h = source.hit
    return Citation(source.n, h.doc_id, h.version, h.chunk_id, h.start, h.end, h.title, mode)


def check_citations(answer: str, sources: Sequence[Source]) -> CitationCheck:
    """Validate the model's markers: a number with no source is invalid and is struck from the answer."""
    by_n = {s.n: s for s in sources}
    cited: dict[int, Citation] = {}
    invalid: list[int] = []

    def fix(match: re.Match[str]) -> str:
        good = []
        for n in _numbers(match.group(2)):
            if n in by_n:
                good.append(n)
                cited.setdefault(n, _cite(by_n[n], "model"))
            elif n not in invalid:
                invalid.append(n)
        return "[" + ", ".join(str(n) for n in good) + "]" if good else ""

    cleaned = _BLANKS_MARKER.sub(lambda m: (m.group(1) + fixed) if (fixed := fix(m)) else "", answer)
    return CitationCheck(cleaned.strip() if invalid else cleaned, sorted(cited.values(), key=lambda c: c.n), invalid)


def attribute(
    answer: str,
    sources: Sequence[Source],
    analyzer: Analyzer | None = None,
    *,
    question: str = "",
    embedder: Embedder | None = None,
) -> CitationCheck:
    """Insert ``[n]`` into each sentence that source ``n`` supports (:func:`support`; the best-covering source
    when several do). Nothing else in the text changes: removing the inserted `` [n]`` gives ``answer`` back.
    ``question`` lets an answer repeat the question's names; ``embedder`` adds the cosine gate."""
    analyzer = analyzer or Analyzer()
    given = given_names(question, analyzer)
    spans = sentence_spans(answer)
    segments = [answer[a:b] for a, b in spans]
    evidence = [Evidence.of(s.hit.text, analyzer, heading=s.hit.heading, title=s.hit.title) for s in sources]
    known = frozenset().union(*(ev.terms for ev in evidence))
    cosines = None
    if embedder is not None and sources and segments:
        cosines = best_cosines(embedder, [s.strip() for s in segments], [s.hit.text for s in sources])
    cited: dict[int, Citation] = {}
    parts: list[str] = []
    for i, segment in enumerate(segments):
        if re.search(r"[?:][\"'”’»)\]]*\s*$", segment):  # a question or a lead-in ("The hours are:") claims nothing
            parts.append(segment)
            continue
        best: tuple[float, float, int] | None = None  # coverage, cosine, then the better-ranked source
        for j, ev in enumerate(evidence):
            cos = float(cosines[i, j]) if cosines is not None else None
            verdict = support(segment, ev, analyzer, known=known, given=given, cosine=cos)
            key = (verdict.coverage, cos if cos is not None else 0.0, -j)
            if verdict.supported and (best is None or key > best):
                best = key
        if best is None:
            parts.append(segment)
            continue
        source = sources[-best[2]]
        cited.setdefault(source.n, _cite(source, "attributed"))
        parts.append(_with_marker(segment, source.n))
    return CitationCheck("".join(parts), sorted(cited.values(), key=lambda c: c.n), [])


def cite(
    answer: str,
    sources: Sequence[Source],
    *,
    attribute_missing: bool = True,
    question: str = "",
    embedder: Embedder | None = None,
) -> CitationCheck:
    """Check the model's citations; when it made none (valid or not), attribute them if allowed."""
    checked = check_citations(answer, sources)
    if checked.citations or checked.invalid or not attribute_missing or not sources:
        return checked
    return attribute(checked.answer, sources, question=question, embedder=embedder)


_OPEN_TAIL = re.compile(r"[ \t]*(?:\[\d{0,3}(?:\s*[,;]\s*\d{0,3})*\s*)?$")
"""What a streamed piece may end with that the next one decides: blanks, and the start of a marker whose closing
bracket has not been decoded yet."""


class StreamedCitations:
    """Checks [n] markers in a streamed answer as :func:`check_citations` does in a whole one: a marker (and the
    blanks before it) is held back until its bracket closes, then sent with the numbers no source carries struck.

    >>> markers = StreamedCitations(range(1, 3)); markers.feed("Yes [2"), markers.feed(", 7] and [9]."), markers.flush()
    ('Yes', ' [2] and.', '')
    """

    def __init__(self, numbers: Iterable[int]) -> None:
        self.valid = set(numbers)
        self._held = ""

    def _fix(self, match: re.Match[str]) -> str:
        good = [n for n in _numbers(match.group(2)) if n in self.valid]
        return match.group(1) + "[" + ", ".join(str(n) for n in good) + "]" if good else ""

    def feed(self, piece: str) -> str:
        text = self._held + piece
        tail = _OPEN_TAIL.search(text)
        cut = tail.start() if tail else len(text)
        text, self._held = text[:cut], text[cut:]
        return _BLANKS_MARKER.sub(self._fix, text)

    def flush(self) -> str:
        text, self._held = self._held, ""
        return _BLANKS_MARKER.sub(self._fix, text)
