from __future__ import annotations

from ragtune.corpus.chunking import chunk_text, index_text


def test_chunks_respect_the_limit_and_keep_headings(embedder) -> None:  # type: ignore[no-untyped-def]
    long_section = " ".join(f"Sentence number {i} talks about invoices and refunds." for i in range(200))
    text = (
        "# Billing\n\nIntro paragraph.\n\n## Invoices\n\n" + long_section + "\n\n## Refunds\n\n"
        "Refunds take five days.\n\n```\n# not a heading\n```\n"
    )
    chunks = chunk_text(text, "Billing", embedder.token_spans, 64)
    assert len(chunks) > 5
    for c in chunks:
        full = index_text(c.heading, c.body(text))
        assert len(embedder.token_spans(full)) <= 64 + 1, (c, full)
        assert text[c.start : c.end] == c.body(text) and c.body(text).strip() == c.body(text)
    headings = [c.heading for c in chunks]
    assert headings[0] == "Billing"
    assert set(headings[1:-1]) == {"Billing > Invoices"}
    assert headings[-1] == "Billing > Refunds"
    assert "# not a heading" in chunks[-1].body(text)  # fenced code is not a section break
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))


def test_spans_cover_every_word_once(embedder) -> None:  # type: ignore[no-untyped-def]
    text = "Title line\n\n" + "\n\n".join(f"Para {i} " + "word " * 50 for i in range(12))
    chunks = chunk_text(text, "T", embedder.token_spans, 80)
    covered = " ".join(text[c.start : c.end] for c in chunks).split()
    assert covered == text.split()


def test_a_giant_word_is_cut_at_token_boundaries(embedder) -> None:  # type: ignore[no-untyped-def]
    text = "x" * 5000
    chunks = chunk_text(text, "", embedder.token_spans, 64)
    assert "".join(c.body(text) for c in chunks) == text
    assert all(c.n_tokens <= 64 for c in chunks)
