"""``aiops demo``: the loop on this machine with nothing configured.

Embedded PostgreSQL and Redis under the data directory, a local Ray with its dashboard,
the three Serve apps on a free port, then a scripted alert storm posted the way
Alertmanager posts it, and the incidents it became. Ctrl-C (or the end of the script
without ``--keep``) stops everything the demo started.
"""

from __future__ import annotations

import json
import secrets
import socket
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from actors.stores import resolve_urls
from config.settings import Settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sample_storm(now: datetime) -> dict[str, Any]:
    """A node failure as Alertmanager would deliver it: node alert, pod alerts, a heartbeat."""
    starts = (now - timedelta(minutes=2)).isoformat()
    alerts = [
        {
            "status": "firing",
            "labels": {"alertname": "KubeNodeNotReady", "node": "worker-2", "severity": "critical"},
            "annotations": {"summary": "worker-2 has been unready for more than 15 minutes."},
            "startsAt": starts,
            "fingerprint": "node-worker-2",
        },
        {
            "status": "firing",
            "labels": {"alertname": "Watchdog", "severity": "none"},
            "annotations": {},
            "startsAt": starts,
            "fingerprint": "watchdog",
        },
    ]
    for i in range(5):
        alerts.append(
            {
                "status": "firing",
                "labels": {
                    "alertname": "KubePodCrashLooping",
                    "namespace": "production",
                    "pod": f"api-7d9f-{i}",
                    "deployment": "api",
                    "severity": "warning",
                },
                "annotations": {"summary": f"Pod production/api-7d9f-{i} is crash looping."},
                "startsAt": starts,
                "fingerprint": f"api-{i}",
            }
        )
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


def run_demo(*, port: int = 0, keep: bool = False, data_dir: str | None = None) -> int:
    from deployments import launcher

    overrides: dict[str, Any] = {}
    if data_dir:
        overrides["data_dir"] = Path(data_dir)
    base_settings = Settings.from_env(**overrides)
    print("• starting embedded PostgreSQL and Redis (or using DATABASE_URL / REDIS_URL) ...", flush=True)
    database_url, redis_url = resolve_urls(base_settings)
    token = base_settings.secret("alertmanager_token") or secrets.token_urlsafe(16)
    ops_token = base_settings.secret("ops_api_token") or secrets.token_urlsafe(16)
    settings = Settings.from_env(
        **overrides, database_url=database_url, redis_url=redis_url, alertmanager_token=token, ops_api_token=ops_token
    )
    port = port or free_port()
    print("• starting a local Ray (this takes a few seconds) ...", flush=True)
    dashboard = launcher.init_ray(num_cpus=2, dashboard=True)
    try:
        print("• deploying the alerts, chat and ops apps ...", flush=True)
        base = launcher.deploy(settings, port=port)
        print(f"\nray-aiops demo is running\n  health:        {base}/health\n  webhook:       {base}/api/alert/webhook")
        print(f"  Ray dashboard: {dashboard or 'off'}\n")
        storm = sample_storm(datetime.now(UTC))
        print(f"• posting an alert storm of {len(storm['alerts'])} alerts, twice (Alertmanager retries) ...")
        for _ in range(2):
            answer = httpx.post(
                base + "/api/alert/webhook", json=storm, headers={"Authorization": f"Bearer {token}"}, timeout=30.0
            )
            print(f"  -> HTTP {answer.status_code} {json.dumps(answer.json())}")
        listing = httpx.get(
            base + "/api/incidents?status=open", headers={"Authorization": f"Bearer {ops_token}"}, timeout=10.0
        ).json()
        print(f"\n{listing['count']} open incident(s):")
        for incident in listing["incidents"]:
            print(
                f"  [{incident['severity']:8}] {incident['id']}  {incident['title']}  "
                f"({incident['signal_count']} signal(s))"
            )
        health = httpx.get(base + "/health", timeout=10.0).json()
        parts = ", ".join(f"{name}={item['status']}" for name, item in health["subsystems"].items())
        print(f"\nhealth: {health['status']} {parts}")
        if keep:
            print("\nPress Ctrl-C to stop.")
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        print("\nstopping ...")
    finally:
        launcher.shutdown()
        if not (base_settings.database_url and base_settings.redis_url):
            from adapters.embedded import stop_embedded

            stopped = stop_embedded(base_settings.data_dir)
            if stopped:
                print(f"stopped embedded {', '.join(stopped)} (data kept in {base_settings.data_dir})")
    return 0
