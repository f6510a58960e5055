"""Slack through slack_sdk: verify and parse Events API and interactivity requests, send messages.

Inbound, every request is checked the way Slack signs it: ``v0:<timestamp>:<raw body>``
HMAC-SHA256 with the signing secret, compared with ``X-Slack-Signature`` in constant time
(slack_sdk's ``SignatureVerifier``), and a ``X-Slack-Request-Timestamp`` more than five
minutes from our clock is refused as a replay. Then:

* ``handle_events``: ``url_verification`` answers the challenge; ``message`` and
  ``app_mention`` events become ``ChatEvent``s. Bot messages, edits and other subtypes are
  ignored (answering our own messages would loop). In a channel, plain chatter that is
  neither a command nor addressed to the bot is ignored too; in a DM it is a question.
* ``handle_interactions``: the form field ``payload`` of a ``block_actions`` press, i.e.
  the user, ``action_id`` (approve/reject), ``value`` (the approval id), channel, message
  ``ts`` and ``response_url``.

Channels not in ``allowed_channels`` are refused with a 200 (a non-2xx makes Slack retry).
Slack redelivers events it thinks were not answered in 3 s; ``ChatEvent.delivery_id`` is
``<channel>:<message ts>`` (the same for a ``message`` and an ``app_mention`` of one post),
so the caller can make handling idempotent.

Outbound, ``SlackChannel`` uses ``AsyncWebClient(token, base_url=...)``: ``chat.postMessage``
(threaded with ``thread_ts``), ``chat.update``, ``chat.postEphemeral`` for refusals only the
sender sees; 429 ``Retry-After`` is honoured with bounded retries.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any, TypeVar
from urllib.parse import parse_qs

from slack_sdk.errors import SlackApiError
from slack_sdk.signature import Clock, SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from adapters.chat_channel import InboundResult, RateLimiter, RetryPolicy, call_with_retry
from config.chat import SlackConfig
from core.chat import ChatEvent, Command, Invalid, Message, MessageRef, Question, Unknown, parse, parse_button
from core.errors import AuthError, InputError, PayloadTooLarge, PermanentError, TemporaryError
from core.notify_format import mrkdwn_escape, slack_payload

log = logging.getLogger(__name__)
T = TypeVar("T")

SIGNATURE_HEADER = "X-Slack-Signature"
TIMESTAMP_HEADER = "X-Slack-Request-Timestamp"
RETRY_HEADER = "X-Slack-Retry-Num"
REPLAY_WINDOW = 300.0
DEFAULT_API_URL = "https://slack.com/api/"
MAX_REQUEST_BYTES = 1024 * 1024
_LEADING_MENTION = re.compile(r"^(?:\s*<@[A-Z0-9]+(?:\|[^>]*)?>[\s:,]*)+")


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


class _InjectedClock(Clock):
    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock

    def now(self) -> float:
        return self._clock()


class SlackVerifier:
    """Checks Slack's request signature and timestamp; ``clock`` is injectable for tests."""

    def __init__(self, signing_secret: str | None, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._verifier = SignatureVerifier(signing_secret, _InjectedClock(clock)) if signing_secret else None

    def verify(self, body: bytes, headers: Mapping[str, str]) -> None:
        if self._verifier is None:
            raise AuthError("the Slack endpoints refuse all requests: SLACK_SIGNING_SECRET is not set")
        timestamp = _header(headers, TIMESTAMP_HEADER)
        signature = _header(headers, SIGNATURE_HEADER)
        if timestamp is None or signature is None:
            raise AuthError(f"missing {TIMESTAMP_HEADER} or {SIGNATURE_HEADER} header")
        try:
            sent_at = int(timestamp)
        except ValueError as e:
            raise AuthError(f"invalid {TIMESTAMP_HEADER} header") from e
        if abs(self._clock() - sent_at) > REPLAY_WINDOW:
            raise AuthError("stale Slack request timestamp (more than 5 minutes off): refused as a possible replay")
        if not signature.isascii():  # slack_sdk's compare_digest raises TypeError on non-ASCII text
            raise AuthError("invalid Slack request signature")
        try:
            valid = self._verifier.is_valid(body, timestamp, signature)
        except UnicodeDecodeError as e:
            raise AuthError("the Slack request body is not UTF-8") from e
        if not valid:
            raise AuthError("invalid Slack request signature")


def _check_size(body: bytes, max_bytes: int) -> None:
    if len(body) > max_bytes:
        raise PayloadTooLarge(f"request of {len(body)} bytes is over the {max_bytes} byte limit")


def _ignored(reason: str) -> InboundResult:
    return InboundResult(200, {"ok": True, "ignored": reason}, None)


def _refused(channel: str) -> InboundResult:
    log.warning("slack: refused a request from channel %s (not in allowed_channels)", channel)
    return InboundResult(200, {"ok": False, "refused": f"channel {channel} is not allowed"}, None)


def strip_mention(text: str) -> tuple[str, bool]:
    """Text without leading ``<@U123>`` mentions, and whether there was one."""
    stripped = _LEADING_MENTION.sub("", text, count=1)
    return stripped, stripped != text


def _is_chatter(command: Command) -> bool:
    return isinstance(command, Question | Unknown) or (isinstance(command, Invalid) and not command.command)


def parse_event(data: Mapping[str, Any], config: SlackConfig, retry: str | None = None) -> InboundResult:
    """A decoded Events API body -> the challenge answer, a ChatEvent, or an ignored/refused body."""
    kind = data.get("type")
    if kind == "url_verification":
        challenge = data.get("challenge")
        if not isinstance(challenge, str):
            raise InputError("url_verification without a challenge")
        return InboundResult(200, {"challenge": challenge}, None)
    if kind != "event_callback":
        return _ignored(f"unsupported request type: {kind}")
    event = data.get("event")
    if not isinstance(event, dict):
        raise InputError("event_callback without an event object")
    etype = event.get("type")
    if etype not in ("message", "app_mention"):
        return _ignored(f"unsupported event type: {etype}")
    if event.get("bot_id") or event.get("subtype"):
        return _ignored(f"ignored message subtype: {event.get('subtype') or 'bot_message'}")
    channel, user, ts = (str(event.get(k) or "") for k in ("channel", "user", "ts"))
    text = event.get("text")
    if not (channel and user and ts) or not isinstance(text, str):
        raise InputError("message event without channel, user, text or ts")
    if not config.allows(channel):
        return _refused(channel)
    body, mentioned = strip_mention(text)
    command = parse(body)
    direct = event.get("channel_type") == "im"
    if _is_chatter(command) and not (direct or mentioned or etype == "app_mention"):
        return _ignored("channel chatter not addressed to the bot")
    thread_ts = event.get("thread_ts") if isinstance(event.get("thread_ts"), str) else None
    extra = (("retry_num", retry),) if retry else ()
    chat_event = ChatEvent(
        channel="slack",
        chat=channel,
        user_id=user,
        command=command,
        text=body,
        message_id=ts,
        delivery_id=f"{channel}:{ts}",
        thread=MessageRef("slack", channel, thread_ts or ts),
        extra=extra + (("event_id", str(data.get("event_id", ""))),),
    )
    return InboundResult(200, {"ok": True}, chat_event)


def handle_events(
    body: bytes,
    headers: Mapping[str, str],
    *,
    verifier: SlackVerifier,
    config: SlackConfig,
    max_bytes: int = MAX_REQUEST_BYTES,
) -> InboundResult:
    """``POST /api/webhook/slack/events``. Raises AuthError/InputError/PayloadTooLarge."""
    _check_size(body, max_bytes)
    verifier.verify(body, headers)
    try:
        data = json.loads(body)
    except ValueError as e:
        raise InputError("the Slack event body is not JSON") from e
    if not isinstance(data, dict):
        raise InputError("the Slack event body must be a JSON object")
    return parse_event(data, config, _header(headers, RETRY_HEADER))


def _mapping(value: Any) -> dict[str, Any]:
    """A sub-object of an untrusted payload, or {} when it is missing or not an object."""
    return value if isinstance(value, dict) else {}


def parse_interaction(payload: Mapping[str, Any], config: SlackConfig) -> InboundResult:
    """A decoded interactivity payload -> a ChatEvent for a ``block_actions`` button press."""
    if payload.get("type") != "block_actions":
        return _ignored(f"unsupported interaction type: {payload.get('type')}")
    user = payload.get("user") or {}
    actions = payload.get("actions") or []
    container = _mapping(payload.get("container"))
    channel = _mapping(payload.get("channel")).get("id") or container.get("channel_id")
    message = _mapping(payload.get("message"))
    if not isinstance(user, dict) or not user.get("id") or not isinstance(actions, list) or not actions:
        raise InputError("block_actions without a user or an action")
    if not isinstance(actions[0], dict):
        raise InputError("block_actions without a user or an action")
    if not isinstance(channel, str) or not channel:
        return _ignored("button press outside a channel")
    if not config.allows(channel):
        return _refused(channel)
    action = actions[0]
    ts = message.get("ts") or container.get("message_ts")
    thread_ts = message.get("thread_ts") or ts
    action_id, value = str(action.get("action_id", "")), str(action.get("value", ""))
    event = ChatEvent(
        channel="slack",
        chat=channel,
        user_id=str(user["id"]),
        command=parse_button(action_id, value),
        text=f"{action_id}:{value}",
        message_id=str(ts) if ts else None,
        response_url=payload.get("response_url") if isinstance(payload.get("response_url"), str) else None,
        delivery_id=f"{channel}:{ts}:{action.get('action_ts', '')}:{user['id']}",
        thread=MessageRef("slack", channel, str(thread_ts)) if thread_ts else None,
        extra=(("trigger_id", str(payload.get("trigger_id", ""))),),
    )
    return InboundResult(200, {"ok": True}, event)


def handle_interactions(
    body: bytes,
    headers: Mapping[str, str],
    *,
    verifier: SlackVerifier,
    config: SlackConfig,
    max_bytes: int = MAX_REQUEST_BYTES,
) -> InboundResult:
    """``POST /api/webhook/slack/interactions`` (form-encoded ``payload=<json>``)."""
    _check_size(body, max_bytes)
    verifier.verify(body, headers)
    try:
        fields = parse_qs(body.decode("utf-8"), strict_parsing=True)
        payload = json.loads(fields["payload"][0])
    except (UnicodeDecodeError, ValueError, KeyError, IndexError) as e:
        raise InputError("the Slack interaction body must be a form with a JSON payload field") from e
    if not isinstance(payload, dict):
        raise InputError("the Slack interaction payload must be a JSON object")
    return parse_interaction(payload, config)


# --- outbound -------------------------------------------------------------------------------


def _retry_after(error: BaseException) -> float | None:
    if not isinstance(error, SlackApiError) or error.response is None or error.response.status_code != 429:
        return None
    headers = error.response.headers or {}
    value = _header(dict(headers.items()), "Retry-After")
    try:
        return float(value) if value is not None else 1.0
    except ValueError:
        return 1.0


class SlackChannel:
    """Sends through the Web API; ``api_url`` is the loopback server in tests."""

    name = "slack"

    def __init__(
        self,
        token: str,
        *,
        api_url: str = DEFAULT_API_URL,
        limiter: RateLimiter | None = None,
        retry: RetryPolicy | None = None,
        timeout: int = 10,
    ) -> None:
        if not token:
            raise PermanentError("SLACK_BOT_TOKEN is empty")
        # Retries are ours (bounded, with the injectable sleep), not the SDK's handlers.
        self._client = AsyncWebClient(token=token, base_url=api_url, timeout=timeout, retry_handlers=[])
        self._limiter = limiter
        self._retry = retry or RetryPolicy()

    async def _call(self, call: Callable[[], Awaitable[T]], what: str, limit_key: str | None) -> T:
        async def attempt() -> T:
            if limit_key is not None and self._limiter is not None:
                await self._limiter.acquire(limit_key)
            return await call()

        try:
            return await call_with_retry(attempt, _retry_after, self._retry, f"slack {what}")
        except SlackApiError as e:
            code = e.response.get("error", "unknown_error") if e.response is not None else "unknown_error"
            status = e.response.status_code if e.response is not None else 0
            if status >= 500:
                raise TemporaryError(f"slack {what}: {code} (HTTP {status})", delay=2.0) from e
            raise PermanentError(f"slack {what}: {code}") from e
        except (OSError, TimeoutError) as e:
            raise TemporaryError(f"slack {what}: {e}", delay=2.0) from e

    async def auth_test(self) -> dict[str, Any]:
        """Check the token; returns Slack's answer (team, user_id of the bot, ...)."""
        response = await self._call(self._client.auth_test, "auth.test", limit_key=None)
        return dict(response.data) if isinstance(response.data, dict) else {}

    async def send(self, target: str, message: Message) -> MessageRef:
        payload = slack_payload(message)
        response = await self._call(
            lambda: self._client.chat_postMessage(channel=target, **payload),
            "chat.postMessage",
            limit_key=target,
        )
        return MessageRef("slack", str(response.get("channel") or target), str(response["ts"]))

    async def edit(self, ref: MessageRef, message: Message) -> None:
        payload = slack_payload(message)
        payload.pop("thread_ts", None)
        await self._call(
            lambda: self._client.chat_update(channel=ref.target, ts=ref.id, **payload),
            "chat.update",
            limit_key=ref.target,
        )

    async def ephemeral(self, channel: str, user: str, text: str, thread_ts: str | None = None) -> None:
        """A message only ``user`` sees (e.g. "you are not allowed to approve this")."""
        kwargs: dict[str, Any] = {"channel": channel, "user": user, "text": mrkdwn_escape(text)}
        if thread_ts:
            kwargs["thread_ts"] = thread_ts
        await self._call(lambda: self._client.chat_postEphemeral(**kwargs), "chat.postEphemeral", limit_key=channel)

    async def refuse(self, event: ChatEvent, reason: str) -> None:
        """Tell only the sender that they may not do this."""
        thread = event.thread.id if event.thread else None
        await self.ephemeral(event.chat, event.user_id, f"You are not allowed to do that: {reason}", thread)

    async def reply(self, event: ChatEvent, message: Message) -> MessageRef | None:
        """Answer in the event's thread."""
        return await self.send(event.chat, replace(message, thread=message.thread or event.thread))
