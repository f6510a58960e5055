"""Alert storms through the real HTTP path: huge payloads, and a rule-engine restart mid-storm."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import asyncpg
import httpx
import pytest

from actors import remote
from tests.e2e.conftest import Platform
from tests.payloads import am_alert, am_payload

pytestmark = pytest.mark.e2e


def storm(tag: str, count: int) -> list[dict[str, Any]]:
    alerts = [am_alert("KubeNodeNotReady", f"{tag}-node", node=f"{tag}-worker", severity="critical", test=tag)]
    for i in range(count - 1):
        alerts.append(
            am_alert(
                "KubePodNotReady",
                f"{tag}-pod-{i}",
                namespace=f"{tag}-ns{i % 10}",
                pod=f"{tag}-app{i}-5f6d7-abcde",
                node=f"{tag}-worker",
                test=tag,
            )
        )
    return alerts


def db(platform: Platform, sql: str, *args: Any) -> int:
    async def run() -> int:
        conn = await asyncpg.connect(platform.database_url)
        try:
            return int(await conn.fetchval(sql, *args))
        finally:
            await conn.close()

    return asyncio.run(run())


def test_ten_thousand_alerts_in_one_payload_collapse_into_one_incident(platform: Platform) -> None:
    tag = "big-payload"
    body = json.dumps(am_payload(*storm(tag, 10_000), truncated=3)).encode()
    answer = httpx.post(
        platform.base_url + "/api/alert/webhook",
        content=body,
        timeout=300,
        headers={**platform.am_headers(), "Content-Type": "application/json"},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] == 10_000 and answer.json()["truncated_alerts"] == 3
    assert db(platform, "SELECT count(DISTINCT fingerprint) FROM signals WHERE labels->>'test' = $1", tag) == 10_000
    assert db(platform, "SELECT count(*) FROM incidents WHERE labels->>'test' = $1", tag) == 1


def test_a_rule_engine_restart_mid_storm_loses_nothing_and_duplicates_nothing(platform: Platform) -> None:
    """Senders retry failed deliveries as Alertmanager does; the engine is killed while they send."""
    tag = "restart-storm"
    alerts = storm(tag, 2_000)
    batches = [alerts[i : i + 50] for i in range(0, len(alerts), 50)]
    failures: list[int] = []

    def send(batch: list[dict[str, Any]]) -> None:
        for _attempt in range(30):
            try:
                answer = httpx.post(
                    platform.base_url + "/api/alert/webhook",
                    json=am_payload(*batch),
                    headers=platform.am_headers(),
                    timeout=60,
                )
                if answer.status_code == 200:
                    return
                failures.append(answer.status_code)
            except httpx.HTTPError:
                failures.append(0)
        raise AssertionError(f"batch never delivered: {failures[-3:]}")

    killed = threading.Event()

    def sender(chunk: list[list[dict[str, Any]]]) -> None:
        for i, batch in enumerate(chunk):
            if i == len(chunk) // 2 and not killed.is_set():
                killed.set()
                remote.kill(remote.RULE_ENGINE, restart=True)
            send(batch)

    threads = [threading.Thread(target=sender, args=(batches[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    assert killed.is_set()
    assert db(platform, "SELECT count(DISTINCT fingerprint) FROM signals WHERE labels->>'test' = $1", tag) == 2_000
    assert db(platform, "SELECT count(*) FROM signals WHERE labels->>'test' = $1", tag) == 2_000
    # Pod alerts that arrived before the node alert opened their own incidents; the node incident
    # absorbed them (resolved as merged) before any notification went out. One stays open.
    active = "SELECT count(*) FROM incidents WHERE labels->>'test' = $1 AND status <> 'resolved'"
    assert db(platform, active, tag) == 1
    merged = (
        "SELECT count(*) FROM incidents i WHERE labels->>'test' = $1 AND status = 'resolved' AND NOT EXISTS"
        " (SELECT 1 FROM incident_events e WHERE e.incident_id = i.id AND e.kind = 'resolved'"
        " AND e.detail->>'reason' = 'merged')"
    )
    assert db(platform, merged, tag) == 0
    notified = (
        "SELECT count(DISTINCT incident_id) FROM incident_events e JOIN incidents i ON i.id = e.incident_id"
        " WHERE i.labels->>'test' = $1 AND e.kind LIKE 'notify:new'"
    )
    assert db(platform, notified, tag) <= 1
