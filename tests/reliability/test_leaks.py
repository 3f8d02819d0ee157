"""A randomized leak test: five callers with different groups hit search, ask, chat, traces, the model list and a
served fine-tune over HTTP, and search and ask through the CLI; a generator that repeats its whole prompt makes
any restricted text that reached a prompt visible in the answer. No caller may ever see a marker of a document
outside its groups, and the default training data set holds none."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner

from ragtune.corpus.ingest import ingest_paths
from ragtune.corpus.loaders import Defaults
from ragtune.generation import base
from ragtune.generation.base import Generation, Message
from ragtune.plugins import load_backends
from ragtune.project import Project
from ragtune.tuning import build_dataset, load_dataset
from ragtune.tuning.registry import promote, register_version
from tests.conftest import write
from tests.reliability.conftest import record
from tests.server.conftest import (
    EchoGenerator,
    Live,
    configure,
    serve,  # noqa: F401  (fixture)
)
from tests.tuning.test_registry import _adapter, tiny_base  # noqa: F401  (fixture)

pytest.importorskip("peft")

# (folder, groups, markers): every document carries one made-up word that appears nowhere else
DOCS: list[tuple[str, tuple[str, ...], str]] = [
    ("public/a.md", (), "zorbpub"),
    ("public/b.md", (), "quaxpub"),
    ("finance/a.md", ("finance",), "zorbfin"),
    ("finance/b.md", ("finance",), "quaxfin"),
    ("hr/a.md", ("hr",), "zorbhr"),
    ("hr/b.md", ("hr",), "quaxhr"),
    ("board/a.md", ("finance", "hr"), "zorbboard"),
]
CALLERS: dict[str, tuple[str, tuple[str, ...]]] = {  # name -> (token, groups)
    "admin": ("admin-token-0123456789", ()),
    "finance": ("finance-token-0123456789", ("finance",)),
    "hr": ("hr-token-0123456789", ("hr",)),
    "public": ("public-token-0123456789", ()),
    "both": ("both-token-0123456789", ("finance", "hr")),
}
TOML = """
[server]
groups = []
[server.callers.finance]
token_env = "T_FINANCE"
groups = ["finance"]
[server.callers.hr]
token_env = "T_HR"
groups = ["hr"]
[server.callers.public]
token_env = "T_PUBLIC"
[server.callers.both]
token_env = "T_BOTH"
groups = ["finance", "hr"]
"""
ENV = {
    "RAGTUNE_API_TOKEN": CALLERS["admin"][0],
    **{f"T_{name.upper()}": token for name, (token, _) in CALLERS.items() if name != "admin"},
}


class Parrot(EchoGenerator):
    """Answers with its whole prompt: whatever text reached the model is in the answer."""

    name = "parrot"

    def identity(self) -> dict[str, str]:
        return {"backend": "parrot", "model": "parrot"}

    def generate(
        self, batch: Sequence[Sequence[Message]], *, max_new_tokens: int | None = None, progress: bool = False
    ) -> list[Generation]:
        out = []
        for messages in batch:
            text = " ".join(m["content"] for m in messages)
            out.append(Generation(text, self.count_prompt(messages), self.count_tokens(text), "stop", 1.0))
        return out


def visible(groups: tuple[str, ...], caller_groups: tuple[str, ...]) -> bool:
    return not groups or bool(set(groups) & set(caller_groups))


def forbidden(caller_groups: tuple[str, ...]) -> list[str]:
    return [marker for _, groups, marker in DOCS if not visible(groups, caller_groups)]


def leaked(text: str, caller_groups: tuple[str, ...]) -> list[str]:
    low = text.lower()
    return [m for m in forbidden(caller_groups) if m in low]


@pytest.fixture
def world(project: Project, docs: Path, tiny_base: Path, monkeypatch: pytest.MonkeyPatch) -> Project:  # noqa: F811
    for rel, _, marker in DOCS:
        write(docs / rel, f"# {rel}\n\nThe {marker} figure for this quarter is written here, with {marker} notes.\n")
    for folder in ("public", "finance", "hr", "board"):
        groups = next(g for rel, g, _ in DOCS if rel.startswith(folder))
        assert ingest_paths(project, [docs / folder], Defaults(groups=groups)).ok
    project.generator = Parrot()
    # the CLI opens its own project: it builds the packaged model's backend, which here is the parrot too (the
    # built-in backends load first, so that their own registration cannot replace it later)
    load_backends()
    monkeypatch.setitem(base._REGISTRY, "smollm2", lambda section: Parrot())
    return project


def test_no_caller_sees_what_its_groups_hide(world: Project, tiny_base: Path, serve: Callable[..., Live]) -> None:  # noqa: F811
    rng = random.Random(12)
    words = [m for _, _, m in DOCS] + ["figure", "quarter", "notes", "written"]
    tried: dict[str, int] = {}
    failures: list[str] = []
    restricted_seen: list[str] = []  # the control: restricted text does reach the callers allowed to read it

    def check(category: str, caller: str, text: str, query: str = "") -> None:
        tried[category] = tried.get(category, 0) + 1
        # the parrot repeats the question too: what the caller itself sent is not a leak
        body = text.replace(query, " ") if query else text
        found = leaked(body, CALLERS[caller][1])
        restricted_seen.extend(m for _, g, m in DOCS if g and visible(g, CALLERS[caller][1]) and m in body.lower())
        if found:
            failures.append(f"{category} as {caller}: {found}")

    live = serve(configure(world, TOML), ENV)
    traces: list[tuple[str, str, str]] = []  # (owner, trace id, question)
    for _ in range(120):
        caller = rng.choice(list(CALLERS))
        token = CALLERS[caller][0]
        query = " ".join(rng.sample(words, 3))
        kind = rng.choice(["search", "ask", "chat"])
        with live.client(token) as http:
            if kind == "search":
                reply = http.post("/search", json={"query": query, "k": 10})
            elif kind == "ask":
                reply = http.post("/ask", json={"question": query})
            else:
                reply = http.post("/v1/chat/completions", json={"model": "ragtune-rag",
                                  "messages": [{"role": "user", "content": query}]})  # fmt: skip
            assert reply.status_code == 200, reply.text
            check(kind, caller, reply.text, query)
            if kind == "ask":
                traces.append((caller, reply.json()["trace_id"], query))
    for _ in range(60):
        caller = rng.choice(list(CALLERS))
        owner, trace_id, question = rng.choice(traces)
        ref = trace_id if rng.random() < 0.5 else trace_id[: rng.choice([6, 8, 12])]
        with live.client(CALLERS[caller][0]) as http:
            reply = http.get(f"/traces/{ref}")
        if caller != owner and caller != "admin":
            assert reply.status_code == 404, reply.text
        # the trace repeats its owner's question; the owner sent it, anyone else must get nothing of it
        check("traces", caller, reply.text, question)

    # training data: built from every caller's answers, by default it keeps only public sources
    build_dataset(world, "all-traces", traces=True, eval_cases=[])
    for example in load_dataset(world, "all-traces").examples:
        question = " ".join(m["content"] for m in example.messages if m["role"] == "user")
        answer = " ".join(m["content"] for m in example.messages if m["role"] == "assistant")
        check("datasets", "public", answer, question)

    # a fine-tune trained with the finance opt-in: only callers with finance may list or use it
    build_dataset(world, "fin", traces=True, eval_cases=[], allow_groups=["finance"])
    folder = _adapter(tiny_base, world.root / ".ragtune" / "models" / "v1" / "adapter", 1)
    register_version(world, version="v1", adapter=folder, base=str(tiny_base), dataset=load_dataset(world, "fin"),
                     settings={}, result={})  # fmt: skip
    promote(world, "v1", "fin-bot", force=True, reason="leak test")
    world.config.generator.max_new_tokens = 2
    needs = load_dataset(world, "fin").groups
    for _ in range(20):
        caller = rng.choice(list(CALLERS))
        groups = CALLERS[caller][1]
        allowed = all(set(groups) & set(a) for a in needs)
        with live.client(CALLERS[caller][0]) as http:
            listed = "ragtune-adapter:fin-bot" in http.get("/v1/models").text
            used = http.post("/v1/chat/completions", json={"model": rng.choice(["ragtune-adapter:fin-bot",
                             "ragtune-hybrid:v1"]), "messages": [{"role": "user", "content": "zorbfin?"}]})  # fmt: skip
        tried["models"] = tried.get("models", 0) + 1
        if listed != allowed or (used.status_code == 200) != allowed:
            failures.append(f"models as {caller}: listed={listed} used={used.status_code} allowed={allowed}")

    # the CLI: --groups is the caller
    runner = CliRunner()
    for _ in range(12):
        caller = rng.choice(list(CALLERS))
        groups = ",".join(CALLERS[caller][1])
        query = " ".join(rng.sample(words, 3))
        command = rng.choice(["search", "ask"])
        args = [command, query, "--json", "--project", str(world.root)] + (["--groups", groups] if groups else [])
        result = runner.invoke(__import__("ragtune.cli.main", fromlist=["cli"]).cli, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        check(f"cli-{command}", caller, result.output, query)

    for category, n in sorted(tried.items()):
        record(f"leak: {category}", n, n - sum(f.startswith(category) for f in failures))
    assert failures == []
    assert {"zorbfin", "zorbhr", "zorbboard"} <= set(restricted_seen)
