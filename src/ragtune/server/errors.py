"""Every error answered as the OpenAI API shapes it: ``{"error": {"message", "type", "param", "code"}}``.

Routing misses (404, 405), validation (422), oversized bodies (413), auth (401, 403), ragtune's own errors and
anything unexpected (500) all go through here, so a client parses one shape and never sees a traceback.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ragtune.errors import ModelError, RagtuneError, StoreError

log = logging.getLogger("uvicorn.error")  # uvicorn's own logger, so server-side lines appear beside its lines

# OpenAI's types: every mistake of the request (a bad key and a missing model included) is an
# invalid_request_error, a rate limit is "requests", and a failure on the server's side is a server_error; the
# `code` carries the detail.
_TYPES = {429: "requests"}
_CODES = {
    400: "bad_request",
    401: "invalid_api_key",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    413: "request_too_large",
    422: "invalid_value",
    500: "internal_error",
    502: "model_error",
}


class ApiError(Exception):
    """An error the server answers on purpose, with its status and a one-line message.

    >>> raise ApiError(403, "caller 'bot' may not ingest; only admin callers may", "admin_required")
    """

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        param: str | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code or _CODES.get(status, "error")
        self.headers = headers
        self.param = param


def error_type(status: int) -> str:
    return _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")


def error_body(status: int, message: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    """The OpenAI error object for ``status``."""
    return {
        "error": {
            "message": message,
            "type": error_type(status),
            "param": param,
            "code": code or _CODES.get(status, "error"),
        }
    }


def error_response(
    status: int,
    message: str,
    code: str | None = None,
    headers: dict[str, str] | None = None,
    param: str | None = None,
) -> JSONResponse:
    return JSONResponse(error_body(status, message, code, param), status_code=status, headers=headers)


def status_for(exc: RagtuneError) -> int:
    """The HTTP status of a ragtune error: the caller's mistake is 400, a model failure 502, a broken store 500."""
    if isinstance(exc, ModelError):
        return 502
    if isinstance(exc, StoreError):
        text = str(exc)
        if text.startswith("no trace"):
            return 404
        # a too short or ambiguous trace id is the caller's to fix; anything else means the store itself is unwell
        return 400 if text.startswith("trace id") else 500
    return 400  # ConfigError, CorpusError (IngestError), RetrievalError and the rest are about the request


def _validation_message(exc: RequestValidationError) -> str:
    errors = list(exc.errors())
    if not errors:
        return "invalid request"
    first = errors[0]
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    where = ".".join(loc) or "body"
    kind = first.get("type", "")
    if not loc and kind != "json_invalid":
        text = "the body must be a JSON object, sent with Content-Type: application/json"
    elif kind == "json_invalid":
        detail = (first.get("ctx") or {}).get("error", "")
        text = f"the body is not valid JSON ({detail})" if detail else "the body is not valid JSON"
    elif kind == "extra_forbidden":
        text = f"unknown field '{where}'"
    elif kind == "missing":
        text = f"missing field '{where}'"
    else:
        text = f"field '{where}': {first.get('msg', 'invalid')}"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return text + more


def _validation_param(exc: RequestValidationError) -> str | None:
    errors = list(exc.errors())
    loc = [str(p) for p in errors[0].get("loc", ()) if p != "body"] if errors else []
    return ".".join(loc) or None


async def _on_api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.message, exc.code, exc.headers, exc.param)


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        message = f"no such endpoint: {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
    else:
        message = str(exc.detail)
    return error_response(exc.status_code, message, headers=dict(exc.headers) if exc.headers else None)


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(422, _validation_message(exc), param=_validation_param(exc))


async def _on_ragtune_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RagtuneError)
    status = status_for(exc)
    if status >= 500:
        log.error("%s %s: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
    return error_response(status, str(exc), "model_error" if status == 502 else None)


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    # uvicorn still logs the traceback server-side (Starlette re-raises after this answer); the client gets one line
    return error_response(500, f"internal error: {type(exc).__name__}; the server log has the details")


def install_error_handlers(app: FastAPI) -> None:
    """Route every failure through the OpenAI error shape."""
    app.add_exception_handler(ApiError, _on_api_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(RagtuneError, _on_ragtune_error)
    app.add_exception_handler(Exception, _on_unexpected)
