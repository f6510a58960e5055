"""Builders of Kubernetes API JSON (camelCase dicts, as the API serves them) for RCA scenarios.

Only the fields the real API fills are used, with their real names and shapes, so a
scenario reads like ``kubectl get -o json`` output and the RCA core sees no test-only
conveniences.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

NOW = datetime(2026, 11, 5, 12, 0, 0, tzinfo=UTC)
NS = "production"


def ts(seconds_ago: float) -> str:
    return (NOW - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def probe(path: str = "/healthz", *, delay: int = 0, period: int = 10, threshold: int = 3) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": 8080, "scheme": "HTTP"},
        "initialDelaySeconds": delay,
        "periodSeconds": period,
        "failureThreshold": threshold,
        "timeoutSeconds": 1,
        "successThreshold": 1,
    }


def container(
    name: str = "api",
    image: str = "registry.example.com/shop/api:1.4.2",
    *,
    limits: dict[str, str] | None = None,
    requests: dict[str, str] | None = None,
    env: list[dict[str, Any]] | None = None,
    command: list[str] | None = None,
    liveness: dict[str, Any] | None = None,
    readiness: dict[str, Any] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"containerPort": 8080, "protocol": "TCP"}],
        "resources": {
            **({"limits": limits} if limits else {}),
            **({"requests": requests} if requests else {}),
        },
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
    }
    if env:
        spec["env"] = env
    if command:
        spec["command"] = command
    if liveness:
        spec["livenessProbe"] = liveness
    if readiness:
        spec["readinessProbe"] = readiness
    return spec


def terminated(
    reason: str, exit_code: int, *, ran: float = 30, ago: float = 60, message: str | None = None
) -> dict[str, Any]:
    state: dict[str, Any] = {
        "reason": reason,
        "exitCode": exit_code,
        "startedAt": ts(ago + ran),
        "finishedAt": ts(ago),
        "containerID": "containerd://" + "ab" * 32,
    }
    if message:
        state["message"] = message
    return state


def status(
    name: str = "api",
    image: str = "registry.example.com/shop/api:1.4.2",
    *,
    waiting: str | None = None,
    waiting_message: str | None = None,
    running_ago: float | None = None,
    term: dict[str, Any] | None = None,
    last: dict[str, Any] | None = None,
    restarts: int = 0,
    ready: bool = False,
) -> dict[str, Any]:
    state: dict[str, Any]
    if waiting:
        state = {"waiting": {"reason": waiting, **({"message": waiting_message} if waiting_message else {})}}
    elif term:
        state = {"terminated": term}
    else:
        state = {"running": {"startedAt": ts(running_ago if running_ago is not None else 600)}}
    return {
        "name": name,
        "image": image,
        "imageID": "",
        "ready": ready,
        "started": "running" in state,
        "restartCount": restarts,
        "state": state,
        "lastState": {"terminated": last} if last else {},
    }


def pod(
    name: str,
    *,
    namespace: str = NS,
    containers: list[dict[str, Any]] | None = None,
    statuses: list[dict[str, Any]] | None = None,
    phase: str = "Running",
    labels: dict[str, str] | None = None,
    owner: tuple[str, str] | None = ("ReplicaSet", "api-7d9f8c6b5"),
    node: str | None = "worker-1",
    started_ago: float = 4 * 3600 + 120,
    ready: bool = False,
    scheduled: tuple[str, str] | None = None,
    reason: str | None = None,
    message: str | None = None,
    volumes: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "uid": f"uid-{name}",
        "resourceVersion": "48213",
        "creationTimestamp": ts(started_ago + 5),
        "labels": labels if labels is not None else {"app": "api", "pod-template-hash": "7d9f8c6b5"},
        "managedFields": [{"manager": "kube-controller-manager", "operation": "Update", "fieldsV1": {"f:x": {}}}],
    }
    if owner:
        metadata["ownerReferences"] = [
            {"apiVersion": "apps/v1", "kind": owner[0], "name": owner[1], "uid": f"uid-{owner[1]}", "controller": True}
        ]
    spec: dict[str, Any] = {
        "containers": containers or [container()],
        "restartPolicy": "Always",
        "serviceAccountName": "default",
    }
    if node:
        spec["nodeName"] = node
    if volumes:
        spec["volumes"] = volumes
    conditions: list[dict[str, Any]] = []
    if scheduled is not None:
        conditions.append(
            {"type": "PodScheduled", "status": "False", "reason": scheduled[0], "message": scheduled[1],
             "lastTransitionTime": ts(300)}
        )
    else:
        conditions.append({"type": "PodScheduled", "status": "True", "lastTransitionTime": ts(started_ago)})
        conditions.append({"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": ts(300)})
    pod_status: dict[str, Any] = {"phase": phase, "conditions": conditions, "qosClass": "Burstable"}
    if scheduled is None:
        pod_status["startTime"] = ts(started_ago)
        pod_status["hostIP"] = "10.0.0.11"
        pod_status["podIP"] = "10.244.1.17"
        pod_status["containerStatuses"] = statuses if statuses is not None else [status(ready=ready)]
    if reason:
        pod_status["reason"] = reason
    if message:
        pod_status["message"] = message
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec, "status": pod_status}


def event(
    kind: str,
    name: str,
    reason: str,
    message: str,
    *,
    namespace: str = NS,
    type_: str = "Warning",
    count: int = 1,
    ago: float = 60,
    field_path: str | None = None,
) -> dict[str, Any]:
    involved: dict[str, Any] = {"kind": kind, "name": name, "namespace": namespace, "apiVersion": "v1"}
    if field_path:
        involved["fieldPath"] = field_path
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{name}.{reason.lower()}{int(ago)}", "namespace": namespace},
        "involvedObject": involved,
        "reason": reason,
        "message": message,
        "type": type_,
        "count": count,
        "firstTimestamp": ts(ago + 600),
        "lastTimestamp": ts(ago),
        "source": {"component": "kubelet"},
    }


def deployment(name: str = "api", *, namespace: str = NS, replicas: int = 3, ready: int = 0) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}", "generation": 5,
                     "annotations": {"deployment.kubernetes.io/revision": "5",
                                     "kubectl.kubernetes.io/last-applied-configuration": "{\"big\": true}"}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container()]}}},
        "status": {"observedGeneration": 5, "replicas": replicas, "readyReplicas": ready,
                   "availableReplicas": ready, "unavailableReplicas": replicas - ready},
    }


def replicaset(
    name: str,
    *,
    revision: int,
    template_hash: str,
    containers: list[dict[str, Any]],
    deployment_name: str = "api",
    namespace: str = NS,
    replicas: int = 1,
    ready: int = 0,
) -> dict[str, Any]:
    labels = {"app": deployment_name, "pod-template-hash": template_hash}
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "annotations": {"deployment.kubernetes.io/revision": str(revision)},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment_name,
                                 "uid": f"uid-{deployment_name}", "controller": True}],
        },
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels}, "spec": {"containers": containers}}},
        "status": {"replicas": replicas, "readyReplicas": ready, "availableReplicas": ready},
    }


def node(name: str = "worker-1", *, ready: str = "True", message: str = "kubelet is posting ready status",
         pressure: str | None = None) -> dict[str, Any]:
    conditions = [
        {"type": kind, "status": "True" if kind == pressure else "False", "reason": f"KubeletHasNo{kind}",
         "message": f"kubelet has no {kind.lower()}"}
        for kind in ("MemoryPressure", "DiskPressure", "PIDPressure")
    ]
    conditions.append({"type": "Ready", "status": ready,
                       "reason": "KubeletReady" if ready == "True" else "NodeStatusUnknown", "message": message,
                       "lastHeartbeatTime": ts(30 if ready == "True" else 900)})
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "spec": {}, "status": {"conditions": conditions,
                                   "allocatable": {"cpu": "4", "memory": "15Gi", "pods": "110"}}}


def pvc(name: str, *, namespace: str = NS, phase: str = "Pending", storage_class: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}},
                            "volumeMode": "Filesystem"}
    if storage_class:
        spec["storageClassName"] = storage_class
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec, "status": {"phase": phase}}


def service(name: str, selector: dict[str, str], *, namespace: str = NS) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace},
            "spec": {"selector": selector, "ports": [{"port": 5432, "targetPort": 5432, "protocol": "TCP"}],
                     "type": "ClusterIP", "clusterIP": "10.96.14.2"}}


def endpoints(name: str, ready_ips: list[str], *, namespace: str = NS) -> dict[str, Any]:
    subsets = [{"addresses": [{"ip": ip} for ip in ready_ips], "ports": [{"port": 5432}]}] if ready_ips else []
    return {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name, "namespace": namespace},
            **({"subsets": subsets} if subsets else {})}
