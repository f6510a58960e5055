"""Workload detectors: Deployments, ReplicaSets, StatefulSets, DaemonSets, Jobs, CronJobs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from core.detectors import Finding, detect
from core.models import Reason, Severity

W, C = Severity.WARNING, Severity.CRITICAL


def cond(kind: str, status: str, reason: str = "", message: str = "") -> dict[str, Any]:
    out = {"type": kind, "status": status, "lastTransitionTime": "2026-11-05T11:50:00Z"}
    if reason:
        out["reason"] = reason
    if message:
        out["message"] = message
    return out


def workload(
    kind: str,
    name: str,
    *,
    spec: dict[str, Any] | None = None,
    status: dict[str, Any] | None = None,
    conditions: Sequence[dict[str, Any]] = (),
    owner: tuple[str, str] | None = None,
    generation: int = 3,
    observed: int | None = 3,
    uid: str | None = None,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": "shop",
        "generation": generation,
        "uid": uid or f"uid-{name}",
        "creationTimestamp": "2026-11-05T10:00:00Z",
    }
    if owner:
        metadata["ownerReferences"] = [
            {"apiVersion": "apps/v1", "kind": owner[0], "name": owner[1], "uid": f"uid-{owner[1]}", "controller": True}
        ]
    body: dict[str, Any] = dict(status or {})
    if observed is not None:
        body["observedGeneration"] = observed
    if conditions:
        body["conditions"] = list(conditions)
    api = "batch/v1" if kind in ("Job", "CronJob") else "apps/v1"
    return {"apiVersion": api, "kind": kind, "metadata": metadata, "spec": spec or {}, "status": body}


def deployment(
    replicas: int | None = 3,
    available: int = 3,
    unavailable: int = 0,
    *,
    progressing: tuple[str, str] = ("True", "NewReplicaSetAvailable"),
    available_condition: str | None = None,
    observed: int | None = 3,
) -> dict[str, Any]:
    status: dict[str, Any] = {
        "replicas": replicas or 0,
        "updatedReplicas": replicas or 0,
        "readyReplicas": available,
        "availableReplicas": available,
    }
    if unavailable:
        status["unavailableReplicas"] = unavailable
    if available_condition is None:
        available_condition = "True" if unavailable == 0 else "False"
    available_reason = "MinimumReplicasAvailable" if available_condition == "True" else "MinimumReplicasUnavailable"
    spec = {"replicas": replicas} if replicas is not None else {}
    return workload(
        "Deployment",
        "web",
        spec=spec,
        status=status,
        observed=observed,
        conditions=[
            cond("Available", available_condition, available_reason, "Deployment does not have minimum availability"),
            cond("Progressing", *progressing, 'ReplicaSet "web-5d8f7b9c4" has timed out progressing.'),
        ],
    )


def job(
    name: str,
    condition: str | None,
    reason: str = "",
    *,
    start: str = "2026-11-05T11:00:00Z",
    owner: str | None = "nightly",
    failed: int = 0,
) -> dict[str, Any]:
    conditions = []
    if condition == "Failed":
        conditions = [
            cond("FailureTarget", "True", reason),
            cond("Failed", "True", reason, "Job has reached the specified backoff limit"),
        ]
    elif condition == "Complete":
        conditions = [cond("SuccessCriteriaMet", "True"), cond("Complete", "True")]
    elif condition is not None:
        conditions = [cond(condition, "True", reason)]
    obj = workload(
        "Job",
        name,
        spec={"backoffLimit": 6},
        conditions=conditions,
        status={"startTime": start, "failed": failed, "active": 0},
        owner=("CronJob", owner) if owner else None,
        observed=None,
    )
    obj["metadata"]["creationTimestamp"] = start
    return obj


CRONJOB = workload(
    "CronJob",
    "nightly",
    spec={"schedule": "0 * * * *"},
    observed=None,
    status={"lastScheduleTime": "2026-11-05T11:00:00Z"},
)

CASES = [
    # Deployments
    pytest.param(deployment(3, 3), {}, [], id="deployment-healthy"),
    pytest.param(deployment(0, 0), {}, [], id="deployment-scaled-to-zero"),
    pytest.param(
        deployment(3, 1, 2, progressing=("True", "ReplicaSetUpdated")),
        {},
        [],
        id="deployment-mid-rollout-within-deadline",
    ),
    pytest.param(deployment(3, 2, 1), {}, [(Reason.DEPLOYMENT_UNAVAILABLE, W)], id="deployment-partly-unavailable"),
    pytest.param(deployment(3, 0, 3), {}, [(Reason.DEPLOYMENT_UNAVAILABLE, C)], id="deployment-nothing-available"),
    pytest.param(
        deployment(3, 3, 0, progressing=("False", "ProgressDeadlineExceeded")),
        {},
        [(Reason.PROGRESS_DEADLINE_EXCEEDED, W)],
        id="deadline-exceeded-old-pods-serve",
    ),
    pytest.param(
        deployment(3, 0, 3, progressing=("False", "ProgressDeadlineExceeded")),
        {},
        [(Reason.DEPLOYMENT_UNAVAILABLE, C), (Reason.PROGRESS_DEADLINE_EXCEEDED, W)],
        id="deadline-exceeded-and-unavailable",
    ),
    pytest.param(
        deployment(3, 1, 2, progressing=("Unknown", "DeploymentPaused")),
        {},
        [(Reason.DEPLOYMENT_UNAVAILABLE, W)],
        id="paused-deployment-unavailable",
    ),
    pytest.param(deployment(3, 0, 3, observed=2), {}, [], id="deployment-generation-not-observed"),
    pytest.param(deployment(None, 0, 1), {}, [(Reason.DEPLOYMENT_UNAVAILABLE, C)], id="deployment-default-one-replica"),
    pytest.param(
        deployment(3, 3, 0, available_condition="False"),
        {},
        [(Reason.DEPLOYMENT_UNAVAILABLE, W)],
        id="deployment-available-false-condition",
    ),
    # ReplicaSets
    pytest.param(
        workload(
            "ReplicaSet",
            "web-5d8f7b9c4",
            spec={"replicas": 3},
            owner=("Deployment", "web"),
            conditions=[
                cond(
                    "ReplicaFailure",
                    "True",
                    "FailedCreate",
                    'pods "web-5d8f7b9c4-a" is forbidden: exceeded quota: compute',
                )
            ],
        ),
        {},
        [(Reason.REPLICA_FAILURE, W)],
        id="replicaset-quota-failure",
    ),
    pytest.param(
        workload("ReplicaSet", "web-5d8f7b9c4", spec={"replicas": 3}, status={"replicas": 3}),
        {},
        [],
        id="replicaset-healthy",
    ),
    pytest.param(
        workload("ReplicaSet", "web-5d8f7b9c4", conditions=[cond("ReplicaFailure", "False")]),
        {},
        [],
        id="replicaset-failure-false",
    ),
    # StatefulSets
    pytest.param(
        workload("StatefulSet", "db", spec={"replicas": 3}, status={"readyReplicas": 2}),
        {},
        [(Reason.STATEFUL_SET_UNAVAILABLE, W)],
        id="statefulset-one-not-ready",
    ),
    pytest.param(
        workload("StatefulSet", "db", spec={"replicas": 3}, status={"replicas": 3}),
        {},
        [(Reason.STATEFUL_SET_UNAVAILABLE, C)],
        id="statefulset-none-ready",
    ),
    pytest.param(
        workload("StatefulSet", "db", spec={"replicas": 3}, status={"readyReplicas": 3}),
        {},
        [],
        id="statefulset-healthy",
    ),
    pytest.param(
        workload("StatefulSet", "db", spec={"replicas": 0}, status={}), {}, [], id="statefulset-scaled-to-zero"
    ),
    pytest.param(
        workload("StatefulSet", "db", spec={"replicas": 3}, status={"readyReplicas": 0}, observed=2),
        {},
        [],
        id="statefulset-generation-not-observed",
    ),
    # DaemonSets
    pytest.param(
        workload("DaemonSet", "agent", status={"desiredNumberScheduled": 3, "numberReady": 2, "numberUnavailable": 1}),
        {},
        [(Reason.DAEMON_SET_UNAVAILABLE, W)],
        id="daemonset-one-unavailable",
    ),
    pytest.param(
        workload("DaemonSet", "agent", status={"desiredNumberScheduled": 3, "numberReady": 2}),
        {},
        [(Reason.DAEMON_SET_UNAVAILABLE, W)],
        id="daemonset-desired-differs-from-ready",
    ),
    pytest.param(
        workload("DaemonSet", "agent", status={"desiredNumberScheduled": 2, "numberReady": 0, "numberUnavailable": 2}),
        {},
        [(Reason.DAEMON_SET_UNAVAILABLE, C)],
        id="daemonset-none-ready",
    ),
    pytest.param(
        workload("DaemonSet", "agent", status={"desiredNumberScheduled": 3, "numberReady": 3, "numberAvailable": 3}),
        {},
        [],
        id="daemonset-healthy",
    ),
    pytest.param(
        workload("DaemonSet", "agent", status={"desiredNumberScheduled": 0, "numberReady": 0}),
        {},
        [],
        id="daemonset-no-matching-nodes",
    ),
    # Jobs
    pytest.param(
        job("nightly-29001", "Failed", "BackoffLimitExceeded", failed=7),
        {},
        [(Reason.JOB_FAILED, W)],
        id="job-backoff-limit-exceeded",
    ),
    pytest.param(
        job("nightly-29001", "Failed", "DeadlineExceeded"), {}, [(Reason.JOB_FAILED, W)], id="job-deadline-exceeded"
    ),
    pytest.param(
        job("nightly-29001", "FailureTarget", "PodFailurePolicy"), {}, [(Reason.JOB_FAILED, W)], id="job-failure-target"
    ),
    pytest.param(job("nightly-29001", "Complete"), {}, [], id="job-completed"),
    pytest.param(job("nightly-29001", None), {}, [], id="job-running"),
    pytest.param(job("nightly-29001", "Suspended"), {}, [], id="job-suspended"),
    # CronJobs
    pytest.param(
        CRONJOB,
        {
            "jobs": [
                job("nightly-1", "Complete", start="2026-11-05T09:00:00Z"),
                job("nightly-2", "Failed", "BackoffLimitExceeded", start="2026-11-05T10:00:00Z"),
            ]
        },
        [(Reason.JOB_FAILED, W)],
        id="cronjob-last-job-failed",
    ),
    pytest.param(
        CRONJOB,
        {
            "jobs": [
                job("nightly-1", "Failed", "BackoffLimitExceeded", start="2026-11-05T09:00:00Z"),
                job("nightly-2", "Complete", start="2026-11-05T10:00:00Z"),
            ]
        },
        [],
        id="cronjob-recovered-after-failure",
    ),
    pytest.param(
        CRONJOB,
        {
            "jobs": [
                job("nightly-1", "Complete", start="2026-11-05T09:00:00Z"),
                job("nightly-2", None, start="2026-11-05T11:00:00Z"),
            ]
        },
        [],
        id="cronjob-last-job-running",
    ),
    pytest.param(
        CRONJOB,
        {"jobs": [job("hourly-9", "Failed", "BackoffLimitExceeded", owner="hourly")]},
        [],
        id="cronjob-ignores-other-cronjobs-jobs",
    ),
    pytest.param(
        CRONJOB,
        {"jobs": [job("nightly-29001", "Failed", "DeadlineExceeded", owner=None)]},
        [(Reason.JOB_FAILED, W)],
        id="cronjob-child-by-name-without-owner-refs",
    ),
    pytest.param(CRONJOB, {}, [], id="cronjob-without-jobs"),
]


@pytest.mark.parametrize(("obj", "kwargs", "expected"), CASES)
def test_workload_yields_expected_findings(
    obj: dict[str, Any], kwargs: dict[str, Any], expected: list[tuple[Reason, Severity]]
) -> None:
    findings = detect(obj, **kwargs)
    assert sorted((f.reason, f.severity) for f in findings) == sorted(expected)
    assert all(f.kind == obj["kind"] and f.name == obj["metadata"]["name"] for f in findings)


def only(findings: list[Finding]) -> Finding:
    assert len(findings) == 1, findings
    return findings[0]


def test_progress_deadline_message_quotes_the_controller() -> None:
    finding = only(detect(deployment(3, 3, 0, progressing=("False", "ProgressDeadlineExceeded"))))
    assert "has timed out progressing" in finding.message
    assert finding.details["progress_reason"] == "ProgressDeadlineExceeded"


def test_deployment_unavailable_counts_replicas() -> None:
    finding = only(detect(deployment(3, 2, 1)))
    assert finding.message.startswith("2/3 replicas available")
    assert finding.details == {"desired": 3, "available": 2, "unavailable": 1, "updated": 3}


def test_replicaset_failure_carries_message_and_owner() -> None:
    rs = workload(
        "ReplicaSet",
        "web-5d8f7b9c4",
        owner=("Deployment", "web"),
        conditions=[cond("ReplicaFailure", "True", "FailedCreate", "exceeded quota: compute")],
    )
    finding = only(detect(rs))
    assert "exceeded quota" in finding.message
    assert [o.key() for o in finding.owners] == ["Deployment/shop/web"]


def test_job_failure_names_reason_and_cronjob_owner() -> None:
    finding = only(detect(job("nightly-29001", "Failed", "BackoffLimitExceeded", failed=7)))
    assert finding.details == {"job_reason": "BackoffLimitExceeded", "failed_pods": 7}
    assert "BackoffLimitExceeded" in finding.message
    assert [o.key() for o in finding.owners] == ["CronJob/shop/nightly"]


def test_cronjob_failure_names_the_last_job() -> None:
    jobs = [job("nightly-2", "Failed", "BackoffLimitExceeded")]
    finding = only(detect(CRONJOB, jobs=jobs))
    assert finding.kind == "CronJob"
    assert finding.details["last_job"] == "nightly-2"


def test_cronjob_ignores_jobs_owned_by_a_previous_cronjob_with_same_name() -> None:
    cronjob = workload("CronJob", "nightly", uid="new-uid", observed=None)
    stale = job("nightly-1", "Failed", "BackoffLimitExceeded")  # owner uid "uid-nightly"
    assert detect(cronjob, jobs=[stale]) == []


GARBAGE = [
    pytest.param({"kind": kind, **extra}, id=f"{kind}-{label}")
    for kind in ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "CronJob")
    for label, extra in (
        ("bare", {}),
        ("null-status", {"metadata": {"name": "x"}, "status": None, "spec": None}),
        (
            "string-counts",
            {
                "metadata": {"name": "x", "generation": "two"},
                "spec": {"replicas": "three"},
                "status": {
                    "readyReplicas": "two",
                    "availableReplicas": [],
                    "numberReady": {},
                    "conditions": "Available",
                },
            },
        ),
        (
            "garbage-conditions",
            {
                "metadata": {"name": "x"},
                "status": {
                    "conditions": [
                        None,
                        1,
                        {"type": None},
                        {"type": "Failed", "status": "True", "message": "m" * 1_000_000},
                    ]
                },
            },
        ),
        (
            "negative-counts",
            {
                "metadata": {"name": "x"},
                "spec": {"replicas": -4},
                "status": {"unavailableReplicas": -1, "desiredNumberScheduled": -2},
            },
        ),
    )
]


@pytest.mark.parametrize("obj", GARBAGE)
def test_malformed_workload_never_raises(obj: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    jobs: list[Any] = [None, "x", {"metadata": None}, {"metadata": {"name": "x-1", "ownerReferences": "x"}}]
    findings = detect(obj, jobs=jobs)
    assert all(len(f.message) <= 500 for f in findings)
    assert not caplog.records
