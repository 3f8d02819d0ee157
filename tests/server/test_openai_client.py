"""End to end with the official ``openai`` client against a real server answering with the packaged SmolLM2."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest
from openai import OpenAI

from ragtune.project import Project
from tests.server.conftest import ADMIN_TOKEN, FINANCE_TOKEN, PUBLIC_TOKEN, REFUNDS, Live, configure

pytestmark = pytest.mark.slow

HANDBOOK = [
    {
        "doc_id": "handbook/pricing.md",
        "title": "Pricing",
        "text": "# Pricing\n\nThe Starter plan costs 12 euros a month. The Pro plan costs 49 euros a month.\n\n"
        "## Rate limits\n\nThe Pro plan's API rate limit is 600 requests per minute. The Starter plan's API rate "
        "limit is 60 requests per minute.",
    },
    {
        "doc_id": "handbook/support.md",
        "title": "Support",
        "text": "# Support\n\nSupport answers tickets on weekdays. Pro customers get a first response within 4 hours.",
    },
    {
        "doc_id": "handbook/security.md",
        "title": "Security",
        "text": "# Security\n\nAll data is encrypted at rest with AES-256. Passwords must have at least 12 characters.",
    },
    {"doc_id": "internal/refund-approval.txt", "title": "Refund approval", "text": REFUNDS, "groups": ["finance"]},
]
CALLERS = """
[server.callers.finance]
token_env = "TEST_FINANCE_TOKEN"
groups = ["finance"]

[server.callers.public]
token_env = "TEST_PUBLIC_TOKEN"
"""
ENV = {"RAGTUNE_API_TOKEN": ADMIN_TOKEN, "TEST_FINANCE_TOKEN": FINANCE_TOKEN, "TEST_PUBLIC_TOKEN": PUBLIC_TOKEN}
QUESTION = "What is the Pro plan's rate limit?"


@pytest.fixture
def handbook(project: Project, generator: Any, serve: Callable[..., Live]) -> Iterator[Live]:
    """The session's real SmolLM2 (48 new tokens at most) behind a real server, over a small handbook."""
    project.generator = generator
    live = serve(configure(project, CALLERS), ENV, warm_up=True)
    with live.client(ADMIN_TOKEN) as c:
        assert c.post("/ingest", json={"documents": HANDBOOK}).json()["ok"]
    yield live


def client(live: Live, token: str) -> OpenAI:
    return OpenAI(base_url=f"{live.url}/v1", api_key=token, max_retries=0)


def test_models_and_a_cited_answer(handbook: Live) -> None:
    ai = client(handbook, PUBLIC_TOKEN)
    assert sorted(m.id for m in ai.models.list()) == ["ragtune-closed-book", "ragtune-embedder", "ragtune-rag"]
    one = ai.models.retrieve("ragtune-rag")
    assert (one.id, one.object, one.owned_by) == ("ragtune-rag", "model", "ragtune")
    with pytest.raises(openai.NotFoundError) as missing:
        ai.models.retrieve("ragtune-adapter:v9")
    assert missing.value.code == "model_not_found"
    reply = ai.chat.completions.create(model="ragtune-rag", messages=[{"role": "user", "content": QUESTION}])
    choice = reply.choices[0]
    assert reply.object == "chat.completion" and reply.model == "ragtune-rag" and reply.id.startswith("chatcmpl-")
    assert choice.message.role == "assistant" and choice.finish_reason in ("stop", "length")
    text = choice.message.content or ""
    assert "600" in text and "[1]" in text, text
    extra = reply.model_extra or {}
    cited = {c["n"]: c["doc_id"] for c in extra["citations"]}
    assert cited.get(1) == "handbook/pricing.md", extra["citations"]
    assert reply.usage is not None and reply.usage.completion_tokens > 0
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    with handbook.client(PUBLIC_TOKEN) as c:
        trace = c.get(f"/traces/{extra['trace_id']}").json()
    assert trace["caller"] == "public" and trace["answer"] == text


