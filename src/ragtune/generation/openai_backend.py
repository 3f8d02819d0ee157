"""Any OpenAI-compatible endpoint (vLLM, Ollama, a llama.cpp server, a hosted API) through the official client.

The API key is read from the environment variable that ``api_key_env`` names, at request time, and never stored.
Connection failures, a rejected key, an unknown model and a context overflow each become one clear ModelError.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ragtune.config import GeneratorSection
from ragtune.errors import ModelError
from ragtune.generation.base import Generation, Generator, Message, register_generator
from ragtune.openai_client import call, make_client

# Without the model's tokenizer, prompt sizes are estimated; 3.5 characters a token errs on the long side for
# English under the BPE vocabularies of common models, so the context budget stays inside the window.
CHARS_PER_TOKEN = 3.5


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
