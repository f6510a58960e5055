"""The notifier's inputs and bookkeeping: announcement rows in PostgreSQL, state in Redis.

``announcements`` reads the rule engine's ``notify:<kind>`` and ``resolved`` rows of
``incident_events`` after a cursor; ``NotifierState`` keeps, in Redis, what lets a restarted
notifier neither lose nor repeat a message:

* ``cursor(log)``: how far each input log has been read (``events``, ``notices``);
* ``marked``/``mark``: one marker per (item, target) already sent, kept ``ttl`` seconds;
* ``threads``: per incident, the root ``MessageRef`` in each target chat;
* ``approval_refs``: per approval, the request message in each target chat (edited later);
* ``rca_waiting``: incidents whose root message still waits for its RCA report.

Keys live under the store's prefix (``notifier:...``); values are small JSON documents.
There is one notifier, so read-modify-write of a document needs no lock across processes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from adapters.postgres import PostgresStore
from adapters.redis import RedisStore
from core.chat import MessageRef
from core.errors import TemporaryError

DEFAULT_TTL = 14 * 86400.0


def _ref_json(ref: MessageRef) -> list[str]:
    return [ref.channel, ref.target, ref.id]


def ref_of(value: Any) -> MessageRef | None:
    if isinstance(value, list) and len(value) == 3:
        return MessageRef(str(value[0]), str(value[1]), str(value[2]))
    return None


def _refs(value: Any) -> dict[str, MessageRef]:
    if not isinstance(value, dict):
        return {}
    found = {str(k): ref_of(v) for k, v in value.items()}
    return {k: v for k, v in found.items() if v is not None}


class NotifierState:
    def __init__(self, redis: RedisStore, *, ttl: float = DEFAULT_TTL) -> None:
        self._redis = redis
        self._ttl = ttl

    async def cursor(self, log: str) -> int:
        value = await self._redis.get_json(f"notifier:cursor:{log}")
        return int(value) if isinstance(value, int) else 0

    async def set_cursor(self, log: str, value: int) -> None:
        await self._redis.set_json(f"notifier:cursor:{log}", int(value))

    async def marked(self, key: str) -> bool:
        return await self._redis.get_json(f"notifier:sent:{key}") is not None

    async def mark(self, key: str) -> None:
        await self._redis.set_json(f"notifier:sent:{key}", 1, self._ttl)

    async def threads(self, incident_id: str) -> dict[str, MessageRef]:
        """Target (``slack:C0..``) -> the incident's root message there."""
        return _refs(await self._redis.get_json(f"notifier:thread:{incident_id}"))

    async def save_thread(self, incident_id: str, target: str, ref: MessageRef) -> None:
        await self._save(f"notifier:thread:{incident_id}", target, ref)

    async def approval_refs(self, approval_id: str) -> dict[str, MessageRef]:
        return _refs(await self._redis.get_json(f"notifier:approval:{approval_id}"))

    async def save_approval_ref(self, approval_id: str, target: str, ref: MessageRef) -> None:
        await self._save(f"notifier:approval:{approval_id}", target, ref)

    async def _save(self, key: str, target: str, ref: MessageRef) -> None:
        found = await self._redis.get_json(key)
        document = found if isinstance(found, dict) else {}
        document[target] = _ref_json(ref)
        await self._redis.set_json(key, document, self._ttl)

    async def rca_waiting(self) -> dict[str, Any]:
        found = await self._redis.get_json("notifier:rca_waiting")
        return found if isinstance(found, dict) else {}

    async def set_rca_waiting(self, waiting: dict[str, Any]) -> None:
        await self._redis.set_json("notifier:rca_waiting", waiting)


@dataclass(frozen=True)
class Announcement:
    id: int
    incident_id: str
    kind: str
    detail: dict[str, Any]
    at: datetime


def _json(raw: Any) -> dict[str, Any]:
    value = json.loads(raw) if isinstance(raw, str) else raw
    return dict(value) if isinstance(value, dict) else {}


_PG_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


async def announcements(postgres: PostgresStore, after: int, limit: int) -> list[Announcement]:
    """``notify:*`` and ``resolved`` timeline rows with an id above ``after``, in id order."""
    try:
        rows = await postgres.pool.fetch(
            "SELECT id, incident_id, kind, detail, at FROM incident_events"
            " WHERE id > $1 AND (kind LIKE 'notify:%' OR kind = 'resolved') ORDER BY id LIMIT $2",
            after,
            limit,
        )
    except _PG_ERRORS as e:
        raise TemporaryError(f"PostgreSQL: cannot read notifications: {type(e).__name__}: {e}") from e
    return [Announcement(int(r["id"]), r["incident_id"], r["kind"], _json(r["detail"]), r["at"]) for r in rows]


async def nearest_detail(postgres: PostgresStore, incident_id: str, kind: str, near: int) -> dict[str, Any]:
    """The detail of the ``kind`` row of an incident closest to row ``near`` (the same batch)."""
    try:
        raw = await postgres.pool.fetchval(
            "SELECT detail FROM incident_events WHERE incident_id = $1 AND kind = $2 ORDER BY abs(id - $3) LIMIT 1",
            incident_id,
            kind,
            near,
        )
    except _PG_ERRORS as e:
        raise TemporaryError(f"PostgreSQL: cannot read the incident timeline: {type(e).__name__}: {e}") from e
    return {} if raw is None else _json(raw)
