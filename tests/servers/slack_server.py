"""A loopback server speaking the Slack Web API wire format, and requests signed as Slack signs them.

``SlackApiServer(token)`` answers ``POST /api/<method>`` for ``auth.test``,
``chat.postMessage``, ``chat.update`` and ``chat.postEphemeral`` as Slack does: HTTP 200
with ``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}`` (``invalid_auth`` for a wrong
bearer token, ``channel_not_found``, ``message_not_found``, ``no_text``). ``rate_limit_next``
makes the next calls of a method answer HTTP 429 with a ``Retry-After`` header and
``{"ok": false, "error": "ratelimited"}``. ``AsyncWebClient(base_url=server.api_url)``.

``signed_headers`` signs a body exactly as Slack does (``v0=`` + HMAC-SHA256 of
``v0:<timestamp>:<body>`` with the signing secret); the builders produce Events API and
interactivity bodies as Slack sends them.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
from collections import defaultdict, deque
from typing import Any
from urllib.parse import urlencode

from tests.servers.loopback import Answer, Call, LoopbackServer

BOT_USER_ID = "UBOT0001"


class SlackApiServer(LoopbackServer):
    name = "slack"

    def __init__(self, token: str, channels: tuple[str, ...] = ("C0OPS", "C0PROD")) -> None:
        super().__init__()
        self.token = token
        self.channels = set(channels)
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}
        self.ephemeral: list[dict[str, Any]] = []
        self._ts = itertools.count(1)
        self._failures: dict[str, deque[Answer]] = defaultdict(deque)

    @property
    def api_url(self) -> str:
        return f"{self.base}/api/"

    def rate_limit_next(self, method: str, retry_after: int = 1, times: int = 1) -> None:
        with self.lock:
            for _ in range(times):
                self._failures[method].append(
                    (429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(retry_after)})
                )

    def method_calls(self, method: str) -> list[Call]:
        return self.calls_to(f"/api/{method}")

    def answer(self, call: Call) -> Answer:
        if not call.path.startswith("/api/"):
            return 404, {"ok": False, "error": "unknown_method"}, {}
        method = call.path[len("/api/") :]
        with self.lock:
            failures = self._failures.get(method)
            if failures:
                return failures.popleft()
        if call.headers.get("authorization") != f"Bearer {self.token}":
            return 200, {"ok": False, "error": "invalid_auth"}, {}
        handler = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post,
            "chat.update": self._update,
            "chat.postEphemeral": self._ephemeral,
        }.get(method)
        if handler is None:
            return 200, {"ok": False, "error": "unknown_method"}, {}
        return 200, handler(call.params), {}

    def _auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://loopback.slack.com/",
            "team": "Loopback",
            "user": "aiops",
            "team_id": "T0LOOP",
            "user_id": BOT_USER_ID,
            "bot_id": "B0LOOP",
        }

    def _check(self, params: dict[str, Any]) -> str | None:
        if params.get("channel") not in self.channels:
            return "channel_not_found"
        if not params.get("text") and not params.get("blocks"):
            return "no_text"
        return None

    def _post(self, params: dict[str, Any]) -> dict[str, Any]:
        problem = self._check(params)
        if problem:
            return {"ok": False, "error": problem}
        ts = f"1800000000.{next(self._ts):06d}"
        message = {
            "type": "message",
            "user": BOT_USER_ID,
            "bot_id": "B0LOOP",
            "ts": ts,
            "text": params.get("text"),
            "blocks": params.get("blocks", []),
        }
        if params.get("thread_ts"):
            message["thread_ts"] = params["thread_ts"]
        with self.lock:
            self.messages[(params["channel"], ts)] = message
        return {"ok": True, "channel": params["channel"], "ts": ts, "message": message}

    def _update(self, params: dict[str, Any]) -> dict[str, Any]:
        problem = self._check(params)
        if problem:
            return {"ok": False, "error": problem}
        key = (params["channel"], str(params.get("ts")))
        with self.lock:
            if key not in self.messages:
                return {"ok": False, "error": "message_not_found"}
            message = {**self.messages[key], "text": params.get("text"), "blocks": params.get("blocks", [])}
            self.messages[key] = message
        return {"ok": True, "channel": key[0], "ts": key[1], "text": params.get("text"), "message": message}

    def _ephemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        problem = self._check(params)
        if problem:
            return {"ok": False, "error": problem}
        if not params.get("user"):
            return {"ok": False, "error": "user_not_in_channel"}
        with self.lock:
            self.ephemeral.append(dict(params))
        return {"ok": True, "message_ts": f"1800000000.{next(self._ts):06d}"}


# --- inbound requests, as Slack sends and signs them ----------------------------------------------


def slack_signature(secret: str, timestamp: int | str, body: bytes) -> str:
    base = b"v0:" + str(timestamp).encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def signed_headers(secret: str, body: bytes, timestamp: int, content_type: str = "application/json") -> dict[str, str]:
    return {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": str(timestamp),
        "X-Slack-Signature": slack_signature(secret, timestamp, body),
    }


def url_verification(challenge: str) -> bytes:
    return json.dumps({"token": "legacy", "challenge": challenge, "type": "url_verification"}).encode()


def message_event(
    channel: str,
    user: str,
    text: str,
    ts: str = "1800000000.000100",
    *,
    event_type: str = "message",
    channel_type: str = "channel",
    **extra: Any,
) -> bytes:
    event = {
        "type": event_type,
        "channel": channel,
        "user": user,
        "text": text,
        "ts": ts,
        "channel_type": channel_type,
        **extra,
    }
    body = {
        "token": "legacy",
        "team_id": "T0LOOP",
        "api_app_id": "A0LOOP",
        "event": event,
        "type": "event_callback",
        "event_id": f"Ev{ts.replace('.', '')}",
        "event_time": 1_800_000_000,
    }
    return json.dumps(body).encode()


def block_actions(
    channel: str,
    user: str,
    action_id: str,
    value: str,
    message_ts: str = "1800000000.000200",
    thread_ts: str | None = None,
) -> bytes:
    message: dict[str, Any] = {"type": "message", "ts": message_ts, "text": "Approval needed", "user": BOT_USER_ID}
    if thread_ts:
        message["thread_ts"] = thread_ts
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": "ada", "team_id": "T0LOOP"},
        "api_app_id": "A0LOOP",
        "token": "legacy",
        "container": {"type": "message", "message_ts": message_ts, "channel_id": channel, "is_ephemeral": False},
        "trigger_id": "123.456.abc",
        "team": {"id": "T0LOOP", "domain": "loopback"},
        "channel": {"id": channel, "name": "ops"},
        "message": message,
        "response_url": f"https://hooks.slack.com/actions/T0LOOP/1/{value}",
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": f"decide:{value}",
                "text": {"type": "plain_text", "text": action_id.title()},
                "value": value,
                "action_ts": "1800000001.000000",
            }
        ],
    }
    return urlencode({"payload": json.dumps(payload)}).encode()
