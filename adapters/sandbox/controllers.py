"""Workload controllers of the sandbox: Deployment, ReplicaSet, StatefulSet, Job, Endpoints, GC.

Split from :mod:`adapters.sandbox.simulator` (which owns the loop and the kubelet) so each
stays readable. Controllers only write through the store, like real controllers write
through the API server, so every change they make is seen by watches.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
from dataclasses import dataclass

from adapters.sandbox.emulator import LogBook
from adapters.sandbox.kubelet import PodSim, condition, keep_transition_times
from adapters.sandbox.scenario import Behaviour, WorkloadSpec
from adapters.sandbox.store import ApiError, JsonObj, ObjectStore, now_iso

_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


@dataclass
class WorkloadSim:
    spec: WorkloadSpec
    behaviour: Behaviour
    active_at: float
    fixed_at: float | None = None
    first_uid: str | None = None
    restarted_at: str | None = None


def owner_ref(obj: JsonObj) -> JsonObj:
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def controller_uid(obj: JsonObj) -> str | None:
    for ref in obj.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller"):
            uid: str = ref["uid"]
            return uid
    return None


def template_hash(template: JsonObj) -> str:
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()
    return "".join(_ALPHABET[b % len(_ALPHABET)] for b in digest[:10])


def is_ready(pod: JsonObj) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in pod.get("status", {}).get("conditions", [])
    )


class Controllers:
    """The controller half of :class:`~adapters.sandbox.simulator.Simulator` (a mixin)."""

    store: ObjectStore
    logs: LogBook
    rng: random.Random
    workloads: dict[tuple[str, str, str], WorkloadSim]
    pods: dict[tuple[str, str], PodSim]
    _owned: dict[str, list[JsonObj]]
    _own_deletes: set[tuple[str, str, str]]
    _events: dict[tuple[str, str, str, str], str]

    def now(self) -> float:
        raise NotImplementedError

    def _reconcile_deployment(self, dep: JsonObj) -> None:
        meta, spec = dep["metadata"], dep.get("spec", {})
        ns, uid = meta["namespace"], meta["uid"]
        template = spec.get("template", {})
        phash = template_hash(template)
        owned = self._owned.get(uid, [])
        current = next((rs for rs in owned if rs["metadata"]["name"] == f"{meta['name']}-{phash}"), None)
        desired = int(spec.get("replicas", 1))
        if current is None:
            revision = 1 + max(
                (
                    int(rs["metadata"].get("annotations", {}).get("deployment.kubernetes.io/revision", "0"))
                    for rs in owned
                ),
                default=0,
            )
            labels = {**(template.get("metadata", {}).get("labels") or {}), "pod-template-hash": phash}
            rs_template = copy.deepcopy(template)
            rs_template.setdefault("metadata", {})["labels"] = labels
            selector = {**(spec.get("selector", {}).get("matchLabels") or {}), "pod-template-hash": phash}
            self.store.create(
                "replicasets",
                {
                    "metadata": {
                        "name": f"{meta['name']}-{phash}",
                        "namespace": ns,
                        "labels": labels,
                        "annotations": {
                            "deployment.kubernetes.io/revision": str(revision),
                            "deployment.kubernetes.io/desired-replicas": str(desired),
                        },
                        "ownerReferences": [owner_ref(dep)],
                    },
                    "spec": {"replicas": desired, "selector": {"matchLabels": selector}, "template": rs_template},
                    "status": {"replicas": 0},
                },
            )
        elif current["spec"].get("replicas") != desired:
            self.store.replace("replicasets", {**current, "spec": {**current["spec"], "replicas": desired}})
        for rs in owned:
            if rs is not current and rs["spec"].get("replicas", 0) != 0:
                self.store.replace("replicasets", {**rs, "spec": {**rs["spec"], "replicas": 0}})

    def _deployment_status(self, dep: JsonObj) -> None:
        meta, spec = dep["metadata"], dep.get("spec", {})
        owned = self._owned.get(meta["uid"], [])
        phash = template_hash(spec.get("template", {}))
        desired = int(spec.get("replicas", 1))
        total = sum(rs.get("status", {}).get("replicas", 0) for rs in owned)
        ready = sum(rs.get("status", {}).get("readyReplicas", 0) for rs in owned)
        updated = sum(rs.get("status", {}).get("replicas", 0) for rs in owned if rs["metadata"]["name"].endswith(phash))
        available = ready >= desired
        status = {
            "observedGeneration": meta.get("generation", 1),
            "replicas": total,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "unavailableReplicas": max(desired - ready, 0),
            "conditions": [
                condition(
                    "Available",
                    available,
                    "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
                    "Deployment has minimum availability."
                    if available
                    else "Deployment does not have minimum availability.",
                ),
                condition(
                    "Progressing",
                    True,
                    "NewReplicaSetAvailable" if available else "ReplicaSetUpdated",
                    f'ReplicaSet "{meta["name"]}-{phash}" has successfully progressed.'
                    if available
                    else f'ReplicaSet "{meta["name"]}-{phash}" is progressing.',
                ),
            ],
        }
        for key in ("readyReplicas", "availableReplicas", "unavailableReplicas"):
            if not status[key]:
                del status[key]
        self._write_status("deployments", dep, status)

    def _reconcile_replicaset(self, rs: JsonObj) -> None:
        meta, spec = rs["metadata"], rs.get("spec", {})
        pods = self._owned.get(meta["uid"], [])
        desired = int(spec.get("replicas", 0))
        for _ in range(desired - len(pods)):
            name = f"{meta['name']}-{''.join(self.rng.choice(_ALPHABET) for _ in range(5))}"
            self._create_pod(rs, name, spec.get("template", {}))
        if len(pods) > desired:
            for pod in sorted(pods, key=lambda p: p["metadata"]["creationTimestamp"], reverse=True)[
                : len(pods) - desired
            ]:
                self._delete("pods", pod)
            pods = [p for p in pods if self.store.get("pods", meta["namespace"], p["metadata"]["name"])]
        ready = sum(1 for p in pods if is_ready(p))
        status: JsonObj = {
            "replicas": len(pods),
            "fullyLabeledReplicas": len(pods),
            "observedGeneration": meta.get("generation", 1),
        }
        if ready:
            status.update(readyReplicas=ready, availableReplicas=ready)
        self._write_status("replicasets", rs, status)

    def _reconcile_statefulset(self, sts: JsonObj) -> None:
        meta, spec = sts["metadata"], sts.get("spec", {})
        revision = f"{meta['name']}-{template_hash(spec.get('template', {}))}"
        desired = int(spec.get("replicas", 1))
        pods = {p["metadata"]["name"]: p for p in self._owned.get(meta["uid"], [])}
        for i in range(desired):
            name = f"{meta['name']}-{i}"
            pod = pods.get(name)
            if pod is not None and pod["metadata"].get("labels", {}).get("controller-revision-hash") != revision:
                self._delete("pods", pod)
                pod = None
            if pod is None:
                template = copy.deepcopy(spec.get("template", {}))
                labels = template.setdefault("metadata", {}).setdefault("labels", {})
                labels.update({"controller-revision-hash": revision, "statefulset.kubernetes.io/pod-name": name})
                self._create_pod(sts, name, template)
        for name, pod in pods.items():
            if int(name.rsplit("-", 1)[-1]) >= desired:
                self._delete("pods", pod)
        live = list(pods.values())
        ready = sum(1 for p in live if is_ready(p))
        status: JsonObj = {
            "replicas": len(live),
            "currentReplicas": len(live),
            "updatedReplicas": len(live),
            "currentRevision": revision,
            "updateRevision": revision,
            "observedGeneration": meta.get("generation", 1),
            "availableReplicas": ready,
        }
        if ready:
            status["readyReplicas"] = ready
        self._write_status("statefulsets", sts, status)

    def _reconcile_job(self, job: JsonObj) -> None:
        meta, spec, status = job["metadata"], job.get("spec", {}), job.get("status", {})
        if any(
            c.get("type") in ("Complete", "Failed") and c.get("status") == "True" for c in status.get("conditions", [])
        ):
            return
        wl = self.workloads.get(("Job", meta["namespace"], meta["name"]))
        if wl is not None and wl.first_uid is None:
            wl.first_uid = meta["uid"]
        pods = self._owned.get(meta["uid"], [])
        failed = sum(1 for p in pods if p.get("status", {}).get("phase") == "Failed")
        succeeded = sum(1 for p in pods if p.get("status", {}).get("phase") == "Succeeded")
        active = len(pods) - failed - succeeded
        new: JsonObj = {"startTime": status.get("startTime", now_iso()), "uncountedTerminatedPods": {}}
        if succeeded:
            new.update(succeeded=succeeded, completionTime=now_iso(), conditions=[condition("Complete", True)])
        elif failed > int(spec.get("backoffLimit", 6)):
            message = "Job has reached the specified backoff limit"
            new.update(
                conditions=[
                    condition("FailureTarget", True, "BackoffLimitExceeded", message),
                    condition("Failed", True, "BackoffLimitExceeded", message),
                ]
            )
            self._event(job, "BackoffLimitExceeded", message, "job-controller")
        elif active == 0:
            name = f"{meta['name']}-{''.join(self.rng.choice(_ALPHABET) for _ in range(5))}"
            template = copy.deepcopy(spec.get("template", {}))
            labels = template.setdefault("metadata", {}).setdefault("labels", {})
            labels.update(
                {"job-name": meta["name"], "batch.kubernetes.io/job-name": meta["name"], "controller-uid": meta["uid"]}
            )
            self._create_pod(job, name, template)
            active = 1
        if active and "conditions" not in new:
            new["active"] = active
        if failed:
            new["failed"] = failed
        self._write_status("jobs", job, new)

    def _reconcile_endpoints(self, ep: JsonObj) -> None:
        svc = self.store.get("services", ep["metadata"]["namespace"], ep["metadata"]["name"])
        if svc is None:
            return
        selector = svc.get("spec", {}).get("selector") or {}
        pods = [
            p
            for p in self.store.list("pods", ep["metadata"]["namespace"])
            if selector and all(p["metadata"].get("labels", {}).get(k) == v for k, v in selector.items())
        ]
        ready = [
            {
                "ip": p["status"]["podIP"],
                "targetRef": {"kind": "Pod", "name": p["metadata"]["name"], "namespace": p["metadata"]["namespace"]},
            }
            for p in pods
            if is_ready(p) and p.get("status", {}).get("podIP")
        ]
        subsets = [{"addresses": ready, "ports": [{"port": 8080, "protocol": "TCP"}]}] if ready else []
        if ep.get("subsets") != subsets:
            self.store.replace("endpoints", {**ep, "subsets": subsets})

    def _garbage_collect(self) -> None:
        uids = {
            o["metadata"]["uid"]
            for plural in ("deployments", "replicasets", "statefulsets", "jobs")
            for o in self.store.iter_all(plural)
        }
        namespaces = {o["metadata"]["name"] for o in self.store.iter_all("namespaces")}
        for plural in ("replicasets", "pods", "events", "services", "endpoints", "persistentvolumeclaims"):
            for obj in self.store.list(plural):
                owner = controller_uid(obj)
                if (owner is not None and owner not in uids) or obj["metadata"].get("namespace") not in namespaces:
                    self._delete(plural, obj)

    def _create_pod(self, owner: JsonObj, name: str, template: JsonObj) -> None:
        ns = owner["metadata"]["namespace"]
        pod_spec = copy.deepcopy(template.get("spec", {}))
        if owner["kind"] == "Job":
            pod_spec.setdefault("restartPolicy", "Never")
        pod = {
            "metadata": {
                "name": name,
                "namespace": ns,
                "labels": dict(template.get("metadata", {}).get("labels") or {}),
                "annotations": dict(template.get("metadata", {}).get("annotations") or {}),
                "ownerReferences": [owner_ref(owner)],
            },
            "spec": pod_spec,
            "status": {"phase": "Pending", "qosClass": "Burstable"},
        }
        workload = self._workload_of(owner)
        self.pods[(ns, name)] = PodSim(workload=workload, created=self.now())
        self.store.create("pods", pod)

    def _workload_of(self, owner: JsonObj) -> tuple[str, str, str] | None:
        if owner["kind"] == "ReplicaSet":
            for ref in owner["metadata"].get("ownerReferences") or []:
                if ref.get("kind") == "Deployment":
                    return ("Deployment", owner["metadata"]["namespace"], ref["name"])
            return None
        return (owner["kind"], owner["metadata"]["namespace"], owner["metadata"]["name"])

    def _event(self, obj: JsonObj, reason: str, message: str, source: str, kind: str = "Warning") -> None:
        meta = obj["metadata"]
        ns = meta.get("namespace") or "default"
        key = (ns, meta.get("uid", meta["name"]), reason, message)
        now = now_iso()
        existing_name = self._events.get(key)
        existing = self.store.get("events", ns, existing_name) if existing_name else None
        if existing is not None:
            self.store.replace("events", {**existing, "count": existing.get("count", 1) + 1, "lastTimestamp": now})
            return
        name = f"{meta['name']}.{self.rng.getrandbits(64):016x}"
        self._events[key] = name
        if self.store.get("namespaces", None, ns) is None:
            return
        self.store.create(
            "events",
            {
                "metadata": {"name": name, "namespace": ns},
                "involvedObject": {
                    "kind": obj.get("kind", ""),
                    "namespace": meta.get("namespace"),
                    "name": meta["name"],
                    "uid": meta.get("uid"),
                    "apiVersion": obj.get("apiVersion"),
                    "resourceVersion": meta.get("resourceVersion"),
                },
                "reason": reason,
                "message": message,
                "type": kind,
                "count": 1,
                "firstTimestamp": now,
                "lastTimestamp": now,
                "source": {"component": source},
                "reportingComponent": source,
            },
        )

    def _ensure(self, plural: str, obj: JsonObj) -> None:
        meta = obj["metadata"]
        if self.store.get(plural, meta.get("namespace"), meta["name"]) is None:
            self.store.create(plural, obj)

    def _delete(self, plural: str, obj: JsonObj) -> None:
        meta = obj["metadata"]
        self._own_deletes.add((plural, meta.get("namespace", ""), meta["name"]))
        try:
            self.store.delete(plural, meta.get("namespace"), meta["name"])
        except ApiError:
            self._own_deletes.discard((plural, meta.get("namespace", ""), meta["name"]))

    def _write_status(self, plural: str, obj: JsonObj, status: JsonObj) -> None:
        keep_transition_times(obj.get("status", {}), status)
        if obj.get("status") != status:
            self.store.replace(plural, {**obj, "status": status})
