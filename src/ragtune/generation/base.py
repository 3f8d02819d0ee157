"""Generators: the seam between ragtune and whatever writes text from chat messages.

A generator takes a batch of OpenAI-style chat conversations and returns one :class:`Generation` per
conversation; it also counts tokens, so the answer pipeline can keep prompts inside the model's window.
Built-in backends register themselves through :func:`register_generator`, exactly as a user's extension would.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable, Iterator, Sequence
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


class Wrapped:
    """A generator around another (``inner``) that counts tokens, names itself and reports its window and
    identity exactly as ``inner`` does; a subclass changes ``generate``. The cache's and the benchmarks' wrappers
    start from it."""

    def __init__(self, inner: Generator) -> None:
        self.inner = inner
        self.name = inner.name

    @property
    def context_window(self) -> int:
        return self.inner.context_window

    def identity(self) -> dict[str, str]:
        return self.inner.identity()

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def count_prompt(self, messages: Sequence[Message]) -> int:
        return self.inner.count_prompt(messages)


@dataclass(frozen=True)
class Decoding:
    """One request's own decoding settings (a chat request's ``max_tokens``, ``temperature``, ``seed``, ``stop``);
    ``None`` keeps the ``[generator]`` value."""

    max_new_tokens: int | None = None
    temperature: float | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()

    def resolve(self, settings: GeneratorSection) -> Decoding:
        """Every field filled: this request's value where it gave one, else ``settings``'."""
        return Decoding(
            self.max_new_tokens or settings.max_new_tokens,
            settings.temperature if self.temperature is None else self.temperature,
            settings.seed if self.seed is None else self.seed,
            self.stop,
        )

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in (None, ())}


Piece = str | Generation
"""What a stream yields: pieces of text as they are decoded, then one :class:`Generation` with the whole answer."""


class Streaming(Protocol):
    """A generator that can also write one answer token by token (``ragtune ask``, the server)."""

    def stream(self, messages: Sequence[Message], decoding: Decoding | None = None) -> Iterator[Piece]: ...


def stream_generation(
    generator: Generator, messages: Sequence[Message], decoding: Decoding | None = None
) -> Iterator[Piece]:
    """``generator``'s answer to one conversation as a stream: its own, when it streams; otherwise the whole answer
    as one piece (stop strings applied afterwards). Sampling settings a non-streaming backend cannot take per
    request are refused rather than ignored."""
    stream = getattr(generator, "stream", None)
    if stream is not None:
        yield from stream(messages, decoding)
        return
    decoding = decoding or Decoding()
    if decoding.temperature is not None or decoding.seed is not None:
        raise ModelError(f"{generator.name} cannot take temperature or seed per request; set them in [generator]")
    gen = generator.generate([messages], max_new_tokens=decoding.max_new_tokens)[0]
    text = TextStream(decoding.stop)
    piece, stopped = text.update(gen.text)
    piece += text.finish()
    if piece:
        yield piece
    if stopped:
        gen.text, gen.finish_reason = text.text, "stop"
    yield gen


class TextStream:
    """Turns a growing decoded text into the pieces a stream may send: leading blanks dropped, and held back, until
    more text shows what they are, trailing blanks, an incomplete UTF-8 character, and a tail that may begin a stop
    string. A stop string ends the text where it starts; it is never sent.

    >>> s = TextStream(("</s>",)); s.update(" Hello</"), s.update(" Hello</s> junk"), s.text
    (('Hello', False), ('', True), 'Hello')
    """

    def __init__(self, stops: Sequence[str] = ()) -> None:
        self.stops = tuple(s for s in stops if s)
        self.text = ""
        self.sent = ""  # everything sent so far
        self.stopped = False

    def update(self, decoded: str) -> tuple[str, bool]:
        """``decoded`` is everything decoded so far; returns what may be sent now and whether a stop string ended
        the text."""
        if self.stopped:
            return "", True
        text = decoded.lstrip()
        cuts = [i for i in (text.find(s) for s in self.stops) if i >= 0]
        if cuts:
            self.text, self.stopped = text[: min(cuts)].rstrip(), True
            return self._take(self.text), True
        self.text = text
        hold = len(text) - len(text.rstrip("\ufffd"))  # half a character: the next token completes it
        for stop in self.stops:
            for n in range(min(len(stop) - 1, len(text)), 0, -1):
                if text.endswith(stop[:n]):
                    hold = max(hold, n)
                    break
        # blanks before what is held wait too: the answer may end there, and it ends without them
        return self._take(text[: len(text) - hold].rstrip()), False

    def finish(self) -> str:
        """What is left to send once decoding has ended."""
        self.text = self.text.rstrip()
        return self._take(self.text)

    def _take(self, ready: str) -> str:
        # a piece once sent cannot be taken back: a text that no longer extends what was sent waits for the end
        if len(ready) <= len(self.sent) or not ready.startswith(self.sent):
            return ""
        piece, self.sent = ready[len(self.sent) :], ready
        return piece


def utf8_decoder() -> codecs.IncrementalDecoder:
    """Bytes of tokens in, text out, a character split across tokens held until it is whole."""
    return codecs.getincrementaldecoder("utf-8")(errors="replace")


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


InteractiveFactory = Callable[[GeneratorSection, Generator], "Generator | None"]
_INTERACTIVE: dict[str, InteractiveFactory] = {}


def register_interactive(backend: str) -> Callable[[InteractiveFactory], InteractiveFactory]:
    """Decorator: ``factory(section, batch)`` gives a faster single-request generator over ``batch``'s weights,
    or None where it has none (its library is missing, or ``batch`` is not what the backend built)."""

    def deco(factory: InteractiveFactory) -> InteractiveFactory:
        _INTERACTIVE[backend] = factory
        return factory

    return deco


def make_interactive(section: GeneratorSection, batch: Generator) -> Generator:
    """The generator for requests answered one at a time: ``batch`` unless ``[generator] interactive = "auto"``
    and the backend has registered a faster single-stream one for it."""
    factory = _INTERACTIVE.get(section.backend) if section.interactive == "auto" else None
    return (factory(section, batch) if factory else None) or batch


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
