"""Real-shaped Alertmanager webhook bodies (version 4), as Alertmanager 0.25 sends them."""

from __future__ import annotations

from typing import Any


def am_alert(
    alertname: str,
    fingerprint: str,
    *,
    status: str = "firing",
    starts_at: str = "2026-12-01T10:00:00Z",
    ends_at: str = "0001-01-01T00:00:00Z",
    **labels: str,
) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": alertname, "severity": labels.pop("severity", "warning"), **labels},
        "annotations": {"summary": f"{alertname} is firing", "runbook_url": "https://runbooks.example/x"},
        "startsAt": starts_at,
        "endsAt": ends_at,
        "generatorURL": "http://prometheus:9090/graph?g0.expr=up",
        "fingerprint": fingerprint,
    }


def am_payload(*alerts: dict[str, Any], status: str = "firing", truncated: int = 0) -> dict[str, Any]:
    return {
        "version": "4",
        "groupKey": '{}:{alertname="KubePodCrashLooping"}',
        "truncatedAlerts": truncated,
        "status": status,
        "receiver": "aiops",
        "groupLabels": {"alertname": "KubePodCrashLooping"},
        "commonLabels": {"severity": "warning"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts),
    }
