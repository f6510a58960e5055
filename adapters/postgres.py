"""PostgreSQL: the durable record of incidents, signals, runs, approvals and the audit log.

All writes are idempotent by a natural key (a signal's ``dedup_key``, an incident's
active ``group_key``, an audit row's ``idempotency_key``), so at-least-once delivery and
actor restarts never double a row. Migrations are numbered SQL files applied under an
advisory lock, so two processes starting at once apply each file exactly once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import asyncpg

from core.errors import TemporaryError
from core.models import Incident, IncidentId, IncidentStatus, ObjectRef, Severity

_MIGRATION_LOCK = 0x41_494F_5053  # "AIOPS"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def shipped_migrations() -> list[Migration]:
    folder = resources.files("adapters").joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append(Migration(version, entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found, key=lambda m: m.version)


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


def _has_nul(*values: str | None) -> bool:
    """PostgreSQL text cannot hold NUL: a lookup by such a value matches no row, where asyncpg
    would raise (and the ops API answered 500; found by tests/abuse/test_openapi_schemathesis.py)."""
    return any(v is not None and "\x00" in v for v in values)


def _incident(row: asyncpg.Record) -> Incident:
    obj = None
    if row["object_kind"] and row["object_name"]:
        obj = ObjectRef(kind=row["object_kind"], name=row["object_name"], namespace=row["namespace"])
    labels = row["labels"]
    return Incident(
        id=IncidentId(row["id"]),
        group_key=row["group_key"],
        status=IncidentStatus(row["status"]),
        severity=Severity(row["severity"]),
        title=row["title"],
        rule=row["rule"],
        namespace=row["namespace"],
        object=obj,
        labels=json.loads(labels) if isinstance(labels, str) else dict(labels),
        signal_count=row["signal_count"],
        playbook=row["playbook"],
        opened_at=row["opened_at"],
        updated_at=row["updated_at"],
        resolved_at=row["resolved_at"],
    )


class PostgresStore:
    def __init__(self, dsn: str, *, pool_min: int = 1, pool_max: int = 5, timeout: float = 10.0) -> None:
        self._dsn = dsn
        self._pool_min = pool_min
        self._pool_max = pool_max
        self._timeout = timeout
        self._pool: asyncpg.Pool | None = None

    async def open(self) -> None:
        if self._pool is not None:
            return
        try:
            self._pool = await asyncpg.create_pool(
                self._dsn,
                min_size=self._pool_min,
                max_size=self._pool_max,
                timeout=self._timeout,
                command_timeout=self._timeout,
            )
        except (OSError, asyncpg.PostgresError, TimeoutError) as e:
            raise TemporaryError(f"cannot connect to PostgreSQL: {type(e).__name__}: {e}", delay=1.0) from e

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise TemporaryError("PostgreSQL pool is not open")
        return self._pool

    async def migrate(self, migrations: Sequence[Migration] | None = None) -> list[str]:
        """Apply pending migrations in order; returns the names applied by this call."""
        todo = list(migrations if migrations is not None else shipped_migrations())
        applied: list[str] = []
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
            for migration in todo:
                if migration.version in done:
                    continue
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", migration.version, migration.name
                )
                applied.append(migration.name)
        return applied

    async def ping(self) -> float:
        """Round-trip time of ``SELECT 1`` in seconds."""
        started = time.perf_counter()
        try:
            await self.pool.fetchval("SELECT 1", timeout=2.0)
        except (OSError, asyncpg.PostgresError, TimeoutError, asyncpg.InterfaceError) as e:
            raise TemporaryError(f"PostgreSQL: {type(e).__name__}: {e}") from e
        return time.perf_counter() - started

    async def list_incidents(
        self,
        *,
        status: str | None = None,
        namespace: str | None = None,
        severity: str | None = None,
        limit: int = 100,
    ) -> list[Incident]:
        if _has_nul(status, namespace, severity):
            return []
        rows = await self.pool.fetch(
            "SELECT * FROM incidents WHERE ($1::text IS NULL OR status = $1)"
            " AND ($2::text IS NULL OR namespace = $2) AND ($3::text IS NULL OR severity = $3)"
            " ORDER BY opened_at DESC, id LIMIT $4",
            status,
            namespace,
            severity,
            limit,
        )
        return [_incident(r) for r in rows]

    async def get_incident(self, incident_id: str) -> Incident | None:
        if _has_nul(incident_id):
            return None
        row = await self.pool.fetchrow("SELECT * FROM incidents WHERE id = $1", incident_id)
        return _incident(row) if row else None

    async def timeline(self, incident_id: str) -> list[dict[str, Any]]:
        if _has_nul(incident_id):
            return []
        rows = await self.pool.fetch(
            "SELECT kind, detail, at FROM incident_events WHERE incident_id = $1 ORDER BY at, id", incident_id
        )
        return [{"kind": r["kind"], "detail": json.loads(r["detail"]), "at": r["at"].isoformat()} for r in rows]

    async def count(self, table: str) -> int:
        if table not in {"incidents", "signals", "incident_events", "audit_log", "approvals", "playbook_runs"}:
            raise ValueError(f"unknown table {table!r}")
        return int(await self.pool.fetchval(f"SELECT count(*) FROM {table}"))  # noqa: S608 - allowlisted name
