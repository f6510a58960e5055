"""Debian's Alertmanager delivers a firing group and its resolution to the running platform."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import AM_TOKEN, Platform
from tests.helpers import wait_until
from tests.servers.alertmanager import AlertmanagerProcess

pytestmark = pytest.mark.e2e


@pytest.fixture
def alertmanager(platform: Platform, tmp_path: Path) -> Iterator[AlertmanagerProcess]:
    am = AlertmanagerProcess(tmp_path / "am", platform.base_url + "/api/alert/webhook", AM_TOKEN).start()
    yield am
    am.stop()


def incidents(platform: Platform, tag: str) -> list[dict[str, Any]]:
    answer = httpx.get(platform.base_url + "/api/incidents?limit=1000", headers=platform.ops_headers(), timeout=10)
    return [i for i in answer.json()["incidents"] if i["labels"].get("test") == tag]


def test_alertmanager_firing_group_and_its_resolution_end_as_one_resolved_incident(
    platform: Platform, alertmanager: AlertmanagerProcess
) -> None:
    tag = "real-am"
    now = datetime.now(UTC)
    labels = {"namespace": "shop", "pod": "cart-7d9f-x1", "severity": "warning", "test": tag}
    alerts = [
        {
            "labels": {"alertname": "KubePodCrashLooping", **labels},
            "annotations": {"summary": "crash looping"},
            "startsAt": (now - timedelta(minutes=1)).isoformat(),
        },
        {
            "labels": {"alertname": "KubePodNotReady", **labels},
            "annotations": {"summary": "not ready"},
            "startsAt": (now - timedelta(minutes=1)).isoformat(),
        },
    ]
    alertmanager.post_alerts(alerts)
    wait_until(
        lambda: len(incidents(platform, tag)) == 1 and incidents(platform, tag)[0]["signal_count"] == 2,
        timeout=60,
        message="one incident with both alerts about the pod",
    )
    ended = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    alertmanager.post_alerts([{**a, "endsAt": ended} for a in alerts])
    wait_until(
        lambda: [i["status"] for i in incidents(platform, tag)] == ["resolved"],
        timeout=60,
        message="the incident resolved by Alertmanager's send_resolved",
    )
    assert len(incidents(platform, tag)) == 1
