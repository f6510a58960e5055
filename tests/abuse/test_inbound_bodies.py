"""Authenticated but malformed chat webhook bodies: a result or an InputError, never a crash.

A correctly signed Slack request (or a Telegram update with the right secret token) can
still carry any JSON: a buggy proxy, a new Slack payload shape, or someone holding the
secret. ``handle_events``/``handle_interactions``/``handle_webhook`` must answer it with an
``InboundResult`` or an ``InputError`` (a 4xx), never another exception (a 500 makes Slack
and Telegram redeliver the same poison body again and again).

Found by this file: a signed Slack interaction whose ``channel``/``message``/``container``
was not an object, or whose ``actions`` was an object, raised AttributeError/KeyError; a
Telegram update with wrong-typed fields (python-telegram-bot's ``de_json`` checks no types:
``text: true``, a chat without an id, a callback without a chat) raised AttributeError or
TypeError. Both adapters now answer these with InputError.
"""

from __future__ import annotations

import copy
import json
from typing import Any
from urllib.parse import parse_qs, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.chat_channel import InboundResult
from adapters.slack import SlackVerifier, handle_events, handle_interactions
from adapters.telegram import handle_webhook
from config.chat import SlackConfig, TelegramConfig
from core.errors import InputError
from tests.abuse.tally import count
from tests.servers.slack_server import block_actions, message_event, signed_headers
from tests.servers.telegram_server import callback_update, text_update, webhook_headers

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
NOW = 1_800_000_000
SLACK = SlackConfig(enabled=True, allowed_channels=frozenset({"C0OPS", "D0DM"}))
VERIFIER = SlackVerifier(SECRET, clock=lambda: float(NOW))
TG_SECRET = "wh-secret-5f1d8e2a9c"
TELEGRAM = TelegramConfig(enabled=True, allowed_chats=frozenset({-1001234}), bot_username="aiops_bot")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out += _paths(value, (*prefix, index))
    return out


@st.composite
def mutated(draw: st.DrawFn, original: dict[str, Any]) -> dict[str, Any]:
    data = copy.deepcopy(original)
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(data)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = data
        for part in path[:-1]:
            parent = parent[part]
        if isinstance(parent, dict) and draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(json_values)
    return data


EVENT = json.loads(message_event("C0OPS", "U1", "approve k3x9q2"))
INTERACTION = json.loads(parse_qs(block_actions("C0OPS", "U1", "approve", "k3x9q2").decode())["payload"][0])
TG_TEXT = json.loads(text_update(1, -1001234, 42, "/status"))
TG_CALLBACK = json.loads(callback_update(2, -1001234, 42, "approve:k3x9q2"))


def _answer(call: Any) -> InboundResult | None:
    try:
        result = call()
    except InputError:
        return None
    assert isinstance(result, InboundResult)
    return result


@SETTINGS
@given(json_values | mutated(EVENT))
def test_signed_slack_events_with_any_body_get_a_result_or_an_input_error(data: Any) -> None:
    count("slack: signed arbitrary event body")
    body = json.dumps(data).encode()
    _answer(lambda: handle_events(body, signed_headers(SECRET, body, NOW), verifier=VERIFIER, config=SLACK))


@SETTINGS
@given(json_values | mutated(INTERACTION))
def test_signed_slack_interactions_with_any_payload_get_a_result_or_an_input_error(data: Any) -> None:
    count("slack: signed arbitrary interaction")
    body = urlencode({"payload": json.dumps(data)}).encode()
    headers = signed_headers(SECRET, body, NOW, "application/x-www-form-urlencoded")
    _answer(lambda: handle_interactions(body, headers, verifier=VERIFIER, config=SLACK))


@SETTINGS
@given(json_values | mutated(TG_TEXT) | mutated(TG_CALLBACK))
def test_telegram_updates_with_the_right_secret_and_any_body_get_a_result_or_an_input_error(data: Any) -> None:
    count("telegram: arbitrary update body")
    body = json.dumps(data).encode()
    _answer(lambda: handle_webhook(body, webhook_headers(TG_SECRET), secret=TG_SECRET, config=TELEGRAM))
