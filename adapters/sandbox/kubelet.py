"""What the simulated kubelet and scheduler write into pod status, per behaviour.

Status shapes follow what a real kubelet reports (containerStatuses with state/lastState,
conditions PodScheduled/Initialized/ContainersReady/Ready, waiting reasons), because the
platform's detectors read exactly these fields; getting them right here is what makes the
sandbox a fair test of detection.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from adapters.sandbox.scenario import Behaviour
from adapters.sandbox.store import JsonObj, now_iso


@dataclass
class PodSim:
    """The kubelet's memory of one pod."""

    workload: tuple[str, str, str] | None  # (kind, namespace, name) of the scenario workload
    created: float  # loop time
    override: Behaviour | None = None  # injected at runtime into this pod only
    override_at: float = 0.0
    restarts: int = 0
    step: int = 0
    started_at: str = field(default_factory=now_iso)
    last_behaviour: Behaviour | None = None
    next_at: float = 0.0


def condition(
    kind: str, status: bool | str, reason: str | None = None, message: str | None = None, now: str | None = None
) -> JsonObj:
    value = status if isinstance(status, str) else ("True" if status else "False")
    cond: JsonObj = {"type": kind, "status": value, "lastProbeTime": None, "lastTransitionTime": now or now_iso()}
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    return cond


def keep_transition_times(old: JsonObj, new: JsonObj) -> JsonObj:
    """Keep ``lastTransitionTime`` of conditions whose status did not change (as Kubernetes does),
    so re-evaluating an unchanged pod produces an identical status and no write."""
    before = {c["type"]: c for c in old.get("conditions", [])}
    for c in new.get("conditions", []):
        prev = before.get(c["type"])
        if prev is not None and prev.get("status") == c.get("status"):
            c["lastTransitionTime"] = prev.get("lastTransitionTime")
    return new


def container_status(
    spec: JsonObj, *, state: JsonObj, ready: bool, restarts: int, last_state: JsonObj | None = None
) -> JsonObj:
    return {
        "name": spec["name"],
        "image": spec.get("image", ""),
        "imageID": "",
        "containerID": f"containerd://{abs(hash((spec['name'], restarts))):016x}",
        "ready": ready,
        "started": "running" in state,
        "restartCount": restarts,
        "state": state,
        "lastState": last_state or {},
    }


