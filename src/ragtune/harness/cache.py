"""The generation cache: an answer the generator already wrote for exactly these messages, under exactly this model
and these decoding settings, is read back from the store instead of generated again (docs/eval.md).

Only the harness uses it, and only for greedy decoding by a local model whose weights ragtune can digest; sampling,
remote endpoints and generators it cannot identify bypass it. The tables ``generation_cache`` and
``generation_cache_docs`` (migration 0009) belong to this module alone; each entry records the document versions
whose text was in its prompt and the fine-tune that wrote it, so that forget deletes every entry a forgotten
document shaped (:func:`_forget_entries`)::

    cache = GenerationCache(project)
    generator = cache.wrap(project.generator)          # a Generator; None-safe: cache.wrap returns it unchanged
    key = generator.expect(messages, [("docs/pricing.md", 2)])   # before generate: what the prompt quotes
    generator.generate([messages]); generator.was_cached(key)
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragtune import __version__
from ragtune.answer.pipeline import Answerer, Question, _Pending
from ragtune.corpus.forget import FORGET_HOOKS, ForgetContext
from ragtune.generation.base import Generation, Generator, Message, Wrapped
from ragtune.store.db import utcnow
from ragtune.store.registry import adapters_trained_on, registry_store

if TYPE_CHECKING:
    from ragtune.project import Project

CACHE_FORMAT = 1
"""Bumped when what a key covers changes; part of every key, so older entries simply stop matching."""

DocVersion = tuple[str, int]


def _file_part(path: Path) -> str:
    """A cheap, stable stand-in for a file's digest: its resolved path, size and modification time."""
    stat = path.stat()
    return f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"


