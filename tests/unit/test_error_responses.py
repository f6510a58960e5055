"""Ingress error mapping (``deployments/http.error_response``)."""

from __future__ import annotations

import json

import pytest
from ray.exceptions import RayTaskError

from core.errors import ApprovalError, AuthError, InputError, NotFound, TemporaryError
from deployments.http import error_response


def _from_actor(error: Exception) -> Exception:
    """The error as a Serve replica receives it from an actor call: ``RayTaskError(<class>)``."""
    wrapped = RayTaskError("ApprovalCoordinator.pause()", "Traceback ... pid=28691, ip=192.0.2.2", error)
    return wrapped.as_instanceof_cause()


@pytest.mark.parametrize(
    ("error", "status"),
    [
        pytest.param(AuthError("no token"), 401, id="auth"),
        pytest.param(NotFound("no approval"), 404, id="not-found"),
        pytest.param(InputError("bad"), 400, id="input"),
        pytest.param(ApprovalError("already paused"), 409, id="approval"),
        pytest.param(TemporaryError("redis down"), 503, id="temporary"),
    ],
)
def test_an_error_raised_in_an_actor_is_answered_as_our_error_without_the_remote_traceback(
    error: Exception, status: int
) -> None:
    # Found by tests/abuse/test_openapi_schemathesis.py: POST /api/pause twice answered 409 with
    # "RayTaskError(ApprovalError)" and Ray's traceback (pid, ip, actor id, file paths) as the message.
    for raised in (error, _from_actor(error)):
        response = error_response(raised)
        body = json.loads(bytes(response.body))
        assert response.status_code == status
        assert body == {"error": type(error).__name__, "message": str(error)}