def pod_status(
    pod: JsonObj,
    sim: PodSim,
    behaviour: Behaviour,
    *,
    node_ready: bool,
    node_count: int,
    pod_ip: str,
    host_ip: str,
    pull_error: str = "not_found",
) -> tuple[JsonObj, list[tuple[str, str, str]], bool]:
    """Advance ``sim`` by one step; return (status, events to record, keep stepping).

    Events are (reason, message, source component); the caller dedups and counts them."""
    name = pod["metadata"]["name"]
    ns = pod["metadata"].get("namespace", "")
    containers = pod.get("spec", {}).get("containers", [])
    c0 = containers[0] if containers else {"name": "app", "image": ""}
    now = now_iso()
    base: JsonObj = {
        "hostIP": host_ip,
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": sim.started_at,
        "qosClass": "Burstable",
    }
    events: list[tuple[str, str, str]] = []
    sim.step += 1
    running = {"running": {"startedAt": sim.started_at}}
    scheduled = condition("PodScheduled", True)

    def ready_conditions(ready: bool, reason: str | None = None) -> list[JsonObj]:
        message = None if ready else f"containers with unready status: [{c0['name']}]"
        return [
            condition("Initialized", True),
            condition("ContainersReady", ready, reason, message),
            condition("Ready", ready, reason, message),
            scheduled,
        ]

    if behaviour in (Behaviour.CRASHLOOP, Behaviour.OOM):
        oom = behaviour == Behaviour.OOM
        if sim.step > 1:
            sim.restarts += 1
        last = (
            {
                "terminated": {
                    "exitCode": 137 if oom else 1,
                    "reason": "OOMKilled" if oom else "Error",
                    "startedAt": sim.started_at,
                    "finishedAt": now,
                }
            }
            if sim.restarts
            else None
        )
        if sim.restarts:
            delay = 10 * 2 ** min(sim.restarts - 1, 5)
            state: JsonObj = {
                "waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": (f"back-off {delay}s restarting failed container={c0['name']} pod={name}_{ns}"),
                }
            }
            events.append(
                ("BackOff", f"Back-off restarting failed container {c0['name']} in pod {name}_{ns}", "kubelet")
            )
        else:
            state = running
        statuses = [
            container_status(c, state=state, ready=not sim.restarts, restarts=sim.restarts, last_state=last)
            if c is c0
            else container_status(c, state=running, ready=True, restarts=0)
            for c in containers
        ]
        ok = not sim.restarts
        status = {
            **base,
            "phase": "Running",
            "containerStatuses": statuses,
            "conditions": ready_conditions(ok, None if ok else "ContainersNotReady"),
        }
        return status, events, True
    if behaviour == Behaviour.IMAGE_PULL:
        image = c0.get("image", "")
        first = image.split("/", 1)[0]
        ref = (
            image
            if "/" in image and ("." in first or ":" in first)
            else (f"docker.io/{image}" if "/" in image else f"docker.io/library/{image}")
        )
        pulling_error = sim.step % 2 == 1
        reason = "ErrImagePull" if pulling_error else "ImagePullBackOff"
        if pulling_error:
            detail = f'failed to pull and unpack image "{ref}": failed to resolve reference "{ref}": {ref}: not found'
            if pull_error == "unauthorized":
                detail = (
                    f'failed to pull and unpack image "{ref}": failed to authorize: '
                    "failed to fetch anonymous token: unexpected status: 401 Unauthorized"
                )
            code = "Unknown" if pull_error == "unauthorized" else "NotFound"
            message = f"rpc error: code = {code} desc = {detail}"
            events.append(("Failed", f'Failed to pull image "{image}": {message}', "kubelet"))
            events.append(("Failed", "Error: ErrImagePull", "kubelet"))
        else:
            message = f'Back-off pulling image "{image}"'
            events.append(("BackOff", f'Back-off pulling image "{image}"', "kubelet"))
            events.append(("Failed", "Error: ImagePullBackOff", "kubelet"))
        statuses = [
            container_status(c, state={"waiting": {"reason": reason, "message": message}}, ready=False, restarts=0)
            for c in containers
        ]
        return (
            {
                **base,
                "phase": "Pending",
                "conditions": ready_conditions(False, "ContainersNotReady"),
                "containerStatuses": statuses,
            },
            events,
            True,
        )
    if behaviour in (Behaviour.UNSCHEDULABLE, Behaviour.PVC_PENDING):
        if behaviour == Behaviour.UNSCHEDULABLE:
            message = (
                f"0/{node_count} nodes are available: {node_count} Insufficient memory. preemption: "
                f"0/{node_count} nodes are available: {node_count} No preemption victims found for "
                "incoming pod."
            )
        else:
            n = node_count
            message = (
                f"0/{n} nodes are available: pod has unbound immediate PersistentVolumeClaims. preemption: "
                f"0/{n} nodes are available: {n} Preemption is not helpful for scheduling."
            )
        events.append(("FailedScheduling", message, "default-scheduler"))
        return (
            {
                "phase": "Pending",
                "qosClass": "Burstable",
                "conditions": [condition("PodScheduled", False, "Unschedulable", message)],
            },
            events,
            False,
        )
    if behaviour == Behaviour.PROBE_FAILURE:
        events.append(("Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: 503", "kubelet"))
        statuses = [container_status(c, state=running, ready=False, restarts=0) for c in containers]
        return (
            {
                **base,
                "phase": "Running",
                "conditions": ready_conditions(False, "ContainersNotReady"),
                "containerStatuses": statuses,
            },
            events,
            True,
        )
    if behaviour == Behaviour.JOB_FAIL or pod.get("spec", {}).get("restartPolicy") == "Never":
        # Job pods: run once, then end (Failed for job_fail, Succeeded otherwise).
        if sim.step == 1:
            statuses = [container_status(c, state=running, ready=True, restarts=0) for c in containers]
            return (
                {**base, "phase": "Running", "conditions": ready_conditions(True), "containerStatuses": statuses},
                events,
                True,
            )
        failed = behaviour == Behaviour.JOB_FAIL
        end = {
            "terminated": {
                "exitCode": 1 if failed else 0,
                "reason": "Error" if failed else "Completed",
                "startedAt": sim.started_at,
                "finishedAt": now,
            }
        }
        statuses = [container_status(c, state=end, ready=False, restarts=0) for c in containers]
        conds = ready_conditions(False, "PodFailed" if failed else "PodCompleted")
        return (
            {**base, "phase": "Failed" if failed else "Succeeded", "conditions": conds, "containerStatuses": statuses},
            events,
            False,
        )
    # Healthy (or a healthy pod on a node that stopped reporting).
    statuses = [container_status(c, state=running, ready=node_ready, restarts=sim.restarts) for c in containers]
    conds = ready_conditions(node_ready, None if node_ready else "NodeNotReady")
    return {**base, "phase": "Running", "conditions": conds, "containerStatuses": statuses}, events, False


