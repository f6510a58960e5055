"""Alertmanager webhook bodies: any bytes are either signals or one clear InputError.

Three generators: arbitrary JSON values, arbitrary bytes, and valid v4 payloads with one
mutation (a key dropped, a value swapped for random JSON, a wrong type). The properties:
``parse_webhook`` + ``to_signals`` never raise anything but ``InputError``; a valid payload
gives one signal per alert; fingerprints do not depend on the delivery (time received,
label order, a redelivery), which is what makes ingest idempotent.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.alertmanager import parse_webhook, to_signals
from core.errors import InputError
from core.models import SignalSource, SignalStatus
from tests.abuse.tally import count
from tests.payloads import am_alert, am_payload

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=25,
)
label_names = st.sampled_from(["namespace", "pod", "deployment", "node", "severity", "job_name", "team", "x"])
label_values = st.text(max_size=30)
timestamps = st.sampled_from(
    ["2026-12-01T10:00:00Z", "2026-12-01T10:00:00.123456789Z", "2026-12-01T10:00:00+05:30", "0001-01-01T00:00:00Z"]
)


@st.composite
def valid_alerts(draw: st.DrawFn) -> dict[str, Any]:
    labels = draw(st.dictionaries(label_names, label_values, max_size=5))
    labels.pop("severity", None)
    return am_alert(
        draw(st.text(min_size=1, max_size=20)),
        draw(st.text(alphabet="0123456789abcdef", max_size=16)),
        status=draw(st.sampled_from(["firing", "resolved"])),
        starts_at=draw(timestamps),
        ends_at=draw(timestamps),
        severity=draw(st.sampled_from(["critical", "warning", "info", "page", "", "weird"])),
        **labels,
    )


valid_payloads = st.lists(valid_alerts(), min_size=0, max_size=5).map(lambda alerts: am_payload(*alerts))


def _decode(raw: bytes | str) -> list[Any] | None:
    """The property itself: signals, or InputError; anything else propagates and fails the test."""
    try:
        payload = parse_webhook(raw)
    except InputError as e:
        message = str(e)
    else:
        return list(to_signals(payload, NOW))
    assert message.startswith("invalid Alertmanager payload: ")
    return None


@SETTINGS
@given(json_values)
def test_arbitrary_json_is_either_a_payload_or_an_input_error(value: Any) -> None:
    count("alertmanager: arbitrary JSON")
    _decode(json.dumps(value))


@SETTINGS
@given(st.binary(max_size=300))
def test_arbitrary_bytes_are_either_a_payload_or_an_input_error(raw: bytes) -> None:
    count("alertmanager: arbitrary bytes")
    _decode(raw)


@st.composite
def mutated_payloads(draw: st.DrawFn) -> dict[str, Any]:
    body = draw(valid_payloads)
    target: dict[str, Any] = body
    if body["alerts"] and draw(st.booleans()):
        target = body["alerts"][draw(st.integers(0, len(body["alerts"]) - 1))]
    key = draw(st.sampled_from(sorted(target)))
    how = draw(st.sampled_from(["drop", "replace", "null", "stringify"]))
    if how == "drop":
        del target[key]
    elif how == "replace":
        target[key] = draw(json_values)
    elif how == "null":
        target[key] = None
    else:
        target[key] = json.dumps(target[key])
    return body


@SETTINGS
@given(mutated_payloads())
def test_a_mutated_valid_payload_is_either_signals_or_an_input_error(body: dict[str, Any]) -> None:
    count("alertmanager: mutated valid payload")
    signals = _decode(json.dumps(body))
    if signals is not None:
        assert all(s.source is SignalSource.ALERTMANAGER for s in signals)


@SETTINGS
@given(valid_payloads)
def test_valid_payloads_give_one_signal_per_alert_with_the_alert_status(body: dict[str, Any]) -> None:
    count("alertmanager: valid payload")
    signals = _decode(json.dumps(body))
    assert signals is not None
    assert len(signals) == len(body["alerts"])
    for alert, signal in zip(body["alerts"], signals, strict=True):
        assert signal.status is SignalStatus(alert["status"])
        assert signal.fingerprint.startswith("am-")
        assert signal.observed_at.tzinfo is not None


@SETTINGS
@given(valid_payloads, st.integers(min_value=0, max_value=10**6), st.randoms(use_true_random=False))
def test_fingerprints_survive_redelivery_label_order_and_receive_time(
    body: dict[str, Any], later: int, rnd: Any
) -> None:
    count("alertmanager: fingerprint stability")
    for alert in body["alerts"]:
        if rnd.random() < 0.5:
            alert["fingerprint"] = ""  # derived from the labels instead
    first = to_signals(parse_webhook(json.dumps(body)), NOW)
    for alert in body["alerts"]:
        items = list(alert["labels"].items())
        rnd.shuffle(items)
        alert["labels"] = dict(items)
    again = to_signals(parse_webhook(json.dumps(body).encode()), NOW + timedelta(seconds=later))
    assert [s.fingerprint for s in first] == [s.fingerprint for s in again]
    assert [s.reason for s in first] == [s.reason for s in again]


@SETTINGS
@given(valid_alerts(), st.text(min_size=1, max_size=10))
def test_alerts_with_different_labels_and_no_fingerprint_never_collide(alert: dict[str, Any], extra: str) -> None:
    count("alertmanager: fingerprint distinctness")
    alert["fingerprint"] = ""
    other = json.loads(json.dumps(alert))
    other["labels"]["zz_extra"] = extra
    one, two = to_signals(parse_webhook(json.dumps(am_payload(alert, other))), NOW)
    assert one.fingerprint != two.fingerprint
