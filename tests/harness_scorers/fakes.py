"""Small fakes at the scorer seams: cases and outputs in one line, a scripted judge, a toy embedder."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ragtune.errors import ModelError
from ragtune.generation.base import Generation, Message
from ragtune.harness.model import Case, FormatSpec, Output


def case(**kw: Any) -> Case:
    kw.setdefault("id", "c1")
    kw.setdefault("question", "What is the Pro plan's rate limit?")
    if isinstance(kw.get("format"), dict):
        kw["format"] = FormatSpec(**kw["format"])
    return Case(**kw)


def output(answer: str, **kw: Any) -> Output:
    return Output(case_id=kw.pop("case_id", "c1"), arm=kw.pop("arm", "rag"), answer=answer, **kw)


class ScriptedJudge:
    """A generator that replies with the scripted texts in turn (an Exception in the script is raised instead)."""

    name = "scripted-judge"
    context_window = 4096

    def __init__(self, *replies: str | Exception, finish_reason: str = "stop") -> None:
        self.replies = list(replies)
        self.finish_reason = finish_reason
        self.seen: list[Sequence[Message]] = []

    def identity(self) -> dict[str, str]:
        return {"backend": "scripted", "model": self.name}

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def count_prompt(self, messages: Sequence[Message]) -> int:
        return sum(self.count_tokens(m["content"]) for m in messages)

    def generate(
        self, batch: Sequence[Sequence[Message]], *, max_new_tokens: int | None = None, progress: bool = False
    ) -> list[Generation]:
        out = []
        for messages in batch:
            self.seen.append(messages)
            reply = self.replies.pop(0)
            if isinstance(reply, Exception):
                raise reply
            out.append(Generation(reply, 10, 10, self.finish_reason, 1.0))
        return out


def model_error(message: str = "the judge endpoint refused the request") -> ModelError:
    return ModelError(message)


class LetterEmbedder:
    """Bag-of-letters vectors, L2-normalised: texts with the same letters are identical to it."""

    name = "letters"
    dim = 26

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        rows = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for ch in text.lower():
                if "a" <= ch <= "z":
                    rows[i, ord(ch) - ord("a")] += 1
            norm = np.linalg.norm(rows[i])
            if norm:
                rows[i] /= norm
        return rows

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        return [(0, len(text))]
