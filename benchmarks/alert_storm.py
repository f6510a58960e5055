"""Alert storm: a node failure and a bad rollout as Alertmanager would deliver them.

Starts a local Ray with the three Serve apps (the launcher ``aiops demo`` uses) against a
fresh PostgreSQL database, then posts ``--alerts`` alerts in webhook batches of
``--batch`` from ``--clients`` concurrent senders. The webhook answers after the rule
engine has committed, so its latency is "receipt -> incident updated".

    .venv/bin/python -m benchmarks.alert_storm --alerts 20000 --batch 200 --clients 8

Prints alerts/s, webhook latency percentiles, incidents created, notifications and loss.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import ray

from actors import remote
from benchmarks.detection_latency import drop_database, fresh_database, percentile
from config.settings import Settings

TOKEN = "storm-benchmark-token-1f3a"


def storm(total: int, now: datetime) -> list[dict[str, Any]]:
    """Half a node failure (pods on worker-7), half a bad rollout (pods of checkout)."""
    starts = (now - timedelta(minutes=1)).isoformat()

    def alert(name: str, fp: str, **labels: str) -> dict[str, Any]:
        return {
            "status": "firing",
            "labels": {"alertname": name, "severity": labels.pop("severity", "warning"), **labels},
            "annotations": {"summary": f"{name} firing"},
            "startsAt": starts,
            "fingerprint": fp,
        }

    alerts = [
        alert("KubeNodeNotReady", "node-worker-7", node="worker-7", severity="critical"),
        alert("KubeDeploymentReplicasMismatch", "dep-checkout", namespace="shop", deployment="checkout"),
    ]
    half = (total - 2) // 2
    names = ("KubePodNotReady", "KubeContainerWaiting", "KubePodCrashLooping", "TargetDown")
    for i in range(half):
        alerts.append(
            alert(names[i % 4], f"node-pod-{i}", namespace=f"team-{i % 40}", pod=f"svc{i}-5f6d7-abcde", node="worker-7")
        )
    for i in range(total - 2 - half):
        alerts.append(
            alert(
                "KubePodCrashLooping" if i % 2 else "KubePodNotReady",
                f"rollout-{i}",
                namespace="shop",
                pod=f"checkout-7d9f8-{i:05d}",
                deployment="checkout",
            )
        )
    return alerts


def payload(alerts: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "version": "4",
        "groupKey": "{}:{}",
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "aiops",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "",
        "alerts": alerts,
    }


async def send_all(base: str, batches: list[list[dict[str, Any]]], clients: int) -> list[float]:
    queue: asyncio.Queue[list[dict[str, Any]]] = asyncio.Queue()
    for batch in batches:
        queue.put_nowait(batch)
    latencies: list[float] = []

    async def worker() -> None:
        async with httpx.AsyncClient(timeout=120) as client:
            while not queue.empty():
                batch = queue.get_nowait()
                started = time.perf_counter()
                answer = await client.post(
                    base + "/api/alert/webhook", json=payload(batch), headers={"Authorization": f"Bearer {TOKEN}"}
                )
                answer.raise_for_status()
                latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(worker() for _ in range(clients)))
    return latencies


async def counts(dsn: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        return {
            "incidents": int(await conn.fetchval("SELECT count(*) FROM incidents WHERE status <> 'resolved'")),
            "incidents_total": int(await conn.fetchval("SELECT count(*) FROM incidents")),
            "fingerprints": int(await conn.fetchval("SELECT count(DISTINCT fingerprint) FROM signals")),
            "notifications": int(
                await conn.fetchval("SELECT count(*) FROM incident_events WHERE kind LIKE 'notify:%'")
            ),
        }
    finally:
        await conn.close()


def _load() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alerts", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    from deployments import launcher
    from tests.servers.processes import free_port

    server = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    dsn = asyncio.run(fresh_database(server))
    settings = Settings.from_env(
        database_url=dsn,
        redis_url=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        alertmanager_token=TOKEN,
        ops_api_token=TOKEN,
        data_dir=Path(tempfile.mkdtemp(prefix="aiops-storm-")),
        redis_prefix=f"storm-{time.time_ns()}:",
        max_body_bytes=50 * 1024 * 1024,
    )
    launcher.init_ray(num_cpus=2, dashboard=False)
    try:
        base = launcher.deploy(settings, port=free_port())
        alerts = storm(args.alerts, datetime.now(UTC))
        batches = [alerts[i : i + args.batch] for i in range(0, len(alerts), args.batch)]
        started = time.perf_counter()
        latencies = asyncio.run(send_all(base, batches, args.clients))
        elapsed = time.perf_counter() - started
        deadline = time.monotonic() + 90
        result = asyncio.run(counts(dsn))
        while result["notifications"] < result["incidents"] and time.monotonic() < deadline:
            time.sleep(1.0)  # group_wait: notifications go out after the storm settled
            result = asyncio.run(counts(dsn))
        print(f"alerts: {len(alerts)} in {len(batches)} webhooks of {args.batch}, {args.clients} concurrent senders")
        print(f"throughput: {len(alerts) / elapsed:.0f} alerts/s over {elapsed:.1f}s")
        print(
            f"webhook latency (receipt -> incidents committed) p50 {percentile(latencies, 50) * 1000:.0f} ms, "
            f"p95 {percentile(latencies, 95) * 1000:.0f} ms, p99 {percentile(latencies, 99) * 1000:.0f} ms"
        )
        print(
            f"open incidents: {result['incidents']} (ever opened: {result['incidents_total']}), "
            f"notifications: {result['notifications']}"
        )
        print(
            f"alerts stored: {result['fingerprints']} of {len(alerts)} (lost: {len(alerts) - result['fingerprints']})"
        )
        engine = ray.get(remote.rule_engine(settings).health.remote())
        stages = ", ".join(f"{stage} {seconds:.1f}s" for stage, seconds in engine["stage_seconds"].items())
        print(f"rule engine: {engine['commits']} commit groups; time in stages: {stages}; load average {_load()}")
    finally:
        launcher.shutdown()
        asyncio.run(drop_database(server, dsn))


if __name__ == "__main__":
    main()
