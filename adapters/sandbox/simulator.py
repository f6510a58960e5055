"""The controllers and kubelet of the sandbox cluster, as one asyncio task.

kmock (and our store) only keep objects; nothing reacts to them. A platform that deletes a
crash-looping pod expects a ReplicaSet to replace it, a rollout restart to roll a new
ReplicaSet, a raised memory limit to end OOM kills. This module plays those parts, just
enough for detection and remediation to be tested: Deployment -> ReplicaSet -> Pod,
StatefulSet -> Pod, Job -> Pod, garbage collection by ownerReferences, Endpoints, a
round-robin scheduler, a kubelet that follows each workload's scenario behaviour, Events,
and node condition changes on a timeline.

It writes through the same store the API serves, so every change is visible to watches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random

from adapters.sandbox.controllers import Controllers, WorkloadSim, controller_uid
from adapters.sandbox.emulator import LogBook
from adapters.sandbox.kubelet import PodSim, keep_transition_times, node_conditions, node_object, pod_status
from adapters.sandbox.scenario import Behaviour, Fix, Scenario, WorkloadSpec, memory_bytes
from adapters.sandbox.store import ApiError, Change, JsonObj, ObjectStore

log = logging.getLogger(__name__)
_WORKLOAD_PLURAL = {"Deployment": "deployments", "StatefulSet": "statefulsets", "Job": "jobs"}


class Simulator(Controllers):
    """Reconciles the store toward the scenario; call :meth:`start` on the sandbox's loop."""

    def __init__(self, store: ObjectStore, logs: LogBook, *, tick: float = 0.05, seed: int = 0) -> None:
        self.store = store
        self.logs = logs
        self.tick = tick
        self.rng = random.Random(seed)  # noqa: S311 - names, not secrets
        self.scenario: Scenario | None = None
        self.workloads: dict[tuple[str, str, str], WorkloadSim] = {}
        self.pods: dict[tuple[str, str], PodSim] = {}
        self.node_state: dict[str, str] = {}
        self.t0 = 0.0
        self._dirty = asyncio.Event()
        self._own_deletes: set[tuple[str, str, str]] = set()
        self._events: dict[tuple[str, str, str, str], str] = {}
        self._task: asyncio.Task[None] | None = None
        self._pending_node_events: list[tuple[float, str, str]] = []
        self._ip = 10
        self._owned: dict[str, list[JsonObj]] = {}
        store.add_listener(self._on_change)

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="sandbox-simulator")

    async def stop(self) -> None:
        self.store.remove_listener(self._on_change)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def apply(self, scenario: Scenario) -> None:
        """Create the scenario's namespaces, nodes and workloads (idempotent per name)."""
        self.scenario = scenario
        self.t0 = self.now()
        for ns in ["default", "kube-system", *scenario.namespaces]:
            self._ensure(
                "namespaces",
                {
                    "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}},
                    "spec": {"finalizers": ["kubernetes"]},
                    "status": {"phase": "Active"},
                },
            )
        for i, node in enumerate(scenario.nodes, start=1):
            self._ensure("nodes", node_object(node.name, node.memory, node.cpu, i))
            self.node_state.setdefault(node.name, "Ready")
        for w in scenario.workloads:
            self.workloads[(w.kind, w.namespace, w.name)] = WorkloadSim(w, w.behaviour, self.t0 + w.after_seconds)
            self._ensure(_WORKLOAD_PLURAL[w.kind], self._workload_object(w))
            if w.service:
                self._ensure(
                    "services",
                    {
                        "metadata": {"name": w.name, "namespace": w.namespace},
                        "spec": {
                            "selector": {"app": w.name},
                            "type": "ClusterIP",
                            "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}],
                        },
                    },
                )
                self._ensure("endpoints", {"metadata": {"name": w.name, "namespace": w.namespace}, "subsets": []})
            if w.behaviour == Behaviour.PVC_PENDING:
                self._ensure(
                    "persistentvolumeclaims",
                    {
                        "metadata": {"name": f"{w.name}-data", "namespace": w.namespace},
                        "spec": {
                            "accessModes": ["ReadWriteOnce"],
                            "storageClassName": "fast-ssd",
                            "resources": {"requests": {"storage": "10Gi"}},
                        },
                        "status": {"phase": "Pending"},
                    },
                )
        self._pending_node_events = sorted((self.t0 + e.at_seconds, e.node, e.condition) for e in scenario.node_events)
        self._dirty.set()

    def inject(self, namespace: str, name: str, behaviour: Behaviour) -> None:
        """Make a pod (by pod name) or a whole workload (by workload name) misbehave from now on."""
        now = self.now()
        sim = self.pods.get((namespace, name))
        if sim is not None:
            sim.override, sim.override_at, sim.step, sim.next_at = behaviour, now, 0, now
        else:
            matches = [k for k in self.workloads if k[1:] == (namespace, name)]
            if not matches:
                raise ApiError(404, "NotFound", f"no pod or scenario workload {namespace}/{name}")
            for key in matches:
                wl = self.workloads[key]
                wl.behaviour, wl.active_at, wl.fixed_at = behaviour, now, None
                for p in self.pods.values():
                    if p.workload == key:
                        p.step, p.next_at = 0, now
        self._dirty.set()

    # -- the loop --------------------------------------------------------------------------
    def _on_change(self, change: Change) -> None:
        meta = change.obj.get("metadata", {})
        key = (change.plural, meta.get("namespace", ""), meta.get("name", ""))
        if change.type == "DELETED":
            own = key in self._own_deletes
            self._own_deletes.discard(key)
            if change.plural == "pods":
                sim = self.pods.pop(key[1:], None)
                self.logs.forget(key[1], key[2])
                if not own and sim is not None and sim.workload in self.workloads:
                    wl = self.workloads[sim.workload]
                    if wl.spec.fix == Fix.RESTART:
                        wl.fixed_at = self.now()
        if change.type == "MODIFIED" and change.plural in ("deployments", "statefulsets"):
            wl_key = ("Deployment" if change.plural == "deployments" else "StatefulSet", key[1], key[2])
            annotations = change.obj.get("spec", {}).get("template", {}).get("metadata", {}).get("annotations") or {}
            restarted = annotations.get("kubectl.kubernetes.io/restartedAt")
            wl_sim = self.workloads.get(wl_key)
            if wl_sim is not None and restarted != wl_sim.restarted_at:
                wl_sim.restarted_at = restarted  # a rollout restart: the new pods are fresh
                if wl_sim.spec.fix == Fix.RESTART:
                    wl_sim.fixed_at = self.now()
        if change.plural != "events":
            self._dirty.set()

    async def _run(self) -> None:
        while True:
            try:
                self.reconcile()
            except Exception:
                log.exception("sandbox simulator pass failed; continuing")
            await self._sleep_until_due()

    async def _sleep_until_due(self) -> None:
        due = [p.next_at for p in self.pods.values()] + [t for t, _, _ in self._pending_node_events[:1]]
        wl_due = [w.active_at for w in self.workloads.values() if w.active_at > self.now()]
        wait = max(self.tick, min([*due, *wl_due], default=math.inf) - self.now())
        if self._dirty.is_set():  # the last pass wrote something: converge quickly
            await asyncio.sleep(self.tick)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._dirty.wait(), timeout=min(wait, 5.0))

    def reconcile(self) -> None:
        self._dirty.clear()
        now = self.now()
        while self._pending_node_events and self._pending_node_events[0][0] <= now:
            _, node, state = self._pending_node_events.pop(0)
            self._set_node(node, state)
        self._garbage_collect()
        self._owned = {}
        for plural in ("replicasets", "pods"):
            for obj in self.store.iter_all(plural):
                uid = controller_uid(obj)
                if uid is not None:
                    self._owned.setdefault(uid, []).append(obj)
        for dep in self.store.list("deployments"):
            self._reconcile_deployment(dep)
        for rs in self.store.list("replicasets"):
            self._reconcile_replicaset(rs)
        for sts in self.store.list("statefulsets"):
            self._reconcile_statefulset(sts)
        for job in self.store.list("jobs"):
            self._reconcile_job(job)
        for pod in self.store.list("pods"):
            self._kubelet(pod, now)
        for dep in self.store.list("deployments"):
            self._deployment_status(dep)
        for ep in self.store.list("endpoints"):
            self._reconcile_endpoints(ep)

    # -- kubelet and scheduler -------------------------------------------------------------
    def _behaviour(self, pod: JsonObj, sim: PodSim, now: float) -> Behaviour:
        if sim.override is not None:
            return sim.override
        wl = self.workloads.get(sim.workload) if sim.workload else None
        if wl is None or wl.behaviour == Behaviour.HEALTHY:
            return Behaviour.HEALTHY
        if now < wl.active_at:
            return Behaviour.HEALTHY
        containers = pod.get("spec", {}).get("containers") or [{}]
        c0 = containers[0]
        fix = wl.spec.fix
        if fix == Fix.RESTART and wl.fixed_at is not None and sim.created > wl.fixed_at:
            return Behaviour.HEALTHY
        if fix == Fix.IMAGE and c0.get("image") != wl.spec.image:
            return Behaviour.HEALTHY
        if fix == Fix.MEMORY:
            limit = memory_bytes(c0.get("resources", {}).get("limits", {}).get("memory", "0") or "0")
            threshold = wl.spec.threshold_bytes
            fixed = limit >= threshold if wl.behaviour == Behaviour.OOM else limit <= threshold
            if fixed:
                return Behaviour.HEALTHY
        if fix == Fix.RECREATE and wl.first_uid is not None and controller_uid(pod) != wl.first_uid:
            return Behaviour.HEALTHY
        return wl.behaviour

    def _kubelet(self, pod: JsonObj, now: float) -> None:
        meta = pod["metadata"]
        key = (meta["namespace"], meta["name"])
        sim = self.pods.get(key)
        if sim is None:  # a pod created through the API, not by a controller here
            sim = self.pods[key] = PodSim(workload=None, created=now)
        behaviour = self._behaviour(pod, sim, now)
        if behaviour != sim.last_behaviour:
            sim.last_behaviour, sim.step, sim.next_at = behaviour, 0, now
        if now < sim.next_at:
            return
        spec = pod.get("spec", {})
        node = spec.get("nodeName")
        scheduled = False
        if node is None and behaviour not in (Behaviour.UNSCHEDULABLE, Behaviour.PVC_PENDING):
            node = self._schedule()
            if node is None:
                sim.next_at = now + self._interval()
                return
            pod = {**pod, "spec": {**spec, "nodeName": node}}
            scheduled = True
            self._event(
                pod, "Scheduled", f"Successfully assigned {key[0]}/{key[1]} to {node}", "default-scheduler", "Normal"
            )
            self._ip += 1
        node_ready = self.node_state.get(node or "", "Ready") not in ("NotReady", "Unknown")
        wl = self.workloads.get(sim.workload) if sim.workload else None
        status, events, again = pod_status(
            pod,
            sim,
            behaviour,
            node_ready=node_ready,
            node_count=len(self.node_state) or 1,
            pod_ip=pod.get("status", {}).get("podIP") or f"10.244.{self._ip // 250}.{self._ip % 250}",
            host_ip="192.168.0.10",
            pull_error=wl.spec.pull_error if wl else "not_found",
        )
        lines = (wl.spec.logs if wl else []) or [f"starting {key[1]}", "listening on :8080"]
        containers = spec.get("containers") or []
        if (
            containers
            and sim.step == 1
            and behaviour not in (Behaviour.IMAGE_PULL, Behaviour.UNSCHEDULABLE, Behaviour.PVC_PENDING)
        ):
            for line in lines:
                self.logs.append(key[0], key[1], containers[0]["name"], line)
        elif containers and behaviour in (Behaviour.CRASHLOOP, Behaviour.OOM) and sim.step > 1:
            self.logs.rotate(key[0], key[1], containers[0]["name"])
            for line in lines:
                self.logs.append(key[0], key[1], containers[0]["name"], line)
        for reason, message, source in events:
            self._event(pod, reason, message, source)
        keep_transition_times(pod.get("status", {}), status)
        if status != pod.get("status") or scheduled:
            self.store.replace("pods", {**pod, "status": status})
        sim.next_at = now + self._interval() if again else math.inf

    def _interval(self) -> float:
        return self.scenario.restart_interval_seconds if self.scenario else 1.0

    def _schedule(self) -> str | None:
        ready = sorted(n for n, s in self.node_state.items() if s not in ("NotReady", "Unknown"))
        if not ready:
            return None
        return ready[self.rng.randrange(len(ready))]

    def _set_node(self, name: str, state: str) -> None:
        node = self.store.get("nodes", None, name)
        if node is None:
            return
        self.node_state[name] = state
        status = {**node["status"], "conditions": node_conditions(state, node["status"].get("conditions"))}
        taints = (
            [{"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"}]
            if state in ("NotReady", "Unknown")
            else []
        )
        spec = (
            {**node.get("spec", {}), "taints": taints}
            if taints
            else {k: v for k, v in node.get("spec", {}).items() if k != "taints"}
        )
        self.store.replace("nodes", {**node, "spec": spec, "status": status})
        reason = "NodeNotReady" if state in ("NotReady", "Unknown") else "NodeReady" if state == "Ready" else state
        self._event(
            node,
            reason,
            f"Node {name} status is now: {reason}",
            "node-controller",
            "Normal" if state == "Ready" else "Warning",
        )
        for pod in self.store.list("pods"):
            if pod.get("spec", {}).get("nodeName") == name:
                sim = self.pods.get((pod["metadata"]["namespace"], pod["metadata"]["name"]))
                if sim is not None:
                    sim.next_at = self.now()

    @staticmethod
    def _workload_object(w: WorkloadSpec) -> JsonObj:
        container: JsonObj = {
            "name": w.container,
            "image": w.image,
            "resources": {"limits": {"memory": w.memory_limit}, "requests": {"memory": w.memory_limit}},
            "ports": [{"containerPort": 8080, "protocol": "TCP"}],
        }
        if w.behaviour == Behaviour.PROBE_FAILURE:
            container["readinessProbe"] = {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 10}
        pod_spec: JsonObj = {"containers": [container], "restartPolicy": "Always"}
        if w.behaviour == Behaviour.PVC_PENDING:
            pod_spec["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": f"{w.name}-data"}}]
        labels = {"app": w.name}
        template = {"metadata": {"labels": labels}, "spec": pod_spec}
        meta = {"name": w.name, "namespace": w.namespace, "labels": labels}
        if w.kind == "Job":
            pod_spec["restartPolicy"] = "Never"
            return {
                "metadata": meta,
                "spec": {"backoffLimit": w.backoff_limit, "completions": 1, "parallelism": 1, "template": template},
            }
        spec: JsonObj = {"replicas": w.replicas, "selector": {"matchLabels": labels}, "template": template}
        if w.kind == "StatefulSet":
            spec["serviceName"] = w.name
        else:
            spec["strategy"] = {"type": "RollingUpdate"}
        return {"metadata": meta, "spec": spec}
