"""Workload detectors: Deployments, ReplicaSets, StatefulSets, DaemonSets, Jobs, CronJobs.

The rule for "progressing is not failing": a status the controller has not yet caught
up with (``observedGeneration < generation``) says nothing, and a Deployment whose
rollout is still within its progress deadline (Progressing=True for a reason other
than NewReplicaSetAvailable) is not reported as unavailable. Once the deadline passes,
the controller itself says so (Progressing=False, ProgressDeadlineExceeded).

Severity: a workload with desired replicas but none available/ready is critical (the
service is down); partially unavailable is a warning; ProgressDeadlineExceeded,
ReplicaFailure and JobFailed are warnings (the old pods or the next run may still serve).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from core.detectors.findings import DetailValue, Finding
from core.detectors.objects import (
    condition_is,
    conditions,
    first_line,
    generation_unobserved,
    integer,
    items,
    name_of,
    namespace_of,
    sub,
    text,
    timestamp,
)
from core.detectors.owners import OwnersIndex, owner_chain
from core.models import Reason, Severity

_ROLLOUT_DONE = "NewReplicaSetAvailable"
_JOB_FAILED_CONDITIONS = ("Failed", "FailureTarget")


def _finding(
    obj: Mapping[str, Any],
    kind: str,
    name: str,
    reason: Reason,
    severity: Severity,
    message: str,
    details: Mapping[str, DetailValue],
    owners_index: OwnersIndex | None = None,
) -> Finding:
    return Finding(
        kind=kind,
        namespace=namespace_of(obj),
        name=name,
        reason=reason,
        severity=severity,
        message=message,
        owners=owner_chain(obj, owners_index),
        details=dict(details),
    )


def _desired(obj: Mapping[str, Any]) -> int:
    """``spec.replicas``, defaulting to 1 as the API server does."""
    replicas = integer(sub(obj, "spec").get("replicas"))
    return 1 if replicas is None else max(replicas, 0)


def _count(status: Mapping[str, Any], key: str) -> int:
    return max(integer(status.get(key)) or 0, 0)


def detect_deployment(deployment: Mapping[str, Any]) -> list[Finding]:
    """ProgressDeadlineExceeded and DeploymentUnavailable (outside an active rollout)."""
    name = name_of(deployment)
    if name is None or generation_unobserved(deployment):
        return []
    status = sub(deployment, "status")
    found = conditions(deployment)
    desired, available = _desired(deployment), _count(status, "availableReplicas")
    unavailable = _count(status, "unavailableReplicas")
    details: dict[str, DetailValue] = {
        "desired": desired,
        "available": available,
        "unavailable": unavailable,
        "updated": _count(status, "updatedReplicas"),
    }
    findings: list[Finding] = []
    progressing, availability = found.get("Progressing"), found.get("Available")
    if condition_is(progressing, "False") and progressing is not None:
        progress_reason = text(progressing.get("reason")) or "ProgressDeadlineExceeded"
        message = f"rollout stalled: {first_line(progressing.get('message')) or progress_reason}"
        findings.append(
            _finding(
                deployment,
                "Deployment",
                name,
                Reason.PROGRESS_DEADLINE_EXCEEDED,
                Severity.WARNING,
                message,
                {**details, "progress_reason": progress_reason},
            )
        )
    rolling_out = condition_is(progressing, "True") and (progressing or {}).get("reason") != _ROLLOUT_DONE
    not_available = condition_is(availability, "False") or unavailable > 0
    if desired > 0 and not_available and not rolling_out:
        severity = Severity.CRITICAL if available == 0 else Severity.WARNING
        message = f"{available}/{desired} replicas available"
        if availability is not None and text(availability.get("message")):
            message += f": {first_line(availability.get('message'))}"
        reason = Reason.DEPLOYMENT_UNAVAILABLE
        findings.append(_finding(deployment, "Deployment", name, reason, severity, message, details))
    return findings


def detect_replicaset(replicaset: Mapping[str, Any], *, owners_index: OwnersIndex | None = None) -> list[Finding]:
    """ReplicaFailure=True: the controller cannot create pods (quota, admission, ...)."""
    name = name_of(replicaset)
    failure = conditions(replicaset).get("ReplicaFailure")
    if name is None or not condition_is(failure, "True") or failure is None:
        return []
    failure_reason = text(failure.get("reason")) or "FailedCreate"
    message = f"{failure_reason}: {first_line(failure.get('message'), 400) or 'cannot create pods'}"
    details: dict[str, DetailValue] = {
        "failure_reason": failure_reason,
        "desired": _desired(replicaset),
        "replicas": _count(sub(replicaset, "status"), "replicas"),
    }
    return [
        _finding(
            replicaset,
            "ReplicaSet",
            name,
            Reason.REPLICA_FAILURE,
            Severity.WARNING,
            message,
            details,
            owners_index,
        )
    ]


def detect_statefulset(statefulset: Mapping[str, Any]) -> list[Finding]:
    """readyReplicas below spec.replicas."""
    name = name_of(statefulset)
    if name is None or generation_unobserved(statefulset):
        return []
    desired, ready = _desired(statefulset), _count(sub(statefulset, "status"), "readyReplicas")
    if ready >= desired:
        return []
    severity = Severity.CRITICAL if ready == 0 else Severity.WARNING
    details: dict[str, DetailValue] = {"desired": desired, "ready": ready}
    return [
        _finding(
            statefulset,
            "StatefulSet",
            name,
            Reason.STATEFUL_SET_UNAVAILABLE,
            severity,
            f"{ready}/{desired} replicas ready",
            details,
        )
    ]


def detect_daemonset(daemonset: Mapping[str, Any]) -> list[Finding]:
    """numberUnavailable > 0 or fewer ready than desired."""
    name = name_of(daemonset)
    if name is None or generation_unobserved(daemonset):
        return []
    status = sub(daemonset, "status")
    desired, ready = _count(status, "desiredNumberScheduled"), _count(status, "numberReady")
    unavailable = _count(status, "numberUnavailable")
    if unavailable == 0 and ready == desired:
        return []
    severity = Severity.CRITICAL if desired > 0 and ready == 0 else Severity.WARNING
    details: dict[str, DetailValue] = {"desired": desired, "ready": ready, "unavailable": unavailable}
    return [
        _finding(
            daemonset,
            "DaemonSet",
            name,
            Reason.DAEMON_SET_UNAVAILABLE,
            severity,
            f"{ready}/{desired} daemon pods ready, {unavailable} unavailable",
            details,
        )
    ]


def _job_failure(job: Mapping[str, Any]) -> Mapping[str, Any] | None:
    found = conditions(job)
    for kind in _JOB_FAILED_CONDITIONS:
        condition = found.get(kind)
        if condition_is(condition, "True"):
            return condition
    return None


def detect_job(job: Mapping[str, Any], *, owners_index: OwnersIndex | None = None) -> list[Finding]:
    """Failed=True (BackoffLimitExceeded, DeadlineExceeded, ...) -> JobFailed."""
    name = name_of(job)
    failure = _job_failure(job)
    if name is None or failure is None:
        return []
    job_reason = text(failure.get("reason")) or "Failed"
    details: dict[str, DetailValue] = {
        "job_reason": job_reason,
        "failed_pods": _count(sub(job, "status"), "failed"),
    }
    message = f"job failed: {job_reason}"
    if text(failure.get("message")):
        message += f": {first_line(failure.get('message'))}"
    return [_finding(job, "Job", name, Reason.JOB_FAILED, Severity.WARNING, message, details, owners_index)]


def _owned_by(job: Mapping[str, Any], cronjob_name: str, cronjob_uid: str | None) -> bool:
    refs = items(sub(job, "metadata").get("ownerReferences"))
    for ref in refs:
        if ref.get("kind") == "CronJob" and ref.get("name") == cronjob_name:
            return cronjob_uid is None or text(ref.get("uid")) in (None, cronjob_uid)
    if refs:
        return False
    job_name = name_of(job) or ""
    return job_name.startswith(cronjob_name + "-") and job_name[len(cronjob_name) + 1 :].isdigit()


def _started(job: Mapping[str, Any]) -> datetime:
    moment = timestamp(sub(job, "status").get("startTime")) or timestamp(sub(job, "metadata").get("creationTimestamp"))
    return moment or datetime.min.replace(tzinfo=UTC)


def detect_cronjob(cronjob: Mapping[str, Any], jobs: Sequence[Mapping[str, Any]] = ()) -> list[Finding]:
    """JobFailed on the CronJob when its most recent child Job failed.

    ``jobs`` are Jobs of the namespace; children are those whose ownerReference names
    this CronJob (or, lacking ownerReferences, named ``<cronjob>-<digits>``). Without
    ``jobs`` nothing can be said: the CronJob status does not record failures.
    """
    name = name_of(cronjob)
    if name is None:
        return []
    uid = text(sub(cronjob, "metadata").get("uid"))
    namespace = namespace_of(cronjob)
    children = [job for job in items(jobs) if _owned_by(job, name, uid) and namespace_of(job) in (None, namespace)]
    if not children:
        return []
    latest = max(children, key=_started)
    failure = _job_failure(latest)
    if failure is None:
        return []
    job_reason = text(failure.get("reason")) or "Failed"
    job_name = name_of(latest)
    details: dict[str, DetailValue] = {"last_job": job_name, "job_reason": job_reason}
    message = f"last job {job_name} failed: {job_reason}"
    if text(failure.get("message")):
        message += f": {first_line(failure.get('message'))}"
    return [_finding(cronjob, "CronJob", name, Reason.JOB_FAILED, Severity.WARNING, message, details)]


__all__ = [
    "detect_cronjob",
    "detect_daemonset",
    "detect_deployment",
    "detect_job",
    "detect_replicaset",
    "detect_statefulset",
]
