from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from adapters.alertmanager import parse_webhook, to_signals
from core.errors import InputError
from core.models import SignalStatus
from tests.payloads import am_alert, am_payload

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def test_full_v4_payload_becomes_one_signal_per_alert_with_its_object() -> None:
    body = am_payload(
        am_alert("KubePodCrashLooping", "aaa", namespace="prod", pod="api-1", severity="critical"),
        am_alert("KubeNodeNotReady", "bbb", node="worker-2"),
    )
    payload = parse_webhook(json.dumps(body))
    first, second = to_signals(payload, NOW)
    assert first.object is not None and first.object.key() == "Pod/prod/api-1"
    assert first.severity.value == "critical" and first.fingerprint == "am-aaa"
    assert second.object is not None and second.object.key() == "Node//worker-2" and second.node == "worker-2"


def test_resolved_alert_is_observed_at_its_end_time() -> None:
    body = am_payload(am_alert("X", "f", status="resolved", ends_at="2026-12-01T11:00:00Z"), status="resolved")
    (sig,) = to_signals(parse_webhook(json.dumps(body)), NOW)
    assert sig.status is SignalStatus.RESOLVED and sig.observed_at == datetime(2026, 12, 1, 11, tzinfo=UTC)


def test_alert_without_fingerprint_gets_a_stable_one_from_its_labels() -> None:
    alert = am_alert("X", "", pod="p")
    one = to_signals(parse_webhook(json.dumps(am_payload(alert))), NOW)[0].fingerprint
    two = to_signals(parse_webhook(json.dumps(am_payload(alert))), NOW)[0].fingerprint
    assert one == two and one.startswith("am-")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(b"{not json", "malformed JSON", id="malformed-json"),
        pytest.param(json.dumps({**am_payload(), "version": "3"}).encode(), 'only version "4"', id="old-version"),
        pytest.param(json.dumps({"version": "4"}).encode(), "groupKey: Field required", id="missing-fields"),
        pytest.param(
            json.dumps(am_payload({"status": "firing", "labels": {"a": "b"}})).encode(),
            "alerts.0.startsAt",
            id="alert-missing-startsAt",
        ),
        pytest.param(
            json.dumps(am_payload(am_alert("X", "f", status="weird"))).encode(),
            "alerts.0.status",
            id="bad-alert-status",
        ),
        pytest.param(b"[]", "body", id="not-an-object"),
    ],
)
def test_bad_payloads_are_refused_with_a_clear_message(body: bytes, message: str) -> None:
    with pytest.raises(InputError, match="invalid Alertmanager payload") as caught:
        parse_webhook(body)
    assert message in str(caught.value)


def test_odd_label_values_and_no_namespace_are_accepted() -> None:
    alert = am_alert("TargetDown", "z", job='we"ird\n\u2603 job', instance="10.0.0.1:9100")
    (sig,) = to_signals(parse_webhook(json.dumps(am_payload(alert))), NOW)
    assert sig.namespace is None and sig.object is None and sig.labels["job"] == 'we"ird\n\u2603 job'
