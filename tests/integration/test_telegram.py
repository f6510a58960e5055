"""Telegram: webhook verification and update parsing, and the real python-telegram-bot against a loopback Bot API."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import pytest

from adapters.chat_channel import Channel, RateLimiter, RetryPolicy
from adapters.telegram import TelegramChannel, handle_webhook
from config.chat import TelegramConfig
from core.approvals import Approval, Verdict
from core.chat import Decision, Ignored, Message, MessageRef, Question, Status
from core.errors import AuthError, InputError, PayloadTooLarge, PermanentError, TemporaryError
from core.models import ApprovalId, RunId
from core.notify_format import render_approval_request
from core.tools import Action, Risk
from tests.servers.telegram_server import (
    TelegramApiServer,
    callback_update,
    document_update,
    edited_update,
    sticker_update,
    text_update,
    webhook_headers,
)

# python-telegram-bot warns about its own retry_after type change while building RetryAfter
# (adapters/telegram.py filters it in production; pytest resets filters per test).
pytestmark = pytest.mark.filterwarnings("ignore:.*attribute `retry_after`:telegram.warnings.PTBDeprecationWarning")

TOKEN = "7000001:AAHloopbackTokenForTests0123456789"
SECRET = "wh-secret-5f1d8e2a9c"
GROUP = -1001234
CONFIG = TelegramConfig(enabled=True, allowed_chats=frozenset({GROUP}), bot_username="aiops_bot")


def approval() -> Approval:
    action = Action(tool="delete_pod", params={"namespace": "shop", "name": "api-7d9"})
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    return Approval.from_scratch(ApprovalId("k3x9q2"), RunId("run-1"), "restart-pod", Risk.MEDIUM, action, now)


class FakeSleep:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def server() -> Iterator[TelegramApiServer]:
    with TelegramApiServer(TOKEN) as srv:
        yield srv


@pytest.fixture
def sleep() -> FakeSleep:
    return FakeSleep()


@pytest.fixture
async def channel(server: TelegramApiServer, sleep: FakeSleep) -> AsyncIterator[TelegramChannel]:
    async with TelegramChannel(TOKEN, api_url=server.api_url, retry=RetryPolicy(attempts=3, sleep=sleep)) as ch:
        yield ch


# --- inbound -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "secret", "problem"),
    [
        pytest.param(webhook_headers(None), SECRET, "missing", id="missing-header"),
        pytest.param(webhook_headers("wrong-secret-value"), SECRET, "invalid", id="wrong-secret"),
        pytest.param(webhook_headers(SECRET.upper()), SECRET, "invalid", id="case-matters"),
        pytest.param(webhook_headers(SECRET), None, "not set", id="unconfigured-secret-refuses-all"),
    ],
)
def test_webhook_without_the_right_secret_token_is_refused(
    headers: dict[str, str], secret: str | None, problem: str
) -> None:
    with pytest.raises(AuthError, match=problem):
        handle_webhook(text_update(1, GROUP, 42, "/status"), headers, secret=secret, config=CONFIG)


def test_webhook_with_the_right_secret_token_yields_the_parsed_command() -> None:
    headers = {k.lower(): v for k, v in webhook_headers(SECRET).items()}  # header names are case-insensitive
    result = handle_webhook(text_update(7, GROUP, 42, "/status@aiops_bot", 3), headers, secret=SECRET, config=CONFIG)
    assert result.status == 200
    event = result.event
    assert event is not None
    assert event.command == Status()
    assert (event.chat, event.user_id, event.identity, event.message_id) == (str(GROUP), "42", "telegram:42", "3")
    assert event.delivery_id == "7"
    assert event.thread == MessageRef("telegram", str(GROUP), "3")


def test_replies_to_a_bot_message_stay_in_its_thread() -> None:
    body = text_update(
        8,
        GROUP,
        42,
        "why is it failing?",
        12,
        reply_to_message={"message_id": 5, "date": 1_800_000_000, "chat": {"id": GROUP, "type": "group"}},
    )
    result = handle_webhook(body, webhook_headers(SECRET), secret=SECRET, config=CONFIG)
    assert result.event is not None
    assert result.event.command == Question("why is it failing?")
    assert result.event.thread == MessageRef("telegram", str(GROUP), "5")


def test_callback_query_yields_a_decision_with_the_callback_id() -> None:
    result = handle_webhook(
        callback_update(9, GROUP, 42, "approve:k3x9q2", 5), webhook_headers(SECRET), secret=SECRET, config=CONFIG
    )
    event = result.event
    assert event is not None
    assert event.command == Decision(Verdict.APPROVE, ApprovalId("k3x9q2"))
    assert event.callback_id == "cbq-9"
    assert event.message_id == "5"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        pytest.param(sticker_update(10, GROUP, 42), "unsupported message type: sticker", id="sticker"),
        pytest.param(document_update(11, GROUP, 42), "unsupported message type: document", id="file"),
        pytest.param(edited_update(12, GROUP, 42, "/pause"), "unsupported update type: edited_message", id="edit"),
        pytest.param(
            json.dumps(
                {
                    "update_id": 13,
                    "my_chat_member": {
                        "chat": {"id": GROUP, "type": "group"},
                        "from": {"id": 1, "is_bot": False, "first_name": "A"},
                        "date": 1,
                        "old_chat_member": {"status": "left", "user": {"id": 2, "is_bot": True, "first_name": "B"}},
                        "new_chat_member": {"status": "member", "user": {"id": 2, "is_bot": True, "first_name": "B"}},
                    },
                }
            ).encode(),
            "unsupported update type: my_chat_member",
            id="member-update",
        ),
    ],
)
def test_unsupported_updates_are_acknowledged_and_ignored_not_errors(body: bytes, reason: str) -> None:
    result = handle_webhook(body, webhook_headers(SECRET), secret=SECRET, config=CONFIG)
    assert (result.status, result.event) == (200, None)
    assert result.body["ignored"] == reason


def test_messages_from_chats_not_in_the_config_are_refused() -> None:
    for body in (text_update(14, -999, 42, "approve k3x9q2"), callback_update(15, -999, 42, "approve:k3x9q2")):
        result = handle_webhook(body, webhook_headers(SECRET), secret=SECRET, config=CONFIG)
        assert (result.status, result.event) == (200, None)
        assert "not allowed" in result.body["refused"]


def test_commands_for_another_bot_are_parsed_as_ignored() -> None:
    result = handle_webhook(
        text_update(16, GROUP, 42, "/status@other_bot"), webhook_headers(SECRET), secret=SECRET, config=CONFIG
    )
    assert result.event is not None and isinstance(result.event.command, Ignored)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        pytest.param(b"not json", InputError, id="not-json"),
        pytest.param(b"[1, 2]", InputError, id="not-an-object"),
        pytest.param(b'{"message": {}}', InputError, id="no-update-id"),
        pytest.param(b"{" + b" " * (1024 * 1024) + b"}", PayloadTooLarge, id="too-large"),
    ],
)
def test_malformed_bodies_are_input_errors(body: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        handle_webhook(body, webhook_headers(SECRET), secret=SECRET, config=CONFIG)


# --- outbound through python-telegram-bot -------------------------------------------------------------


async def test_send_with_buttons_and_reply_to_reaches_the_bot_api(
    server: TelegramApiServer, channel: TelegramChannel
) -> None:
    message = render_approval_request(approval(), thread=MessageRef("telegram", str(GROUP), "77"))
    ref = await channel.send(str(GROUP), message)
    assert ref.channel == "telegram" and ref.target == str(GROUP) and ref.id.isdigit()
    assert len(server.method_calls("getMe")) == 1
    [call] = server.method_calls("sendMessage")
    assert call.params["chat_id"] == GROUP
    assert "delete_pod(name=api-7d9, namespace=shop)" in call.params["text"]
    assert "parse_mode" not in call.params
    assert call.params["reply_parameters"]["message_id"] == 77
    buttons = call.params["reply_markup"]["inline_keyboard"][0]
    assert [b["callback_data"] for b in buttons] == ["approve:k3x9q2", "reject:k3x9q2"]


async def test_a_pressed_button_from_a_sent_message_comes_back_as_the_decision(
    server: TelegramApiServer, channel: TelegramChannel
) -> None:
    ref = await channel.send(str(GROUP), render_approval_request(approval()))
    stored = server.messages[(GROUP, int(ref.id))]
    pressed = stored["reply_markup"]["inline_keyboard"][0][1]["callback_data"]
    result = handle_webhook(
        callback_update(20, GROUP, 42, pressed, int(ref.id)), webhook_headers(SECRET), secret=SECRET, config=CONFIG
    )
    assert result.event is not None
    assert result.event.command == Decision(Verdict.REJECT, ApprovalId("k3x9q2"))


async def test_edit_replaces_text_and_removes_buttons_and_a_repeat_edit_is_harmless(
    server: TelegramApiServer, channel: TelegramChannel
) -> None:
    ref = await channel.send(str(GROUP), render_approval_request(approval()))
    done = Message(headline="✅ Approved: step restart-pod")
    await channel.edit(ref, done)
    await channel.edit(ref, done)  # Telegram answers "message is not modified": not an error
    stored = server.messages[(GROUP, int(ref.id))]
    assert stored["text"] == "✅ Approved: step restart-pod"
    assert "reply_markup" not in stored
    assert len(server.method_calls("editMessageText")) == 2


async def test_answer_callback_and_reply_to_an_event(server: TelegramApiServer, channel: TelegramChannel) -> None:
    result = handle_webhook(
        callback_update(21, GROUP, 42, "approve:k3x9q2", 5), webhook_headers(SECRET), secret=SECRET, config=CONFIG
    )
    assert result.event is not None
    await channel.reply(result.event, Message(headline="Approved by telegram:42"))
    [answer] = server.method_calls("answerCallbackQuery")
    assert answer.params["callback_query_id"] == "cbq-21"
    assert answer.params["text"] == "Approved by telegram:42"
    [sent] = server.method_calls("sendMessage")
    assert sent.params["reply_parameters"]["message_id"] == 5


async def test_setup_webhook_sends_the_url_and_secret_token(
    server: TelegramApiServer, channel: TelegramChannel
) -> None:
    await channel.setup_webhook("https://aiops.example.com/api/webhook/telegram", SECRET)
    assert server.webhook["url"] == "https://aiops.example.com/api/webhook/telegram"
    assert server.webhook["secret_token"] == SECRET
    assert server.webhook["allowed_updates"] == ["message", "callback_query"]


async def test_flood_control_retry_after_is_honoured_then_the_send_succeeds(
    server: TelegramApiServer, channel: TelegramChannel, sleep: FakeSleep
) -> None:
    server.fail_next("sendMessage", 429, retry_after=3)
    server.fail_next("sendMessage", 429, retry_after=2)
    ref = await channel.send(str(GROUP), Message(headline="hello"))
    assert sleep.waits == [3.0, 2.0]
    assert [c.status for c in server.method_calls("sendMessage")] == [429, 429, 200]
    assert (GROUP, int(ref.id)) in server.messages


async def test_flood_control_beyond_the_bounds_is_a_temporary_error_with_the_delay(
    server: TelegramApiServer, channel: TelegramChannel, sleep: FakeSleep
) -> None:
    server.fail_next("sendMessage", 429, retry_after=120)
    with pytest.raises(TemporaryError) as raised:
        await channel.send(str(GROUP), Message(headline="hello"))
    assert raised.value.delay == 120
    assert sleep.waits == []
    for _ in range(3):
        server.fail_next("sendMessage", 429, retry_after=1)
    with pytest.raises(TemporaryError):
        await channel.send(str(GROUP), Message(headline="hello"))
    assert sleep.waits == [1.0, 1.0]


async def test_refusals_of_the_bot_api_are_permanent_errors(
    server: TelegramApiServer, channel: TelegramChannel
) -> None:
    server.fail_next("sendMessage", 403, retry_after=None)
    with pytest.raises(PermanentError, match="refused"):
        await channel.send(str(GROUP), Message(headline="hello"))
    with pytest.raises(PermanentError, match="bad request"):
        await channel.send_message(GROUP, "")


async def test_a_wrong_token_is_a_permanent_error_at_start(server: TelegramApiServer) -> None:
    channel = TelegramChannel("123:wrong-token-value", api_url=server.api_url)
    with pytest.raises(PermanentError, match="token was rejected") as raised:
        await channel.start()
    assert "wrong-token-value" not in str(raised.value) and raised.value.__cause__ is None
    await channel.close()


def test_the_telegram_channel_is_a_channel(server: TelegramApiServer) -> None:
    channel: Channel = TelegramChannel(TOKEN, api_url=server.api_url)
    assert channel.name == "telegram"


async def test_sends_wait_on_the_per_chat_rate_limiter(server: TelegramApiServer, sleep: FakeSleep) -> None:
    now = [0.0]

    async def advance(seconds: float) -> None:
        sleep.waits.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(per_second=1.0, burst=1, clock=lambda: now[0], sleep=advance)
    async with TelegramChannel(TOKEN, api_url=server.api_url, limiter=limiter) as channel:
        await channel.send(str(GROUP), Message(headline="one"))
        await channel.send(str(GROUP), Message(headline="two"))
    assert sleep.waits == [1.0]
    assert len(server.method_calls("sendMessage")) == 2
