"""Slack: request signatures, events and interactions parsing, and the real slack_sdk against a loopback Web API."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest

from adapters.chat_channel import Channel, ConsoleChannel, RetryPolicy
from adapters.slack import SlackChannel, SlackVerifier, handle_events, handle_interactions, strip_mention
from config.chat import SlackConfig
from core.approvals import Verdict
from core.chat import ChatEvent, Decision, Message, MessageRef, Question, Status
from core.errors import AuthError, InputError, PermanentError, TemporaryError
from core.models import ApprovalId
from core.notify_format import render_reply
from tests.servers.slack_server import (
    SlackApiServer,
    block_actions,
    message_event,
    signed_headers,
    slack_signature,
    url_verification,
)

TOKEN = "xoxb-loopback-0000-token"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
NOW = 1_800_000_000
CONFIG = SlackConfig(enabled=True, allowed_channels=frozenset({"C0OPS", "D0DM"}))
VERIFIER = SlackVerifier(SIGNING_SECRET, clock=lambda: float(NOW))


class FakeSleep:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def server() -> Iterator[SlackApiServer]:
    with SlackApiServer(TOKEN) as srv:
        yield srv


@pytest.fixture
def sleep() -> FakeSleep:
    return FakeSleep()


@pytest.fixture
def channel(server: SlackApiServer, sleep: FakeSleep) -> SlackChannel:
    return SlackChannel(TOKEN, api_url=server.api_url, retry=RetryPolicy(attempts=3, sleep=sleep))


def events(body: bytes, timestamp: int = NOW) -> ChatEvent | None:
    return handle_events(body, signed_headers(SIGNING_SECRET, body, timestamp), verifier=VERIFIER, config=CONFIG).event


# --- signatures -----------------------------------------------------------------------------------


def test_the_signature_helper_matches_slacks_documented_example() -> None:
    # https://api.slack.com/authentication/verifying-requests-from-slack (the documented sample request)
    body = (
        b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&"
        b"channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&"
        b"response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&"
        b"trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    )
    expected = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    assert slack_signature(SIGNING_SECRET, 1531420618, body) == expected
    SlackVerifier(SIGNING_SECRET, clock=lambda: 1531420618.0).verify(
        body, {"X-Slack-Request-Timestamp": "1531420618", "X-Slack-Signature": expected}
    )


def test_a_valid_signature_is_accepted() -> None:
    body = message_event("C0OPS", "U1", "status")
    result = handle_events(body, signed_headers(SIGNING_SECRET, body, NOW), verifier=VERIFIER, config=CONFIG)
    assert result.event is not None and result.event.command == Status()


@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        pytest.param(lambda h, b: {**h, "X-Slack-Signature": "v0=" + "0" * 64}, "invalid", id="bad-signature"),
        pytest.param(lambda h, b: signed_headers("another-secret", b, NOW), "invalid", id="other-secret"),
        pytest.param(lambda h, b: {k: v for k, v in h.items() if k != "X-Slack-Signature"}, "missing", id="no-sig"),
        pytest.param(lambda h, b: {k: v for k, v in h.items() if "Timestamp" not in k}, "missing", id="no-ts"),
        pytest.param(lambda h, b: signed_headers(SIGNING_SECRET, b, NOW - 301), "stale", id="stale-timestamp"),
        pytest.param(lambda h, b: signed_headers(SIGNING_SECRET, b, NOW + 301), "stale", id="future-timestamp"),
        pytest.param(lambda h, b: {**h, "X-Slack-Request-Timestamp": "soon"}, "invalid", id="non-numeric-ts"),
    ],
)
def test_bad_or_stale_signatures_are_refused(mutate: object, problem: str) -> None:
    body = message_event("C0OPS", "U1", "status")
    headers = mutate(signed_headers(SIGNING_SECRET, body, NOW), body)  # type: ignore[operator]
    with pytest.raises(AuthError, match=problem):
        handle_events(body, headers, verifier=VERIFIER, config=CONFIG)


def test_a_tampered_body_fails_the_signature() -> None:
    body = message_event("C0OPS", "U1", "status")
    headers = signed_headers(SIGNING_SECRET, body, NOW)
    with pytest.raises(AuthError, match="invalid"):
        handle_events(body.replace(b"status", b"/pause"), headers, verifier=VERIFIER, config=CONFIG)


def test_without_a_signing_secret_everything_is_refused() -> None:
    body = url_verification("abc")
    with pytest.raises(AuthError, match="not set"):
        handle_events(body, signed_headers("x", body, NOW), verifier=SlackVerifier(None), config=CONFIG)


# --- events ---------------------------------------------------------------------------------------


def test_url_verification_answers_the_challenge() -> None:
    body = url_verification("3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P")
    result = handle_events(body, signed_headers(SIGNING_SECRET, body, NOW), verifier=VERIFIER, config=CONFIG)
    assert (result.status, result.body, result.event) == (
        200,
        {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"},
        None,
    )


def test_a_mention_with_a_command_becomes_an_event_in_the_thread() -> None:
    event = events(
        message_event(
            "C0OPS",
            "U42",
            "<@UBOT0001> approve k3x9q2",
            "1800000000.000300",
            event_type="app_mention",
            thread_ts="1800000000.000100",
        )
    )
    assert event is not None
    assert event.command == Decision(Verdict.APPROVE, ApprovalId("k3x9q2"))
    assert event.identity == "slack:U42"
    assert event.thread == MessageRef("slack", "C0OPS", "1800000000.000100")
    assert event.delivery_id == "C0OPS:1800000000.000300"


@pytest.mark.parametrize(
    ("body", "ignored"),
    [
        pytest.param(message_event("C0OPS", "U1", "lunch anyone?"), "chatter", id="channel-chatter"),
        pytest.param(message_event("C0OPS", "U1", "hi", bot_id="B0LOOP"), "bot_message", id="bot-message"),
        pytest.param(message_event("C0OPS", "U1", "x", subtype="message_changed"), "message_changed", id="edit"),
        pytest.param(message_event("C0OPS", "U1", "x", event_type="reaction_added"), "unsupported", id="reaction"),
    ],
)
def test_chatter_bot_messages_and_other_events_are_ignored(body: bytes, ignored: str) -> None:
    result = handle_events(body, signed_headers(SIGNING_SECRET, body, NOW), verifier=VERIFIER, config=CONFIG)
    assert (result.status, result.event) == (200, None)
    assert ignored in result.body["ignored"]


def test_a_direct_message_question_goes_to_the_assistant() -> None:
    event = events(message_event("D0DM", "U1", "why is checkout failing?", channel_type="im"))
    assert event is not None and event.command == Question("why is checkout failing?")


def test_a_mentioned_question_in_a_channel_goes_to_the_assistant() -> None:
    event = events(message_event("C0OPS", "U1", "<@UBOT0001>: what broke?"))
    assert event is not None and event.command == Question("what broke?")


def test_channels_not_in_the_config_are_refused() -> None:
    body = message_event("C0OTHER", "U1", "approve k3x9q2")
    result = handle_events(body, signed_headers(SIGNING_SECRET, body, NOW), verifier=VERIFIER, config=CONFIG)
    assert (result.status, result.event) == (200, None)
    assert "not allowed" in result.body["refused"]


def test_strip_mention_removes_only_leading_mentions() -> None:
    assert strip_mention("<@U1> <@U2|bob>, status") == ("status", True)
    assert strip_mention("ask <@U1> later") == ("ask <@U1> later", False)


# --- interactions ----------------------------------------------------------------------------------


def test_block_actions_yield_user_action_value_channel_ts_and_response_url() -> None:
    body = block_actions("C0OPS", "U42", "reject", "k3x9q2", "1800000000.000200", thread_ts="1800000000.000100")
    headers = signed_headers(SIGNING_SECRET, body, NOW, "application/x-www-form-urlencoded")
    event = handle_interactions(body, headers, verifier=VERIFIER, config=CONFIG).event
    assert event is not None
    assert event.command == Decision(Verdict.REJECT, ApprovalId("k3x9q2"))
    assert (event.user_id, event.chat, event.message_id) == ("U42", "C0OPS", "1800000000.000200")
    assert event.response_url == "https://hooks.slack.com/actions/T0LOOP/1/k3x9q2"
    assert event.thread == MessageRef("slack", "C0OPS", "1800000000.000100")


def test_interactions_are_verified_and_malformed_forms_refused() -> None:
    body = block_actions("C0OPS", "U42", "approve", "k3x9q2")
    with pytest.raises(AuthError):
        handle_interactions(body, signed_headers("nope", body, NOW), verifier=VERIFIER, config=CONFIG)
    bad = b"payload=%7Bnot-json"
    with pytest.raises(InputError):
        handle_interactions(bad, signed_headers(SIGNING_SECRET, bad, NOW), verifier=VERIFIER, config=CONFIG)


# --- outbound through slack_sdk ---------------------------------------------------------------------


def test_the_slack_and_console_channels_are_channels(channel: SlackChannel) -> None:
    channels: list[Channel] = [channel, ConsoleChannel(io.StringIO())]
    assert [c.name for c in channels] == ["slack", "console"]


async def test_auth_test_checks_the_token(server: SlackApiServer, channel: SlackChannel) -> None:
    assert (await channel.auth_test())["user_id"] == "UBOT0001"
    with pytest.raises(PermanentError, match="invalid_auth"):
        await SlackChannel("xoxb-wrong", api_url=server.api_url).auth_test()


async def test_send_posts_blocks_in_the_thread(server: SlackApiServer, channel: SlackChannel) -> None:
    root = await channel.send("C0OPS", Message(headline="New critical incident"))
    ref = await channel.send("C0OPS", render_reply("diagnosis follows", thread=root))
    [first, second] = server.method_calls("chat.postMessage")
    assert "thread_ts" not in first.params
    assert second.params["thread_ts"] == root.id
    assert second.params["blocks"][0]["text"]["text"] == "*diagnosis follows*"
    assert second.headers["authorization"] == f"Bearer {TOKEN}"
    assert server.messages[("C0OPS", ref.id)]["thread_ts"] == root.id


async def test_edit_goes_through_chat_update(server: SlackApiServer, channel: SlackChannel) -> None:
    ref = await channel.send("C0OPS", Message(headline="Approval needed"))
    await channel.edit(ref, Message(headline="Approved by slack:U42"))
    [call] = server.method_calls("chat.update")
    assert (call.params["channel"], call.params["ts"]) == ("C0OPS", ref.id)
    assert server.messages[("C0OPS", ref.id)]["text"] == "Approved by slack:U42"


async def test_a_refusal_is_ephemeral_to_the_sender(server: SlackApiServer, channel: SlackChannel) -> None:
    body = block_actions("C0OPS", "U7", "approve", "k3x9q2", thread_ts="1800000000.000100")
    event = handle_interactions(
        body,
        signed_headers(SIGNING_SECRET, body, NOW, "application/x-www-form-urlencoded"),
        verifier=VERIFIER,
        config=CONFIG,
    ).event
    assert event is not None
    await channel.refuse(event, "viewers may not approve or reject steps")
    [sent] = server.ephemeral
    assert (sent["channel"], sent["user"], sent["thread_ts"]) == ("C0OPS", "U7", "1800000000.000100")
    assert "viewers may not approve" in sent["text"]
    assert server.method_calls("chat.postMessage") == []


async def test_a_reply_to_an_event_lands_in_its_thread(server: SlackApiServer, channel: SlackChannel) -> None:
    event = events(message_event("C0OPS", "U1", "<@UBOT0001> status", "1800000000.000400"))
    assert event is not None
    await channel.reply(event, render_reply("all good"))
    [call] = server.method_calls("chat.postMessage")
    assert call.params["thread_ts"] == "1800000000.000400"


async def test_rate_limit_retry_after_is_honoured(
    server: SlackApiServer, channel: SlackChannel, sleep: FakeSleep
) -> None:
    server.rate_limit_next("chat.postMessage", retry_after=2, times=2)
    ref = await channel.send("C0OPS", Message(headline="hello"))
    assert sleep.waits == [2.0, 2.0]
    assert [c.status for c in server.method_calls("chat.postMessage")] == [429, 429, 200]
    assert ("C0OPS", ref.id) in server.messages


async def test_rate_limits_beyond_the_bounds_are_temporary_errors(
    server: SlackApiServer, channel: SlackChannel, sleep: FakeSleep
) -> None:
    server.rate_limit_next("chat.update", retry_after=90)
    with pytest.raises(TemporaryError) as raised:
        await channel.edit(MessageRef("slack", "C0OPS", "1.2"), Message(headline="x"))
    assert raised.value.delay == 90
    assert sleep.waits == []


async def test_api_errors_are_permanent(channel: SlackChannel) -> None:
    with pytest.raises(PermanentError, match="channel_not_found"):
        await channel.send("C0NOWHERE", Message(headline="hello"))
    with pytest.raises(PermanentError, match="message_not_found"):
        await channel.edit(MessageRef("slack", "C0OPS", "1.2"), Message(headline="x"))
