from __future__ import annotations

from ragtune.answer.citations import attribute, check_citations, cite
from ragtune.answer.context import Source
from ragtune.retrieval.search import Hit


def sources() -> list[Source]:
    texts = [
        ("pricing.md", "The Pro plan's API rate limit is 600 requests per minute."),
        ("support.md", "Support answers tickets from 8:00 to 18:00 CET on weekdays."),
    ]
    return [
        Source(n, Hit(doc, 3, f"{doc}@3#{n}", 1.0, text, title=doc, start=10 * n, end=10 * n + len(text)), 10)
        for n, (doc, text) in enumerate(texts, start=1)
    ]


def test_valid_citations_map_to_doc_version_chunk_and_span() -> None:
    checked = check_citations("The limit is 600 requests per minute [1]. Support opens at 8:00 [2][1].", sources())
    assert checked.invalid == []
    assert [(c.n, c.doc_id, c.version, c.chunk_id, c.start, c.end, c.mode) for c in checked.citations] == [
        (1, "pricing.md", 3, "pricing.md@3#1", 10, 10 + 57, "model"),
        (2, "support.md", 3, "support.md@3#2", 20, 20 + 59, "model"),
    ]


def test_invented_citation_numbers_are_removed_and_reported() -> None:
    checked = check_citations("The limit is 600 [7]. Support opens at 8:00 [2, 9].", sources())
    assert checked.invalid == [7, 9]
    assert checked.answer == "The limit is 600. Support opens at 8:00 [2]."
    assert [c.n for c in checked.citations] == [2]


def test_attribution_when_the_model_cites_nothing() -> None:
    checked = cite("The Pro plan allows 600 requests per minute. Blue is nice.", sources())
    assert checked.answer == "The Pro plan allows 600 requests per minute [1]. Blue is nice."
    assert [(c.n, c.mode) for c in checked.citations] == [(1, "attributed")]


def test_no_attribution_without_support_or_when_disabled() -> None:
    assert attribute("The logo is a red circle.", sources()).citations == []
    checked = cite("The Pro plan allows 600 requests per minute.", sources(), attribute_missing=False)
    assert checked.citations == [] and "[" not in checked.answer


def test_an_invented_citation_is_not_papered_over_by_attribution() -> None:
    checked = cite("The Pro plan allows 600 requests per minute [4].", sources())
    assert checked.invalid == [4] and checked.citations == []
