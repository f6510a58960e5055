"""Start the platform inside one Python process: Ray, the actors, the three Serve apps.

``aiops demo`` and the end-to-end tests both go through here, so the tests exercise the
same wiring users run. Production installs use ``serve deploy serve_config.yaml``
instead (``aiops up``), which builds the same apps from their import paths.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx
import ray
from ray import serve

from actors import remote
from config.settings import Settings
from core.errors import TemporaryError
from deployments import alerts, chat, ops

APPS = (("alerts", "/api/alert"), ("chat", "/api/webhook"), ("ops", "/"))


@dataclass(frozen=True)
class Running:
    base_url: str
    dashboard_url: str | None


def init_ray(*, num_cpus: int = 2, dashboard: bool = False, address: str | None = None) -> str | None:
    """Join ``address`` or start a local Ray; returns the dashboard URL when there is one."""
    if not ray.is_initialized():
        if address:
            context = ray.init(address=address, namespace=remote.NAMESPACE, log_to_driver=False)
        else:
            # "local": always a new Ray of our own; without it ray.init() joins whatever cluster
            # `ray start` last recorded on this machine (another user's, or another test's).
            context = ray.init(
                address="local",
                num_cpus=num_cpus,
                namespace=remote.NAMESPACE,
                include_dashboard=dashboard,
                log_to_driver=False,
                configure_logging=False,
            )
        url = getattr(context, "dashboard_url", None)
        return f"http://{url}" if url else None
    return None


def deploy(settings: Settings, *, port: int, rules_file: str | None = None, health_timeout: float = 60.0) -> str:
    """Create the actors and run the three apps on ``port``; returns the base URL."""
    remote.rule_engine(settings, rules_file)
    serve.start(http_options={"host": settings.http_host, "port": port})
    alerts_app = alerts.AlertsIngress.options(user_config={"rules_file": rules_file}).bind(settings)
    serve.run(alerts_app, name="alerts", route_prefix="/api/alert", blocking=False)
    serve.run(chat.build(settings), name="chat", route_prefix="/api/webhook", blocking=False)
    serve.run(ops.build(settings), name="ops", route_prefix="/", blocking=False)
    base = f"http://{settings.http_host}:{port}"
    wait_http(base + "/health", timeout=health_timeout)
    return base


def wait_http(url: str, *, timeout: float, expect: int = 200) -> Any:
    """Poll ``url`` until it answers ``expect`` or the deadline passes."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url, timeout=5.0)
            if response.status_code == expect:
                return response
            last = f"HTTP {response.status_code}"
        except httpx.HTTPError as e:
            last = f"{type(e).__name__}: {e}"
        time.sleep(0.1)
    raise TemporaryError(f"{url} did not answer {expect} within {timeout}s (last: {last})")


def shutdown() -> None:
    if ray.is_initialized():
        serve.shutdown()  # type: ignore[no-untyped-call]
        for name in remote.actor_names():
            remote.kill(name, restart=False)
        ray.shutdown()
