"""What every chat channel shares: the ``Channel`` protocol, rate limits, retry-after, the console.

* ``Channel``: ``send`` a ``core.chat.Message`` to a chat, ``edit`` a sent one (an approval
  request becomes "approved by ..."), ``reply`` to an inbound ``ChatEvent``. Telegram,
  Slack and the console implement it, so the coordinator never knows which one it talks to.
* ``RateLimiter``: a token bucket per key (chat id). Chat APIs throttle per chat (Telegram
  about one message a second, Slack about one a second per channel); waiting here is
  cheaper than a 429. The clock and the sleep are injectable, so tests use a fake clock.
* ``CommandLimiter``: one person spamming commands is answered "slow down", once, instead
  of flooding actors with queries.
* ``call_with_retry``: the bounded retry loop both SDK adapters use for 429s: wait the
  server's ``retry_after`` when it is short, give up with ``TemporaryError(delay)`` when
  it is long or the attempts are spent (the caller's queue retries later).
* ``ConsoleChannel``: ``aiops demo``'s channel; prints the same messages as text (approval
  ids visible, so a person can type ``approve <id>``) and yields parsed commands from lines.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO, TypeVar

from adapters.metrics import ChatMetrics, shared
from core.chat import ChatEvent, Message, MessageRef, parse
from core.errors import TemporaryError

log = logging.getLogger(__name__)
T = TypeVar("T")
Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class InboundResult:
    """What a webhook handler answers: the HTTP status and JSON body, and the event to act on.

    ``event`` is None when there is nothing to do (an ignored update type, a refused chat,
    Slack's url_verification); the body then says why.
    """

    status: int
    body: dict[str, Any]
    event: ChatEvent | None = None


class Channel(Protocol):
    name: str

    async def send(self, target: str, message: Message) -> MessageRef: ...

    async def edit(self, ref: MessageRef, message: Message) -> None: ...

    async def reply(self, event: ChatEvent, message: Message) -> MessageRef | None: ...


# --- rate limits ---------------------------------------------------------------------------


@dataclass
class _Bucket:
    tokens: float
    at: float


@dataclass
class RateLimiter:
    """A token bucket per key: ``burst`` at once, then ``per_second`` sustained."""

    per_second: float
    burst: int
    clock: Clock = time.monotonic
    sleep: Sleep = asyncio.sleep
    max_keys: int = 10_000
    _buckets: dict[str, _Bucket] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.per_second <= 0 or self.burst < 1:
            raise ValueError("a rate limiter needs per_second > 0 and burst >= 1")

    def _bucket(self, key: str, now: float) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                # Forget full buckets first: they carry no state a new bucket would not have.
                for old in [k for k, b in self._buckets.items() if self._level(b, now) >= self.burst]:
                    del self._buckets[old]
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
        return bucket

    def _level(self, bucket: _Bucket, now: float) -> float:
        return min(float(self.burst), bucket.tokens + max(0.0, now - bucket.at) * self.per_second)

    def try_acquire(self, key: str) -> float:
        """Take a token: 0.0 when taken, else the seconds until one is available (nothing taken)."""
        now = self.clock()
        bucket = self._bucket(key, now)
        bucket.tokens, bucket.at = self._level(bucket, now), now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.per_second

    async def acquire(self, key: str, max_wait: float = 60.0) -> None:
        """Wait for a token; ``TemporaryError`` when the wait would exceed ``max_wait``."""
        while True:
            wait = self.try_acquire(key)
            if wait == 0.0:
                return
            if wait > max_wait:
                raise TemporaryError(f"rate limit for {key}: next slot in {wait:.1f}s", delay=wait)
            await self.sleep(wait)


@dataclass
class CommandLimiter:
    """Per-user command limit; the first refusal in a row says so, later ones stay silent."""

    limiter: RateLimiter
    _told: set[str] = field(default_factory=set, repr=False)

    def check(self, user: str) -> tuple[bool, str | None]:
        """(allowed, reply): reply is the "slow down" text to send once, or None."""
        wait = self.limiter.try_acquire(user)
        if wait == 0.0:
            self._told.discard(user)
            return True, None
        if user in self._told:
            return False, None
        self._told.add(user)
        return False, f"Too many commands: please wait {max(1, round(wait))}s before the next one."


# --- 429 handling -------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3
    max_wait: float = 30.0
    sleep: Sleep = asyncio.sleep


async def call_with_retry(
    call: Callable[[], Awaitable[T]],
    retry_after: Callable[[BaseException], float | None],
    policy: RetryPolicy,
    what: str,
) -> T:
    """Run ``call``; on an error with a retry-after (429), wait and retry, boundedly.

    ``retry_after(error)`` returns the server's wait in seconds, or None for errors that are
    not rate limits (those propagate unchanged).
    """
    for attempt in itertools.count(1):
        try:
            shared(ChatMetrics).sends.labels(channel=ChatMetrics.channel(what)).inc()
            return await call()
        except Exception as error:
            wait = retry_after(error)
            if wait is None:
                raise
            if attempt >= policy.attempts or wait > policy.max_wait:
                shared(ChatMetrics).gave_up.labels(channel=ChatMetrics.channel(what)).inc()
                raise TemporaryError(f"{what}: rate limited, retry after {wait:g}s", delay=max(wait, 1.0)) from error
            shared(ChatMetrics).retries.labels(channel=ChatMetrics.channel(what)).inc()
            log.info("%s: rate limited, retrying in %gs (attempt %d/%d)", what, wait, attempt, policy.attempts)
            await policy.sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover


# --- console -------------------------------------------------------------------------------


class ConsoleChannel:
    """Prints messages to ``out``; ``commands()`` yields parsed commands read from ``inp``."""

    name = "console"

    def __init__(self, out: TextIO, inp: TextIO | None = None, *, user: str = "demo", chat: str = "console") -> None:
        self._out = out
        self._inp = inp
        self._user = user
        self._chat = chat
        self._ids = itertools.count(1)
        self._lock = asyncio.Lock()

    def _print(self, label: str, message: Message) -> None:
        thread = f" (thread #{message.thread.id})" if message.thread else ""
        lines = message.text.splitlines() or [""]
        self._out.write(f"[{label}]{thread} {lines[0]}\n")
        for line in lines[1:]:
            self._out.write(f"    {line}\n")
        if message.buttons:
            choices = " | ".join(f"type '{b.action} {b.value}'" for b in message.buttons)
            self._out.write(f"    > {choices}\n")
        self._out.flush()

    async def send(self, target: str, message: Message) -> MessageRef:
        async with self._lock:
            ref = MessageRef(channel=self.name, target=target or self._chat, id=str(next(self._ids)))
            self._print(f"#{ref.id}", message)
            return ref

    async def edit(self, ref: MessageRef, message: Message) -> None:
        async with self._lock:
            self._print(f"#{ref.id} edited", message)

    async def reply(self, event: ChatEvent, message: Message) -> MessageRef | None:
        return await self.send(event.chat, message)

    def event_for(self, line: str, number: int) -> ChatEvent:
        text = line.rstrip("\r\n")
        return ChatEvent(
            channel=self.name,
            chat=self._chat,
            user_id=self._user,
            command=parse(text),
            text=text,
            message_id=str(number),
            delivery_id=f"console-{number}",
        )

    async def commands(self) -> AsyncIterator[ChatEvent]:
        """Parsed commands, one per non-empty input line, until end of input.

        Lines are read by a daemon thread, so a terminal waiting for input never keeps the
        process from exiting.
        """
        if self._inp is None:
            return
        loop = asyncio.get_running_loop()
        lines: asyncio.Queue[str | None] = asyncio.Queue()
        inp = self._inp

        def pump() -> None:
            try:
                for line in iter(inp.readline, ""):
                    loop.call_soon_threadsafe(lines.put_nowait, line)
                loop.call_soon_threadsafe(lines.put_nowait, None)
            except (RuntimeError, ValueError, OSError) as e:  # the loop closed, or the stream did
                log.debug("console input stopped: %s", e)

        threading.Thread(target=pump, name="console-input", daemon=True).start()
        for number in itertools.count(1):
            line = await lines.get()
            if line is None:
                return
            if line.strip():
                yield self.event_for(line, number)
