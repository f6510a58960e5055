"""A loopback server speaking the Telegram Bot API wire format, and signed inbound updates.

``TelegramApiServer(token)`` answers ``/bot<token>/<method>`` for ``getMe``, ``sendMessage``,
``editMessageText``, ``answerCallbackQuery`` and ``setWebhook`` with the API's envelopes
(``{"ok": true, "result": ...}``; errors as ``{"ok": false, "error_code", "description"}``),
refuses other tokens with 401, records every call, and can be told to answer the next
calls of a method with a 429 carrying ``parameters.retry_after`` (flood control) or with
any other error. python-telegram-bot is pointed at it by ``base_url=server.api_url``.

The update builders produce the JSON Telegram POSTs to a webhook; ``webhook_headers``
adds the ``X-Telegram-Bot-Api-Secret-Token`` header exactly as Telegram sends it.
"""

from __future__ import annotations

import contextlib
import itertools
import json
from collections import defaultdict, deque
from typing import Any

from tests.servers.loopback import Answer, Call, LoopbackServer

BOT_USER = {"id": 7000001, "is_bot": True, "first_name": "aiops", "username": "aiops_bot"}
_JSON_FIELDS = {"reply_markup", "reply_parameters", "allowed_updates"}
_INT_FIELDS = {"chat_id", "message_id", "reply_to_message_id", "max_connections"}
_BOOL_FIELDS = {"drop_pending_updates", "show_alert"}


class TelegramApiServer(LoopbackServer):
    name = "telegram"

    def __init__(self, token: str, chat_type: str = "group") -> None:
        super().__init__()
        self.token = token
        self.chat_type = chat_type
        self.webhook: dict[str, Any] = {}
        self.messages: dict[tuple[int, int], dict[str, Any]] = {}
        self._ids = itertools.count(100)
        self._failures: dict[str, deque[Answer]] = defaultdict(deque)

    @property
    def api_url(self) -> str:
        """What ``Bot(base_url=...)`` takes: the token is appended by the SDK."""
        return f"{self.base}/bot"

    def fail_next(self, method: str, status: int = 429, retry_after: int | None = 1, description: str = "") -> None:
        body: dict[str, Any] = {"ok": False, "error_code": status, "description": description or _describe(status)}
        if status == 429 and retry_after is not None:
            body["parameters"] = {"retry_after": retry_after}
            body["description"] = description or f"Too Many Requests: retry after {retry_after}"
        with self.lock:
            self._failures[method].append((status, body, {}))

    def method_calls(self, method: str) -> list[Call]:
        return self.calls_to(f"/{method}")

    def decode(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        out = dict(params)
        for key, value in params.items():
            if not isinstance(value, str):
                continue
            if key in _JSON_FIELDS or key in _BOOL_FIELDS:
                with contextlib.suppress(ValueError):
                    out[key] = json.loads(value)
            elif key in _INT_FIELDS:
                with contextlib.suppress(ValueError):
                    out[key] = int(value)
        return out

    def answer(self, call: Call) -> Answer:
        prefix = f"/bot{self.token}/"
        if not call.path.startswith("/bot"):
            return 404, {"ok": False, "error_code": 404, "description": "Not Found"}, {}
        if not call.path.startswith(prefix):
            return 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}, {}
        method = call.path[len(prefix) :]
        with self.lock:
            failures = self._failures.get(method)
            if failures:
                return failures.popleft()
        handler = getattr(self, f"_m_{method}", None)
        if handler is None:
            return 404, {"ok": False, "error_code": 404, "description": "Not Found: method not found"}, {}
        result = handler(call.params)
        if isinstance(result, tuple):
            return result
        return 200, {"ok": True, "result": result}, {}

    # -- methods --

    def _m_getMe(self, params: dict[str, Any]) -> Any:  # noqa: N802 - the API's method name
        return BOT_USER

    def _bad(self, description: str) -> Answer:
        return 400, {"ok": False, "error_code": 400, "description": f"Bad Request: {description}"}, {}

    def _m_sendMessage(self, params: dict[str, Any]) -> Any:  # noqa: N802
        chat_id, text = params.get("chat_id"), params.get("text")
        if not isinstance(chat_id, int):
            return self._bad("chat_id is empty")
        if not isinstance(text, str) or not text:
            return self._bad("message text is empty")
        if len(text) > 4096:
            return self._bad("message is too long")
        message_id = next(self._ids)
        message: dict[str, Any] = {
            "message_id": message_id,
            "date": 1_800_000_000,
            "chat": {"id": chat_id, "type": self.chat_type, "title": "ops"},
            "from": BOT_USER,
            "text": text,
        }
        if "reply_markup" in params:
            message["reply_markup"] = params["reply_markup"]
        with self.lock:
            self.messages[(chat_id, message_id)] = message
        return message

    def _m_editMessageText(self, params: dict[str, Any]) -> Any:  # noqa: N802
        key = (params.get("chat_id"), params.get("message_id"))
        with self.lock:
            message = self.messages.get(key)  # type: ignore[arg-type]
            if message is None:
                return self._bad("message to edit not found")
            if message["text"] == params.get("text") and message.get("reply_markup") == params.get("reply_markup"):
                return self._bad(
                    "message is not modified: specified new message content and reply markup are "
                    "exactly the same as a current content and reply markup of the message"
                )
            message = {**message, "text": params.get("text"), "edit_date": 1_800_000_100}
            message.pop("reply_markup", None)
            if "reply_markup" in params:
                message["reply_markup"] = params["reply_markup"]
            self.messages[key] = message  # type: ignore[index]
        return message

    def _m_answerCallbackQuery(self, params: dict[str, Any]) -> Any:  # noqa: N802
        if not params.get("callback_query_id"):
            return self._bad("query is too old and response timeout expired or query ID is invalid")
        return True

    def _m_setWebhook(self, params: dict[str, Any]) -> Any:  # noqa: N802
        if not str(params.get("url", "")).startswith("https://"):
            return self._bad("bad webhook: An HTTPS URL must be provided for webhook")
        with self.lock:
            self.webhook = dict(params)
        return True


