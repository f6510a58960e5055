"""The error taxonomy of ray-aiops.

Every error the platform raises on purpose is one of these, so that ingress can map
them to HTTP in one place (``deployments/errors.py``) and actors can decide to retry
or give up without string matching::

    AiopsError
    ├── ConfigError            invalid settings, rules or playbooks; never retried
    ├── InputError             a request or payload that cannot be accepted (-> 4xx)
    │   ├── AuthError          missing or wrong credentials (-> 401)
    │   ├── PayloadTooLarge    body over the limit (-> 413)
    │   └── NotFound           unknown id (-> 404)
    ├── ApprovalError          approval state machine refused a decision (-> 409)
    ├── PermanentError         an outside system said no for good (403, 404, 422)
    └── TemporaryError(delay)  an outside system may answer later (timeouts, 5xx, 429)

Adapters wrap library errors with ``raise ... from e`` so the cause stays visible.
"""

from __future__ import annotations


class AiopsError(Exception):
    """Base of every deliberate ray-aiops error."""


class ConfigError(AiopsError):
    """Settings, rules or playbooks are invalid. ``problems`` lists each one."""

    def __init__(self, message: str, problems: tuple[str, ...] = ()) -> None:
        self.problems = problems
        text = message if not problems else message + "\n" + "\n".join(f"  - {p}" for p in problems)
        super().__init__(text)


class InputError(AiopsError):
    """A request or payload that cannot be accepted as it is."""


class AuthError(InputError):
    """Missing or wrong credentials."""


class PayloadTooLarge(InputError):
    """The body is larger than the configured limit."""


class NotFound(InputError):
    """An id that names nothing we know."""


class ApprovalError(AiopsError):
    """A decision the approval state machine refuses (expired, already decided, not allowed)."""


class PermanentError(AiopsError):
    """An outside system refused for good; retrying will not help."""


class TemporaryError(AiopsError):
    """An outside system may succeed later; ``delay`` is the suggested wait in seconds."""

    def __init__(self, message: str, delay: float = 1.0) -> None:
        self.delay = delay
        super().__init__(message)
