"""RuleEngine (a plain class, no Ray) under faults, against real PostgreSQL and a private Redis.

* Redis (its own redis-server with AOF) stopped and restarted in the middle of an ingest
  storm: calls made while it is down fail with ``TemporaryError`` (nothing half-committed),
  callers retry, and afterwards PostgreSQL holds exactly one incident and one signal row per
  distinct alert sent: nothing lost, nothing twice.
* Alertmanager webhooks delivered twice, concurrently and out of order (``resolved`` before
  ``firing``), through the real payload parser: one incident per alert, no duplicates, and
  the alerts whose last word was ``resolved`` end resolved.

The clock advances on every read (as real time does), so a retried batch is not saved by
a frozen clock giving it the same incident ids.

Already proved in tests/integration/test_rule_engine.py and not repeated here: the same
alert twice in one engine, concurrent group commit, resolved-before-firing for one alert,
an engine restarted on the same stores, and effects of an interrupted batch re-applied.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from actors.rule_engine import RuleEngine
from adapters.alertmanager import parse_webhook, to_signals
from config.settings import Settings
from core.errors import TemporaryError
from core.models import Fingerprint, ObjectRef, Severity, Signal, SignalSource, SignalStatus
from tests.faults.outcomes import record
from tests.helpers import wait_for
from tests.payloads import am_alert, am_payload
from tests.servers.processes import RedisProcess

pytestmark = pytest.mark.integration
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class AdvancingClock:
    """Each read is one millisecond later than the last, like a busy real clock."""

    def __init__(self) -> None:
        self.reads = 0

    def __call__(self) -> datetime:
        self.reads += 1
        return T0 + timedelta(milliseconds=self.reads)


def alert(fp: str, status: str = "firing", at: datetime = T0) -> Signal:
    return Signal(
        source=SignalSource.ALERTMANAGER,
        reason="KubePodCrashLooping",
        severity=Severity.WARNING,
        status=SignalStatus(status),
        labels={"namespace": "prod", "pod": fp, "deployment": f"dep-{fp}"},
        object=ObjectRef(kind="Pod", name=fp, namespace="prod"),
        observed_at=at,
        starts_at=T0,
        fingerprint=Fingerprint(fp),
    )


@pytest.fixture
async def redis_server(tmp_path: Path) -> AsyncIterator[RedisProcess]:
    server = RedisProcess(tmp_path / "redis").start()
    yield server
    server.stop()


async def _engine(database_url: str, redis_url: str, tmp_path: Path, prefix: str) -> RuleEngine:
    settings = Settings.from_env(database_url=database_url, redis_url=redis_url, redis_prefix=prefix, data_dir=tmp_path)
    engine = RuleEngine(settings, clock=AdvancingClock())
    stores = await engine._ready()
    async with stores.postgres.pool.acquire() as conn:
        await conn.execute("TRUNCATE incidents, signals, incident_events CASCADE")
    return engine


async def scalar(engine: RuleEngine, sql: str) -> int:
    stores = await engine._ready()
    return int(await stores.postgres.pool.fetchval(sql))


def storm_calls(tag: str, wave: int, per_wave: int, per_call: int, sent: set[str]) -> list[list[Signal]]:
    """One wave of an ingest storm: ``per_wave`` calls of ``per_call`` new alerts, each call also
    repeating an alert of the previous wave (a redelivery); every fingerprint sent goes into ``sent``."""
    out = []
    for c in range(per_wave):
        batch = [alert(f"{tag}w{wave}c{c}s{s}") for s in range(per_call)]
        if wave:
            batch.append(alert(f"{tag}w{wave - 1}c{c}s0"))
        sent.update(s.fingerprint for s in batch)
        out.append(batch)
    return out


async def with_retries(call: Callable[[], Awaitable[dict[str, Any]]], faults: list[str], deadline: float) -> Any:
    """What a well-behaved caller (the webhook ingress, a watcher) does with TemporaryError: retry."""
    while True:
        try:
            return await call()
        except TemporaryError as e:
            faults.append(str(e))
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(min(getattr(e, "delay", 0.1), 0.1))  # the backoff between attempts


async def test_redis_restarted_mid_storm_loses_and_duplicates_nothing(
    database_url: str, redis_server: RedisProcess, tmp_path: Path, redis_prefix: str
) -> None:
    engine = await _engine(database_url, redis_server.url, tmp_path, redis_prefix)
    faults: list[str] = []
    deadline = time.monotonic() + 90
    waves, per_wave, per_call = 6, 10, 3
    sent: set[str] = set()
    try:

        def calls(wave: int) -> list[list[Signal]]:
            return storm_calls("", wave, per_wave, per_call, sent)

        async def wave(n: int) -> list[Any]:
            return await asyncio.gather(
                *(with_retries(lambda b=b: engine.ingest(b), faults, deadline) for b in calls(n))
            )

        await wave(0)
        await wave(1)
        running = asyncio.gather(wave(2), wave(3))  # in flight while Redis goes away (if not done first)
        await asyncio.to_thread(redis_server.stop)
        during = asyncio.gather(wave(4))  # certainly made while Redis is down
        await wait_for(lambda: len(faults) > 0, timeout=30, message="a TemporaryError while Redis is down")
        errors_while_down = len(faults)
        await asyncio.to_thread(redis_server.start)
        await running
        await during
        await wave(5)

        assert any("Redis" in f for f in faults), faults[:3]
        assert await scalar(engine, "SELECT count(*) FROM incidents") == len(sent)
        assert await scalar(engine, "SELECT count(*) FROM signals") == len(sent)
        assert await scalar(engine, "SELECT count(DISTINCT fingerprint) FROM signals") == len(sent)
        assert await scalar(engine, "SELECT count(*) FROM signals WHERE incident_id IS NULL") == 0
        assert await scalar(engine, "SELECT count(*) FROM incident_events WHERE kind = 'opened'") == len(sent)
        record(
            "Redis (AOF) stopped + restarted mid ingest storm",
            f"{waves * per_wave} calls, {len(sent)} alerts",
            f"{len(faults)} calls answered TemporaryError and were retried (first {errors_while_down} while down);"
            f" {len(sent)} incidents/signals in PostgreSQL, 0 lost, 0 duplicated",
        )
    finally:
        await engine.close()

    # A new engine on the restarted Redis continues the same incidents (state survived via AOF).
    again = RuleEngine(engine._settings, clock=AdvancingClock())
    try:
        answer = await again.ingest([alert("w0c0s0")])
        assert answer["duplicates"] == 1 and answer["opened"] == 0
        assert await scalar(again, "SELECT count(*) FROM incidents") == len(sent)
    finally:
        await again.close()


def _webhook(fp: str, status: str, minute: int) -> bytes:
    at = (T0 + timedelta(minutes=minute)).isoformat().replace("+00:00", "Z")
    body = am_alert(
        "KubePodCrashLooping",
        fp,
        status=status,
        starts_at=T0.isoformat().replace("+00:00", "Z"),
        ends_at=at if status == "resolved" else "0001-01-01T00:00:00Z",
        namespace="prod",
        pod=f"pod-{fp}",
    )
    return json.dumps(am_payload(body, status=status)).encode()


async def test_webhooks_delivered_twice_and_out_of_order_make_no_duplicate_incidents(
    database_url: str, redis_url: str, tmp_path: Path, redis_prefix: str
) -> None:
    engine = await _engine(database_url, redis_url, tmp_path, redis_prefix)
    rnd = random.Random(9)
    n = 30
    deliveries: list[bytes] = []
    resolved_last: set[str] = set()
    resolved_first: set[str] = set()
    for i in range(n):
        fp = f"{i:04x}beef"
        firing, resolved = _webhook(fp, "firing", 0), _webhook(fp, "resolved", 5)
        if i % 3 == 0:  # resolved arrives first, then firing (a late retry of the firing notification)
            deliveries += [resolved, firing, resolved]
            resolved_last.add(fp)
            resolved_first.add(fp)
        elif i % 3 == 1:  # firing twice, then resolved twice
            deliveries += [firing, firing, resolved, resolved]
            resolved_last.add(fp)
        else:  # firing delivered twice only: still open
            deliveries += [firing, firing]
    order = deliveries[:]
    rnd.shuffle(order)  # and shuffled across alerts; each alert's own order is kept below per group
    try:
        by_alert: dict[str, list[bytes]] = {}
        for raw in deliveries:
            by_alert.setdefault(json.loads(raw)["alerts"][0]["fingerprint"], []).append(raw)

        async def deliver(raws: list[bytes]) -> None:
            for raw in raws:
                await engine.ingest(to_signals(parse_webhook(raw), T0 + timedelta(minutes=10)))

        await asyncio.gather(*(deliver(raws) for raws in by_alert.values()))  # concurrent across alerts
        await asyncio.gather(*(engine.ingest(to_signals(parse_webhook(raw), T0)) for raw in order))  # all again
        incidents = await scalar(engine, "SELECT count(*) FROM incidents")
        # Resolved-first alerts open nothing: their firing notice is older than the known end.
        assert incidents == n - len(resolved_first)
        assert await scalar(engine, "SELECT count(DISTINCT incident_id) FROM signals") == incidents
        twice = (
            "SELECT count(*) FROM (SELECT fingerprint FROM signals GROUP BY 1 HAVING count(DISTINCT incident_id) > 1) d"
        )
        assert await scalar(engine, twice) == 0
        still_open = await scalar(engine, "SELECT count(*) FROM incidents WHERE status <> 'resolved'")
        assert still_open == n - len(resolved_last)
        record(
            "Alertmanager webhooks twice + out of order",
            f"{len(deliveries)} + {len(order)} deliveries of {n} alerts",
            f"{incidents} incidents, 0 duplicates; {len(resolved_first)} resolved-first opened none;"
            f" {still_open} open = the never-resolved ones",
        )
    finally:
        await engine.close()
