"""Redis: fast, expiring state (dedup windows, approvals with TTL, chat sessions).

Every key carries the configured prefix so one Redis can serve several installs and
tests can isolate themselves. Errors surface as ``TemporaryError`` so callers retry or
report instead of crashing.
"""

from __future__ import annotations

import json
import time
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from core.errors import TemporaryError


class RedisStore:
    def __init__(self, url: str, prefix: str = "aiops:", *, timeout: float = 2.0) -> None:
        self.prefix = prefix
        self._client: aioredis.Redis = aioredis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, decode_responses=True
        )

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    async def close(self) -> None:
        await self._client.aclose()

    async def ping(self) -> float:
        started = time.perf_counter()
        try:
            await self._client.ping()
        except (RedisError, OSError) as e:
            raise TemporaryError(f"Redis: {type(e).__name__}: {e}") from e
        return time.perf_counter() - started

    async def set_if_absent(self, key: str, value: str, ttl_seconds: float) -> bool:
        """Claim ``key`` for ``ttl_seconds``; True when this call claimed it."""
        try:
            return bool(await self._client.set(self.key(key), value, nx=True, px=int(ttl_seconds * 1000)))
        except (RedisError, OSError) as e:
            raise TemporaryError(f"Redis: {e}") from e

    async def get_json(self, key: str) -> Any:
        try:
            raw = await self._client.get(self.key(key))
        except (RedisError, OSError) as e:
            raise TemporaryError(f"Redis: {e}") from e
        return None if raw is None else json.loads(raw)

    async def set_json(self, key: str, value: Any, ttl_seconds: float | None = None) -> None:
        try:
            px = int(ttl_seconds * 1000) if ttl_seconds else None
            await self._client.set(self.key(key), json.dumps(value, default=str), px=px)
        except (RedisError, OSError) as e:
            raise TemporaryError(f"Redis: {e}") from e

    async def delete(self, key: str) -> None:
        try:
            await self._client.delete(self.key(key))
        except (RedisError, OSError) as e:
            raise TemporaryError(f"Redis: {e}") from e

    async def incr(self, key: str, ttl_seconds: float | None = None) -> int:
        try:
            value = int(await self._client.incr(self.key(key)))
            if ttl_seconds and value == 1:
                await self._client.pexpire(self.key(key), int(ttl_seconds * 1000))
            return value
        except (RedisError, OSError) as e:
            raise TemporaryError(f"Redis: {e}") from e

    @property
    def client(self) -> aioredis.Redis:
        """The raw client, for adapters that need Redis commands not wrapped here."""
        return self._client
