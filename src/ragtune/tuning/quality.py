"""Duplicate and leakage checks for training examples.

Exact duplicates are found by a hash of the normalised conversation (Unicode NFKC, case-folded, whitespace
collapsed). Near-duplicates and leakage use embeddings (MiniLM by default): the vectors are L2-normalised, so a dot
product is the cosine.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections.abc import Sequence
from typing import Any

import numpy as np

from ragtune.index.embedder import Embedder

Messages = list[dict[str, str]]


def canonical_json(value: Any) -> str:
    """The one JSON spelling of a value that digests are taken over."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def normalise(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def normalised_key(messages: Messages) -> str:
    """Equal for two conversations that differ only in case, spacing or Unicode form."""
    return sha256(canonical_json([[m["role"], normalise(m["content"])] for m in messages]))


def conversation_text(messages: Messages) -> str:
    """What the near-duplicate check embeds: every turn, with its role."""
    return "\n".join(f"{m['role']}: {m['content']}" for m in messages)


def near_duplicates(vectors: np.ndarray, threshold: float, block: int = 1024) -> dict[int, tuple[int, float]]:
    """Rows that repeat an earlier kept row: {row: (the earlier row, cosine)}. Greedy in order, so the first of a
    group is kept and a row is only ever compared with kept rows."""
    out: dict[int, tuple[int, float]] = {}
    kept: list[int] = []
    n = len(vectors)
    for lo in range(0, n, block):
        part = vectors[lo : lo + block]
        prior = vectors[kept] if kept else np.zeros((0, vectors.shape[1]), dtype=vectors.dtype)
        against_prior = part @ prior.T  # (block, kept)
        within = part @ part.T  # (block, block)
        kept_here: list[int] = []
        for i in range(len(part)):
            best, best_row = -1.0, -1
            if against_prior.shape[1]:
                j = int(np.argmax(against_prior[i]))
                best, best_row = float(against_prior[i, j]), kept[j]
            for k in kept_here:
                if float(within[i, k]) > best:
                    best, best_row = float(within[i, k]), lo + k
            if best_row >= 0 and best >= threshold:
                out[lo + i] = (best_row, round(best, 4))
            else:
                kept_here.append(i)
        kept += [lo + k for k in kept_here]
    return out


def leaks(
    embedder: Embedder, user_turns: Sequence[Sequence[str]], questions: Sequence[str], threshold: float
) -> dict[int, tuple[int, float]]:
    """Examples whose user turns copy an evaluation question: {example: (question index, cosine)}.

    A normalised exact match counts whatever the threshold; otherwise the best cosine of any user turn decides.
    """
    if not questions or not user_turns:
        return {}
    exact = {normalise(q): i for i, q in enumerate(questions)}
    flat: list[tuple[int, str]] = [(i, t) for i, turns in enumerate(user_turns) for t in turns]
    q_vectors = embedder.encode(list(questions))
    t_vectors = embedder.encode([t for _, t in flat])
    sims = t_vectors @ q_vectors.T
    out: dict[int, tuple[int, float]] = {}
    for row, (example, text) in enumerate(flat):
        if normalise(text) in exact:
            hit = (exact[normalise(text)], 1.0)
        else:
            j = int(np.argmax(sims[row]))
            hit = (j, round(float(sims[row, j]), 4))
        if hit[1] >= threshold and (example not in out or hit[1] > out[example][1]):
            out[example] = hit
    return out
