"""Telegram through python-telegram-bot: verify and parse webhook updates, send and edit messages.

Inbound (``handle_webhook``), in the order python-telegram-bot's own handlers use
(check, then handle): the ``X-Telegram-Bot-Api-Secret-Token`` header is compared in
constant time with ``TELEGRAM_WEBHOOK_SECRET`` (missing or wrong -> ``AuthError``); the body
becomes a ``telegram.Update``; only text messages and button presses (callback queries)
are understood. Everything else Telegram may send (stickers, files, edited messages,
channel posts, member updates) is answered 200 with ``ignored``, because a non-2xx makes
Telegram redeliver it for hours. Chats not in ``chat.yaml``'s ``allowed_chats`` are
refused the same way. What passes is a ``core.chat.ChatEvent`` with the parsed command.

Outbound (``TelegramChannel``): the SDK's ``Bot`` with ``base_url`` pointing at the Bot API
(or a loopback server in tests). Sends wait on a per-chat token bucket, a 429's
``retry_after`` is honoured with bounded retries, and SDK errors become our taxonomy
(``TemporaryError`` for flood control and network trouble, ``PermanentError`` for refusals).
Text is sent without a parse mode: nothing a pod prints can become markup.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import warnings
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from types import TracebackType
from typing import Any, Self, TypeVar

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, ReplyParameters, Update
from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError, RetryAfter, TelegramError
from telegram.request import BaseRequest
from telegram.warnings import PTBDeprecationWarning

from adapters.chat_channel import InboundResult, RateLimiter, RetryPolicy, call_with_retry
from config.chat import TelegramConfig
from core.chat import ChatEvent, Message, MessageRef, parse, parse_callback
from core.errors import AuthError, InputError, PayloadTooLarge, PermanentError, TemporaryError
from core.notify_format import telegram_payload

log = logging.getLogger(__name__)
T = TypeVar("T")

# python-telegram-bot itself reads ``RetryAfter.retry_after`` while building the error, which warns
# about the coming int -> timedelta change on every 429. We read the value either way (see
# ``_retry_after``), so that one deprecation is noise here; nothing else is filtered.
warnings.filterwarnings("ignore", message=r".*attribute `retry_after`", category=PTBDeprecationWarning)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name
DEFAULT_API_URL = "https://api.telegram.org/bot"
MAX_UPDATE_BYTES = 1024 * 1024


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def verify_secret(headers: Mapping[str, str], secret: str | None) -> None:
    """Constant-time check of the webhook secret header; ``AuthError`` when missing or wrong."""
    if not secret:
        raise AuthError("the Telegram webhook refuses all requests: TELEGRAM_WEBHOOK_SECRET is not set")
    given = _header(headers, SECRET_HEADER)
    if given is None:
        raise AuthError(f"missing {SECRET_HEADER} header")
    if not hmac.compare_digest(given.encode(), secret.encode()):
        raise AuthError(f"invalid {SECRET_HEADER} header")


def _ignored(reason: str, **extra: Any) -> InboundResult:
    return InboundResult(200, {"ok": True, "ignored": reason, **extra}, None)


def _update_kind(update: Update) -> str:
    for kind in (
        "edited_message",
        "channel_post",
        "edited_channel_post",
        "inline_query",
        "chosen_inline_result",
        "my_chat_member",
        "chat_member",
        "chat_join_request",
        "poll",
        "poll_answer",
    ):
        if getattr(update, kind, None) is not None:
            return kind
    return "unknown"


def _message_kind(update: Update) -> str:
    message = update.message
    if message is None:
        return "unknown"
    for kind in ("sticker", "photo", "document", "video", "voice", "audio", "animation", "location", "contact"):
        if getattr(message, kind, None):
            return kind
    return "non-text message"


def _has_chat_id(message: Any) -> bool:
    """PTB's ``de_json`` does not check types: the fields we read must have the wire types."""
    chat = getattr(message, "chat", None)
    return chat is not None and isinstance(chat.id, int)


