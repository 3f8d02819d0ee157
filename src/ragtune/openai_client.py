"""The official ``openai`` client for any OpenAI-compatible endpoint, with its failures made ModelErrors.

Shared by the generator (generation/openai_backend.py), the embedder (index/openai_embedder.py) and the
endpoint arm, so that none of them reaches into another's package for it. The API key is read from the
environment variable ``api_key_env`` names, at request time, and never stored.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

from ragtune.errors import ModelError

T = TypeVar("T")


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
