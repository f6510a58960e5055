"""Chat conversations: turns in PostgreSQL, the live session in Redis with a TTL.

A follow-up question ("and in staging?") only makes sense next to the previous one, so
the assistant gets the last turns of the asker's *current* conversation as history. A
conversation is one person in one chat; it lives as long as they keep talking: the Redis
key ``chat:session:<channel>:<chat>:<user>`` names the conversation id and expires after
``session_ttl`` seconds of silence, after which the next question starts a new
conversation (the old one stays in PostgreSQL as history).

Turns are stored redacted (a pasted token never reaches the database or the LLM), and
idempotently by the inbound message id, so a redelivered webhook adds no turn twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from adapters.postgres import PostgresStore
from adapters.redis import RedisStore
from core.errors import InputError, TemporaryError
from core.rca.redact import redact

ROLES = ("user", "assistant")
MAX_TURN_CHARS = 8000
_PG_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


@dataclass(frozen=True)
class Turn:
    role: str
    text: str
    at: datetime


class ConversationStore:
    """Sessions and turns; ``known`` are secret values to redact from every stored turn."""

    def __init__(
        self,
        postgres: PostgresStore,
        redis: RedisStore,
        *,
        session_ttl: float = 1800.0,
        known: Sequence[str] = (),
    ) -> None:
        self._pg = postgres
        self._redis = redis
        self._ttl = session_ttl
        self._known = tuple(known)

    @staticmethod
    def _session_key(channel: str, chat: str, user: str) -> str:
        return f"chat:session:{channel}:{chat}:{user}"

    async def session(self, channel: str, chat: str, user: str, now: datetime) -> str:
        """The asker's current conversation id (created when none is live); refreshes the TTL."""
        key = self._session_key(channel, chat, user)
        found = await self._redis.get_json(key)
        conversation = found.get("conversation") if isinstance(found, dict) else None
        if not isinstance(conversation, str):
            conversation = f"conv-{uuid.uuid4().hex[:16]}"
            try:
                await self._pg.pool.execute(
                    "INSERT INTO conversations (id, channel, chat_id, user_id, created_at, updated_at)"
                    " VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (id) DO NOTHING",
                    conversation,
                    channel,
                    chat,
                    user,
                    now,
                )
            except _PG_ERRORS as e:
                raise TemporaryError(f"PostgreSQL: cannot start a conversation: {type(e).__name__}: {e}") from e
        await self._redis.set_json(key, {"conversation": conversation, "at": now.isoformat()}, self._ttl)
        return conversation

    async def end_session(self, channel: str, chat: str, user: str) -> None:
        await self._redis.delete(self._session_key(channel, chat, user))

    async def add(
        self, conversation: str, role: str, text: str, now: datetime, *, external_id: str | None = None
    ) -> bool:
        """Store one turn (redacted, cut to ``MAX_TURN_CHARS``); False when ``external_id`` was stored already."""
        if role not in ROLES:
            raise InputError(f"turn role must be one of {', '.join(ROLES)}, got {role!r}")
        clean = redact(text, self._known)[:MAX_TURN_CHARS]
        try:
            async with self._pg.pool.acquire() as conn, conn.transaction():
                inserted = await conn.fetchval(
                    "INSERT INTO messages (conversation_id, role, text, at, external_id) VALUES ($1, $2, $3, $4, $5)"
                    " ON CONFLICT (conversation_id, external_id) DO NOTHING RETURNING id",
                    conversation,
                    role,
                    clean,
                    now,
                    external_id,
                )
                await conn.execute("UPDATE conversations SET updated_at = $2 WHERE id = $1", conversation, now)
        except asyncpg.ForeignKeyViolationError as e:
            raise InputError(f"no conversation {conversation!r}") from e
        except _PG_ERRORS as e:
            raise TemporaryError(f"PostgreSQL: cannot store a chat turn: {type(e).__name__}: {e}") from e
        return inserted is not None

    async def turns(self, conversation: str, limit: int = 10) -> list[Turn]:
        """The last ``limit`` turns, oldest first."""
        try:
            rows = await self._pg.pool.fetch(
                "SELECT role, text, at FROM messages WHERE conversation_id = $1 ORDER BY at DESC, id DESC LIMIT $2",
                conversation,
                max(0, limit),
            )
        except _PG_ERRORS as e:
            raise TemporaryError(f"PostgreSQL: cannot read chat turns: {type(e).__name__}: {e}") from e
        return [Turn(r["role"], r["text"], r["at"]) for r in reversed(rows)]

    async def history(self, conversation: str, limit: int = 10) -> tuple[tuple[str, str], ...]:
        """The context window for the assistant: ``(role, text)`` pairs, oldest first."""
        return tuple((t.role, t.text) for t in await self.turns(conversation, limit))