def parse_update(data: Mapping[str, Any], config: TelegramConfig) -> InboundResult:
    """A decoded update -> a result with a ``ChatEvent``, an ``ignored`` or a ``refused`` body."""
    try:
        update = Update.de_json(dict(data), None)
    except (KeyError, TypeError, ValueError, AttributeError) as e:  # PTB's de_json on wrong-typed fields
        raise InputError(f"not a Telegram update: {e}") from e
    delivery = str(update.update_id)
    if update.callback_query is not None:
        query = update.callback_query
        if query.message is None or query.data is None:
            return _ignored("callback query without a message or data", update_id=update.update_id)
        if not isinstance(query.data, str) or query.from_user is None or not _has_chat_id(query.message):
            raise InputError("not a Telegram update: a callback query without a user, a chat or string data")
        chat_id = query.message.chat.id
        if not config.allows(chat_id):
            log.warning("telegram: refused a button press from chat %s (not in allowed_chats)", chat_id)
            return InboundResult(200, {"ok": False, "refused": f"chat {chat_id} is not allowed"}, None)
        ref = MessageRef("telegram", str(chat_id), str(query.message.message_id))
        event = ChatEvent(
            channel="telegram",
            chat=str(chat_id),
            user_id=str(query.from_user.id),
            command=parse_callback(query.data),
            text=query.data,
            message_id=str(query.message.message_id),
            callback_id=query.id,
            delivery_id=delivery,
            thread=ref,
        )
        return InboundResult(200, {"ok": True}, event)
    message = update.message
    if message is None:
        return _ignored(f"unsupported update type: {_update_kind(update)}", update_id=update.update_id)
    if message.text is None:
        return _ignored(f"unsupported message type: {_message_kind(update)}", update_id=update.update_id)
    if not isinstance(message.text, str) or not _has_chat_id(message):
        raise InputError("not a Telegram update: a message without a chat or with non-string text")
    if message.from_user is None or message.from_user.is_bot:
        return _ignored("message without a human sender", update_id=update.update_id)
    if not config.allows(message.chat.id):
        log.warning("telegram: refused a message from chat %s (not in allowed_chats)", message.chat.id)
        return InboundResult(200, {"ok": False, "refused": f"chat {message.chat.id} is not allowed"}, None)
    thread_root = message.reply_to_message.message_id if message.reply_to_message else message.message_id
    event = ChatEvent(
        channel="telegram",
        chat=str(message.chat.id),
        user_id=str(message.from_user.id),
        command=parse(message.text, bot_username=config.bot_username),
        text=message.text,
        message_id=str(message.message_id),
        delivery_id=delivery,
        thread=MessageRef("telegram", str(message.chat.id), str(thread_root)),
    )
    return InboundResult(200, {"ok": True}, event)


def handle_webhook(
    body: bytes,
    headers: Mapping[str, str],
    *,
    secret: str | None,
    config: TelegramConfig,
    max_bytes: int = MAX_UPDATE_BYTES,
) -> InboundResult:
    """``POST /api/webhook/telegram``: verify, decode, parse. Raises AuthError/InputError/PayloadTooLarge."""
    verify_secret(headers, secret)
    if len(body) > max_bytes:
        raise PayloadTooLarge(f"update of {len(body)} bytes is over the {max_bytes} byte limit")
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError) as e:
        raise InputError("the Telegram update is not JSON") from e
    if not isinstance(data, dict) or not isinstance(data.get("update_id"), int):
        raise InputError("the Telegram update must be a JSON object with an integer update_id")
    return parse_update(data, config)


# --- outbound -------------------------------------------------------------------------------


def _retry_after(error: BaseException) -> float | None:
    if not isinstance(error, RetryAfter):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = error.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _markup(keyboard: Mapping[str, Any] | None) -> InlineKeyboardMarkup | None:
    if not keyboard:
        return None
    rows = [
        [InlineKeyboardButton(text=str(b["text"]), callback_data=str(b["callback_data"])) for b in row]
        for row in keyboard.get("inline_keyboard", [])
    ]
    return InlineKeyboardMarkup(rows)


