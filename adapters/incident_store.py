"""Applying the correlator's effects to PostgreSQL, idempotently, in one transaction.

The rule engine writes its effects ahead to Redis, applies them here, then clears them;
after a crash it applies the same effects again. So every statement here must be safe to
run twice: incidents are inserted by the correlator's id with ``ON CONFLICT DO NOTHING``,
signals by their dedup key, and timeline rows by an effect key.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from datetime import datetime
from enum import Enum
from typing import Any

import asyncpg
from pydantic import BaseModel

from adapters.postgres import PostgresStore
from core.errors import TemporaryError


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def encode_effect(effect: Any) -> dict[str, Any]:
    """A JSON-safe dict of a correlator effect: ``{"type": ClassName, ...fields}``."""
    return {"type": type(effect).__name__, **_plain(effect)}


def dedup_key(signal: dict[str, Any]) -> str:
    """A delivery of the same observation twice maps to the same key."""
    when = signal.get("starts_at") or signal["observed_at"]
    if signal.get("status") == "resolved" or signal.get("source") == "k8s":
        # Watchers send only on change, so every k8s observation is news (a rising restart count).
        when = signal["observed_at"]
    return f"{signal['fingerprint']}|{signal.get('status', 'firing')}|{when}"


def _js(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


def _ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


class IncidentWriter:
    def __init__(self, store: PostgresStore) -> None:
        self._store = store

    async def apply(self, effects: Sequence[dict[str, Any]], now: datetime, batch: str) -> None:
        """Apply encoded effects; ``batch`` names this write so a replay adds no timeline rows twice.

        Statements of one kind are sent together (``executemany`` pipelines them), in an order
        that respects foreign keys and the effects' own order: incidents, signals, signal moves,
        status changes (in effect order), timeline rows, then the signal counts.
        """
        incidents: list[tuple[Any, ...]] = []
        signals: list[tuple[Any, ...]] = []
        moves: list[tuple[Any, ...]] = []
        updates: list[tuple[str, tuple[Any, ...]]] = []
        events: list[tuple[Any, ...]] = []
        touched: set[str] = set()
        for index, effect in enumerate(effects):
            kind = effect["type"]
            key = f"{batch}:{index}"
            incident_id: str = effect.get("incident_id") or ""
            if incident_id:
                touched.add(incident_id)
            if kind == "OpenIncident":
                obj = effect.get("object") or {}
                incidents.append(
                    (
                        incident_id,
                        effect["group_key"],
                        effect["severity"],
                        effect["title"][:500],
                        effect["rule"],
                        effect.get("namespace"),
                        obj.get("kind"),
                        obj.get("name"),
                        _js(effect.get("labels") or {}),
                        effect.get("playbook"),
                        now,
                    )
                )
                signals.append(self._signal_row(effect["signal"], incident_id, now))
                events.append(
                    _event_row(
                        incident_id, "opened", {"rule": effect["rule"], "severity": effect["severity"]}, now, key
                    )
                )
            elif kind in ("AttachSignal", "ReopenIncident"):
                signal = effect["signal"]
                signals.append(self._signal_row(signal, incident_id, now))
                if effect.get("moved_from"):
                    moves.append((incident_id, signal["fingerprint"], effect["moved_from"]))
                    touched.add(effect["moved_from"])
                if kind == "ReopenIncident":
                    updates.append((_REOPEN, (incident_id, now)))
                    events.append(_event_row(incident_id, "reopened", {}, now, key))
                else:
                    events.append(
                        _event_row(
                            incident_id,
                            "signal",
                            {
                                "fingerprint": signal["fingerprint"],
                                "status": signal.get("status", "firing"),
                                "reason": signal.get("reason"),
                                "affected": effect.get("affected", False),
                                "message": (signal.get("message") or "")[:300],
                            },
                            now,
                            key,
                        )
                    )
            elif kind == "EscalateIncident":
                updates.append((_ESCALATE, (incident_id, effect["to_severity"], now)))
                events.append(
                    _event_row(
                        incident_id,
                        "escalated",
                        {"from": effect["from_severity"], "to": effect["to_severity"]},
                        now,
                        key,
                    )
                )
            elif kind == "AcknowledgeIncident":
                updates.append((_ACK, (incident_id, now)))
                events.append(_event_row(incident_id, "acknowledged", {"by": effect["who"]}, now, key))
            elif kind == "ResolveIncident":
                updates.append((_RESOLVE, (incident_id, now)))
                events.append(
                    _event_row(
                        incident_id,
                        "resolved",
                        {"reason": effect["reason"], "merged_into": effect.get("merged_into")},
                        now,
                        key,
                    )
                )
            elif kind == "Notify":
                events.append(
                    _event_row(
                        incident_id,
                        f"notify:{effect['kind']}",
                        {
                            "summary": effect.get("summary"),
                            "routes": effect.get("routes"),
                            "severity": effect.get("severity"),
                        },
                        now,
                        key,
                    )
                )
        try:
            async with self._store.pool.acquire() as conn, conn.transaction():
                if incidents:
                    await conn.executemany(_INSERT_INCIDENT, incidents)
                if signals:
                    await conn.execute(_INSERT_SIGNALS, *_signal_columns(signals), now)
                if moves:
                    await conn.executemany(_MOVE_SIGNALS, moves)
                for sql, group in _runs(updates):
                    await conn.executemany(sql, group)
                if events:
                    await conn.execute(_INSERT_EVENTS, *_columns(events, 5))
                if touched:
                    await conn.execute(_COUNT_SIGNALS, sorted(touched), now)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
            # PostgreSQL down or restarting: the batch is safe in the write-ahead; callers may retry.
            raise TemporaryError(f"PostgreSQL: cannot write incidents: {type(e).__name__}: {e}") from e

    @staticmethod
    def _signal_row(signal: dict[str, Any], incident_id: str, now: datetime) -> tuple[Any, ...]:
        namespace = (signal.get("object") or {}).get("namespace") or (signal.get("labels") or {}).get("namespace")
        return (
            dedup_key(signal),
            signal["fingerprint"],
            incident_id,
            signal["source"],
            signal["reason"],
            signal["severity"],
            signal.get("status", "firing"),
            namespace,
            _js(signal.get("labels") or {}),
            _js(signal),
            _ts(signal["observed_at"]),
            now,
        )


def _event_row(incident_id: str, kind: str, detail: dict[str, Any], at: datetime, key: str) -> tuple[Any, ...]:
    return (incident_id, kind, _js(detail), at, key)


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows as one list per column: the array parameters of an ``unnest`` insert."""
    return [[row[i] for row in rows] for i in range(width)]


