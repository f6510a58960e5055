"""Node, PersistentVolumeClaim and Service detectors."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from core.detectors import detect
from core.detectors.services import count_addresses
from core.models import Reason, Severity

NOW = datetime(2026, 11, 5, 12, 0, 0, tzinfo=UTC)
W, C = Severity.WARNING, Severity.CRITICAL


def node(
    ready: str = "True",
    *,
    pressure: Sequence[str] = (),
    ready_reason: str = "KubeletReady",
    message: str = "kubelet is posting ready status",
    cordoned: bool = False,
) -> dict[str, Any]:
    conditions = [
        {
            "type": kind,
            "status": "True" if kind in pressure else "False",
            "reason": f"Kubelet{kind}",
            "message": f"kubelet has {kind}",
        }
        for kind in ("MemoryPressure", "DiskPressure", "PIDPressure")
    ]
    conditions.append(
        {
            "type": "Ready",
            "status": ready,
            "reason": ready_reason,
            "message": message,
            "lastHeartbeatTime": "2026-11-05T11:59:00Z",
        }
    )
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "node-1", "labels": {}},
        "spec": {"unschedulable": cordoned},
        "status": {"conditions": conditions},
    }


def pvc(phase: str | None = "Bound", name: str = "data-db-0") -> dict[str, Any]:
    status = {"phase": phase} if phase else {}
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": "shop", "uid": f"uid-{name}"},
        "spec": {
            "storageClassName": "fast",
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "10Gi"}},
        },
        "status": status,
    }


def pvc_event(reason: str, message: str, *, type_: str = "Warning", at: str = "2026-11-05T11:58:00Z") -> dict[str, Any]:
    return {
        "kind": "Event",
        "involvedObject": {"kind": "PersistentVolumeClaim", "namespace": "shop", "name": "data-db-0"},
        "reason": reason,
        "message": message,
        "type": type_,
        "count": 3,
        "lastTimestamp": at,
    }


def service(selector: dict[str, str] | None = None, type_: str = "ClusterIP") -> dict[str, Any]:
    spec: dict[str, Any] = {"type": type_, "ports": [{"port": 80, "targetPort": 8080}]}
    if selector is not None:
        spec["selector"] = selector
    if type_ == "ExternalName":
        spec["externalName"] = "db.example.com"
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "shop"}, "spec": spec}


def endpoints(ready: int = 0, not_ready: int = 0) -> dict[str, Any]:
    subset: dict[str, Any] = {"ports": [{"port": 8080}]}
    if ready:
        subset["addresses"] = [{"ip": f"10.0.0.{i}"} for i in range(ready)]
    if not_ready:
        subset["notReadyAddresses"] = [{"ip": f"10.0.1.{i}"} for i in range(not_ready)]
    return {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": "web", "namespace": "shop"},
        "subsets": [subset] if ready or not_ready else [],
    }


def endpoint_slice(*readiness: bool | None) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": "web-abcde", "namespace": "shop", "labels": {"kubernetes.io/service-name": "web"}},
        "endpoints": [
            {"addresses": [f"10.0.0.{i}"], **({} if ready is None else {"conditions": {"ready": ready}})}
            for i, ready in enumerate(readiness)
        ],
    }


SELECTOR = {"app": "web"}

CASES = [
    pytest.param(node(), {}, [], id="node-ready"),
    pytest.param(
        node("False", ready_reason="KubeletNotReady", message="container runtime is down"),
        {},
        [(Reason.NODE_NOT_READY, C)],
        id="node-not-ready",
    ),
    pytest.param(
        node("Unknown", ready_reason="NodeStatusUnknown", message="Kubelet stopped posting node status."),
        {},
        [(Reason.NODE_NOT_READY, C)],
        id="node-status-unknown",
    ),
    pytest.param(node(pressure=["MemoryPressure"]), {}, [(Reason.NODE_PRESSURE, W)], id="node-memory-pressure"),
    pytest.param(
        node(pressure=["DiskPressure", "PIDPressure"]),
        {},
        [(Reason.NODE_PRESSURE, W)],
        id="node-two-pressures-one-finding",
    ),
    pytest.param(
        node("False", pressure=["DiskPressure"]),
        {},
        [(Reason.NODE_NOT_READY, C), (Reason.NODE_PRESSURE, W)],
        id="node-not-ready-and-pressure",
    ),
    pytest.param(node(cordoned=True), {}, [], id="node-cordoned"),
    pytest.param({"kind": "Node", "metadata": {"name": "n"}, "status": {}}, {}, [], id="node-without-conditions"),
    pytest.param(pvc("Bound"), {}, [], id="pvc-bound"),
    pytest.param(pvc("Pending"), {}, [(Reason.PVC_PENDING, W)], id="pvc-pending"),
    pytest.param(
        pvc("Pending"),
        {"events": [pvc_event("ProvisioningFailed", 'storageclass "fast" not found')]},
        [(Reason.PVC_PENDING, W)],
        id="pvc-pending-provisioning-failed",
    ),
    pytest.param(
        pvc("Pending"),
        {"events": [pvc_event("WaitForFirstConsumer", "waiting for first consumer", type_="Normal")]},
        [],
        id="pvc-waiting-for-first-consumer",
    ),
    pytest.param(
        pvc("Pending"),
        {
            "events": [
                pvc_event("WaitForFirstConsumer", "waiting", type_="Normal", at="2026-11-05T11:50:00Z"),
                pvc_event("ProvisioningFailed", "quota exceeded", at="2026-11-05T11:55:00Z"),
            ]
        },
        [(Reason.PVC_PENDING, W)],
        id="pvc-consumer-arrived-then-provisioning-failed",
    ),
    pytest.param(pvc("Lost"), {}, [], id="pvc-lost-is-not-pending"),
    pytest.param(pvc(None), {}, [], id="pvc-without-phase"),
    pytest.param(service(SELECTOR), {"endpoints": endpoints(2)}, [], id="service-with-endpoints"),
    pytest.param(
        service(SELECTOR), {"endpoints": endpoints()}, [(Reason.SERVICE_NO_ENDPOINTS, W)], id="service-empty-endpoints"
    ),
    pytest.param(
        service(SELECTOR),
        {"endpoints": endpoints(0, 3)},
        [(Reason.SERVICE_NO_ENDPOINTS, W)],
        id="service-only-not-ready-endpoints",
    ),
    pytest.param(
        service(SELECTOR),
        {"endpoints": {"kind": "Endpoints", "subsets": None}},
        [(Reason.SERVICE_NO_ENDPOINTS, W)],
        id="service-null-subsets",
    ),
    pytest.param(service(SELECTOR), {}, [], id="service-endpoints-unknown"),
    pytest.param(service(None), {"endpoints": endpoints()}, [], id="service-without-selector"),
    pytest.param(service({}), {"endpoints": endpoints()}, [], id="service-empty-selector"),
    pytest.param(service(SELECTOR, "ExternalName"), {"endpoints": endpoints()}, [], id="service-external-name"),
    pytest.param(service(SELECTOR), {"endpoints": endpoint_slice(True, False)}, [], id="endpoint-slice-ready"),
    pytest.param(service(SELECTOR), {"endpoints": endpoint_slice(None)}, [], id="endpoint-slice-ready-unset"),
    pytest.param(
        service(SELECTOR),
        {"endpoints": endpoint_slice(False, False)},
        [(Reason.SERVICE_NO_ENDPOINTS, W)],
        id="endpoint-slice-none-ready",
    ),
    pytest.param(
        service(SELECTOR), {"endpoints": [endpoint_slice(False), endpoint_slice(True)]}, [], id="endpoint-slices-list"
    ),
    pytest.param(
        service(SELECTOR),
        {"endpoints": {"items": [endpoint_slice(False)]}},
        [(Reason.SERVICE_NO_ENDPOINTS, W)],
        id="endpoint-slice-list-object",
    ),
]


@pytest.mark.parametrize(("obj", "kwargs", "expected"), CASES)
def test_cluster_object_yields_expected_findings(
    obj: dict[str, Any], kwargs: dict[str, Any], expected: list[tuple[Reason, Severity]]
) -> None:
    findings = detect(obj, now=NOW, **kwargs)
    assert sorted((f.reason, f.severity) for f in findings) == sorted(expected)


def test_node_not_ready_is_cluster_scoped_and_names_itself_as_node() -> None:
    lost = node("Unknown", ready_reason="NodeStatusUnknown", message="Kubelet stopped posting node status.")
    [finding] = detect(lost)
    assert finding.namespace is None
    assert finding.node == "node-1"
    assert "Kubelet stopped posting" in finding.message
    assert finding.to_signal(NOW).labels["node"] == "node-1"


def test_node_pressure_lists_every_pressure_type() -> None:
    [finding] = detect(node(pressure=["DiskPressure", "PIDPressure"]))
    assert finding.details["pressure"] == "DiskPressure,PIDPressure"


def test_pvc_pending_quotes_latest_warning_event() -> None:
    [finding] = detect(pvc("Pending"), [pvc_event("ProvisioningFailed", 'storageclass "fast" not found')])
    assert 'storageclass "fast" not found' in finding.message
    assert finding.details["storage_class"] == "fast"
    assert finding.details["requested"] == "10Gi"


def test_service_without_endpoints_names_its_selector() -> None:
    [finding] = detect(service({"tier": "front", "app": "web"}), endpoints=endpoints(0, 2))
    assert "app=web,tier=front" in finding.message
    assert finding.details["not_ready_addresses"] == 2


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(None, (0, 0), id="none"),
        pytest.param("garbage", (0, 0), id="string"),
        pytest.param(
            {"subsets": [None, {"addresses": "x"}, {"addresses": [None, {"ip": "1"}]}]}, (1, 0), id="garbage-subsets"
        ),
        pytest.param([None, 7, endpoint_slice(True)], (1, 0), id="garbage-slices"),
    ],
)
def test_address_counting_tolerates_garbage(value: Any, expected: tuple[int, int]) -> None:
    assert count_addresses(value) == expected


GARBAGE = [
    pytest.param({"kind": kind, **extra}, id=f"{kind}-{label}")
    for kind in ("Node", "PersistentVolumeClaim", "Service")
    for label, extra in (
        ("bare", {}),
        ("nulls", {"metadata": {"name": "x"}, "spec": None, "status": None}),
        (
            "mistyped",
            {
                "metadata": {"name": "x"},
                "spec": {"selector": "app=web", "type": 3},
                "status": {"phase": ["Pending"], "conditions": {"type": "Ready"}},
            },
        ),
        (
            "garbage-lists",
            {
                "metadata": {"name": "x"},
                "spec": {"selector": {1: 2, "a": None}},
                "status": {
                    "phase": "Pending",
                    "conditions": [None, "Ready", {"type": "Ready", "status": "False", "message": "m" * 10**6}],
                },
            },
        ),
    )
]


@pytest.mark.parametrize("obj", GARBAGE)
def test_malformed_cluster_object_never_raises(obj: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    events: list[Any] = [None, {"involvedObject": {"name": "x"}, "message": "m" * 10**6, "type": "Warning"}]
    findings = detect(obj, events, now=NOW, endpoints={"subsets": "none"})
    assert all(len(f.message) <= 500 for f in findings)
    assert not caplog.records
