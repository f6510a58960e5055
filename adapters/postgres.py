"""PostgreSQL: the durable record of incidents, signals, runs, approvals and the audit log.

All writes are idempotent by a natural key (a signal's ``dedup_key``, an incident's
active ``group_key``, an audit row's ``idempotency_key``), so at-least-once delivery and
actor restarts never double a row. Migrations are numbered SQL files applied under an
advisory lock, so two processes starting at once apply each file exactly once.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Any

import asyncpg

from core.errors import TemporaryError
from core.models import Incident, IncidentId, IncidentStatus, ObjectRef, Severity, Signal

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


@dataclass(frozen=True)
class IngestOutcome:
    """What storing one signal did."""

    duplicate: bool
    incident_id: IncidentId | None = None
    opened: bool = False
    resolved: bool = False
    escalated: bool = False


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


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


def signal_dedup_key(signal: Signal) -> str:
    """A delivery of the same observation twice maps to the same key."""
    when = (signal.starts_at or signal.observed_at).isoformat()
    if signal.status.value == "resolved" or signal.source.value == "k8s":
        # Watchers send only on change, so every k8s observation is news (a rising restart count).
        when = signal.observed_at.isoformat()
    return f"{signal.fingerprint}|{signal.status.value}|{when}"


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

    async def ingest(
        self,
        signal: Signal,
        *,
        group_key: str,
        rule: str,
        severity: Severity,
        title: str,
        playbook: str | None,
        now: datetime,
    ) -> IngestOutcome:
        """Store a signal and fold it into its incident, in one transaction."""
        key = signal_dedup_key(signal)
        obj = signal.object
        async with self.pool.acquire() as conn, conn.transaction():
            inserted = await conn.fetchval(
                "INSERT INTO signals (dedup_key, fingerprint, source, reason, severity, status, namespace,"
                " labels, body, observed_at, received_at)"
                " VALUES ($1,$2,$3,$4,$5,$6,$7,$8::jsonb,$9::jsonb,$10,$11)"
                " ON CONFLICT (dedup_key) DO NOTHING RETURNING dedup_key",
                key,
                signal.fingerprint,
                signal.source.value,
                signal.reason,
                severity.value,
                signal.status.value,
                signal.namespace,
                _json(signal.labels),
                signal.model_dump_json(),
                signal.observed_at,
                now,
            )
            if inserted is None:
                return IngestOutcome(duplicate=True)
            if signal.firing:
                row = await conn.fetchrow(
                    "SELECT id, severity FROM incidents WHERE group_key = $1 AND status <> 'resolved' FOR UPDATE",
                    group_key,
                )
                stale = await conn.fetchval(
                    "SELECT 1 FROM signals WHERE fingerprint = $1 AND status = 'resolved' AND observed_at >= $2"
                    " LIMIT 1",
                    signal.fingerprint,
                    signal.observed_at,
                )
                if stale:
                    # Delivered out of order: this condition already recovered after it started.
                    return IngestOutcome(duplicate=False)
                opened = False
                escalated = False
                if row is None:
                    # Two transactions may race to open the same group: the partial unique index
                    # makes the loser's insert a no-op, and it then joins the winner's incident.
                    new_id = await conn.fetchval(
                        "INSERT INTO incidents (id, group_key, status, severity, title, rule, namespace,"
                        " object_kind, object_name, labels, signal_count, playbook, opened_at, updated_at)"
                        " VALUES ($1,$2,'open',$3,$4,$5,$6,$7,$8,$9::jsonb,1,$10,$11,$11)"
                        " ON CONFLICT (group_key) WHERE status <> 'resolved' DO NOTHING RETURNING id",
                        f"inc-{uuid.uuid4().hex[:10]}",
                        group_key,
                        severity.value,
                        title,
                        rule,
                        signal.namespace,
                        obj.kind if obj else None,
                        obj.name if obj else None,
                        _json(signal.labels),
                        playbook,
                        now,
                    )
                    if new_id is not None:
                        incident_id = IncidentId(new_id)
                        await self._event(conn, incident_id, "opened", {"rule": rule, "severity": severity.value}, now)
                        opened = True
                    else:
                        row = await conn.fetchrow(
                            "SELECT id, severity FROM incidents WHERE group_key = $1 AND status <> 'resolved'"
                            " FOR UPDATE",
                            group_key,
                        )
                if row is not None and not opened:
                    incident_id = IncidentId(row["id"])
                    current = Severity(row["severity"])
                    escalated = severity.rank > current.rank
                    await conn.execute(
                        "UPDATE incidents SET signal_count = signal_count + 1, updated_at = $2,"
                        " severity = $3 WHERE id = $1",
                        incident_id,
                        now,
                        (severity if escalated else current).value,
                    )
                    if escalated:
                        await self._event(
                            conn, incident_id, "escalated", {"from": current.value, "to": severity.value}, now
                        )
                elif not opened:
                    raise TemporaryError(f"incident group {group_key!r} changed concurrently; retry", delay=0.05)
                await conn.execute("UPDATE signals SET incident_id = $2 WHERE dedup_key = $1", key, incident_id)
                await self._event(
                    conn,
                    incident_id,
                    "signal",
                    {
                        "fingerprint": signal.fingerprint,
                        "status": "firing",
                        "reason": signal.reason,
                        "message": signal.message[:500],
                    },
                    now,
                )
                return IngestOutcome(duplicate=False, incident_id=incident_id, opened=opened, escalated=escalated)
            # A recovery finds its incident by fingerprint, not by group key: rules may have been
            # reloaded since the firing, which can change the key but not what fired.
            row = await conn.fetchrow(
                "SELECT i.id FROM incidents i JOIN signals s ON s.incident_id = i.id"
                " WHERE s.fingerprint = $1 AND i.status <> 'resolved' LIMIT 1 FOR UPDATE OF i",
                signal.fingerprint,
            )
            if row is None:
                return IngestOutcome(duplicate=False)
            incident_id = IncidentId(row["id"])
            await conn.execute("UPDATE signals SET incident_id = $2 WHERE dedup_key = $1", key, incident_id)
            await self._event(
                conn, incident_id, "signal", {"fingerprint": signal.fingerprint, "status": "resolved"}, now
            )
            still_firing = await conn.fetchval(
                "SELECT count(*) FROM (SELECT DISTINCT ON (fingerprint) status FROM signals"
                " WHERE incident_id = $1 ORDER BY fingerprint, observed_at DESC, status ASC) latest"
                " WHERE status = 'firing'",
                incident_id,
            )
            if still_firing:
                return IngestOutcome(duplicate=False, incident_id=incident_id)
            await conn.execute(
                "UPDATE incidents SET status = 'resolved', resolved_at = $2, updated_at = $2 WHERE id = $1",
                incident_id,
                now,
            )
            await self._event(conn, incident_id, "resolved", {"by": "recovery"}, now)
            return IngestOutcome(duplicate=False, incident_id=incident_id, resolved=True)

    @staticmethod
    async def _event(
        conn: asyncpg.Connection, incident_id: str, kind: str, detail: dict[str, Any], at: datetime
    ) -> None:
        await conn.execute(
            "INSERT INTO incident_events (incident_id, kind, detail, at) VALUES ($1, $2, $3::jsonb, $4)",
            incident_id,
            kind,
            _json(detail),
            at,
        )

    async def list_incidents(
        self,
        *,
        status: str | None = None,
        namespace: str | None = None,
        severity: str | None = None,
        limit: int = 100,
    ) -> list[Incident]:
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
        row = await self.pool.fetchrow("SELECT * FROM incidents WHERE id = $1", incident_id)
        return _incident(row) if row else None

    async def timeline(self, incident_id: str) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT kind, detail, at FROM incident_events WHERE incident_id = $1 ORDER BY at, id", incident_id
        )
        return [{"kind": r["kind"], "detail": json.loads(r["detail"]), "at": r["at"].isoformat()} for r in rows]

    async def count(self, table: str) -> int:
        if table not in {"incidents", "signals", "incident_events", "audit_log", "approvals", "playbook_runs"}:
            raise ValueError(f"unknown table {table!r}")
        return int(await self.pool.fetchval(f"SELECT count(*) FROM {table}"))  # noqa: S608 - allowlisted name
