"""The proactive loop under Ray: supervisor -> watcher actors -> rule engine -> RCA worker pool.

The sandbox cluster of the e2e session plays Kubernetes; every hop is a real Ray actor and
the assertions read the platform's own HTTP API.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import ray

from actors import remote
from tests.e2e.conftest import Platform
from tests.helpers import wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture
def watching(platform: Platform) -> Iterator[Any]:
    supervisor = remote.watch_supervisor(platform.settings)
    yield supervisor
    for name in remote.actor_names():
        if name.startswith(remote.WATCH_SUPERVISOR):
            handle = remote.existing(name)
            if handle is not None:
                with contextlib.suppress(ray.exceptions.RayError):
                    ray.get(handle.stop.remote(), timeout=20)
            remote.kill(name, restart=False)


def incidents(platform: Platform, namespace: str) -> list[dict[str, Any]]:
    answer = httpx.get(
        f"{platform.base_url}/api/incidents?namespace={namespace}&limit=100", headers=platform.ops_headers(), timeout=10
    )
    assert answer.status_code == 200, answer.text
    return list(answer.json()["incidents"])


def detail(platform: Platform, incident_id: str) -> dict[str, Any]:
    answer = httpx.get(f"{platform.base_url}/api/incidents/{incident_id}", headers=platform.ops_headers(), timeout=10)
    return dict(answer.json())


def test_watcher_actors_turn_the_sandbox_oom_loop_into_an_incident_with_an_rca_report(
    platform: Platform, watching: Any
) -> None:
    wait_until(lambda: remote.host_of("production"), timeout=60, message="a watcher host for production")
    found = wait_until(
        lambda: [i for i in incidents(platform, "production") if "checkout" in i["title"]],
        timeout=60,
        message="an incident for the OOM crash loop of checkout",
    )
    incident_id = found[0]["id"]
    report = wait_until(
        lambda: detail(platform, incident_id).get("rca"),
        timeout=60,
        interval=0.2,
        message="an RCA report attached to the incident",
    )
    assert report["category"] == "memory_limit", report
    assert "128Mi" in str(report["report"])
    health = httpx.get(platform.base_url + "/health", timeout=10).json()
    assert "aiops-watchers" in health["subsystems"] and "aiops-watch-production" in health["subsystems"]
    assert health["subsystems"]["aiops-watch-production"]["status"] == "ok"


def test_a_killed_watcher_actor_is_restarted_by_ray_and_resumes_watching(platform: Platform, watching: Any) -> None:
    handle = wait_until(lambda: remote.host_of("staging"), timeout=60, message="a watcher host for staging")
    wait_until(lambda: _started(handle, "staging"), timeout=30, message="staging watcher started")
    watched = ray.get(handle.scopes.remote())
    index = ray.get(handle.health.remote())["index"]
    remote.kill(remote.WATCH_SUPERVISOR, restart=False)  # nobody to re-place the scopes: the host must
    remote.kill(remote.watcher_host_name(index), restart=True)
    # Ray restarts the host; it resumes every scope it had from Redis.
    for scope in watched:
        wait_until(lambda s=scope: _started(handle, s), timeout=60, interval=0.5, message=f"{scope} watched again")
    assert sorted(ray.get(handle.scopes.remote())) == sorted(watched)


def _started(handle: Any, scope: str) -> bool:
    try:
        status = ray.get(handle.status.remote(scope), timeout=5)
    except (ray.exceptions.RayError, KeyError):
        return False
    return bool(status["started"]) and all(i["synced"] for i in status["informers"][:1])


def _health_of(platform: Platform, name: str) -> dict[str, Any]:
    health = httpx.get(platform.base_url + "/health", timeout=15).json()
    return dict(health["subsystems"].get(name) or {"status": "absent"}) | {"overall": health["status"]}


def test_rbac_denying_one_namespace_shows_as_that_watcher_degraded_in_health_and_clears(
    platform: Platform, watching: Any
) -> None:
    for name in ("aiops-watch-staging", "aiops-watch-production"):
        wait_until(lambda n=name: _health_of(platform, n)["status"] == "ok", timeout=90, message=f"{name} healthy")
    platform.sandbox.set_forbidden(True, namespace="staging")
    try:
        platform.sandbox.drop_watches()  # the informers reconnect, and staging's now get 403

        def forbidden() -> dict[str, Any] | None:
            # Reconnecting informers first show as "not connected"; wait for the 403 itself.
            health = _health_of(platform, "aiops-watch-staging")
            problems = (health.get("detail") or {}).get("problems") or []
            return health if health["status"] == "degraded" and any("forbidden" in p for p in problems) else None

        staging = wait_until(forbidden, timeout=60, interval=0.5, message="staging watcher degraded by the 403")
        assert staging["overall"] == "degraded"
        assert _health_of(platform, "aiops-watch-production")["status"] == "ok"
    finally:
        platform.sandbox.set_forbidden(False, namespace="staging")
    wait_until(
        lambda: _health_of(platform, "aiops-watch-staging")["status"] == "ok",
        timeout=90,
        interval=0.5,
        message="staging watcher healthy again once RBAC allows it",
    )
