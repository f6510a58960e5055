"""Pod detectors: table of API-shaped pods (and Events) -> expected findings."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.detectors import Finding, detect
from core.detectors.pods import detect_pod
from core.models import Reason, Severity

NOW = datetime(2026, 11, 5, 12, 0, 0, tzinfo=UTC)


def ts(seconds_ago: float) -> str:
    return (NOW - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def container(
    name: str = "app",
    *,
    waiting: str | None = None,
    waiting_message: str | None = None,
    terminated: dict[str, Any] | None = None,
    last: dict[str, Any] | None = None,
    restarts: int = 0,
    ready: bool | None = None,
    image: str = "registry.local/shop/web:1.4.2",
) -> dict[str, Any]:
    state: dict[str, Any]
    if waiting is not None:
        state = {"waiting": {"reason": waiting, **({"message": waiting_message} if waiting_message else {})}}
    elif terminated is not None:
        state = {"terminated": {"finishedAt": ts(5), **terminated}}
    else:
        state = {"running": {"startedAt": ts(600)}}
    is_ready = ready if ready is not None else (waiting is None and terminated is None)
    return {
        "name": name,
        "image": image,
        "imageID": "",
        "ready": is_ready,
        "started": is_ready,
        "restartCount": restarts,
        "state": state,
        "lastState": {"terminated": {"finishedAt": ts(30), **last}} if last else {},
    }


def terminated(reason: str, code: int, *, message: str | None = None, finished: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"reason": reason, "exitCode": code, "startedAt": ts(90)}
    if message:
        out["message"] = message
    if finished:
        out["finishedAt"] = finished
    return out


def pod(
    name: str = "web-5d8f7b9c4-x2x7q",
    *,
    namespace: str = "shop",
    phase: str = "Running",
    containers: Sequence[dict[str, Any]] | None = None,
    init: Sequence[dict[str, Any]] = (),
    ready: bool | None = None,
    ready_since: str | None = None,
    scheduled: dict[str, Any] | None = None,
    reason: str | None = None,
    message: str | None = None,
    deleting: bool = False,
    memory_limit: str | None = "256Mi",
) -> dict[str, Any]:
    statuses = list(containers) if containers is not None else [container()]
    all_ready = all(status.get("ready") for status in statuses)
    conditions: list[dict[str, Any]] = [
        scheduled or {"type": "PodScheduled", "status": "True", "lastTransitionTime": ts(700)},
    ]
    if phase in ("Running", "Failed") or ready is not None:
        is_ready = all_ready if ready is None else ready
        conditions.append({"type": "Initialized", "status": "True", "lastTransitionTime": ts(650)})
        conditions.append(
            {
                "type": "Ready",
                "status": "True" if is_ready else "False",
                "lastTransitionTime": ready_since or ts(600),
                **({} if is_ready else {"reason": "ContainersNotReady"}),
            }
        )
    limits = {"resources": {"limits": {"memory": memory_limit}}} if memory_limit else {}
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "uid": f"uid-{name}",
        "labels": {"app": "web", "pod-template-hash": "5d8f7b9c4"},
        "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d8f7b9c4", "uid": "rs", "controller": True}
        ],
    }
    if deleting:
        metadata["deletionTimestamp"] = ts(3)
    status: dict[str, Any] = {"phase": phase, "conditions": conditions, "containerStatuses": statuses}
    if init:
        status["initContainerStatuses"] = list(init)
    if reason:
        status["reason"] = reason
    if message:
        status["message"] = message
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {
            "nodeName": "node-1",
            "containers": [{"name": s["name"], "image": s["image"], **limits} for s in statuses],
            "initContainers": [{"name": s["name"], "image": s["image"], **limits} for s in init],
        },
        "status": status,
    }


def event(
    reason: str,
    message: str,
    *,
    pod_name: str = "web-5d8f7b9c4-x2x7q",
    field_path: str | None = "spec.containers{app}",
    seconds_ago: float = 20,
    count: int = 1,
    type_: str = "Warning",
) -> dict[str, Any]:
    involved: dict[str, Any] = {"kind": "Pod", "namespace": "shop", "name": pod_name, "uid": f"uid-{pod_name}"}
    if field_path:
        involved["fieldPath"] = field_path
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{pod_name}.17a", "namespace": "shop"},
        "involvedObject": involved,
        "reason": reason,
        "message": message,
        "type": type_,
        "count": count,
        "firstTimestamp": ts(seconds_ago + 60),
        "lastTimestamp": ts(seconds_ago),
    }


def summary(findings: Sequence[Finding]) -> list[tuple[Reason, Severity, str | None]]:
    return sorted(((f.reason, f.severity, f.container) for f in findings), key=str)


W, C = Severity.WARNING, Severity.CRITICAL
OOM_LAST = terminated("OOMKilled", 137)

FAILING = [
    pytest.param(
        pod(containers=[container(waiting="CrashLoopBackOff", restarts=3, last=terminated("Error", 1))]),
        [],
        [(Reason.CRASH_LOOP_BACK_OFF, W, "app")],
        id="crashloop-after-error",
    ),
    pytest.param(
        pod(containers=[container(waiting="CrashLoopBackOff", restarts=2, last=OOM_LAST)]),
        [],
        [(Reason.CRASH_LOOP_BACK_OFF, C, "app")],
        id="crashloop-after-oom-is-critical",
    ),
    pytest.param(
        pod(containers=[container(waiting="CrashLoopBackOff", restarts=6, last=terminated("Error", 2))]),
        [],
        [(Reason.CRASH_LOOP_BACK_OFF, C, "app")],
        id="crashloop-many-restarts-is-critical",
    ),
    pytest.param(
        pod(containers=[container(waiting="CrashLoopBackOff", restarts=5, last=terminated("Error", 2))]),
        [],
        [(Reason.CRASH_LOOP_BACK_OFF, W, "app")],
        id="crashloop-five-restarts-is-warning",
    ),
    pytest.param(
        pod(phase="Pending", containers=[container(waiting="ImagePullBackOff")]),
        [],
        [(Reason.IMAGE_PULL_BACK_OFF, W, "app")],
        id="image-pull-backoff",
    ),
    pytest.param(
        pod(phase="Pending", containers=[container(waiting="ErrImagePull")]),
        [],
        [(Reason.ERR_IMAGE_PULL, W, "app")],
        id="err-image-pull",
    ),
    pytest.param(
        pod(phase="Pending", containers=[container(waiting="ErrImageNeverPull")]),
        [],
        [(Reason.ERR_IMAGE_PULL, W, "app")],
        id="err-image-never-pull-maps-to-err-image-pull",
    ),
    pytest.param(
        pod(phase="Pending", containers=[container(waiting="InvalidImageName")]),
        [],
        [(Reason.INVALID_IMAGE_NAME, W, "app")],
        id="invalid-image-name",
    ),
    pytest.param(
        pod(phase="Pending", containers=[container(waiting="CreateContainerConfigError")]),
        [],
        [(Reason.CREATE_CONTAINER_CONFIG_ERROR, W, "app")],
        id="create-container-config-error",
    ),
    pytest.param(
        pod(phase="Pending", containers=[container(waiting="CreateContainerError")]),
        [],
        [(Reason.CREATE_CONTAINER_ERROR, W, "app")],
        id="create-container-error",
    ),
    pytest.param(
        pod(containers=[container(waiting="RunContainerError", restarts=1)]),
        [],
        [(Reason.RUN_CONTAINER_ERROR, W, "app")],
        id="run-container-error",
    ),
    pytest.param(
        pod(containers=[container(terminated=terminated("OOMKilled", 137), restarts=1)]),
        [],
        [(Reason.OOM_KILLED, C, "app")],
        id="oom-killed-current-state",
    ),
    pytest.param(
        pod(containers=[container(last=OOM_LAST, restarts=1)]),
        [],
        [(Reason.OOM_KILLED, C, "app")],
        id="oom-killed-last-state-running-again",
    ),
    pytest.param(
        pod(phase="Failed", containers=[container(terminated=terminated("Error", 1))]),
        [],
        [(Reason.NON_ZERO_EXIT, W, "app")],
        id="non-zero-exit-failed-pod",
    ),
    pytest.param(
        pod(containers=[container(terminated=terminated("Error", 137))]),
        [],
        [(Reason.NON_ZERO_EXIT, W, "app")],
        id="sigkill-without-oom-is-non-zero-exit",
    ),
    pytest.param(
        pod(
            phase="Pending",
            containers=[],
            scheduled={
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": "0/3 nodes are available: 3 Insufficient cpu.",
            },
        ),
        [],
        [(Reason.UNSCHEDULABLE, W, None)],
        id="unschedulable",
    ),
    pytest.param(
        pod(
            phase="Failed",
            reason="Evicted",
            message="The node was low on resource: memory.",
            containers=[container(terminated=terminated("Error", 137))],
        ),
        [],
        [(Reason.EVICTED, W, None)],
        id="evicted-hides-container-exit",
    ),
    pytest.param(
        pod(),
        [event("Unhealthy", "Liveness probe failed: HTTP probe failed with statuscode: 500")],
        [(Reason.PROBE_FAILURE, W, "app")],
        id="liveness-probe-event",
    ),
    pytest.param(
        pod(),
        [event("Unhealthy", "Readiness probe failed: connection refused")],
        [(Reason.PROBE_FAILURE, W, "app")],
        id="readiness-probe-event",
    ),
    pytest.param(
        pod(),
        [event("Unhealthy", "Liveness probe failed: x"), event("Unhealthy", "Readiness probe failed")],
        [(Reason.PROBE_FAILURE, W, "app")],
        id="two-probe-kinds-one-finding",
    ),
    pytest.param(
        pod(phase="Pending", containers=[container(waiting="ContainerCreating")]),
        [
            event(
                "FailedMount", 'MountVolume.SetUp failed for volume "cfg" : configmap "cfg" not found', field_path=None
            )
        ],
        [(Reason.FAILED_MOUNT, W, None)],
        id="failed-mount-event",
    ),
    pytest.param(
        pod(phase="Pending", containers=[container(waiting="ContainerCreating")]),
        [event("FailedAttachVolume", "Multi-Attach error for volume pvc-1", field_path=None)],
        [(Reason.FAILED_MOUNT, W, None)],
        id="failed-attach-volume-event",
    ),
    pytest.param(
        pod(containers=[container(ready=False)], ready_since=ts(300)),
        [],
        [(Reason.NOT_READY, W, None)],
        id="running-not-ready-beyond-grace",
    ),
    pytest.param(
        pod(containers=[container(waiting="SomethingNew")], ready_since=ts(600)),
        [],
        [(Reason.NOT_READY, W, None)],
        id="unknown-waiting-reason-falls-back-to-not-ready",
    ),
    pytest.param(
        pod(
            init=[container("migrate", waiting="CrashLoopBackOff", restarts=2, last=terminated("Error", 3))],
            phase="Pending",
            containers=[container(waiting="PodInitializing")],
        ),
        [],
        [(Reason.CRASH_LOOP_BACK_OFF, W, "migrate")],
        id="init-container-crashloop",
    ),
    pytest.param(
        pod(
            init=[container("migrate", terminated=terminated("Error", 2))],
            phase="Failed",
            containers=[container(waiting="PodInitializing")],
        ),
        [],
        [(Reason.NON_ZERO_EXIT, W, "migrate")],
        id="init-container-non-zero-exit",
    ),
    pytest.param(
        pod(
            init=[container("fetch", waiting="ImagePullBackOff")],
            phase="Pending",
            containers=[container(waiting="PodInitializing")],
        ),
        [],
        [(Reason.IMAGE_PULL_BACK_OFF, W, "fetch")],
        id="init-container-image-pull",
    ),
    pytest.param(
        pod(
            containers=[
                container("app", waiting="CrashLoopBackOff", restarts=1, last=terminated("Error", 1)),
                container("sidecar", waiting="ImagePullBackOff"),
            ]
        ),
        [],
        [(Reason.CRASH_LOOP_BACK_OFF, W, "app"), (Reason.IMAGE_PULL_BACK_OFF, W, "sidecar")],
        id="two-failing-containers-two-findings",
    ),
    pytest.param(
        pod(
            containers=[container(waiting="CrashLoopBackOff", restarts=4, last=terminated("Error", 1))],
            ready_since=ts(900),
        ),
        [],
        [(Reason.CRASH_LOOP_BACK_OFF, W, "app")],
        id="crashloop-explains-not-ready",
    ),
]

HEALTHY = [
    pytest.param(pod(), [], id="healthy-running"),
    pytest.param(
        pod(phase="Pending", containers=[container(waiting="ContainerCreating")]), [], id="container-creating"
    ),
    pytest.param(pod(phase="Pending", containers=[]), [], id="pending-just-scheduled"),
    pytest.param(
        pod(phase="Pending", containers=[], scheduled={"type": "PodScheduled", "status": "True"}),
        [],
        id="pending-scheduled-no-statuses",
    ),
    pytest.param(
        pod(phase="Succeeded", containers=[container(terminated=terminated("Completed", 0))]), [], id="succeeded-pod"
    ),
    pytest.param(
        pod(containers=[container(waiting="SomethingNew")], ready_since=ts(10)), [], id="unknown-waiting-reason"
    ),
    pytest.param(pod(containers=[container(ready=False)], ready_since=ts(30)), [], id="not-ready-within-grace"),
    pytest.param(
        pod(containers=[container(last=terminated("OOMKilled", 137, finished=ts(7200)), restarts=1)]),
        [],
        id="oom-last-state-hours-ago",
    ),
    pytest.param(
        pod(
            containers=[container("app"), container("done", terminated=terminated("Completed", 0))], ready_since=ts(10)
        ),
        [],
        id="finished-sidecar-exit-zero",
    ),
    pytest.param(
        pod(init=[container("migrate", terminated=terminated("Completed", 0))]), [], id="completed-init-container"
    ),
    pytest.param(
        pod(
            deleting=True, containers=[container(terminated=terminated("Error", 143), ready=False)], ready_since=ts(300)
        ),
        [],
        id="terminating-pod-exit-143",
    ),
    pytest.param(pod(), [event("Unhealthy", "Liveness probe failed", seconds_ago=1800)], id="old-probe-event"),
    pytest.param(pod(), [event("Unhealthy", "Liveness probe failed", pod_name="other-pod")], id="event-of-other-pod"),
    pytest.param(pod(), [event("Pulled", "Successfully pulled image", type_="Normal")], id="normal-event"),
]


@pytest.mark.parametrize(("obj", "events", "expected"), FAILING)
def test_failing_pod_yields_expected_findings(
    obj: dict[str, Any], events: list[dict[str, Any]], expected: list[tuple[Reason, Severity, str | None]]
) -> None:
    assert summary(detect(obj, events, now=NOW)) == sorted(expected, key=str)


@pytest.mark.parametrize(("obj", "events"), HEALTHY)
def test_healthy_or_progressing_pod_yields_nothing(obj: dict[str, Any], events: list[dict[str, Any]]) -> None:
    assert detect(obj, events, now=NOW) == []


def test_crashloop_with_oom_last_state_reports_oom_as_last_reason() -> None:
    obj = pod(containers=[container(waiting="CrashLoopBackOff", restarts=2, last=OOM_LAST)])
    [finding] = detect(obj, now=NOW)
    assert finding.details["last_reason"] == "OOMKilled"
    assert finding.details["exit_code"] == 137
    assert finding.details["limit"] == "256Mi"
    assert "OOMKilled" in finding.message
    assert "256Mi" in finding.message


def test_crashloop_message_carries_last_exit_code_and_restarts() -> None:
    obj = pod(containers=[container(waiting="CrashLoopBackOff", restarts=3, last=terminated("Error", 1))])
    [finding] = detect(obj, now=NOW)
    assert "exit code 1" in finding.message
    assert "3 restarts" in finding.message
    assert finding.details == {"restart_count": 3, "last_reason": "Error", "exit_code": 1}


def test_unschedulable_carries_scheduler_message() -> None:
    obj = pod(
        phase="Pending",
        containers=[],
        scheduled={
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": "0/3 nodes are available: 3 Insufficient memory.",
        },
    )
    [finding] = detect(obj)
    assert "3 Insufficient memory" in finding.message


def test_probe_failure_message_names_the_probe_kinds() -> None:
    events = [event("Unhealthy", "Liveness probe failed: 500", count=4), event("Unhealthy", "Readiness probe failed")]
    [finding] = detect(pod(), events, now=NOW)
    assert finding.details["probe"] == "liveness,readiness"
    assert finding.details["event_count"] == 5
    assert "liveness and readiness" in finding.message


def test_init_container_findings_are_marked_as_init() -> None:
    obj = pod(phase="Failed", init=[container("migrate", terminated=terminated("Error", 2))])
    [finding] = detect(obj, now=NOW)
    assert finding.container == "migrate"
    assert finding.details["container_type"] == "init"
    assert finding.is_init_container
    assert "init container migrate" in finding.message


def test_not_ready_needs_now() -> None:
    obj = pod(containers=[container(ready=False)], ready_since=ts(300))
    assert detect(obj) == []
    [finding] = detect(obj, now=NOW)
    assert finding.details["containers"] == "app"


def test_not_ready_grace_is_a_parameter() -> None:
    obj = pod(containers=[container(ready=False)], ready_since=ts(90))
    assert detect_pod(obj, now=NOW, not_ready_grace=timedelta(seconds=120)) == []
    assert [f.reason for f in detect_pod(obj, now=NOW)] == [Reason.NOT_READY]


def test_pod_findings_carry_owner_chain_and_node() -> None:
    obj = pod(containers=[container(waiting="ImagePullBackOff")])
    [finding] = detect(obj)
    assert [o.key() for o in finding.owners] == ["ReplicaSet/shop/web-5d8f7b9c4", "Deployment/shop/web"]
    assert finding.node == "node-1"
    assert finding.details["image"] == "registry.local/shop/web:1.4.2"


def test_naive_now_is_taken_as_utc() -> None:
    obj = pod(containers=[container(ready=False)], ready_since=ts(300))
    naive = NOW.replace(tzinfo=None)
    assert [f.reason for f in detect(obj, now=naive)] == [Reason.NOT_READY]


class Hostile(Mapping[str, Any]):
    """A mapping that fails on every read: detect must log, not raise."""

    def __getitem__(self, key: str) -> Any:
        raise RuntimeError("boom")

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("boom")

    def __len__(self) -> int:
        return 1


HUGE = "x" * 1_000_000
GARBAGE = [
    pytest.param({}, id="empty-dict"),
    pytest.param({"kind": "Pod"}, id="kind-only"),
    pytest.param({"kind": "Pod", "metadata": {"name": "p"}}, id="no-status"),
    pytest.param({"kind": "Pod", "metadata": None, "status": None}, id="null-metadata-and-status"),
    pytest.param({"kind": "Pod", "metadata": {"name": 42}, "status": {"phase": "Running"}}, id="numeric-name"),
    pytest.param(
        {"kind": "Pod", "metadata": {"name": "p"}, "status": {"containerStatuses": None}}, id="null-container-statuses"
    ),
    pytest.param(
        {"kind": "Pod", "metadata": {"name": "p"}, "status": {"containerStatuses": "oops"}},
        id="string-container-statuses",
    ),
    pytest.param(
        {
            "kind": "Pod",
            "metadata": {"name": "p"},
            "status": {"containerStatuses": [1, None, "x", [], {"name": 5}, {"name": "a", "state": "bad"}]},
        },
        id="garbage-in-container-statuses",
    ),
    pytest.param(
        {
            "kind": "Pod",
            "metadata": {"name": "p"},
            "status": {
                "containerStatuses": [
                    {
                        "name": "a",
                        "restartCount": "lots",
                        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                        "lastState": {"terminated": {"exitCode": "x", "reason": 7}},
                    }
                ]
            },
        },
        id="mistyped-counts-and-codes",
    ),
    pytest.param(
        {
            "kind": "Pod",
            "metadata": {"name": "p", "ownerReferences": [None, {"kind": 1}, "rs"]},
            "status": {
                "conditions": [None, {"type": "Ready", "status": "False", "lastTransitionTime": "soon"}],
                "phase": "Running",
            },
        },
        id="garbage-owners-and-conditions",
    ),
    pytest.param(
        {
            "kind": "Pod",
            "metadata": {"name": "p"},
            "status": {
                "containerStatuses": [{"name": "a", "state": {"waiting": {"reason": "ErrImagePull", "message": HUGE}}}]
            },
        },
        id="one-megabyte-waiting-message",
    ),
    pytest.param(
        {"kind": "Pod", "metadata": {"name": "p"}, "status": {"phase": "Failed", "reason": "Evicted", "message": HUGE}},
        id="one-megabyte-eviction-message",
    ),
    pytest.param(["not", "a", "mapping"], id="list-instead-of-object"),
    pytest.param(None, id="none"),
]


@pytest.mark.parametrize("obj", GARBAGE)
def test_malformed_pod_never_raises_and_messages_stay_bounded(obj: Any, caplog: pytest.LogCaptureFixture) -> None:
    events: list[Any] = [None, 3, "x", {"involvedObject": None}, event("Unhealthy", HUGE, pod_name="p")]
    findings = detect(obj, events, now=NOW)
    assert all(isinstance(f, Finding) and len(f.message) <= 500 for f in findings)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], "the safety net hid a detector bug"


def test_object_that_raises_on_read_is_logged_and_skipped(caplog: pytest.LogCaptureFixture) -> None:
    assert detect(Hostile(), kind="Pod") == []
    assert any("detector failed" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)


def test_huge_event_message_is_truncated_to_500_characters() -> None:
    [finding] = detect(pod(), [event("Unhealthy", "Liveness probe failed: " + HUGE)], now=NOW)
    assert len(finding.message) <= 500
    assert finding.message.endswith("…")


def test_kind_override_serves_list_items_without_kind() -> None:
    obj = pod(containers=[container(waiting="ErrImagePull")])
    del obj["kind"]
    assert detect(obj) == []
    assert [f.reason for f in detect(obj, kind="Pod")] == [Reason.ERR_IMAGE_PULL]
