"""Chat examples to token ids and loss targets, in the serving chat template, checked token for token.

A model fine-tuned on one rendering of a conversation and served with another learns the wrong thing silently: a
missing system prompt, a different generation prompt or a tokenizer that merges across the boundary all shift what
the adapter sees. So every training example is rendered twice: whole, as training reads it, and up to each answer
through the very ``render`` that :class:`~ragtune.generation.local.TransformersGenerator` serves with. The second
must be a token prefix of the first, or training stops with a :class:`~ragtune.errors.TuningError`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from ragtune.errors import TuningError
from ragtune.generation.base import Message
from ragtune.generation.local import TransformersGenerator


@dataclass(frozen=True)
class Encoded:
    """One example as token ids, with the positions whose tokens are trained on (the assistant's answers)."""

    ids: list[int]
    targets: list[int]  # positions in ids, ascending


class _Serving:
    """Just enough of a TransformersGenerator for its ``render``: the serving code path, on our tokenizer."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer


def serving_render(tokenizer: Any, messages: Sequence[Message]) -> str:
    """The prompt exactly as the transformers backend renders it at serving time."""
    return TransformersGenerator.render(cast(TransformersGenerator, _Serving(tokenizer)), messages)


def template_sha256(tokenizer: Any) -> str:
    """sha256 of the chat template text, recorded with every adapter so a served model can be matched to it."""
    return hashlib.sha256(str(tokenizer.chat_template).encode()).hexdigest()


def _ids(tokenizer: Any, text: str) -> list[int]:
    # the serving side tokenizes its rendered prompt with add_special_tokens=False: so does training
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _check_messages(messages: Sequence[Message], where: str) -> None:
    if not messages:
        raise TuningError(f"{where}: no messages; an example is a conversation ending with the assistant's answer")
    for n, message in enumerate(messages, 1):
        if not isinstance(message, dict) or not isinstance(message.get("content"), str) or "role" not in message:
            raise TuningError(f"{where}: message {n} is not a {{'role', 'content'}} chat message")
    last = messages[-1]["role"]
    if last != "assistant":
        raise TuningError(
            f"{where}: the last message is the {last!r} turn, not an assistant answer; every example must end "
            "with the answer to train on"
        )
    if len(messages) < 2:
        raise TuningError(f"{where}: only an assistant message; an example needs a prompt before the answer")


def encode_example(tokenizer: Any, messages: Sequence[Message], max_len: int, where: str) -> Encoded:
    """Token ids of the whole conversation and the positions of every assistant answer (their end marker included).

    Raises TuningError when an answer's serving prompt is not a token prefix of the training rendering, when the
    example has no final assistant turn, or when it is longer than ``max_len`` tokens.
    """
    _check_messages(messages, where)
    full = _ids(tokenizer, str(tokenizer.apply_chat_template(list(messages), tokenize=False)))
    if len(full) > max_len:
        raise TuningError(
            f"{where}: {len(full)} tokens with the chat template, over the limit of {max_len}; shorten the example "
            "or raise [train] max_seq_len (up to the model's context)"
        )
    targets: list[int] = []
    for turn, message in enumerate(messages):
        if message["role"] != "assistant" or turn == 0:
            continue
        prompt = _ids(tokenizer, serving_render(tokenizer, messages[:turn]))
        upto = _ids(tokenizer, str(tokenizer.apply_chat_template(list(messages[: turn + 1]), tokenize=False)))
        for name, prefix in (("serving prompt", prompt), ("rendering up to this answer", upto)):
            if full[: len(prefix)] != prefix:
                at = next((i for i, (a, b) in enumerate(zip(prefix, full, strict=False)) if a != b), len(full))
                raise TuningError(
                    f"{where}: the chat template breaks the train/serve match at turn {turn + 1}: the {name} is not a "
                    f"token prefix of the training text (first difference at token {at}); use a model whose "
                    "template renders a conversation the same with and without its answer"
                )
        targets.extend(range(len(prompt), len(upto)))
    if not targets:
        raise TuningError(f"{where}: the assistant answer has no tokens to train on")
    return Encoded(ids=full, targets=targets)


def encode_examples(tokenizer: Any, examples: Sequence[Sequence[Message]], max_len: int, what: str) -> list[Encoded]:
    """Every example encoded; the first bad one raises TuningError naming it (``what`` example N)."""
    return [encode_example(tokenizer, ex, max_len, f"{what} example {n}") for n, ex in enumerate(examples, 1)]


def data_digest(train: Sequence[Encoded], holdout: Sequence[Encoded]) -> str:
    """sha256 of the encoded data: what a checkpoint was trained on, to refuse resuming on other data."""
    h = hashlib.sha256()
    for part, rows in (("train", train), ("holdout", holdout)):
        h.update(part.encode())
        for row in rows:
            h.update(repr((row.ids, row.targets)).encode())
    return h.hexdigest()
