"""What ``/v1/chat/completions`` honours and refuses, through the official ``openai`` client on a real server.

A recording generator shows exactly what reached the model (the system text, the earlier turns, the decoding
settings) and holds a stream open to prove chunks leave as they are written; the packaged SmolLM2 then shows
``max_tokens``, ``stop`` and ``seed`` on real decoding.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from ragtune.answer.prompt import CLOSED_BOOK_SYSTEM, RAG_SYSTEM
from ragtune.generation.base import Decoding, Generation, Message, Piece
from ragtune.project import Project
from tests.server.conftest import ADMIN_TOKEN, PRICING, Live

QUESTION = "What is the Pro plan's rate limit?"


class Recorder:
    """Answers "The limit is 600 [1] [7]." piece by piece and keeps what it was asked; ``hold`` stops it after
    the first piece until released."""

    name = "recorder"
    context_window = 8192

    def __init__(self) -> None:
        self.asked: list[tuple[list[Message], Decoding | None]] = []
        self.hold: threading.Event | None = None

    def identity(self) -> dict[str, str]:
        return {"backend": "recorder", "model": "recorder"}

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def count_prompt(self, messages: Sequence[Message]) -> int:
        return sum(self.count_tokens(m["content"]) + 4 for m in messages)

    def generate(
        self, batch: Sequence[Sequence[Message]], *, max_new_tokens: int | None = None, progress: bool = False
    ) -> list[Generation]:
        return [Generation("The limit is 600 [1].", self.count_prompt(m), 6, "stop", 1.0) for m in batch]

    def stream(self, messages: Sequence[Message], decoding: Decoding | None = None) -> Iterator[Piece]:
        self.asked.append((list(messages), decoding))
        pieces = ["The", " limit", " is", " 600", " [", "1]", " [7", "]."]
        for i, piece in enumerate(pieces):
            yield piece
            if i == 0 and self.hold is not None:
                assert self.hold.wait(30), "the test never released the stream"
        yield Generation("The limit is 600 [1] [7].", self.count_prompt(messages), len(pieces), "stop", 1.0)


@pytest.fixture
def recorded(project: Project, serve: Callable[..., Live]) -> Iterator[tuple[Live, Recorder]]:
    recorder = Recorder()
    project.generator = recorder
    live = serve(project, {"RAGTUNE_API_TOKEN": ADMIN_TOKEN})
    with live.client(ADMIN_TOKEN) as c:
        doc = {"doc_id": "handbook/pricing.md", "title": "Pricing", "text": PRICING}
        assert c.post("/ingest", json={"documents": [doc]}).json()["ok"]
    yield live, recorder


def client(live: Live) -> OpenAI:
    return OpenAI(base_url=f"{live.url}/v1", api_key=ADMIN_TOKEN, max_retries=0)


def test_system_prompt_history_and_decoding_reach_the_model(recorded: tuple[Live, Recorder]) -> None:
    live, recorder = recorded
    reply = client(live).chat.completions.create(
        model="ragtune-rag",
        messages=[
            {"role": "system", "content": "Answer in a friendly tone."},
            {"role": "user", "content": "Tell me about the Pro plan's API rate limit."},
            {"role": "assistant", "content": "It is generous [3]."},
            {"role": "user", "content": "How many per minute?"},
        ],
        max_tokens=12,
        temperature=0.7,
        seed=5,
        stop=["END"],
    )
    messages, decoding = recorder.asked[-1]
    assert messages[0] == {"role": "system", "content": f"{RAG_SYSTEM}\n\nAnswer in a friendly tone."}
    # the earlier turns, in order; the earlier answer's marker pointed into sources this prompt does not hold
    assert messages[1] == {"role": "user", "content": "Tell me about the Pro plan's API rate limit."}
    assert messages[2] == {"role": "assistant", "content": "It is generous ."}
    assert messages[3]["role"] == "user" and messages[3]["content"].endswith("Question: How many per minute?")
    assert decoding == Decoding(max_new_tokens=12, temperature=0.7, seed=5, stop=("END",))
    assert "The Pro plan's API rate limit is 600" in messages[3]["content"]
    # the invented [7] was struck, in the reply and in the stream alike
    assert reply.choices[0].message.content == "The limit is 600 [1]."
    trace = live.client(ADMIN_TOKEN).get(f"/traces/{(reply.model_extra or {})['trace_id']}").json()
    assert trace["body"]["decoding"] == {"max_new_tokens": 12, "temperature": 0.7, "seed": 5, "stop": ["END"]}
    assert trace["body"]["history_turns"] == 2 and trace["body"]["system"] == "Answer in a friendly tone."
    # the follow-up alone names no plan: retrieval searched it after the user turn before it
    assert trace["body"]["search_query"] == "Tell me about the Pro plan's API rate limit.\nHow many per minute?"


def test_closed_book_takes_the_system_text_after_its_rules(recorded: tuple[Live, Recorder]) -> None:
    live, recorder = recorded
    client(live).chat.completions.create(
        model="ragtune-closed-book",
        messages=[{"role": "developer", "content": "Be brief."}, {"role": "user", "content": QUESTION}],
    )
    messages, decoding = recorder.asked[-1]
    assert messages == [
        {"role": "system", "content": f"{CLOSED_BOOK_SYSTEM}\n\nBe brief."},
        {"role": "user", "content": QUESTION},
    ]
    assert decoding == Decoding()


def test_chunks_leave_as_they_are_written(recorded: tuple[Live, Recorder]) -> None:
    live, recorder = recorded
    recorder.hold = threading.Event()
    body = {"model": "ragtune-rag", "messages": [{"role": "user", "content": QUESTION}], "stream": True}
    with live.client(ADMIN_TOKEN) as c, c.stream("POST", "/v1/chat/completions", json=body) as reply:
        lines = reply.iter_lines()
        first = json.loads(next(line for line in lines if line.startswith("data: "))[6:])
        # the model is still held after its first piece, and the client already has it
        assert first["choices"][0]["delta"] == {"role": "assistant", "content": "The"}
        assert not recorder.hold.is_set()
        recorder.hold.set()
        rest = [json.loads(line[6:]) for line in lines if line.startswith("data: ") and line != "data: [DONE]"]
    pieces = [c["choices"][0]["delta"].get("content", "") for c in rest if c["choices"]]
    assert "".join(["The", *pieces]) == "The limit is 600 [1]."  # [7] struck as soon as its bracket closed
    assert len(pieces) >= 5
    last = rest[-1]
    assert last["choices"][0]["finish_reason"] == "stop" and last["invalid_citations"] == [7]
    assert last["answer"] == "The limit is 600 [1]." and last["citations"][0]["doc_id"] == "handbook/pricing.md"


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"n": 2}, "n"),
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}, "tools"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"logprobs": True}, "logprobs"),
        ({"top_p": 0.5}, "top_p"),
        ({"frequency_penalty": 0.5}, "frequency_penalty"),
        ({"extra_body": {"mirostat": 2}}, "mirostat"),
    ],
)
def test_what_is_not_honoured_is_a_400_naming_it(
    recorded: tuple[Live, Recorder], extra: dict[str, Any], param: str
) -> None:
    live, recorder = recorded
    with pytest.raises(openai.BadRequestError) as refused:
        client(live).chat.completions.create(
            model="ragtune-rag", messages=[{"role": "user", "content": QUESTION}], **extra
        )
    error = refused.value.body
    assert isinstance(error, dict) and error["type"] == "invalid_request_error" and error["param"] == param
    assert param in error["message"] and "\n" not in error["message"]
    assert recorder.asked == []  # refused before anything was answered


def test_neutral_values_of_unsupported_options_are_accepted(recorded: tuple[Live, Recorder]) -> None:
    live, _ = recorded
    reply = client(live).chat.completions.create(
        model="ragtune-rag",
        messages=[{"role": "user", "content": QUESTION}],
        n=1,
        top_p=1,
        presence_penalty=0,
        response_format={"type": "text"},
        user="someone",
    )
    assert reply.choices[0].message.content == "The limit is 600 [1]."


@pytest.mark.parametrize(
    ("messages", "param"),
    [
        ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x/y.png"}}]}], "messages.0"),
        ([{"role": "user", "content": QUESTION}, {"role": "tool", "content": "42", "tool_call_id": "a"}], "messages.1"),
        ([{"role": "user", "content": QUESTION}, {"role": "assistant", "content": "Ask me."}], "messages"),
    ],
)
def test_messages_it_cannot_read_are_refused(
    recorded: tuple[Live, Recorder], messages: list[dict[str, Any]], param: str
) -> None:
    live, _ = recorded
    with pytest.raises(openai.BadRequestError) as refused:
        client(live).chat.completions.create(model="ragtune-rag", messages=messages)  # type: ignore[arg-type]
    error = refused.value.body
    assert isinstance(error, dict) and str(error["param"]).startswith(param), error


def test_error_types_are_openais(recorded: tuple[Live, Recorder]) -> None:
    live, _ = recorded
    with pytest.raises(openai.AuthenticationError) as denied:
        OpenAI(base_url=f"{live.url}/v1", api_key="wrong", max_retries=0).models.list()
    assert isinstance(denied.value.body, dict) and denied.value.body["type"] == "invalid_request_error"
    with pytest.raises(openai.NotFoundError) as missing:
        client(live).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": QUESTION}])
    body = missing.value.body
    assert isinstance(body, dict) and (body["type"], body["code"], body["param"]) == (
        "invalid_request_error",
        "model_not_found",
        "model",
    )
    reply = httpx.post(f"{live.url}/v1/nowhere", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert reply.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.slow
def test_max_tokens_stop_and_seed_on_the_packaged_model(
    project: Project, generator: Any, serve: Callable[..., Live]
) -> None:
    project.generator = generator
    live = serve(project, {"RAGTUNE_API_TOKEN": ADMIN_TOKEN})
    ai = client(live)
    ask = [{"role": "user", "content": "Name three colours of the rainbow."}]
    full = ai.chat.completions.create(model="ragtune-closed-book", messages=ask)  # type: ignore[arg-type]
    text = full.choices[0].message.content or ""
    assert full.usage is not None and full.usage.completion_tokens > 4, text
    short = ai.chat.completions.create(model="ragtune-closed-book", messages=ask, max_tokens=3)  # type: ignore[arg-type]
    assert short.usage is not None and short.usage.completion_tokens == 3
    assert short.choices[0].finish_reason == "length" and text.startswith(short.choices[0].message.content or "?")
    word = text.split()[2]
    stopped = ai.chat.completions.create(model="ragtune-closed-book", messages=ask, stop=[word])  # type: ignore[arg-type]
    assert stopped.choices[0].finish_reason == "stop"
    assert (stopped.choices[0].message.content or "") == text[: text.index(word)].strip()
    sampled = [
        ai.chat.completions.create(model="ragtune-closed-book", messages=ask, temperature=1.5, seed=s)  # type: ignore[arg-type]
        for s in (1, 1, 2, 3, 4)
    ]
    answers = [r.choices[0].message.content for r in sampled]
    assert answers[0] == answers[1], "the same seed gives the same sample"
    assert len(set(answers)) > 1, "sampling at temperature 1.5 with other seeds gives other answers"
