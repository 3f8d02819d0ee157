"""Any OpenAI-compatible endpoint (vLLM, Ollama, a llama.cpp server, a hosted API) through the official client.

The API key is read from the environment variable that ``api_key_env`` names, at request time, and never stored.
Connection failures, a rejected key, an unknown model and a context overflow each become one clear ModelError.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np

from ragtune.config import EmbedderSection, GeneratorSection
from ragtune.errors import ModelError
from ragtune.generation.base import Generation, Generator, Message, register_generator
from ragtune.index.embedder import Embedder, register_embedder

T = TypeVar("T")

# Without the model's tokenizer, prompt sizes are estimated; 3.5 characters a token errs on the long side for
# English under the BPE vocabularies of common models, so the context budget stays inside the window.
CHARS_PER_TOKEN = 3.5


def make_client(base_url: str, api_key_env: str, timeout_s: float, what: str) -> Any:
    if not base_url:
        raise ModelError(f"[{what}] backend = 'openai' needs base_url, e.g. http://127.0.0.1:8000/v1")
    from openai import OpenAI

    # Local servers (llama.cpp, vLLM, Ollama) accept any key; a hosted API will answer 401, reported below.
    key = os.environ.get(api_key_env) or "unset"
    return OpenAI(base_url=base_url, api_key=key, timeout=timeout_s, max_retries=1)


def call(base_url: str, api_key_env: str, model: str, fn: Callable[[], T]) -> T:
    """Run one request, turning the client's exceptions into ModelErrors that say what to do."""
    import openai

    try:
        return fn()
    except openai.AuthenticationError:
        where = f"${api_key_env}" if os.environ.get(api_key_env) else f"${api_key_env} (it is not set)"
        raise ModelError(f"{base_url}: the API key was rejected (401); put a valid key in {where}") from None
    except openai.PermissionDeniedError as exc:
        raise ModelError(f"{base_url}: permission denied (403) for model {model!r}: {_message(exc)}") from None
    except openai.NotFoundError as exc:
        raise ModelError(
            f"{base_url}: model {model!r} not found (404: {_message(exc)}); check the model name and base_url"
        ) from None
    except openai.BadRequestError as exc:
        text = _message(exc)
        if "context" in text.lower() or "too long" in text.lower() or "maximum" in text.lower():
            raise ModelError(
                f"{base_url}: context overflow ({text}); lower [answer] context_tokens or [generator] max_new_tokens"
            ) from None
        raise ModelError(f"{base_url}: request refused (400): {text}") from None
    except openai.APITimeoutError:
        raise ModelError(f"{base_url}: no answer in time; raise [generator] timeout_s or check the server") from None
    except openai.APIConnectionError as exc:
        raise ModelError(
            f"{base_url}: unreachable ({exc.__cause__ or exc}); start the server or fix base_url in ragtune.toml"
        ) from None
    except openai.APIStatusError as exc:
        raise ModelError(f"{base_url}: the server answered {exc.status_code}: {_message(exc)}") from None


def _message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])[:300]
        if isinstance(inner, str):
            return inner[:300]
    return str(getattr(exc, "message", exc))[:300]


class OpenAIGenerator:
    """Chat completions from an OpenAI-compatible endpoint, several requests in flight for a batch.

    >>> gen = OpenAIGenerator(GeneratorSection(backend="openai", base_url="http://127.0.0.1:8000/v1", model="m"))
    >>> gen.generate([[{"role": "user", "content": "Say hi."}]])[0].text
    """

    def __init__(self, settings: GeneratorSection) -> None:
        if not settings.model:
            raise ModelError("[generator] backend = 'openai' needs `model`, the model name the endpoint serves")
        self.settings = settings
        self.name = settings.model
        self._client: Any = None
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                s = self.settings
                self._client = make_client(s.base_url, s.api_key_env, s.timeout_s, "generator")
        return self._client

    @property
    def context_window(self) -> int:
        return self.settings.context_window or 8192

    def identity(self) -> dict[str, str]:
        return {"backend": "openai", "model": self.name, "source": self.settings.base_url}

    def count_tokens(self, text: str) -> int:
        return int(len(text) / CHARS_PER_TOKEN) + 1

    def count_prompt(self, messages: Sequence[Message]) -> int:
        return sum(self.count_tokens(m["content"]) + 4 for m in messages) + 3

    def _one(self, messages: Sequence[Message], limit: int) -> Generation:
        s = self.settings
        t0 = time.perf_counter()
        reply = call(
            s.base_url,
            s.api_key_env,
            s.model,
            lambda: self.client.chat.completions.create(
                model=s.model, messages=list(messages), max_tokens=limit, temperature=s.temperature, seed=s.seed
            ),
        )
        choice = reply.choices[0]
        usage = reply.usage
        text = choice.message.content or ""
        return Generation(
            text=text.strip(),
            tokens_in=int(usage.prompt_tokens) if usage else self.count_prompt(messages),
            tokens_out=int(usage.completion_tokens) if usage else self.count_tokens(text),
            finish_reason=str(choice.finish_reason or "stop"),
            ms=(time.perf_counter() - t0) * 1000,
        )

    def generate(
        self, batch: Sequence[Sequence[Message]], *, max_new_tokens: int | None = None, progress: bool = False
    ) -> list[Generation]:
        limit = max_new_tokens or self.settings.max_new_tokens
        if len(batch) <= 1:
            return [self._one(m, limit) for m in batch]
        with ThreadPoolExecutor(max_workers=min(self.settings.concurrency, len(batch))) as pool:
            return list(pool.map(lambda m: self._one(m, limit), batch))


@register_generator("openai")
def _openai(section: GeneratorSection) -> Generator:
    return OpenAIGenerator(section)


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

            from ragtune.index.embedder import minilm_path

            tok = Tokenizer.from_file(str(minilm_path() / "tokenizer.json"))
            tok.no_truncation()
            tok.no_padding()
            self._tokenizer = tok
        enc = self._tokenizer.encode(text, add_special_tokens=False)
        return [(int(a), int(b)) for a, b in enc.offsets]


@register_embedder("openai")
def _openai_embedder(section: EmbedderSection) -> Embedder:
    return OpenAIEmbedder(section)
