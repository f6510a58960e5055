"""schemathesis against the OpenAPI that the running ``alerts``, ``chat`` and ``ops`` apps serve.

Each app's schema is read from the live Serve app (``<route_prefix>/openapi.json``) of the
session's platform, and every operation in it gets generated requests over HTTP:

- with the right credentials (bearer token, Telegram secret token, Slack signature over the
  exact body sent): never a 5xx, and the status, content type and body conform to the
  schema; invalid data (schemathesis' negative mode) is refused with a 4xx by the alerts
  and ops apps (the chat webhooks answer bodies they do not act on with 200 "ignored");
- without credentials and with wrong ones: 401 or 403 on every route except the public
  ``/health``, ``/ready`` and ``/metrics`` (a scrape target).

The alerts webhook gets valid payloads only without or with wrong credentials: valid,
authenticated ones would open incidents (and chat notices) in the shared platform, which
the e2e tests already cover.

Found by this file: ``GET /api/incidents?namespace=`` and ``GET /api/incidents/{id}`` with a
NUL character answered 500 (PostgreSQL text cannot hold NUL); an error raised in an actor
was answered with Ray's remote traceback as its message (``POST /api/pause`` twice). See
``tests/integration/test_storage.py`` and ``tests/unit/test_error_responses.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import CheckFunction, not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.abuse.tally import count
from tests.platform import AM_TOKEN, OPS_TOKEN, SLACK_SECRET, TELEGRAM_SECRET, Platform
from tests.servers.slack_server import slack_signature

pytestmark = pytest.mark.e2e

MAX_EXAMPLES = 20
PUBLIC = frozenset({"GET /health", "GET /ready", "GET /metrics"})
# Operations whose every input is valid (a free-form string in the path): no negative cases exist.
ANY_INPUT_IS_VALID = frozenset({"GET /api/incidents/{incident_id}"})
CONFORMS: list[CheckFunction] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
# Credentials for a request: given the exact body sent, the headers to add.
Credentials = Callable[[bytes], dict[str, str]]


def _bearer(token: str) -> Credentials:
    return lambda _body: {"Authorization": f"Bearer {token}"}


def _telegram(secret: str) -> Credentials:
    return lambda _body: {"X-Telegram-Bot-Api-Secret-Token": secret}


def _slack(secret: str) -> Credentials:
    def sign(body: bytes) -> dict[str, str]:
        now = int(time.time())
        return {"X-Slack-Request-Timestamp": str(now), "X-Slack-Signature": slack_signature(secret, now, body)}

    return sign


def _nothing(_body: bytes) -> dict[str, str]:
    return {}


@dataclass(frozen=True)
class App:
    name: str
    prefix: str
    right: Callable[[str], Credentials]  # by operation path
    wrong: Callable[[str], list[Credentials]]
    operations: int  # how many the schema must list: a route missing from it would go unchecked
    authenticated_valid_data: bool = True
    # Chat webhooks answer shapes they do not act on with 200 "ignored", so the platforms stop
    # resending them: for chat, invalid data must only never be a 5xx.
    rejects_invalid_data: bool = True


def _chat_right(path: str) -> Credentials:
    return _telegram(TELEGRAM_SECRET) if path == "/telegram" else _slack(SLACK_SECRET)


def _chat_wrong(path: str) -> list[Credentials]:
    if path == "/telegram":
        return [_nothing, _telegram(TELEGRAM_SECRET[:-1] + "x"), _bearer(TELEGRAM_SECRET)]
    return [_nothing, _slack(SLACK_SECRET[:-1] + "x"), _bearer(SLACK_SECRET)]


def _token_wrong(token: str) -> Callable[[str], list[Credentials]]:
    return lambda _path: [_nothing, _bearer(token[:-1] + "x"), _bearer(""), _telegram(token)]


APPS = [
    App(
        "alerts", "/api/alert", lambda _p: _bearer(AM_TOKEN), _token_wrong(AM_TOKEN), 1, authenticated_valid_data=False
    ),
    App("chat", "/api/webhook", _chat_right, _chat_wrong, 3, rejects_invalid_data=False),
    App("ops", "", lambda _p: _bearer(OPS_TOKEN), _token_wrong(OPS_TOKEN), 9),
]


def _send(session: requests.Session, case: schemathesis.Case, base: str, credentials: Credentials) -> requests.Response:
    """Send ``case`` with the credentials computed over the exact bytes that go out."""
    kwargs = case.as_transport_kwargs(base_url=base)
    request = requests.Request(
        method=kwargs["method"],
        url=kwargs["url"],
        headers=kwargs.get("headers"),
        params=kwargs.get("params"),
        cookies=kwargs.get("cookies"),
        json=kwargs.get("json"),
        data=kwargs.get("data"),
        files=kwargs.get("files"),
    ).prepare()
    body = request.body or b""
    request.headers.update(credentials(body.encode() if isinstance(body, str) else body))
    return session.send(request, timeout=30)


def _fuzz(
    operation: schemathesis.APIOperation, mode: GenerationMode, test: Callable[[schemathesis.Case], None]
) -> None:
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: schemathesis.Case) -> None:
        test(case)

    run()


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def _check_operation(operation: schemathesis.APIOperation, app: App, base: str, http: requests.Session) -> None:
    tally = f"schemathesis: {app.name} API over HTTP"
    right = app.right(operation.path)
    rejection = [negative_data_rejection] if app.rejects_invalid_data else []

    def authenticated(case: schemathesis.Case, checks: list[CheckFunction] = CONFORMS) -> None:  # noqa: B006
        count(tally)
        response = _send(http, case, base, right)
        if response.status_code == 413 and case.body is not None:
            # A generated body over the ingress size limit (e.g. alerts beyond maxItems): refused before
            # parsing, which is a rejection schemathesis' list of statuses does not name.
            case.validate_response(response, checks=CONFORMS)
            return
        case.validate_response(response, checks=checks)

    def unauthenticated(case: schemathesis.Case) -> None:
        count(tally)
        for credentials in app.wrong(operation.path):
            response = _send(http, case, base, credentials)
            case.validate_response(response, checks=CONFORMS)
            assert response.status_code in (401, 403), (
                f"{operation.label} answered {response.status_code} without valid credentials: {response.text[:300]}"
            )

    if operation.label in PUBLIC:
        _fuzz(operation, GenerationMode.POSITIVE, authenticated)
        return
    _fuzz(operation, GenerationMode.POSITIVE, unauthenticated)
    if app.authenticated_valid_data:
        _fuzz(operation, GenerationMode.POSITIVE, authenticated)
    if operation.label not in ANY_INPUT_IS_VALID:
        _fuzz(operation, GenerationMode.NEGATIVE, lambda case: authenticated(case, [*CONFORMS, *rejection]))


@pytest.mark.parametrize("app", APPS, ids=[a.name for a in APPS])
def test_every_operation_conforms_refuses_bad_data_and_refuses_missing_or_wrong_credentials(
    platform: Platform, app: App, http: requests.Session
) -> None:
    base = platform.base_url + app.prefix
    schema = schemathesis.openapi.from_url(base + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == app.operations, [o.label for o in operations]
    try:
        for operation in operations:
            _check_operation(operation, app, base, http)
    finally:
        if app.name == "ops":
            # The fuzzed POST /api/pause pauses the shared platform's runs; later tests need it running.
            answer = http.post(platform.base_url + "/api/resume", headers=platform.ops_headers(), timeout=30)
            assert answer.status_code in (200, 409), answer.text