def _tree_part(folder: Path) -> str:
    """Every file of a model or adapter folder, by :func:`_file_part`, in name order."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    return ";".join(_file_part(p) for p in files)


def weights_digest(generator: Generator) -> str | None:
    """A digest of the weights a local generator answers with (file sizes and times, not contents: cheap enough to
    take per batch), or None when ragtune cannot tell (a remote endpoint, an unknown backend): no caching then.
    A generator may name its own by defining ``weights_digest() -> str``."""
    own = getattr(generator, "weights_digest", None)
    if callable(own):
        return str(own())
    from ragtune.generation.local import LlamaCppGenerator, TransformersGenerator

    parts: list[str] = []
    try:
        if isinstance(generator, LlamaCppGenerator):
            parts.append(_file_part(generator.gguf))
        elif isinstance(generator, TransformersGenerator):
            source = Path(generator.source)
            # the packaged model: the GGUF its dequantized folder is made from (the folder may not exist yet)
            parts.append(_file_part(source) if source.is_file() else _tree_part(generator.folder))
            if generator.adapter is not None:
                parts.append("adapter:" + _tree_part(generator.adapter))
        else:
            return None
    except OSError:
        return None  # the files are not there: the generator will say so itself when it loads
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def decoding(generator: Generator, max_new_tokens: int | None) -> dict[str, Any] | None:
    """The settings that change what the generator writes, or None when it samples (or has no settings to read)."""
    settings = getattr(generator, "settings", None)
    if settings is None or getattr(settings, "temperature", None) != 0:
        return None  # a sampled answer is one draw: reusing it would make every later draw the same
    return {
        "max_new_tokens": max_new_tokens or settings.max_new_tokens,
        "temperature": settings.temperature,
        "seed": settings.seed,
        "context_window": settings.context_window,
    }


def cache_key(
    generator: Generator, messages: Sequence[Message], max_new_tokens: int | None = None, *, weights: str | None = None
) -> str | None:
    """The digest of everything that determines an answer, or None when this generator's answers are not cached.
    ``weights`` saves taking :func:`weights_digest` again for each prompt of a batch.

    The messages hold only context the asker's access groups may read (retrieval filters it before the prompt is
    built), so two askers share an entry only when they were shown exactly the same text.
    """
    settings = decoding(generator, max_new_tokens)
    if settings is not None and weights is None:
        weights = weights_digest(generator)
    if settings is None or weights is None:
        return None
    body = {
        "format": CACHE_FORMAT,
        "ragtune": __version__,
        "model": generator.identity(),
        "weights": weights,
        "decoding": settings,
        "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class GenerationCache:
    """The project's generation cache; ``enabled=False`` (``ragtune eval --no-cache``) reads and writes nothing.

    >>> cache = GenerationCache(project)
    >>> cache.wrap(project.generator).generate([messages])   # the second time, from the store
    """

    def __init__(self, project: Project, *, enabled: bool = True) -> None:
        self.project = project
        self.enabled = enabled
        self._wrapped: dict[int, CachedGenerator] = {}
        # what this cache (one run's) wrote is not read back by it: within a run every arm generates its own
        # answers (the prompts arm's plain variant is closed-book's prompt), so a first run measures every arm
        self._written: set[str] = set()

    def wrap(self, generator: Generator) -> Generator:
        """``generator`` answering through the cache (the same wrapper for the same generator), or unchanged when
        the cache is off."""
        if not self.enabled:
            return generator
        if id(generator) not in self._wrapped:
            self._wrapped[id(generator)] = CachedGenerator(self, generator)
        return self._wrapped[id(generator)]

    def get(self, keys: Sequence[str]) -> dict[str, Generation]:
        """The stored answers of these keys, from earlier runs."""
        found: dict[str, Generation] = {}
        db = self.project.store.db
        keys = [k for k in keys if k not in self._written]
        for i in range(0, len(keys), 500):
            part = list(keys[i : i + 500])
            rows = db.execute(
                "SELECT key, text, tokens_in, tokens_out, finish_reason FROM generation_cache "
                f"WHERE key IN ({','.join('?' * len(part))})",
                part,
            )
            # ms 0: no generation happened now; the pipeline then charges the lookup's own (tiny) share
            found |= {r[0]: Generation(r[1], int(r[2]), int(r[3]), str(r[4]), 0.0) for r in rows}
        return found

    def put(self, generator: Generator, entries: Sequence[tuple[str, Generation, Sequence[DocVersion]]]) -> None:
        """Store new answers and the document versions their prompts quoted, in one transaction."""
        if not entries:
            return
        identity = generator.identity()
        adapter = identity.get("adapter") or None
        version = self._model_version(adapter)
        model = json.dumps(identity | {"weights": weights_digest(generator)}, sort_keys=True)
        now = utcnow()
        with self.project.store.transaction() as db:
            for key, gen, docs in entries:
                cur = db.execute(
                    "INSERT OR IGNORE INTO generation_cache (key, created_at, model, model_version, adapter, text, "
                    "tokens_in, tokens_out, finish_reason, ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (key, now, model, version, adapter, gen.text, gen.tokens_in, gen.tokens_out, gen.finish_reason,
                     round(gen.ms, 3)),
                )  # fmt: skip
                self._written.add(key)
                if cur.rowcount:
                    db.executemany(
                        "INSERT OR IGNORE INTO generation_cache_docs (key, doc_id, version) VALUES (?, ?, ?)",
                        [(key, d, int(v)) for d, v in sorted(set(docs))],
                    )

    def _model_version(self, adapter: str | None) -> str | None:
        """The registered fine-tune whose adapter folder this is (the registry keeps folders relative to the root)."""
        if not adapter:
            return None
        try:
            rel = Path(adapter).resolve().relative_to(self.project.root.resolve()).as_posix()
        except ValueError:
            return None  # an adapter from [generator] adapter, outside the registry
        return registry_store(self.project.store).version_of_adapter(rel)

    def count(self) -> int:
        return int(self.project.store.db.execute("SELECT COUNT(*) FROM generation_cache").fetchone()[0])


class CachedGenerator(Wrapped):
    """A :class:`~ragtune.generation.base.Generator` that answers prompts it has seen from the cache.

    Only prompts announced with :meth:`expect` (which says what documents they quote) are written to the cache:
    a prompt built somewhere that does not say what it quotes is generated and not kept, so forget can never miss
    an entry. Reads need no announcement: an entry already knows its documents.
    """

    def __init__(self, cache: GenerationCache, inner: Generator) -> None:
        super().__init__(inner)
        self.cache = cache
        self._docs: dict[str, list[DocVersion]] = {}
        self._served: dict[str, bool] = {}  # key -> whether its latest answer came from the cache

    def expect(self, messages: Sequence[Message], documents: Sequence[DocVersion]) -> str | None:
        """Announce a prompt and the document versions whose text it holds; returns its key (None: not cached)."""
        key = cache_key(self.inner, messages, weights=self._weights())
        if key is not None:
            self._docs[key] = list(documents)
        return key

    def _weights(self) -> str | None:
        return weights_digest(self.inner) if decoding(self.inner, None) is not None else None

    def was_cached(self, key: str | None) -> bool:
        """Whether the latest answer to the prompt with this key came from the cache."""
        return key is not None and self._served.get(key, False)

    def generate(
        self, batch: Sequence[Sequence[Message]], *, max_new_tokens: int | None = None, progress: bool = False
    ) -> list[Generation]:
        weights = self._weights()
        keys = [cache_key(self.inner, m, max_new_tokens, weights=weights) for m in batch]
        found = self.cache.get(sorted({k for k in keys if k is not None}))
        todo = [i for i, k in enumerate(keys) if k is None or k not in found]
        fresh = self.inner.generate([batch[i] for i in todo], max_new_tokens=max_new_tokens, progress=progress) if todo else []  # fmt: skip
        out: list[Generation | None] = [None] * len(batch)
        keep: dict[str, tuple[str, Generation, Sequence[DocVersion]]] = {}
        for i, gen in zip(todo, fresh, strict=True):
            out[i] = gen
            key = keys[i]
            if key is not None:
                self._served[key] = False
                if key in self._docs and gen.finish_reason in ("stop", "length"):
                    keep[key] = (key, gen, self._docs[key])
        self.cache.put(self.inner, list(keep.values()))
        for i, key in enumerate(keys):
            if out[i] is None and key is not None:
                out[i] = found[key]
                self._served[key] = True
        return [g for g in out if g is not None]


class CachingAnswerer(Answerer):
    """The answering pipeline with a :class:`CachedGenerator`: each prompt is announced with the document versions
    of the sources it quotes before it is generated, and each answer can say whether it came from the cache.

    It extends ``Answerer._prepare`` rather than changing the pipeline, so that ``ask`` and the server, which do
    not use the cache, run exactly the code they ran before.
    """

    def __init__(self, project: Project, generator: CachedGenerator, *, record: bool) -> None:
        super().__init__(project, generator, record=record)
        self.cached_generator = generator
        self._keys: dict[int, str | None] = {}

    def _prepare(self, q: Question, **options: Any) -> _Pending:
        p = super()._prepare(q, **options)
        if p.messages is not None:
            sources = p.context.sources if p.context is not None else []
            self._keys[id(q)] = self.cached_generator.expect(
                p.messages, [(s.hit.doc_id, s.hit.version) for s in sources]
            )
        return p

    def was_cached(self, q: Question) -> bool:
        """Whether the answer to ``q`` (asked through this answerer) came from the cache."""
        return self.cached_generator.was_cached(self._keys.get(id(q)))


def _forget_entries(ctx: ForgetContext) -> None:
    """Forget hook: delete every cached answer whose prompt quoted a forgotten document, and every answer of a
    fine-tune trained on one (the registry's hook taints it and deletes its weights; what it wrote goes too)."""
    if not ctx.doc_ids:
        ctx.receipt.totals["generation_cache"] = 0
        return
    ctx.receipt.totals["generation_cache"] = delete_entries(ctx.db, ctx.doc_ids)


def delete_entries(db: sqlite3.Connection, doc_ids: Sequence[str]) -> int:
    """Within a transaction: delete the entries that used ``doc_ids`` or came from a model trained on them."""
    keys: set[str] = set()
    versions: set[str] = set()
    adapters: set[str] = set()
    for i in range(0, len(doc_ids), 500):
        part = list(doc_ids[i : i + 500])
        marks = ",".join("?" * len(part))
        keys |= {r[0] for r in db.execute(f"SELECT key FROM generation_cache_docs WHERE doc_id IN ({marks})", part)}
    for version, adapter in adapters_trained_on(db, doc_ids):
        versions.add(version)
        adapters.add(Path(adapter).as_posix())
    for version in sorted(versions):
        keys |= {r[0] for r in db.execute("SELECT key FROM generation_cache WHERE model_version = ?", (version,))}
    if adapters:  # an entry written before its version was registered still names the folder
        for key, adapter in db.execute("SELECT key, adapter FROM generation_cache WHERE adapter IS NOT NULL"):
            if any(Path(str(adapter)).as_posix().endswith(a) for a in adapters):
                keys.add(key)
    ordered = sorted(keys)
    for i in range(0, len(ordered), 500):
        part = ordered[i : i + 500]
        db.execute(f"DELETE FROM generation_cache WHERE key IN ({','.join('?' * len(part))})", part)
    return len(ordered)


FORGET_HOOKS.append(_forget_entries)
