"""Pod detectors: what an on-call engineer reads from ``kubectl describe pod``.

One pod can yield several findings, but at most one per container from its status
(the most specific one), plus pod-level ones:

* container status, for init and regular containers alike: a known ``waiting.reason``
  (CrashLoopBackOff, ImagePullBackOff, ...); else a ``terminated`` state (OOMKilled,
  or NonZeroExit for other non-zero codes); else a recent OOMKilled ``lastState``.
  A CrashLoopBackOff finding carries the last termination (reason, exit code), so an
  OOM loop is one CrashLoopBackOff finding with ``last_reason=OOMKilled``, not two;
* status: Evicted (then nothing else: its containers' exit codes are consequences),
  Unschedulable (PodScheduled=False with the scheduler's message), NotReady (Running,
  Ready=False for longer than a grace, only when ``now`` is given and no container
  finding already explains it);
* Events: ``Unhealthy`` -> ProbeFailure (one per container, probe kinds listed),
  ``FailedMount``/``FailedAttachVolume`` -> FailedMount (one per pod).

Init containers keep their real name in ``container`` (so logs can be fetched) and
are marked with ``details["container_type"] = "init"`` and "init container" in the message.
Succeeded pods and pods being deleted never yield NonZeroExit or NotReady.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from core.detectors.events import DEFAULT_EVENT_WINDOW, ObjectEvent, events_for
from core.detectors.findings import DetailValue, Finding
from core.detectors.objects import (
    aware,
    conditions,
    first_line,
    integer,
    is_terminating,
    items,
    name_of,
    namespace_of,
    sub,
    text,
    timestamp,
)
from core.detectors.owners import OwnersIndex, owner_chain
from core.models import ObjectRef, Reason, Severity

DEFAULT_NOT_READY_GRACE = timedelta(seconds=60)
DEFAULT_LAST_STATE_WINDOW = timedelta(hours=1)
CRASH_LOOP_CRITICAL_RESTARTS = 5

WAITING_REASONS: Mapping[str, Reason] = {
    "CrashLoopBackOff": Reason.CRASH_LOOP_BACK_OFF,
    "ImagePullBackOff": Reason.IMAGE_PULL_BACK_OFF,
    "ErrImagePull": Reason.ERR_IMAGE_PULL,
    "ErrImageNeverPull": Reason.ERR_IMAGE_PULL,
    "InvalidImageName": Reason.INVALID_IMAGE_NAME,
    "CreateContainerConfigError": Reason.CREATE_CONTAINER_CONFIG_ERROR,
    "CreateContainerError": Reason.CREATE_CONTAINER_ERROR,
    "RunContainerError": Reason.RUN_CONTAINER_ERROR,
}
_IMAGE_REASONS = frozenset({Reason.IMAGE_PULL_BACK_OFF, Reason.ERR_IMAGE_PULL, Reason.INVALID_IMAGE_NAME})
_MOUNT_EVENTS = frozenset({"FailedMount", "FailedAttachVolume"})
_PROBES = ("liveness", "readiness", "startup")


class _Pod:
    """What every pod finding shares: identity, owners and node."""

    def __init__(self, pod: Mapping[str, Any], name: str, owners_index: OwnersIndex | None) -> None:
        self.pod = pod
        self.name = name
        self.namespace = namespace_of(pod)
        self.node = text(sub(pod, "spec").get("nodeName"))
        self.owners: tuple[ObjectRef, ...] = owner_chain(pod, owners_index)

    def finding(
        self,
        reason: Reason,
        severity: Severity,
        message: str,
        *,
        container: str | None = None,
        details: Mapping[str, DetailValue] | None = None,
    ) -> Finding:
        return Finding(
            kind="Pod",
            namespace=self.namespace,
            name=self.name,
            reason=reason,
            severity=severity,
            message=message,
            container=container,
            owners=self.owners,
            node=self.node,
            details=dict(details or {}),
        )

    def memory_limit(self, container: str, init: bool) -> str | None:
        specs = items(sub(self.pod, "spec").get("initContainers" if init else "containers"))
        for spec in specs:
            if spec.get("name") == container:
                return text(sub(spec, "resources", "limits").get("memory"))
        return None


def detect_pod(
    pod: Mapping[str, Any],
    events: Sequence[Mapping[str, Any]] = (),
    *,
    owners_index: OwnersIndex | None = None,
    now: datetime | None = None,
    not_ready_grace: timedelta = DEFAULT_NOT_READY_GRACE,
    last_state_window: timedelta = DEFAULT_LAST_STATE_WINDOW,
    event_window: timedelta = DEFAULT_EVENT_WINDOW,
) -> list[Finding]:
    """Findings for one Pod; nothing for healthy, starting or completed pods."""
    name = name_of(pod)
    if name is None:
        return []
    status = sub(pod, "status")
    phase = text(status.get("phase"))
    if phase == "Succeeded":
        return []
    ctx = _Pod(pod, name, owners_index)
    if text(status.get("reason")) == "Evicted":
        message = first_line(status.get("message")) or "the kubelet evicted the pod"
        return [ctx.finding(Reason.EVICTED, Severity.WARNING, f"pod was evicted: {message}")]

    findings: list[Finding] = []
    pod_conditions = conditions(pod)
    scheduled = pod_conditions.get("PodScheduled")
    if (
        phase in (None, "Pending")
        and scheduled is not None
        and scheduled.get("status") == "False"
        and scheduled.get("reason") == "Unschedulable"
    ):
        message = "pod cannot be scheduled: " + (first_line(scheduled.get("message"), 400) or "no node fits")
        findings.append(ctx.finding(Reason.UNSCHEDULABLE, Severity.WARNING, message))

    terminating = is_terminating(pod)
    for init, key in ((True, "initContainerStatuses"), (False, "containerStatuses")):
        for container_status in items(status.get(key)):
            found = _container_finding(ctx, container_status, init, terminating, now, last_state_window)
            if found is not None:
                findings.append(found)
    explained = bool(findings)

    pod_events = events_for(pod, "Pod", events, now=now, window=event_window)
    findings.extend(_probe_findings(ctx, pod_events))
    mount = _mount_finding(ctx, pod_events)
    if mount is not None:
        findings.append(mount)

    if phase == "Running" and not terminating and not explained and now is not None:
        not_ready = _not_ready_finding(ctx, status, pod_conditions.get("Ready"), aware(now), not_ready_grace)
        if not_ready is not None:
            findings.append(not_ready)
    return findings


def _label(container: str, init: bool) -> str:
    return f"{'init container' if init else 'container'} {container}"


def _container_finding(
    ctx: _Pod,
    container_status: Mapping[str, Any],
    init: bool,
    terminating: bool,
    now: datetime | None,
    last_state_window: timedelta,
) -> Finding | None:
    container = text(container_status.get("name"))
    if container is None:
        return None
    restarts = integer(container_status.get("restartCount")) or 0
    details: dict[str, DetailValue] = {"restart_count": restarts}
    if init:
        details["container_type"] = "init"
    who = _label(container, init)
    state = sub(container_status, "state")
    waiting, terminated = sub(state, "waiting"), sub(state, "terminated")
    last = sub(container_status, "lastState", "terminated")

    waiting_reason = text(waiting.get("reason"))
    reason = WAITING_REASONS.get(waiting_reason or "")
    if reason is Reason.CRASH_LOOP_BACK_OFF:
        return _crash_loop(ctx, container, who, restarts, details, waiting, last)
    if reason is not None and waiting_reason is not None:
        if reason in _IMAGE_REASONS:
            details["image"] = text(container_status.get("image"))
        if waiting_reason != reason.value:
            details["waiting_reason"] = waiting_reason
        message = f"{who} is waiting: {waiting_reason}"
        if text(waiting.get("message")):
            message += f": {first_line(waiting.get('message'))}"
        return ctx.finding(reason, Severity.WARNING, message, container=container, details=details)

    if terminated:
        return _terminated(ctx, container, who, init, details, terminated, terminating)

    if last and text(last.get("reason")) == "OOMKilled" and _recent(last, now, last_state_window):
        return _oom(ctx, container, who, init, details, last, "was OOMKilled and restarted")
    return None


def _recent(terminated: Mapping[str, Any], now: datetime | None, window: timedelta) -> bool:
    finished = timestamp(terminated.get("finishedAt"))
    return now is None or finished is None or aware(now) - finished <= window


def _termination_text(terminated: Mapping[str, Any]) -> str:
    reason = text(terminated.get("reason")) or "terminated"
    code = integer(terminated.get("exitCode"))
    return reason if code is None else f"{reason}, exit code {code}"


def _crash_loop(
    ctx: _Pod,
    container: str,
    who: str,
    restarts: int,
    details: dict[str, DetailValue],
    waiting: Mapping[str, Any],
    last: Mapping[str, Any],
) -> Finding:
    last_reason = text(last.get("reason"))
    details["last_reason"] = last_reason
    details["exit_code"] = integer(last.get("exitCode"))
    oom = last_reason == "OOMKilled"
    severity = Severity.CRITICAL if oom or restarts > CRASH_LOOP_CRITICAL_RESTARTS else Severity.WARNING
    message = f"{who} is in CrashLoopBackOff ({restarts} restarts)"
    if last:
        message += f"; last terminated: {_termination_text(last)}"
        if text(last.get("message")):
            message += f" ({first_line(last.get('message'), 200)})"
    if oom:
        details["limit"] = ctx.memory_limit(container, details.get("container_type") == "init")
        if details["limit"]:
            message += f"; memory limit {details['limit']}"
    return ctx.finding(Reason.CRASH_LOOP_BACK_OFF, severity, message, container=container, details=details)


def _oom(
    ctx: _Pod,
    container: str,
    who: str,
    init: bool,
    details: dict[str, DetailValue],
    terminated: Mapping[str, Any],
    verb: str,
) -> Finding:
    details["exit_code"] = integer(terminated.get("exitCode"))
    details["limit"] = ctx.memory_limit(container, init)
    message = f"{who} {verb} ({_termination_text(terminated)}"
    message += f", memory limit {details['limit']})" if details["limit"] else ")"
    return ctx.finding(Reason.OOM_KILLED, Severity.CRITICAL, message, container=container, details=details)


def _terminated(
    ctx: _Pod,
    container: str,
    who: str,
    init: bool,
    details: dict[str, DetailValue],
    terminated: Mapping[str, Any],
    terminating: bool,
) -> Finding | None:
    if text(terminated.get("reason")) == "OOMKilled":
        return _oom(ctx, container, who, init, details, terminated, "was OOMKilled")
    code = integer(terminated.get("exitCode"))
    if code is None or code == 0 or terminating:
        return None
    details["exit_code"] = code
    details["last_reason"] = text(terminated.get("reason"))
    message = f"{who} exited with code {code}"
    if text(terminated.get("reason")):
        message += f" ({terminated.get('reason')})"
    if text(terminated.get("message")):
        message += f": {first_line(terminated.get('message'))}"
    return ctx.finding(Reason.NON_ZERO_EXIT, Severity.WARNING, message, container=container, details=details)


def _probe_kind(message: str) -> str:
    lowered = message.lower()
    for probe in _PROBES:
        if lowered.startswith(probe) or f"{probe} probe" in lowered:
            return probe
    return "unknown"


def _probe_findings(ctx: _Pod, pod_events: Sequence[ObjectEvent]) -> list[Finding]:
    by_container: dict[str | None, list[ObjectEvent]] = {}
    for event in pod_events:
        if event.reason == "Unhealthy":
            by_container.setdefault(event.container, []).append(event)
    findings = []
    for container, seen in by_container.items():
        probes = sorted({_probe_kind(event.message) for event in seen})
        latest = seen[-1]
        details: dict[str, DetailValue] = {
            "probe": ",".join(probes),
            "event_count": sum(event.count for event in seen),
        }
        if latest.init_container:
            details["container_type"] = "init"
        where = f" for {_label(container, latest.init_container)}" if container else ""
        message = f"{' and '.join(probes)} probe failing{where} ({details['event_count']} times)"
        if latest.message:
            message += f": {first_line(latest.message)}"
        findings.append(
            ctx.finding(Reason.PROBE_FAILURE, Severity.WARNING, message, container=container, details=details)
        )
    return findings


def _mount_finding(ctx: _Pod, pod_events: Sequence[ObjectEvent]) -> Finding | None:
    seen = [event for event in pod_events if event.reason in _MOUNT_EVENTS]
    if not seen:
        return None
    latest = seen[-1]
    details: dict[str, DetailValue] = {
        "event_reason": latest.reason,
        "event_count": sum(event.count for event in seen),
    }
    message = f"{latest.reason}: {first_line(latest.message, 400) or 'volume could not be mounted'}"
    return ctx.finding(Reason.FAILED_MOUNT, Severity.WARNING, message, details=details)


def _not_ready_finding(
    ctx: _Pod,
    status: Mapping[str, Any],
    ready: Mapping[str, Any] | None,
    now: datetime,
    grace: timedelta,
) -> Finding | None:
    if ready is None or ready.get("status") != "False":
        return None
    since = timestamp(ready.get("lastTransitionTime"))
    if since is None or now - since <= grace:
        return None
    waiting = sorted(
        name
        for container_status in items(status.get("containerStatuses"))
        if container_status.get("ready") is not True and (name := text(container_status.get("name")))
    )
    seconds = int((now - since).total_seconds())
    details: dict[str, DetailValue] = {"not_ready_seconds": seconds, "containers": ",".join(waiting) or None}
    message = f"pod is Running but not Ready for {seconds} s"
    if waiting:
        message += f" (containers not ready: {', '.join(waiting)})"
    if text(ready.get("message")):
        message += f": {first_line(ready.get('message'))}"
    return ctx.finding(Reason.NOT_READY, Severity.WARNING, message, details=details)
