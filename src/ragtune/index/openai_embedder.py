"""Embeddings from an OpenAI-compatible endpoint (``[embedder] backend = "openai"``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ragtune.config import EmbedderSection
from ragtune.errors import ModelError
from ragtune.index.embedder import Embedder, minilm_path, register_embedder
from ragtune.openai_client import call, make_client


class OpenAIEmbedder:
    """Embeddings from an OpenAI-compatible endpoint. Chunks are still sized in MiniLM word pieces (tokenizer only,
    no model load), so chunk boundaries do not depend on which endpoint embeds them."""

    def __init__(self, settings: EmbedderSection) -> None:
        if not settings.model:
            raise ModelError("[embedder] backend = 'openai' needs `model`, the embedding model name")
        self.settings = settings
        self.name = f"openai:{settings.model}"
        self._client: Any = None
        self._dim: int | None = None
        self._tokenizer: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            s = self.settings
            self._client = make_client(s.base_url, s.api_key_env, 120.0, "embedder")
        return self._client

    @property
    def dim(self) -> int:
        """The endpoint's vector size, asked once with a probe request."""
        if self._dim is None:
            self._dim = int(self.encode(["dimension probe"]).shape[1])
        return self._dim

    @dim.setter
    def dim(self, value: int) -> None:
        self._dim = value

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        s = self.settings
        rows: list[list[float]] = []
        for start in range(0, len(texts), s.batch_size):
            part = list(texts[start : start + s.batch_size])

            def request(part: list[str] = part) -> Any:
                return self.client.embeddings.create(model=s.model, input=part)

            reply = call(s.base_url, s.api_key_env, s.model, request)
            for item in sorted(reply.data, key=lambda d: d.index):
                vector = item.embedding
                if not vector or not isinstance(vector[0], (int, float)):
                    raise ModelError(
                        f"{s.base_url}: model {s.model!r} returned one vector per token, not one per text; "
                        "serve it with pooling (e.g. llama.cpp's --pooling mean) or pick an embedding model"
                    )
                rows.append(vector)
        if not rows:
            return np.zeros((0, self._dim or 0), dtype=np.float32)
        if len({len(r) for r in rows}) != 1:
            raise ModelError(f"{s.base_url}: model {s.model!r} returned vectors of different sizes")
        matrix = np.asarray(rows, dtype=np.float32)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        matrix /= np.maximum(norms, 1e-12)
        self._dim = matrix.shape[1]
        return np.ascontiguousarray(matrix)

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        if self._tokenizer is None:
            from tokenizers import Tokenizer

            tok = Tokenizer.from_file(str(minilm_path() / "tokenizer.json"))
            tok.no_truncation()
            tok.no_padding()
            self._tokenizer = tok
        enc = self._tokenizer.encode(text, add_special_tokens=False)
        return [(int(a), int(b)) for a, b in enc.offsets]


@register_embedder("openai")
def _openai_embedder(section: EmbedderSection) -> Embedder:
    return OpenAIEmbedder(section)
