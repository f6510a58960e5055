"""PostgreSQL and Redis stores against the real servers (or the embedded ones)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from adapters.postgres import PostgresStore, shipped_migrations
from adapters.redis import RedisStore
from core.models import Fingerprint, ObjectRef, Severity, Signal, SignalSource, SignalStatus

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def sig(fp: str, status: str = "firing", at: datetime = NOW, severity: str = "warning") -> Signal:
    return Signal(
        source=SignalSource.ALERTMANAGER,
        reason="KubePodCrashLooping",
        severity=Severity(severity),
        status=SignalStatus(status),
        labels={"namespace": "prod", "pod": fp},
        object=ObjectRef(kind="Pod", name=fp, namespace="prod"),
        observed_at=at,
        starts_at=NOW,
        fingerprint=Fingerprint(fp),
    )


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[PostgresStore]:
    s = PostgresStore(database_url)
    await s.open()
    await s.migrate()
    async with s.pool.acquire() as conn:
        await conn.execute(
            "TRUNCATE incidents, signals, incident_events, rca_reports, playbook_runs, approvals, audit_log,"
            " conversations, messages CASCADE"
        )
    yield s
    await s.close()


async def test_migrations_create_every_table_and_are_safe_to_run_twice(store: PostgresStore) -> None:
    assert await store.migrate() == []
    tables = {
        r["tablename"] for r in await store.pool.fetch("SELECT tablename FROM pg_tables WHERE schemaname='public'")
    }
    expected = {
        "incidents",
        "signals",
        "rca_reports",
        "playbook_runs",
        "approvals",
        "audit_log",
        "conversations",
        "messages",
        "schema_migrations",
    }
    assert expected <= tables
    versions = [r["version"] for r in await store.pool.fetch("SELECT version FROM schema_migrations")]
    assert versions == [m.version for m in shipped_migrations()]


async def test_lookups_by_text_with_a_nul_character_match_nothing_instead_of_raising(store: PostgresStore) -> None:
    # Found by tests/abuse/test_openapi_schemathesis.py: GET /api/incidents?namespace=%00 and
    # GET /api/incidents/%00 answered 500 (PostgreSQL text cannot hold NUL; asyncpg raised).
    assert await store.list_incidents(namespace="prod\x00uction") == []
    assert await store.list_incidents(status="open\x00", severity="\x00") == []
    assert await store.get_incident("inc-\x00") is None
    assert await store.timeline("inc-\x00") == []


async def test_migrations_from_two_processes_at_once_apply_each_file_once(server_database_url: str) -> None:
    name = "aiops_mig_race"
    admin = await asyncpg.connect(server_database_url)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        from urllib.parse import urlsplit, urlunsplit

        p = urlsplit(server_database_url)
        url = urlunsplit((p.scheme, p.netloc, "/" + name, p.query, p.fragment))
        stores = [PostgresStore(url) for _ in range(4)]
        for s in stores:
            await s.open()
        results = await asyncio.gather(*(s.migrate() for s in stores))
        assert sorted(len(r) for r in results) == [0, 0, 0, len(shipped_migrations())]
        for s in stores:
            await s.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_redis_store_prefixes_keys_and_claims_once(redis_url: str, redis_prefix: str) -> None:
    store = RedisStore(redis_url, redis_prefix)
    try:
        assert await store.ping() >= 0
        assert await store.set_if_absent("claim", "1", 5) is True
        assert await store.set_if_absent("claim", "2", 5) is False
        assert await store.client.get(redis_prefix + "claim") == "1"
        await store.set_json("obj", {"a": [1, 2]}, ttl_seconds=5)
        assert await store.get_json("obj") == {"a": [1, 2]}
    finally:
        await store.client.delete(redis_prefix + "claim", redis_prefix + "obj")
        await store.close()


def test_embedded_postgres_and_redis_start_and_are_reused_on_the_next_start(tmp_path: Path) -> None:
    from adapters.embedded import start_postgres, start_redis, stop_embedded

    try:
        pg1, r1 = start_postgres(tmp_path), start_redis(tmp_path)
        pg2, r2 = start_postgres(tmp_path), start_redis(tmp_path)
        assert pg1 == pg2 and r1 == r2

        async def roundtrip() -> None:
            conn = await asyncpg.connect(pg1)
            try:
                assert await conn.fetchval("SELECT 41 + 1") == 42
            finally:
                await conn.close()
            store = RedisStore(r1, "embedded-test:")
            try:
                assert await store.ping() >= 0
            finally:
                await store.close()

        asyncio.run(roundtrip())
    finally:
        assert set(stop_embedded(tmp_path)) == {"postgres", "redis"}