def _describe(status: int) -> str:
    return {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden: bot was blocked by the user"}.get(
        status, "Internal Server Error"
    )


# --- inbound updates, as Telegram POSTs them -------------------------------------------------------


def webhook_headers(secret: str | None) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    return headers


def _user(user_id: int, is_bot: bool = False) -> dict[str, Any]:
    return {"id": user_id, "is_bot": is_bot, "first_name": "Ada", "username": f"user{user_id}"}


def _chat(chat_id: int) -> dict[str, Any]:
    return {"id": chat_id, "type": "group" if chat_id < 0 else "private", "title": "ops"}


def text_update(update_id: int, chat_id: int, user_id: int, text: str, message_id: int = 1, **extra: Any) -> bytes:
    message = {"message_id": message_id, "date": 1_800_000_000, "chat": _chat(chat_id), "from": _user(user_id)}
    message.update({"text": text, **extra})
    return json.dumps({"update_id": update_id, "message": message}).encode()


def callback_update(update_id: int, chat_id: int, user_id: int, data: str, message_id: int = 5) -> bytes:
    query = {
        "id": f"cbq-{update_id}",
        "from": _user(user_id),
        "chat_instance": "42",
        "data": data,
        "message": {
            "message_id": message_id,
            "date": 1_800_000_000,
            "chat": _chat(chat_id),
            "from": BOT_USER,
            "text": "Approval needed",
        },
    }
    return json.dumps({"update_id": update_id, "callback_query": query}).encode()


def sticker_update(update_id: int, chat_id: int, user_id: int) -> bytes:
    sticker = {
        "file_id": "CAACAgIAAxkBAAE",
        "file_unique_id": "AgADsQADWQ",
        "type": "regular",
        "width": 512,
        "height": 512,
        "is_animated": False,
        "is_video": False,
    }
    message = {"message_id": 9, "date": 1_800_000_000, "chat": _chat(chat_id), "from": _user(user_id)}
    return json.dumps({"update_id": update_id, "message": {**message, "sticker": sticker}}).encode()


def document_update(update_id: int, chat_id: int, user_id: int) -> bytes:
    document = {"file_id": "BQACAgIAAxkBAAE", "file_unique_id": "AgADrQ", "file_name": "kubeconfig"}
    message = {"message_id": 10, "date": 1_800_000_000, "chat": _chat(chat_id), "from": _user(user_id)}
    return json.dumps({"update_id": update_id, "message": {**message, "document": document}}).encode()


def edited_update(update_id: int, chat_id: int, user_id: int, text: str) -> bytes:
    message = {
        "message_id": 11,
        "date": 1_800_000_000,
        "edit_date": 1_800_000_050,
        "chat": _chat(chat_id),
        "from": _user(user_id),
        "text": text,
    }
    return json.dumps({"update_id": update_id, "edited_message": message}).encode()
