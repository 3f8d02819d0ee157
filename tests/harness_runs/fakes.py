"""A scripted generator for run tests, and a CLI entry that installs it as the packaged model's backend so that a
subprocess `ragtune eval` runs on it (and can be told to die after N generations, like a killed run)."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from ragtune.config import GeneratorSection
from ragtune.generation.base import Generation, Message

DIE_AFTER = "RAGTUNE_TEST_DIE_AFTER"
"""Environment variable: the fake generator kills its process (os._exit) once it has answered this many prompts."""
CACHEABLE = "RAGTUNE_TEST_CACHEABLE"
"""Environment variable: the CLI entry installs :class:`Cacheable` (whose answers the generation cache keeps)."""


class Scripted:
    """Answers each prompt from a script keyed by a word of the question, else with ``default``."""

    name = "scripted"

    def __init__(self, script: dict[str, str] | None = None, default: str = "I don't know.") -> None:
        self.script = script or {}
        self.default = default
        self.prompts: list[list[Message]] = []
        self.die_after = int(os.environ.get(DIE_AFTER, "0") or 0)

    @property
    def context_window(self) -> int:
        return 8192

    def identity(self) -> dict[str, str]:
        return {"backend": "scripted", "model": "scripted"}

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def count_prompt(self, messages: Sequence[Message]) -> int:
        return sum(self.count_tokens(m["content"]) for m in messages)

    def reply(self, messages: Sequence[Message]) -> str:
        question = messages[-1]["content"]
        return next((text for key, text in self.script.items() if key in question), self.default)

    def generate(
        self, batch: Sequence[Sequence[Message]], *, max_new_tokens: int | None = None, progress: bool = False
    ) -> list[Generation]:
        if self.die_after and len(self.prompts) + len(batch) > self.die_after:
            os._exit(137)  # as if SIGKILLed mid-run: no cleanup, no flush, no rollback handler
        self.prompts += [list(m) for m in batch]
        return [Generation(self.reply(m), self.count_prompt(m), len(self.reply(m).split()), "stop", 2.0) for m in batch]


class Cacheable(Scripted):
    """Scripted, with what the generation cache needs to key its answers: decoding settings and a weights digest
    (a real local backend's come from its files). ``adapter`` and ``weights`` stand for another fine-tune."""

    def __init__(self, script: dict[str, str] | None = None, default: str = "I don't know.", *, adapter: str = "",
                 weights: str = "w1", settings: GeneratorSection | None = None) -> None:  # fmt: skip
        super().__init__(script, default)
        self.adapter = adapter
        self.weights = weights
        self.settings = settings or GeneratorSection()

    def identity(self) -> dict[str, str]:
        return {"backend": "scripted", "model": "scripted"} | ({"adapter": self.adapter} if self.adapter else {})

    def weights_digest(self) -> str:
        return self.weights


SCRIPT = {"capital": "Paris is the capital.", "rate limit": "The limit is 600 requests per minute [1]."}


def main(argv: list[str]) -> None:
    """`python -m tests.harness_runs.fakes eval ...`: ragtune's CLI with the packaged model replaced by Scripted."""
    from ragtune.generation import base, local

    del local  # imported first, so that its own registration cannot overwrite ours later
    if os.environ.get(CACHEABLE):
        base.register_generator("smollm2")(lambda section: Cacheable(SCRIPT, settings=section))
    else:
        base.register_generator("smollm2")(lambda section: Scripted(SCRIPT))
    from ragtune.cli.main import main as cli_main

    cli_main(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
