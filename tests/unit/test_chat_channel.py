"""Rate limits with a fake clock, bounded retry-after, and the console channel round trip."""

from __future__ import annotations

import asyncio
import io

import pytest

from adapters.chat_channel import CommandLimiter, ConsoleChannel, RateLimiter, RetryPolicy, call_with_retry
from core.approvals import Verdict
from core.chat import Decision, Question, Status
from core.errors import TemporaryError
from core.models import ApprovalId
from core.notify_format import render_approval_request, render_reply
from tests.unit.test_notify_format import approval


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


def test_token_bucket_allows_a_burst_then_the_sustained_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(per_second=2.0, burst=3, clock=clock)
    assert [limiter.try_acquire("c1") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.try_acquire("c1") == pytest.approx(0.5)
    assert limiter.try_acquire("c2") == 0.0  # buckets are per key
    clock.now = 0.5
    assert limiter.try_acquire("c1") == 0.0
    assert limiter.try_acquire("c1") == pytest.approx(0.5)
    clock.now = 100.0
    assert [limiter.try_acquire("c1") for _ in range(4)][-1] > 0  # refills only up to the burst


def test_acquire_waits_on_the_injected_sleep_and_refuses_long_waits() -> None:
    clock = FakeClock()
    limiter = RateLimiter(per_second=1.0, burst=1, clock=clock, sleep=clock.sleep)

    async def run() -> None:
        await limiter.acquire("c")
        await limiter.acquire("c")
        assert clock.waits == [1.0]
        slow = RateLimiter(per_second=0.01, burst=1, clock=clock, sleep=clock.sleep)
        await slow.acquire("c")
        with pytest.raises(TemporaryError) as raised:
            await slow.acquire("c", max_wait=10)
        assert raised.value.delay == pytest.approx(100.0)

    asyncio.run(run())


def test_a_user_spamming_commands_is_told_once_to_slow_down() -> None:
    clock = FakeClock()
    limiter = CommandLimiter(RateLimiter(per_second=0.2, burst=2, clock=clock))
    assert limiter.check("telegram:1") == (True, None)
    assert limiter.check("telegram:1") == (True, None)
    allowed, reply = limiter.check("telegram:1")
    assert not allowed and reply == "Too many commands: please wait 5s before the next one."
    assert limiter.check("telegram:1") == (False, None)
    assert limiter.check("telegram:2") == (True, None)
    clock.now = 5.0
    assert limiter.check("telegram:1") == (True, None)


class RateLimited(Exception):
    def __init__(self, wait: float) -> None:
        self.wait = wait


def test_retry_after_is_waited_boundedly_and_other_errors_pass_through() -> None:
    clock = FakeClock()
    policy = RetryPolicy(attempts=3, max_wait=10, sleep=clock.sleep)
    outcomes: list[object] = [RateLimited(2), RateLimited(3), "done"]

    async def call() -> str:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return str(outcome)

    def retry_after(error: BaseException) -> float | None:
        return error.wait if isinstance(error, RateLimited) else None

    async def run() -> None:
        assert await call_with_retry(call, retry_after, policy, "test") == "done"
        assert clock.waits == [2, 3]
        outcomes[:] = [RateLimited(1)] * 3
        with pytest.raises(TemporaryError):
            await call_with_retry(call, retry_after, policy, "test")
        outcomes[:] = [ValueError("boom")]
        with pytest.raises(ValueError, match="boom"):
            await call_with_retry(call, retry_after, policy, "test")

    asyncio.run(run())


def test_console_prints_notifications_with_approval_ids_and_reads_commands_back() -> None:
    out = io.StringIO()
    inp = io.StringIO("/status\n\napprove k3x9q2\nwhy is api down?\n")
    console = ConsoleChannel(out, inp, user="demo")

    async def run() -> list[object]:
        root = await console.send("", render_approval_request(approval()))
        await console.send("", render_reply("diagnosis follows", thread=root))
        await console.edit(root, render_reply("approved by cli:demo"))
        return [event async for event in console.commands()]

    events = asyncio.run(run())
    printed = out.getvalue()
    assert "[#1] 🟠 Approval needed (medium risk): step restart-pod" in printed
    assert "type 'approve k3x9q2' | type 'reject k3x9q2'" in printed
    assert "[#2] (thread #1) diagnosis follows" in printed
    assert "[#1 edited] approved by cli:demo" in printed
    assert [e.command for e in events] == [  # type: ignore[attr-defined]
        Status(),
        Decision(Verdict.APPROVE, ApprovalId("k3x9q2")),
        Question("why is api down?"),
    ]
    assert {e.identity for e in events} == {"cli:demo"}  # type: ignore[attr-defined]
