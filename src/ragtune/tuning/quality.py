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


def near_duplicates(vectors: np.ndarray, threshold: float, block: int = 256) -> dict[int, tuple[int, float]]:
    """Rows that repeat an earlier kept row: {row: (the earlier row, cosine)}. Greedy in order, so the first of a
    group is kept and a row is only ever compared with kept rows. Memory stays at ``block`` x kept rows."""
    out: dict[int, tuple[int, float]] = {}
    kept = np.zeros(0, dtype=np.int64)
    for lo in range(0, len(vectors), block):
        part = vectors[lo : lo + block]
        against_prior = part @ vectors[kept].T  # (block, kept so far)
        within = part @ part.T
        kept_here: list[int] = []
        for i in range(len(part)):
            best, best_row = -1.0, -1
            if len(kept):
                j = int(np.argmax(against_prior[i]))
                best, best_row = float(against_prior[i, j]), int(kept[j])
            if kept_here:
                sims = within[i, kept_here]
                k = int(np.argmax(sims))
                if float(sims[k]) > best:
                    best, best_row = float(sims[k]), lo + kept_here[k]
            if best_row >= 0 and best >= threshold:
                out[lo + i] = (best_row, round(best, 4))
            else:
                kept_here.append(i)
        kept = np.concatenate([kept, np.asarray(kept_here, dtype=np.int64) + lo])
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
    best = np.zeros(len(flat), dtype=np.int64)
    best_sim = np.zeros(len(flat), dtype=np.float32)
    for lo in range(0, len(flat), 4096):  # bounded memory: 4,096 turns x the questions at a time
        sims = t_vectors[lo : lo + 4096] @ q_vectors.T
        best[lo : lo + 4096] = np.argmax(sims, axis=1)
        best_sim[lo : lo + 4096] = sims[np.arange(len(sims)), best[lo : lo + 4096]]
    out: dict[int, tuple[int, float]] = {}
    for row, (example, text) in enumerate(flat):
        if normalise(text) in exact:
            hit = (exact[normalise(text)], 1.0)
        else:
            hit = (int(best[row]), round(float(best_sim[row]), 4))
        if hit[1] >= threshold and (example not in out or hit[1] > out[example][1]):
            out[example] = hit
    return out
