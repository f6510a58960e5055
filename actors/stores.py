"""Opening the durable stores an actor needs, the same way in every actor.

Settings say where PostgreSQL and Redis are; when they say nothing, the embedded servers
under the data directory are started (or reused). Migrations run on open, so whichever
process starts first brings the schema up to date.
"""

from __future__ import annotations

from dataclasses import dataclass

from adapters.embedded import start_postgres, start_redis
from adapters.postgres import PostgresStore
from adapters.redis import RedisStore
from config.settings import Settings


def resolve_urls(settings: Settings) -> tuple[str, str]:
    """(database_url, redis_url), starting embedded servers for whichever is unset."""
    database_url = settings.secret("database_url") or start_postgres(settings.data_dir)
    redis_url = settings.secret("redis_url") or start_redis(settings.data_dir)
    return database_url, redis_url


@dataclass
class Stores:
    postgres: PostgresStore
    redis: RedisStore

    @classmethod
    async def open(cls, settings: Settings, *, migrate: bool = True) -> Stores:
        database_url, redis_url = resolve_urls(settings)
        postgres = PostgresStore(database_url, pool_max=settings.db_pool_max)
        await postgres.open()
        if migrate:
            await postgres.migrate()
        return cls(postgres=postgres, redis=RedisStore(redis_url, settings.redis_prefix))

    async def close(self) -> None:
        await self.postgres.close()
        await self.redis.close()
