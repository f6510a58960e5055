"""Finding identity (fingerprint, state key), its Signal and JSON forms, and owner chains."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from core.detectors import SUPPORTED_KINDS, Finding, detect, detect_all, owner_chain
from core.models import ObjectRef, Reason, Severity, SignalSource, SignalStatus, fingerprint_of

NOW = datetime(2026, 11, 5, 12, 0, 0, tzinfo=UTC)
OWNERS = (
    ObjectRef(kind="ReplicaSet", namespace="shop", name="web-5d8f7b9c4"),
    ObjectRef(kind="Deployment", namespace="shop", name="web"),
)


def crashloop(restarts: int = 3, exit_code: int = 1, message: str = "m") -> Finding:
    return Finding(
        kind="Pod",
        namespace="shop",
        name="web-5d8f7b9c4-x2x7q",
        reason=Reason.CRASH_LOOP_BACK_OFF,
        severity=Severity.WARNING,
        message=message,
        container="app",
        owners=OWNERS,
        node="node-1",
        details={"restart_count": restarts, "exit_code": exit_code, "last_reason": "Error"},
    )


def test_fingerprint_is_the_documented_hash_of_the_condition() -> None:
    expected = fingerprint_of("k8s", "Pod", "shop", "web-5d8f7b9c4-x2x7q", "CrashLoopBackOff", "app")
    assert crashloop().fingerprint() == expected


def test_fingerprint_is_independent_of_restart_count_and_message() -> None:
    assert crashloop(3, message="a").fingerprint() == crashloop(9, message="b").fingerprint()


def test_fingerprint_differs_per_container_and_reason() -> None:
    base = crashloop()
    assert base.fingerprint() != base.model_copy(update={"container": "sidecar"}).fingerprint()
    assert base.fingerprint() != base.model_copy(update={"reason": Reason.OOM_KILLED}).fingerprint()


@pytest.mark.parametrize(
    ("change", "changed"),
    [
        pytest.param(
            {"details": {"restart_count": 4, "exit_code": 1, "last_reason": "Error"}}, True, id="restart-count"
        ),
        pytest.param({"details": {"restart_count": 3, "exit_code": 2, "last_reason": "Error"}}, True, id="exit-code"),
        pytest.param({"severity": Severity.CRITICAL}, True, id="severity"),
        pytest.param({"message": "another wording"}, False, id="message-only"),
        pytest.param(
            {"details": {"restart_count": 3, "exit_code": 1, "last_reason": "Error", "event_count": 40}},
            False,
            id="volatile-event-count",
        ),
    ],
)
def test_state_key_changes_only_with_what_matters(change: dict[str, Any], changed: bool) -> None:
    base = crashloop()
    assert (base.state_key() != base.model_copy(update=change).state_key()) is changed


def test_to_signal_carries_object_owners_labels_and_fingerprint() -> None:
    finding = crashloop()
    signal = finding.to_signal(NOW)
    assert signal.source is SignalSource.K8S
    assert signal.status is SignalStatus.FIRING
    assert signal.reason == "CrashLoopBackOff"
    assert signal.object == ObjectRef(kind="Pod", namespace="shop", name="web-5d8f7b9c4-x2x7q")
    assert signal.owners == OWNERS
    assert signal.node == "node-1"
    assert signal.fingerprint == finding.fingerprint()
    assert signal.observed_at == NOW
    assert {k: signal.labels[k] for k in ("namespace", "pod", "reason", "container", "deployment", "node")} == {
        "namespace": "shop",
        "pod": "web-5d8f7b9c4-x2x7q",
        "reason": "CrashLoopBackOff",
        "container": "app",
        "deployment": "web",
        "node": "node-1",
    }
    assert signal.labels["exit_code"] == "1"
    assert signal.all_labels()["severity"] == "warning"


def test_to_json_is_the_scan_output_row() -> None:
    assert crashloop(message="boom").to_json() == {
        "kind": "Pod",
        "namespace": "shop",
        "name": "web-5d8f7b9c4-x2x7q",
        "reason": "CrashLoopBackOff",
        "severity": "warning",
        "message": "boom",
    }


def test_finding_is_frozen_and_strict() -> None:
    finding = crashloop()
    with pytest.raises(ValidationError):
        finding.name = "other"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        Finding.model_validate({**finding.model_dump(), "surprise": 1})


def test_huge_message_and_detail_are_truncated_on_construction() -> None:
    finding = crashloop(message="y" * 1_000_000)
    rebuilt = Finding.model_validate({**finding.model_dump(), "details": {"note": "z" * 10_000}})
    assert len(finding.message) == 500
    assert len(str(rebuilt.details["note"])) == 200


def test_finding_round_trips_through_json() -> None:
    finding = crashloop()
    assert Finding.model_validate_json(finding.model_dump_json()) == finding


def pod_with_owner(kind: str, name: str, template_hash: str | None) -> dict[str, Any]:
    labels = {"pod-template-hash": template_hash} if template_hash else {}
    return {
        "kind": "Pod",
        "metadata": {
            "name": f"{name}-x",
            "namespace": "shop",
            "labels": labels,
            "ownerReferences": [{"kind": kind, "name": name, "controller": True}],
        },
    }


RS_WITH_OWNER = {
    "kind": "ReplicaSet",
    "metadata": {
        "name": "api-77f9",
        "namespace": "shop",
        "ownerReferences": [{"kind": "Deployment", "name": "api-v2", "controller": True}],
    },
}
ORPHAN_RS = {"kind": "ReplicaSet", "metadata": {"name": "api-77f9", "namespace": "shop"}}
JOB = {
    "kind": "Job",
    "metadata": {
        "name": "nightly-29001",
        "namespace": "shop",
        "ownerReferences": [{"kind": "CronJob", "name": "nightly", "controller": True}],
    },
}


@pytest.mark.parametrize(
    ("obj", "index", "expected"),
    [
        pytest.param(
            pod_with_owner("ReplicaSet", "web-5d8f7b9c4", "5d8f7b9c4"),
            None,
            ["ReplicaSet/shop/web-5d8f7b9c4", "Deployment/shop/web"],
            id="deployment-inferred-from-hash",
        ),
        pytest.param(
            pod_with_owner("ReplicaSet", "web-frontend", None),
            None,
            ["ReplicaSet/shop/web-frontend"],
            id="no-hash-label-no-inference",
        ),
        pytest.param(
            pod_with_owner("ReplicaSet", "web-frontend", "5d8f7b9c4"),
            None,
            ["ReplicaSet/shop/web-frontend"],
            id="hash-mismatch-no-inference",
        ),
        pytest.param(
            pod_with_owner("ReplicaSet", "api-77f9", "77f9"),
            {"api-77f9": RS_WITH_OWNER},
            ["ReplicaSet/shop/api-77f9", "Deployment/shop/api-v2"],
            id="known-rs-by-name",
        ),
        pytest.param(
            pod_with_owner("ReplicaSet", "api-77f9", "77f9"),
            {"shop/api-77f9": RS_WITH_OWNER},
            ["ReplicaSet/shop/api-77f9", "Deployment/shop/api-v2"],
            id="known-rs-by-namespace-name",
        ),
        pytest.param(
            pod_with_owner("ReplicaSet", "api-77f9", "77f9"),
            {"ReplicaSet/shop/api-77f9": ORPHAN_RS},
            ["ReplicaSet/shop/api-77f9"],
            id="known-orphan-rs-is-not-second-guessed",
        ),
        pytest.param(
            pod_with_owner("Job", "nightly-29001", None),
            {"Job/shop/nightly-29001": JOB},
            ["Job/shop/nightly-29001", "CronJob/shop/nightly"],
            id="job-then-cronjob",
        ),
        pytest.param(pod_with_owner("StatefulSet", "db", None), None, ["StatefulSet/shop/db"], id="statefulset"),
        pytest.param({"kind": "Pod", "metadata": {"name": "bare", "namespace": "shop"}}, None, [], id="bare-pod"),
        pytest.param(
            {
                "kind": "Pod",
                "metadata": {
                    "name": "p",
                    "ownerReferences": [
                        {"kind": "ReplicaSet", "name": "a"},
                        {"kind": "Node", "name": "n1", "controller": True},
                    ],
                },
            },
            None,
            ["Node//n1"],
            id="controller-reference-preferred",
        ),
        pytest.param(
            pod_with_owner("ReplicaSet", "loop", None),
            {"loop": {"kind": "ReplicaSet", "metadata": {"ownerReferences": [{"kind": "ReplicaSet", "name": "loop"}]}}},
            ["ReplicaSet/shop/loop"],
            id="owner-cycle-stops",
        ),
    ],
)
def test_owner_chain(obj: dict[str, Any], index: dict[str, Any] | None, expected: list[str]) -> None:
    assert [ref.key() for ref in owner_chain(obj, index)] == expected


def test_unknown_kinds_yield_nothing() -> None:
    assert "Pod" in SUPPORTED_KINDS
    assert detect({"kind": "ConfigMap", "metadata": {"name": "x"}, "data": {}}) == []


def test_detect_all_wires_owners_endpoints_jobs_and_events() -> None:
    pod: dict[str, Any] = {
        "kind": "Pod",
        "metadata": {
            "name": "api-77f9-a",
            "namespace": "shop",
            "uid": "u1",
            "ownerReferences": [{"kind": "ReplicaSet", "name": "api-77f9", "controller": True}],
        },
        "spec": {"nodeName": "node-1"},
        "status": {"phase": "Running"},
    }
    other = {**pod, "metadata": {**pod["metadata"], "name": "api-77f9-b", "uid": "u2"}}
    service = {
        "kind": "Service",
        "metadata": {"name": "api", "namespace": "shop"},
        "spec": {"selector": {"app": "api"}},
    }
    endpoints = {"kind": "Endpoints", "metadata": {"name": "api", "namespace": "shop"}, "subsets": []}
    cronjob = {"kind": "CronJob", "metadata": {"name": "nightly", "namespace": "shop"}}
    failed_job = {
        **JOB,
        "status": {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]},
    }
    unhealthy = {
        "kind": "Event",
        "involvedObject": {
            "kind": "Pod",
            "namespace": "shop",
            "name": "api-77f9-a",
            "fieldPath": "spec.containers{api}",
        },
        "reason": "Unhealthy",
        "message": "Readiness probe failed: 503",
        "type": "Warning",
        "lastTimestamp": "2026-11-05T11:59:00Z",
    }
    listing: list[Any] = [pod, other, RS_WITH_OWNER, service, endpoints, cronjob, failed_job, "junk"]
    seen: list[Any] = [unhealthy, None]
    findings = detect_all(listing, seen, now=NOW)
    got = sorted((f.kind, f.name, f.reason.value) for f in findings)
    assert got == [
        ("CronJob", "nightly", "JobFailed"),
        ("Job", "nightly-29001", "JobFailed"),
        ("Pod", "api-77f9-a", "ProbeFailure"),
        ("Service", "api", "ServiceNoEndpoints"),
    ]
    [probe] = [f for f in findings if f.kind == "Pod"]
    assert [o.key() for o in probe.owners] == ["ReplicaSet/shop/api-77f9", "Deployment/shop/api-v2"]
    assert probe.container == "api"
