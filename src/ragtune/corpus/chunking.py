"""Cutting a document's text into chunks that fit the embedder's token limit.

Chunks follow the document's structure: a Markdown heading starts a section, a section's paragraphs are packed
together up to the limit, and an over-long paragraph is split at sentences, then at tokens. Every chunk keeps its
heading path (indexed with its text) and its character span in the version's text, for citations.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable
from dataclasses import dataclass

HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$")
FENCE = re.compile(r"^(```|~~~)")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
MIN_BODY_TOKENS = 16
# Something other than whitespace, control and invisible format characters (zero-width space, non-joiner and
# joiner, word joiner, byte-order mark, soft hyphen, direction marks, tag characters): a text made only of those
# has nothing to index, though ``str.strip`` keeps it.
_VISIBLE = re.compile(
    "[^\\s\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff"
    "\ufff9-\ufffb\U000e0000-\U000e007f]"
)


@dataclass(frozen=True)
class Chunk:
    """A span of one version's text, with the heading path it sits under."""

    ordinal: int
    start: int
    end: int
    heading: str
    n_tokens: int

    def body(self, text: str) -> str:
        return text[self.start : self.end]


def has_text(text: str) -> bool:
    """Whether ``text`` holds a visible character, not only whitespace and zero-width or other invisible ones."""
    return _VISIBLE.search(text) is not None


def index_text(heading: str, body: str) -> str:
    """What is embedded and keyword-indexed for a chunk: its heading path, then its text."""
    return f"{heading}\n{body}" if heading else body


class _TokenCounter:
    """Counts the embedder's tokens in any character range of one text, after a single tokenisation."""

    def __init__(self, spans: list[tuple[int, int]]) -> None:
        self.starts = [s for s, _ in spans]
        self.ends = [e for _, e in spans]

    def count(self, start: int, end: int) -> int:
        return max(0, bisect.bisect_right(self.ends, end) - bisect.bisect_left(self.starts, start))

    def cut(self, start: int, end: int, limit: int) -> list[tuple[int, int]]:
        """Split [start, end) into pieces of at most ``limit`` tokens, at token boundaries."""
        first = bisect.bisect_left(self.starts, start)
        last = bisect.bisect_right(self.ends, end)
        pieces = []
        for i in range(first, last, limit):
            j = min(i + limit, last)
            a = start if i == first else self.starts[i]
            b = end if j == last else self.starts[j]
            pieces.append((a, b))
        return pieces or [(start, end)]


def _sections(text: str) -> list[tuple[list[str], int, int]]:
    """(heading stack, body start, body end) for each Markdown section, fenced code left alone."""
    sections: list[tuple[list[str], int, int]] = []
    stack: list[tuple[int, str]] = []
    body_start = 0
    in_fence = False
    pos = 0
    for line in text.split("\n"):
        line_end = pos + len(line)
        if FENCE.match(line.lstrip()):
            in_fence = not in_fence
        match = None if in_fence else HEADING.match(line)
        if match:
            sections.append(([h for _, h in stack], body_start, pos))
            level = len(match.group(1))
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, match.group(2).strip()))
            body_start = min(line_end + 1, len(text))
        pos = line_end + 1
    sections.append(([h for _, h in stack], body_start, len(text)))
    return sections


def _blocks(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Paragraph spans (separated by blank lines), trimmed of surrounding whitespace."""
    spans = []
    for match in re.finditer(r"\S(?:.*?\S)?(?=\n[ \t]*\n|\s*\Z)", text[start:end], flags=re.DOTALL):
        if has_text(match.group()):  # a paragraph of zero-width characters alone is not a chunk
            spans.append((start + match.start(), start + match.end()))
    return spans


def _sentences(text: str, start: int, end: int) -> list[tuple[int, int]]:
    spans, cursor = [], start
    for match in SENTENCE_END.finditer(text, start, end):
        spans.append((cursor, match.start()))
        cursor = match.end()
    if cursor < end:
        spans.append((cursor, end))
    return spans


def chunk_text(
    text: str, title: str, token_spans: Callable[[str], list[tuple[int, int]]], max_tokens: int
) -> list[Chunk]:
    """Chunks of ``text`` of at most ``max_tokens`` tokens each, heading path included."""
    counter = _TokenCounter(token_spans(text))
    chunks: list[Chunk] = []
    heading_cost: dict[str, int] = {}
    for stack, sec_start, sec_end in _sections(text):
        path = stack if stack and stack[0] == title else [title, *stack]
        heading = " > ".join(h for h in path if h)
        if heading not in heading_cost:
            heading_cost[heading] = len(token_spans(heading)) + 1
        budget = max(MIN_BODY_TOKENS, max_tokens - heading_cost[heading])
        pieces: list[tuple[int, int, int]] = []  # start, end, tokens
        for b_start, b_end in _blocks(text, sec_start, sec_end):
            n = counter.count(b_start, b_end)
            if n <= budget:
                pieces.append((b_start, b_end, n))
                continue
            for s_start, s_end in _sentences(text, b_start, b_end):
                for a, b in counter.cut(s_start, s_end, budget):
                    pieces.append((a, b, counter.count(a, b)))
        group: list[tuple[int, int, int]] = []
        for piece in pieces:
            if group and counter.count(group[0][0], piece[1]) > budget:
                chunks.append(_make(len(chunks), group, heading, counter))
                group = []
            group.append(piece)
        if group:
            chunks.append(_make(len(chunks), group, heading, counter))
    return chunks


def _make(ordinal: int, group: list[tuple[int, int, int]], heading: str, counter: _TokenCounter) -> Chunk:
    start, end = group[0][0], group[-1][1]
    return Chunk(ordinal, start, end, heading, counter.count(start, end))
