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
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
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


class ErrorBody(BaseModel):
    """What every refused or failed request answers (see ``error_response``)."""

    error: str = Field(pattern=r"^[A-Za-z]+$", description="the error's class, e.g. AuthError or InputError")
    message: str = Field(description="what is wrong, for a human")


_MEANINGS = {
    400: "malformed request",
    401: "missing or wrong credentials",
    404: "no such object, or the endpoint is not enabled",
    409: "refused in this state (approval already decided or expired, runs already paused, ...)",
    413: "body over the size limit",
    503: "a store or actor is unavailable; retry after Retry-After",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` of the error answers a route gives, each an ``ErrorBody``."""
    return {code: {"model": ErrorBody, "description": _MEANINGS[code]} for code in codes}


def request_body(schema: dict[str, Any], media_type: str = "application/json") -> dict[str, Any]:
    """``openapi_extra`` declaring the body of a route that reads it itself (bounded, ``read_body``)."""
    return {"requestBody": {"required": True, "content": {media_type: {"schema": schema}}}}


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """A model's JSON schema with its ``$defs`` inlined, to embed in an operation of the OpenAPI."""
    schema = model.model_json_schema()
    defs: dict[str, Any] = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


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
    """Map an error of the taxonomy to an HTTP answer with a clear message.

    An error raised in an actor arrives as Ray's ``RayTaskError(<our class>)``, an instance of
    both; it is answered as our error, never with Ray's remote traceback (pid, address, paths)."""
    error = cause_of(error)
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
