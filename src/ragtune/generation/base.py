"""Generators: the seam between ragtune and whatever writes text from chat messages.

A generator takes a batch of OpenAI-style chat conversations and returns one :class:`Generation` per
conversation; it also counts tokens, so the answer pipeline can keep prompts inside the model's window.
Built-in backends register themselves through :func:`register_generator`, exactly as a user's extension would.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from ragtune.config import GeneratorSection
from ragtune.errors import ModelError

Message = dict[str, str]
"""One chat message: ``{"role": "system" | "user" | "assistant", "content": str}``."""


@dataclass
class Generation:
    """What a generator wrote for one conversation."""

    text: str
    tokens_in: int
    tokens_out: int
    finish_reason: str  # "stop" or "length"
    ms: float  # wall time of the batch this conversation was generated in, shared by its members

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Generator(Protocol):
    """Writes answers for batches of chat conversations and counts tokens the way the model does."""

    name: str

    @property
    def context_window(self) -> int: ...

    def identity(self) -> dict[str, str]:
        """What produced an answer, for traces: backend, model, adapter and a digest of the weights."""
        ...

    def count_tokens(self, text: str) -> int: ...

    def count_prompt(self, messages: Sequence[Message]) -> int:
        """Tokens the conversation takes once formatted for the model, generation prompt included."""
        ...

    def generate(
        self, batch: Sequence[Sequence[Message]], *, max_new_tokens: int | None = None, progress: bool = False
    ) -> list[Generation]: ...


_REGISTRY: dict[str, Callable[[GeneratorSection], Generator]] = {}


def register_generator(
    name: str,
) -> Callable[[Callable[[GeneratorSection], Generator]], Callable[[GeneratorSection], Generator]]:
    """Decorator: make a factory available as ``[generator] backend = name``."""

    def deco(factory: Callable[[GeneratorSection], Generator]) -> Callable[[GeneratorSection], Generator]:
        _REGISTRY[name] = factory
        return factory

    return deco


def make_generator(section: GeneratorSection) -> Generator:
    """Build the configured generator. Building is cheap: weights load on the first generate or count."""
    from ragtune.plugins import load_backends

    load_backends()  # the built-in backends register as an extension's would (ragtune/plugins.py)

    try:
        factory = _REGISTRY[section.backend]
    except KeyError:
        raise ModelError(
            f"unknown generator backend {section.backend!r}; known: {', '.join(sorted(_REGISTRY))}"
        ) from None
    return factory(section)


TunedResolver = Callable[[Any, str, "Sequence[str] | None"], "Generator"]
"""``(project, ref, caller_groups) -> Generator``: the model version ``ref`` (v3, or an alias) as a generator;
``caller_groups`` None is the project's operator. The model registry registers it (see ragtune/plugins.py)."""
_TUNED: list[TunedResolver] = []


def register_tuned(resolver: TunedResolver) -> TunedResolver:
    """Make ``resolver`` the one that answers ``adapter:REF`` and ``hybrid:REF`` arms (the last registered wins)."""
    _TUNED[:] = [resolver]
    return resolver


def tuned_generator(project: Any, ref: str, caller_groups: Sequence[str] | None = None) -> Generator:
    """The fine-tuned model ``ref`` as a generator, through the registered resolver; answering never imports the
    registry itself."""
    from ragtune.plugins import load_plugins

    load_plugins()
    if not _TUNED:
        raise ModelError(f"no plugin serves fine-tuned models, so {ref!r} cannot be used; is ragtune.tuning installed?")
    return _TUNED[0](project, ref, caller_groups)


def check_window(generator: Generator, tokens_in: int, max_new_tokens: int) -> None:
    """Refuse a prompt that cannot fit with its answer, naming both figures and the fix."""
    window = generator.context_window
    if tokens_in + max_new_tokens > window:
        raise ModelError(
            f"context overflow: the prompt takes {tokens_in} tokens and the answer may take {max_new_tokens}, "
            f"but {generator.name} reads {window}; lower [answer] context_tokens or [generator] max_new_tokens"
        )
