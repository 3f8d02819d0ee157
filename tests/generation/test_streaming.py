"""Streaming: what a stream may send before the answer is whole, and that a stream writes the answer a batch does."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ragtune.answer.citations import StreamedCitations, check_citations
from ragtune.answer.context import Source
from ragtune.generation.base import Decoding, Generation, TextStream, stream_generation
from ragtune.retrieval.search import Hit


def feed_all(stream: TextStream, pieces: list[str]) -> str:
    decoded, sent = "", ""
    for piece in pieces:
        decoded += piece
        out, stopped = stream.update(decoded)
        sent += out
        if stopped:
            break
    return sent + stream.finish()


def test_blanks_half_characters_and_stop_prefixes_wait_for_what_follows() -> None:
    s = TextStream(("</end>",))
    assert s.update("  Hello ") == ("Hello", False)  # leading blanks dropped, the trailing one held
    assert s.update("  Hello wor") == (" wor", False)
    assert s.update("  Hello world</e") == ("ld", False)  # "</e" may begin the stop string
    assert s.update("  Hello world</x") == ("</x", False)  # it did not
    assert s.update("  Hello world</x caf\ufffd") == (" caf", False)  # half of "é"
    assert s.update("  Hello world</x café</end> more") == ("é", True)
    assert s.text == "Hello world</x café" and s.finish() == ""


def test_a_text_that_no_longer_extends_what_was_sent_waits_for_the_end() -> None:
    s = TextStream()
    assert s.update("Hello there") == ("Hello there", False)
    assert s.update("Help") == ("", False)  # a retokenized text changed its past: nothing more is sent
    assert s.finish() == ""


@given(st.lists(st.text(alphabet="ab </>\n", max_size=6), max_size=8), st.sampled_from(["", "</>", "b<"]))
def test_pieces_add_up_to_the_text_cut_at_its_stop(pieces: list[str], stop: str) -> None:
    s = TextStream((stop,) if stop else ())
    sent = feed_all(s, pieces)
    whole = "".join(pieces).lstrip()
    if stop and stop in whole:
        whole = whole[: whole.index(stop)]
    assert sent == whole.rstrip() == s.text


def _sources(n: int) -> list[Source]:
    return [Source(i, Hit(f"d{i}", 1, f"d{i}@1#0", 0.0, f"text {i}", f"T{i}"), 2) for i in range(1, n + 1)]


@given(st.text(alphabet="ab [12],;.7", max_size=30), st.lists(st.integers(1, 5), max_size=6))
def test_streamed_markers_are_checked_as_the_whole_answer_is(text: str, cuts: list[int]) -> None:
    sources = _sources(2)
    text = text.strip()
    markers = StreamedCitations(s.n for s in sources)
    pieces, rest = [], text
    for cut in cuts:
        pieces.append(rest[:cut])
        rest = rest[cut:]
    pieces.append(rest)
    streamed = "".join(markers.feed(p) for p in pieces) + markers.flush()
    assert streamed.strip() == check_citations(text, sources).answer.strip()


class _Batch:
    name = "batch-only"

    def generate(self, batch: Any, *, max_new_tokens: int | None = None, progress: bool = False) -> list[Generation]:
        return [Generation(" One two. Three", 5, 3, "stop", 1.0) for _ in batch]


def test_a_generator_that_cannot_stream_sends_its_answer_whole() -> None:
    items = list(stream_generation(_Batch(), [], Decoding(stop=("Three",))))  # type: ignore[arg-type]
    assert items[0] == "One two." and isinstance(items[1], Generation) and items[1].text == "One two."
    with pytest.raises(Exception, match="cannot take temperature"):
        list(stream_generation(_Batch(), [], Decoding(temperature=0.5)))  # type: ignore[arg-type]


MESSAGES = [
    {"role": "system", "content": "Answer in one short sentence."},
    {"role": "user", "content": "Why is the sky blue?"},
]


def _streamed(gen: Any, decoding: Decoding | None = None) -> tuple[list[str], Generation]:
    items = list(gen.stream(MESSAGES, decoding))
    assert isinstance(items[-1], Generation) and all(isinstance(i, str) for i in items[:-1])
    return items[:-1], items[-1]


@pytest.mark.slow
def test_transformers_streams_the_answer_its_batch_writes(generator: Any) -> None:
    pieces, final = _streamed(generator)
    (batched,) = generator.generate([MESSAGES])
    assert len(pieces) > 3 and "".join(pieces) == final.text == batched.text
    assert (final.tokens_in, final.tokens_out, final.finish_reason) == (
        batched.tokens_in,
        batched.tokens_out,
        batched.finish_reason,
    )
    _, short = _streamed(generator, Decoding(max_new_tokens=4))
    assert short.tokens_out == 4 and short.finish_reason == "length" and batched.text.startswith(short.text)


@pytest.mark.slow
def test_llama_cpp_streams_what_its_chat_completion_writes() -> None:
    from ragtune.config import GeneratorSection
    from ragtune.generation.base import make_generator

    gen = make_generator(GeneratorSection(backend="llama-cpp", max_new_tokens=48))
    pieces, final = _streamed(gen)
    (whole,) = gen.generate([MESSAGES])  # llama-cpp-python's own create_chat_completion
    assert len(pieces) > 3 and "".join(pieces) == final.text == whole.text
    # the prompt is the one llama-cpp-python's chat completion tokenizes, token for token
    assert final.tokens_in == whole.tokens_in == gen.count_prompt(MESSAGES)
    assert final.tokens_out == whole.tokens_out
    same = [_streamed(gen, Decoding(temperature=1.2, seed=7))[1].text for _ in range(2)]
    assert same[0] == same[1]