def test_streaming_gives_the_same_answer(handbook: Live) -> None:
    ai = client(handbook, PUBLIC_TOKEN)
    messages: Any = [{"role": "system", "content": "Be precise."}, {"role": "user", "content": QUESTION}]
    plain = ai.chat.completions.create(model="ragtune-rag", messages=messages)
    stream = ai.chat.completions.create(
        model="ragtune-rag", messages=messages, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) > 3, "the answer comes in pieces as it is decoded, not in one chunk"
    finished = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finished) == 1 and finished[0].choices[0].finish_reason in ("stop", "length")
    extra = finished[0].model_extra or {}
    content = plain.choices[0].message.content or ""
    assert extra["answer"] == content and "600" in content
    # the pieces are the model's text; markers ragtune attributed once it had all of it are only in `answer`
    attributed = {f" [{c['n']}]" for c in extra["citations"] if c["mode"] == "attributed"}
    assert "".join(pieces) == functools.reduce(lambda text, m: text.replace(m, ""), attributed, content)
    assert extra["citations"][0]["doc_id"] == "handbook/pricing.md"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_client_errors_and_access_groups(handbook: Live) -> None:
    with pytest.raises(openai.AuthenticationError):
        client(handbook, "wrong").models.list()
    with pytest.raises(openai.NotFoundError) as missing:
        client(handbook, PUBLIC_TOKEN).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": QUESTION}]
        )
    assert missing.value.code == "model_not_found"
    question = [{"role": "user", "content": "How much can a support lead refund without approval?"}]

    def ask(token: str) -> tuple[str, list[str]]:
        reply = client(handbook, token).chat.completions.create(model="ragtune-rag", messages=question)  # type: ignore[arg-type]
        return reply.choices[0].message.content or "", [c["doc_id"] for c in (reply.model_extra or {})["citations"]]

    text, cited = ask(FINANCE_TOKEN)
    assert "250" in text and "internal/refund-approval.txt" in cited, (text, cited)
    text, cited = ask(PUBLIC_TOKEN)
    assert "250" not in text and "internal/refund-approval.txt" not in cited, (text, cited)

    # streamed, the same: the pieces and the final chunk hold nothing from the finance-only document
    chunks = list(client(handbook, PUBLIC_TOKEN).chat.completions.create(model="ragtune-rag", messages=question, stream=True))  # type: ignore[arg-type]  # fmt: skip
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    final = next(c.model_extra or {} for c in chunks if c.choices and c.choices[0].finish_reason)
    assert "250" not in streamed and "250" not in final["answer"], streamed
    assert "internal/refund-approval.txt" not in [c["doc_id"] for c in final["citations"]]


def test_embeddings_serve_another_project(handbook: Live, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """ragtune's /v1/embeddings is a real OpenAI-compatible peer for the 'openai' embedder backend: a second
    project embeds through it, ingests and searches, and the vectors match the served project's own MiniLM."""
    from ragtune.corpus.ingest import ingest_paths
    from ragtune.corpus.loaders import Defaults
    from ragtune.project import init_project
    from ragtune.retrieval.search import Retriever

    ai = client(handbook, PUBLIC_TOKEN)
    reply = ai.embeddings.create(model="ragtune-embedder", input=["Pro plan rate limit", "office hours"])
    assert [d.index for d in reply.data] == [0, 1] and len(reply.data[0].embedding) == 384
    with pytest.raises(openai.NotFoundError):
        ai.embeddings.create(model="text-embedding-3-small", input="x")

    monkeypatch.setenv("SECOND_KEY", PUBLIC_TOKEN)
    root, _ = init_project(tmp_path / "second")
    (root / "ragtune.toml").write_text(
        f'[embedder]\nbackend = "openai"\nbase_url = "{handbook.url}/v1"\nmodel = "ragtune-embedder"\n'
        'api_key_env = "SECOND_KEY"\n'
    )
    (root / "docs").mkdir()
    (root / "docs" / "limits.md").write_text("# Limits\n\nThe Pro plan allows 600 requests per minute.\n")
    (root / "docs" / "hours.md").write_text("# Hours\n\nSupport answers from 8:00 to 18:00 on weekdays.\n")
    second = Project.open(root)
    assert second.embedder.dim == 384
    ingest_paths(second, [root / "docs"], Defaults())
    hits = (
        Retriever(second.store, second.index, second.embedder, second.config.retrieval)
        .search("how many requests per minute on Pro", 2, mode="dense")
        .hits
    )
    assert hits[0].doc_id == "docs/limits.md"
    local = handbook.project.embedder.encode(["Pro plan rate limit"])[0]
    assert abs(float(local @ second.embedder.encode(["Pro plan rate limit"])[0]) - 1.0) < 1e-5
    second.close()
