"""One Alertmanager alert travels the whole way: HTTP -> Serve -> RuleEngine actor -> PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
import httpx
import pytest

from actors import remote
from tests.e2e.conftest import Platform
from tests.helpers import wait_until
from tests.payloads import am_alert, am_payload
from tests.servers.processes import RedisProcess

pytestmark = pytest.mark.e2e


def db_count(platform: Platform, sql: str, *args: Any) -> int:
    async def run() -> int:
        conn = await asyncpg.connect(platform.database_url)
        try:
            return int(await conn.fetchval(sql, *args))
        finally:
            await conn.close()

    return asyncio.run(run())


def post(
    platform: Platform, body: Any, headers: dict[str, str] | None = None, raw: bytes | None = None
) -> httpx.Response:
    return httpx.post(
        platform.base_url + "/api/alert/webhook",
        content=raw if raw is not None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **(platform.am_headers() if headers is None else headers)},
        timeout=30.0,
    )


def incidents_for(platform: Platform, tag: str) -> list[dict[str, Any]]:
    answer = httpx.get(platform.base_url + "/api/incidents?limit=1000", headers=platform.ops_headers(), timeout=10.0)
    assert answer.status_code == 200, answer.text
    return [i for i in answer.json()["incidents"] if i["labels"].get("test") == tag]


def test_two_firing_alerts_one_repeated_make_exactly_two_incidents_and_a_resend_makes_none(
    platform: Platform,
) -> None:
    tag = "two-incidents"
    a = am_alert("KubePodCrashLooping", "e2e-a", namespace="shop", pod="cart-1", test=tag)
    b = am_alert("KubeDeploymentReplicasMismatch", "e2e-b", namespace="shop", deployment="cart", test=tag)
    payload = am_payload(a, b, a)
    first = post(platform, payload)
    assert first.status_code == 200, first.text
    assert first.json()["opened"] == 2 and first.json()["duplicates"] == 1
    found = incidents_for(platform, tag)
    assert len(found) == 2
    assert db_count(platform, "SELECT count(*) FROM incidents WHERE labels->>'test' = $1", tag) == 2
    again = post(platform, payload)
    assert again.status_code == 200 and again.json()["opened"] == 0 and again.json()["duplicates"] == 3
    assert db_count(platform, "SELECT count(*) FROM incidents WHERE labels->>'test' = $1", tag) == 2
    detail = httpx.get(f"{platform.base_url}/api/incidents/{found[0]['id']}", headers=platform.ops_headers())
    assert detail.status_code == 200 and detail.json()["timeline"][0]["kind"] == "opened"


def test_killing_the_rule_engine_between_two_webhooks_loses_nothing(platform: Platform) -> None:
    tag = "kill-engine"
    post(platform, am_payload(am_alert("KubePodNotReady", "kill-1", namespace="a", pod="p1", test=tag)))
    assert remote.kill(remote.RULE_ENGINE, restart=True)
    answer = post(platform, am_payload(am_alert("KubePodNotReady", "kill-2", namespace="a", pod="p2", test=tag)))
    assert answer.status_code == 200, answer.text
    assert db_count(platform, "SELECT count(*) FROM incidents WHERE labels->>'test' = $1", tag) == 2
    assert remote.RULE_ENGINE in remote.actor_names()


@pytest.mark.parametrize(
    ("raw", "headers", "status", "message"),
    [
        pytest.param(b"{oops", None, 400, "malformed JSON", id="malformed-json"),
        pytest.param(b'{"version": "4"}', None, 400, "Field required", id="missing-fields"),
        pytest.param(
            json.dumps({**am_payload(), "version": "2"}).encode(), None, 400, 'only version "4"', id="unknown-version"
        ),
        pytest.param(b"{}", {"Authorization": "Bearer wrong"}, 401, "invalid bearer token", id="wrong-token"),
        pytest.param(b"{}", {}, 401, "missing Authorization", id="missing-token"),
        pytest.param(b"x" * (10 * 1024 * 1024), None, 413, "over the", id="ten-megabyte-body"),
    ],
)
def test_bad_webhook_input_gets_a_clear_4xx_and_stores_nothing(
    platform: Platform, raw: bytes, headers: dict[str, str] | None, status: int, message: str
) -> None:
    before = db_count(platform, "SELECT count(*) FROM signals")
    answer = post(platform, None, headers=headers, raw=raw)
    assert answer.status_code == status, answer.text
    assert message in answer.json()["message"]
    assert db_count(platform, "SELECT count(*) FROM signals") == before
    assert httpx.get(platform.base_url + "/health", timeout=10.0).json()["status"] == "ok"


def test_basic_auth_as_alertmanager_http_config_sends_it_is_accepted(platform: Platform) -> None:
    tag = "basic-auth"
    body = am_payload(am_alert("TargetDown", "basic-1", job="node", test=tag))
    answer = httpx.post(
        platform.base_url + "/api/alert/webhook", json=body, auth=("alertmanager", "e2e-alertmanager-token-9f2c")
    )
    assert answer.status_code == 200, answer.text
    assert len(incidents_for(platform, tag)) == 1


def test_incident_api_requires_the_ops_token(platform: Platform) -> None:
    assert httpx.get(platform.base_url + "/api/incidents").status_code == 401
    assert httpx.get(platform.base_url + "/api/incidents", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert (
        httpx.get(platform.base_url + "/api/incidents/inc-missing", headers=platform.ops_headers()).status_code == 404
    )


def test_health_shows_each_subsystem_and_metrics_are_prometheus_text(platform: Platform) -> None:
    health = httpx.get(platform.base_url + "/health", timeout=10.0).json()
    assert {"postgres", "redis", "aiops-rules", "aiops-rca-0"} <= set(health["subsystems"])
    assert all("latency_ms" in s for s in health["subsystems"].values())
    assert httpx.get(platform.base_url + "/ready", timeout=10.0).status_code == 200
    text = httpx.get(platform.base_url + "/metrics", timeout=10.0).text
    assert "aiops_signals_total" in text and "aiops_webhook_requests_total" in text


def test_health_reports_redis_down_and_recovers_when_it_is_back(platform: Platform, tmp_path: Any) -> None:
    from ray import serve

    from deployments import ops

    redis = RedisProcess(tmp_path / "redis").start()
    try:
        settings = platform.settings.model_copy(update={"redis_url": __import__("pydantic").SecretStr(redis.url)})
        serve.run(ops.build(settings), name="ops-redis-fault", route_prefix="/redis-fault", blocking=False)
        url = platform.base_url + "/redis-fault/health"

        def redis_status() -> str:
            try:
                return str(httpx.get(url, timeout=10.0).json()["subsystems"]["redis"]["status"])
            except (httpx.HTTPError, ValueError, KeyError):
                return "unreachable"

        wait_until(lambda: redis_status() == "ok", timeout=60, message="redis ok")
        redis.stop()
        wait_until(lambda: redis_status() == "down", timeout=30, message="redis reported down")
        down = httpx.get(url, timeout=10.0).json()
        assert down["status"] == "degraded" and down["subsystems"]["redis"]["error"]
        assert httpx.get(platform.base_url + "/redis-fault/ready", timeout=10.0).status_code == 503
        redis.start()
        wait_until(lambda: redis_status() == "ok", timeout=30, message="redis recovered")
    finally:
        serve.delete("ops-redis-fault")
        redis.stop()
