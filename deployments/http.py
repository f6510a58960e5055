"""What every ingress shares: bounded body reading, credential checks, error -> HTTP mapping.

Ingress handlers stay thin: verify -> parse (pure) -> call an actor -> map errors. All
mapping of our error taxonomy to status codes lives here, so a new endpoint cannot invent
its own.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging

from fastapi import Request
from fastapi.responses import JSONResponse
from ray import serve
from ray.serve.exceptions import RayServeException

from adapters.metrics import relabel
from core.errors import (
    AiopsError,
    ApprovalError,
    AuthError,
    ConfigError,
    InputError,
    NotFound,
    PayloadTooLarge,
    PermanentError,
    TemporaryError,
)

log = logging.getLogger(__name__)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing more than ``limit`` bytes without reading them all."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError as e:
            raise InputError("invalid Content-Length header") from e
        if size > limit:
            raise PayloadTooLarge(f"body of {size} bytes is over the {limit} byte limit")
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise PayloadTooLarge(f"body is over the {limit} byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def check_token(header: str | None, token: str | None, *, basic_user: str | None = None, what: str) -> None:
    """Accept ``Bearer <token>`` or HTTP basic auth whose password is the token."""
    if not token:
        raise AuthError(f"{what} refuses all requests: its token is not configured")
    if not header:
        raise AuthError("missing Authorization header")
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer":
        if hmac.compare_digest(value.strip().encode(), token.encode()):
            return
        raise AuthError("invalid bearer token")
    if scheme == "basic":
        try:
            user, _, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError) as e:
            raise AuthError("malformed basic credentials") from e
        user_ok = basic_user is None or hmac.compare_digest(user.encode(), basic_user.encode())
        if user_ok and hmac.compare_digest(password.encode(), token.encode()):
            return
        raise AuthError("invalid basic credentials")
    raise AuthError("unsupported Authorization scheme; use Bearer or Basic")


def replica_metrics(text: str) -> str:
    """A Serve replica's metrics with a ``replica`` label: the ops scrape reaches one replica of an
    app per call, and without the label two replicas' counters would pass for one that resets."""
    try:
        replica = serve.get_replica_context().replica_id.unique_id
    except RayServeException:  # not inside a replica (unit tests, scripts)
        return text
    return relabel(text, {"replica": replica})


def cause_of(error: Exception) -> Exception:
    """The original error inside a Ray task error (Ray keeps it as ``cause``), else the error."""
    cause = getattr(error, "cause", None)
    return cause if isinstance(cause, Exception) else error


def error_response(error: Exception) -> JSONResponse:
    """Map an error of the taxonomy to an HTTP answer with a clear message."""
    status = 500
    if isinstance(error, AuthError):
        status = 401
    elif isinstance(error, PayloadTooLarge):
        status = 413
    elif isinstance(error, NotFound):
        status = 404
    elif isinstance(error, InputError):
        status = 400
    elif isinstance(error, ApprovalError):
        status = 409
    elif isinstance(error, ConfigError):
        status = 422
    elif isinstance(error, PermanentError):
        status = 502
    elif isinstance(error, TemporaryError):
        status = 503
    if status >= 500:
        log.warning("request failed: %s: %s", type(error).__name__, error)
    message = str(error) if isinstance(error, AiopsError) else "internal error"
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if isinstance(error, TemporaryError):
        headers = {"Retry-After": str(max(1, round(error.delay)))}
    return JSONResponse({"error": type(error).__name__, "message": message}, status_code=status, headers=headers)