def _signal_columns(rows: Sequence[tuple[Any, ...]]) -> list[list[Any]]:
    """Signal rows as columns, one row per dedup key: the first occurrence's values with the last
    one's incident, which is what inserting them one by one (``DO UPDATE SET incident_id``) gives;
    one statement may not touch a row twice."""
    first: dict[str, tuple[Any, ...]] = {}
    for row in rows:
        kept = first.get(row[0])
        first[row[0]] = row if kept is None else (*kept[:2], row[2], *kept[3:])
    return _columns(list(first.values()), 11)


def _runs(updates: list[tuple[str, tuple[Any, ...]]]) -> list[tuple[str, list[tuple[Any, ...]]]]:
    """Consecutive updates with the same statement, grouped, keeping their order."""
    runs: list[tuple[str, list[tuple[Any, ...]]]] = []
    for sql, args in updates:
        if runs and runs[-1][0] == sql:
            runs[-1][1].append(args)
        else:
            runs.append((sql, [args]))
    return runs


_INSERT_INCIDENT = (
    "INSERT INTO incidents (id, group_key, status, severity, title, rule, namespace, object_kind, object_name,"
    " labels, signal_count, playbook, opened_at, updated_at)"
    " VALUES ($1,$2,'open',$3,$4,$5,$6,$7,$8,$9::jsonb,0,$10,$11,$11) ON CONFLICT (id) DO NOTHING"
)
# Set-based inserts: one statement per kind and batch, its rows as array parameters (one plan and
# one round trip for a storm's thousands of rows, instead of a statement per row).
_INSERT_SIGNALS = (
    "INSERT INTO signals (dedup_key, fingerprint, incident_id, source, reason, severity, status, namespace,"
    " labels, body, observed_at, received_at)"
    " SELECT d, f, i, so, r, se, st, n, l::jsonb, b::jsonb, o, $12 FROM unnest($1::text[], $2::text[],"
    " $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],"
    " $11::timestamptz[]) AS u(d, f, i, so, r, se, st, n, l, b, o)"
    " ON CONFLICT (dedup_key) DO UPDATE SET incident_id = EXCLUDED.incident_id"
)
_MOVE_SIGNALS = "UPDATE signals SET incident_id = $1 WHERE fingerprint = $2 AND incident_id = $3"
_REOPEN = "UPDATE incidents SET status = 'open', resolved_at = NULL, updated_at = $2 WHERE id = $1"
_ESCALATE = "UPDATE incidents SET severity = $2, updated_at = $3 WHERE id = $1"
_ACK = "UPDATE incidents SET status = 'acknowledged', updated_at = $2 WHERE id = $1 AND status = 'open'"
_RESOLVE = "UPDATE incidents SET status = 'resolved', resolved_at = $2, updated_at = $2 WHERE id = $1"
# Timeline rows get their ids in effect order (the notifier reads them by id).
_INSERT_EVENTS = (
    "INSERT INTO incident_events (incident_id, kind, detail, at, effect_key)"
    " SELECT i, k, d::jsonb, a, e FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[])"
    " WITH ORDINALITY AS u(i, k, d, a, e, n) ORDER BY n"
    " ON CONFLICT (effect_key) DO NOTHING"
)
_COUNT_SIGNALS = (
    "UPDATE incidents SET signal_count = counted.n, updated_at = GREATEST(incidents.updated_at, $2)"
    " FROM (SELECT id, (SELECT count(DISTINCT fingerprint) FROM signals s WHERE s.incident_id = ids.id) AS n"
    " FROM unnest($1::text[]) AS ids(id)) counted WHERE incidents.id = counted.id"
)