class TelegramChannel:
    """Sends through the Bot API. ``async with TelegramChannel(token, api_url=...) as channel:``."""

    name = "telegram"

    def __init__(
        self,
        token: str,
        *,
        api_url: str = DEFAULT_API_URL,
        limiter: RateLimiter | None = None,
        retry: RetryPolicy | None = None,
        request: BaseRequest | None = None,
    ) -> None:
        try:
            self._bot = Bot(token, base_url=api_url, request=request)
        except InvalidToken as e:
            raise PermanentError("TELEGRAM_BOT_TOKEN is empty or invalid") from e
        self._limiter = limiter
        self._retry = retry or RetryPolicy()
        self._started = False
        self._start_lock = asyncio.Lock()

    @property
    def bot(self) -> Bot:
        return self._bot

    async def start(self) -> None:
        """Open the HTTP pool and check the token (getMe)."""
        async with self._start_lock:
            if not self._started:
                await self._call(self._bot.initialize, "getMe", limit_key=None)
                self._started = True

    async def close(self) -> None:
        """Close the HTTP pool; safe after a failed start (getMe refused) and when never started."""
        await self._bot.shutdown()
        self._started = False

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _call(self, call: Callable[[], Awaitable[T]], what: str, limit_key: str | None) -> T:
        async def attempt() -> T:
            if limit_key is not None and self._limiter is not None:
                await self._limiter.acquire(limit_key)
            return await call()

        try:
            return await call_with_retry(attempt, _retry_after, self._retry, f"telegram {what}")
        except TemporaryError:
            raise
        except BadRequest as e:
            raise PermanentError(f"telegram {what}: bad request: {e.message}") from e
        except NetworkError as e:
            raise TemporaryError(f"telegram {what}: {e.message}", delay=2.0) from e
        except InvalidToken:
            # The SDK's message quotes the token itself: keep it out of logs and tracebacks.
            raise PermanentError(f"telegram {what}: refused: the bot token was rejected") from None
        except Forbidden as e:
            raise PermanentError(f"telegram {what}: refused: {e.message}") from e
        except TelegramError as e:
            raise PermanentError(f"telegram {what}: {e.message}") from e

    async def send_message(
        self,
        chat_id: int | str,
        text: str,
        keyboard: Mapping[str, Any] | None = None,
        reply_to: int | str | None = None,
    ) -> MessageRef:
        await self.start()
        reply = ReplyParameters(int(reply_to), allow_sending_without_reply=True) if reply_to is not None else None
        sent = await self._call(
            lambda: self._bot.send_message(
                chat_id=int(chat_id), text=text, reply_markup=_markup(keyboard), reply_parameters=reply
            ),
            "sendMessage",
            limit_key=str(chat_id),
        )
        return MessageRef("telegram", str(sent.chat.id), str(sent.message_id))

    async def edit_message(self, ref: MessageRef, text: str, keyboard: Mapping[str, Any] | None = None) -> None:
        """Replace a message's text and buttons (no buttons removes them)."""
        await self.start()
        try:
            await self._call(
                lambda: self._bot.edit_message_text(
                    text=text, chat_id=int(ref.target), message_id=int(ref.id), reply_markup=_markup(keyboard)
                ),
                "editMessageText",
                limit_key=ref.target,
            )
        except PermanentError as e:
            if "not modified" in str(e):
                return  # the same text again (a retried edit): nothing to do
            raise

    async def answer_callback(self, callback_id: str, text: str = "") -> None:
        """Stop the button's spinner and show ``text`` as a short notice."""
        await self.start()
        await self._call(
            lambda: self._bot.answer_callback_query(callback_id, text=text[:200] or None),
            "answerCallbackQuery",
            limit_key=None,
        )

    async def setup_webhook(self, url: str, secret_token: str, *, drop_pending_updates: bool = False) -> None:
        """``aiops chat setup-telegram``: point Telegram at our webhook with the secret header."""
        await self.start()
        done = await self._call(
            lambda: self._bot.set_webhook(
                url=url,
                secret_token=secret_token,
                allowed_updates=["message", "callback_query"],
                drop_pending_updates=drop_pending_updates,
            ),
            "setWebhook",
            limit_key=None,
        )
        if not done:
            raise PermanentError("telegram setWebhook answered false")

    # -- the Channel protocol --

    async def send(self, target: str, message: Message) -> MessageRef:
        payload = telegram_payload(message)
        return await self.send_message(
            target, payload["text"], payload.get("reply_markup"), payload.get("reply_to_message_id")
        )

    async def edit(self, ref: MessageRef, message: Message) -> None:
        payload = telegram_payload(message)
        await self.edit_message(ref, payload["text"], payload.get("reply_markup"))

    async def reply(self, event: ChatEvent, message: Message) -> MessageRef | None:
        """Answer a button press with a notice, then reply in the chat under the event's message."""
        if event.callback_id:
            await self.answer_callback(event.callback_id, message.headline)
        payload = telegram_payload(message)
        return await self.send_message(
            event.chat, payload["text"], payload.get("reply_markup"), reply_to=event.message_id
        )