def node_object(name: str, memory: str, cpu: str, index: int) -> JsonObj:
    return {
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "node-role.kubernetes.io/worker": "",
            },
        },
        "spec": {"podCIDR": f"10.244.{index}.0/24"},
        "status": {
            "capacity": {"cpu": cpu, "memory": memory, "pods": "110"},
            "allocatable": {"cpu": cpu, "memory": memory, "pods": "110"},
            "addresses": [
                {"type": "InternalIP", "address": f"192.168.0.{10 + index}"},
                {"type": "Hostname", "address": name},
            ],
            "nodeInfo": {
                "kubeletVersion": "v1.30.0",
                "kubeProxyVersion": "v1.30.0",
                "containerRuntimeVersion": "containerd://1.7.0",
                "kernelVersion": "6.1.0",
                "osImage": "Sandbox Linux",
                "architecture": "amd64",
                "operatingSystem": "linux",
                "bootID": f"boot-{index}",
                "machineID": f"machine-{index}",
                "systemUUID": f"uuid-{index}",
            },
            "conditions": node_conditions("Ready"),
        },
    }


def node_conditions(state: str, old: list[JsonObj] | None = None) -> list[JsonObj]:
    """Node conditions for a state: Ready, NotReady, Unknown, MemoryPressure, DiskPressure."""
    unknown = state == "Unknown"
    pressure = {"MemoryPressure": state == "MemoryPressure", "DiskPressure": state == "DiskPressure"}
    conds = []
    for kind in ("MemoryPressure", "DiskPressure", "PIDPressure"):
        if unknown:
            conds.append(condition(kind, "Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status."))
        elif pressure.get(kind):
            conds.append(condition(kind, True, f"KubeletHas{kind}", f"kubelet has {kind.lower()}"))
        else:
            conds.append(
                condition(
                    kind,
                    False,
                    f"KubeletHasNo{kind.replace('Pressure', '')}Pressure",
                    f"kubelet has sufficient {kind.replace('Pressure', '').lower()}",
                )
            )
    if unknown:
        conds.append(condition("Ready", "Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status."))
    elif state == "NotReady":
        conds.append(
            condition("Ready", False, "KubeletNotReady", "container runtime network not ready: NetworkReady=false")
        )
    else:
        conds.append(condition("Ready", True, "KubeletReady", "kubelet is posting ready status"))
    if old:
        keep_transition_times({"conditions": old}, {"conditions": conds})
    return copy.deepcopy(conds)
