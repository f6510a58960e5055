"""Debian's real ``prometheus``, on a free port with its own temp dir, scraping our platform."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import yaml

from tests.helpers import wait_until
from tests.servers.processes import free_port


def prometheus_binary() -> str | None:
    return shutil.which("prometheus")


def promtool_binary() -> str | None:
    return shutil.which("promtool")


class PrometheusProcess:
    """One Prometheus scraping ``target_url`` (``http://host:port/path``) every ``interval``."""

    def __init__(
        self,
        workdir: Path,
        target_url: str,
        *,
        job: str = "aiops",
        interval: str = "1s",
        rule_files: tuple[Path, ...] = (),
        bearer_token: str | None = None,
    ) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.target = urlsplit(target_url)
        self.job = job
        self.interval = interval
        self.rule_files = rule_files
        self.bearer_token = bearer_token
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "prometheus.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> dict[str, Any]:
        scrape: dict[str, Any] = {
            "job_name": self.job,
            "scrape_interval": self.interval,
            "scrape_timeout": self.interval,
            "metrics_path": self.target.path or "/metrics",
            "scheme": self.target.scheme or "http",
            "static_configs": [{"targets": [self.target.netloc]}],
        }
        if self.bearer_token:
            scrape["authorization"] = {"type": "Bearer", "credentials": self.bearer_token}
        return {
            "global": {"scrape_interval": self.interval, "evaluation_interval": self.interval},
            "rule_files": [str(p) for p in self.rule_files],
            "scrape_configs": [scrape],
        }

    def start(self) -> PrometheusProcess:
        binary = prometheus_binary()
        if binary is None:
            raise RuntimeError("prometheus is not installed (apt-get install prometheus)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        config_path = self.workdir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(self.config()))
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=1h",
                "--log.level=info",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until(self.ready, timeout=60, interval=0.2, message=f"prometheus ready (log: {self.log_path})")
        except AssertionError:
            self.stop()
            raise
        return self

    def ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"prometheus exited with {self.proc.returncode}: {self.log_tail()}")
        try:
            return httpx.get(self.url + "/-/ready", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    def log_tail(self, limit: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-limit:]
        except OSError:
            return ""

    def api(self, path: str, **params: str) -> Any:
        answer = httpx.get(self.url + "/api/v1/" + path, params=params, timeout=5.0)
        answer.raise_for_status()
        body = answer.json()
        if body.get("status") != "success":
            raise AssertionError(f"prometheus {path}: {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant vector: ``[{"metric": {labels}, "value": [ts, "v"]}, ...]``."""
        data = self.api("query", query=expr)
        result: list[dict[str, Any]] = data["result"]
        return result

    def targets(self) -> list[dict[str, Any]]:
        active: list[dict[str, Any]] = self.api("targets")["activeTargets"]
        return active

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None
        log = getattr(self, "_log", None)
        if log is not None:
            log.close()
