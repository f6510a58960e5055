"""The ``rca_reports`` table: one row per incident and report mode.

Kept apart from ``adapters.postgres`` (which owns incidents and signals) so the RCA
path adds no weight to that module; it borrows the store's pool. A row's id is
``<incident id>:<mode>``: analysing the same incident again (a retried Ray call, a
reopened incident) replaces the report of that mode instead of adding a row, while a
deterministic report and an LLM report of the same incident both stay visible.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from adapters.postgres import PostgresStore
from core.errors import NotFound, TemporaryError


@dataclass(frozen=True)
class StoredReport:
    id: str
    incident_id: str
    mode: str
    category: str
    confidence: float
    summary: str
    body: dict[str, Any]
    created_at: datetime


def report_id(incident_id: str, mode: str) -> str:
    return f"{incident_id}:{mode}"


def _row(row: asyncpg.Record) -> StoredReport:
    body = row["body"]
    return StoredReport(
        id=row["id"],
        incident_id=row["incident_id"],
        mode=row["mode"],
        category=row["category"],
        confidence=float(row["confidence"]),
        summary=row["summary"],
        body=json.loads(body) if isinstance(body, str) else dict(body),
        created_at=row["created_at"],
    )


class RcaStore:
    """Reads and idempotent writes of RCA reports, on an open ``PostgresStore``."""

    def __init__(self, postgres: PostgresStore) -> None:
        self._postgres = postgres

    async def save(
        self,
        incident_id: str,
        *,
        mode: str,
        category: str,
        confidence: float,
        summary: str,
        body: dict[str, Any],
        now: datetime,
    ) -> str:
        """Insert or replace the report of (incident, mode); returns the row id.

        Raises ``NotFound`` when the incident does not exist, ``TemporaryError`` when
        PostgreSQL cannot be reached.
        """
        key = report_id(incident_id, mode)
        try:
            await self._postgres.pool.execute(
                "INSERT INTO rca_reports (id, incident_id, mode, category, confidence, summary, body, created_at)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8)"
                " ON CONFLICT (id) DO UPDATE SET category = EXCLUDED.category, confidence = EXCLUDED.confidence,"
                " summary = EXCLUDED.summary, body = EXCLUDED.body, created_at = EXCLUDED.created_at",
                key,
                incident_id,
                mode,
                category,
                confidence,
                summary,
                json.dumps(body, separators=(",", ":"), default=str),
                now,
            )
        except asyncpg.ForeignKeyViolationError as e:
            raise NotFound(f"incident {incident_id!r} does not exist; report not stored") from e
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
            raise TemporaryError(f"PostgreSQL: cannot store RCA report: {type(e).__name__}: {e}") from e
        return key

    async def for_incident(self, incident_id: str) -> list[StoredReport]:
        """Every stored report of an incident, newest first."""
        rows = await self._postgres.pool.fetch(
            "SELECT * FROM rca_reports WHERE incident_id = $1 ORDER BY created_at DESC, id", incident_id
        )
        return [_row(r) for r in rows]

    async def latest(self, incident_id: str) -> StoredReport | None:
        found = await self.for_incident(incident_id)
        return found[0] if found else None
