"""The catalogue's Kubernetes tools, mutations included, on top of :class:`adapters.kube.KubeClient`.

Every tool named in :data:`core.tools.TOOLS` is a method of :class:`KubeActions` with the
catalogue's parameter names, so the MCP server, the playbook executor and tests share one
implementation; :meth:`KubeActions.run` calls one by name with catalogue-checked params.
The reads and the guards live in :mod:`adapters.kube_reads` (namespace allow/deny, node
existence, kinds, redaction); this module adds what changes the cluster, done the way
``kubectl`` does it: rollout restart patches the ``kubectl.kubernetes.io/restartedAt``
template annotation, rollback copies the previous ReplicaSet's template back, cordon
patches ``spec.unschedulable``, drain cordons and deletes the node's pods except DaemonSet
and mirror pods (PodDisruptionBudgets are not consulted: the eviction subresource is not
served by every API server we run against), a failed Job is deleted with background
propagation (its pods go too) and optionally created again from its own spec.

Each method checks the namespace *before* it writes and reports what it changed.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping
from datetime import UTC
from typing import Any

from kubernetes import client as k8s

from adapters import kube_views as views
from adapters.kube import KubeNotFound
from adapters.kube_reads import (
    DEFAULT_TAIL_LINES,
    EVENT_KINDS,
    EXTRA_PARAMS,
    MAX_LOG_BYTES,
    MAX_TAIL_LINES,
    RESTARTED_AT,
    REVISION,
    ROLLOUT_KINDS,
    ActionRefused,
    JsonObj,
    KubeReads,
    NamespacePolicy,
    name_of,
    revision_of,
    template_without_hash,
)
from core.errors import InputError, TemporaryError
from core.tools import TOOLS, tool_problems

__all__ = [
    "DEFAULT_TAIL_LINES",
    "EVENT_KINDS",
    "EXTRA_PARAMS",
    "MAX_LOG_BYTES",
    "MAX_TAIL_LINES",
    "RESTARTED_AT",
    "REVISION",
    "ROLLOUT_KINDS",
    "ActionRefused",
    "KubeActions",
    "KubeReads",
    "NamespacePolicy",
]

_JOB_GENERATED_LABELS = (
    "controller-uid",
    "batch.kubernetes.io/controller-uid",
    "job-name",
    "batch.kubernetes.io/job-name",
)


class KubeActions(KubeReads):
    """Every tool of the catalogue (reads and mutations) on one cluster, behind a namespace policy."""

    # -- dispatch --------------------------------------------------------------------------
    def run(self, tool: str, params: Mapping[str, Any]) -> JsonObj:
        """Call the catalogue tool ``tool`` with ``params`` (validated against the catalogue)."""
        info = TOOLS.get(tool)
        if info is None:
            raise ActionRefused(f"unknown tool {tool!r}; known tools: {', '.join(sorted(TOOLS))}")
        extras = EXTRA_PARAMS.get(tool, ())
        problems = tool_problems(tool, info.risk, {k: v for k, v in params.items() if k not in extras})
        if problems:
            raise InputError("; ".join(problems))
        method: Callable[..., JsonObj] = getattr(self, tool)
        return method(**params)

    # -- mutations -------------------------------------------------------------------------
    def delete_pod(self, namespace: str, name: str) -> JsonObj:
        pod = self._get("Pod", namespace, name)
        self.client.delete("Pod", namespace, name)
        owner = views.controller_of(pod)
        note = (
            f"{owner['kind']}/{owner['name']} will create a replacement"
            if owner
            else "the pod has no controller: nothing will recreate it"
        )
        return {"namespace": namespace, "deleted": name, "owner": owner, "note": note}

    def rollout_restart(self, namespace: str, name: str, kind: str = "Deployment") -> JsonObj:
        self._kind(kind, ROLLOUT_KINDS)
        self._ns(namespace)
        stamp = self.clock().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        patch = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}
        obj = self.client.patch(kind, namespace, name, patch)
        return {
            "namespace": namespace,
            "kind": kind,
            "name": name,
            "restarted_at": stamp,
            "generation": (obj.get("metadata") or {}).get("generation"),
        }

    def scale_deployment(self, namespace: str, name: str, replicas: int) -> JsonObj:
        if int(replicas) < 0:
            raise InputError(f"replicas must be >= 0 (got {replicas})")
        dep = self._get("Deployment", namespace, name)
        before = (dep.get("spec") or {}).get("replicas", 1)
        self.client.patch("Deployment", namespace, name, {"spec": {"replicas": int(replicas)}})
        return {"namespace": namespace, "name": name, "replicas_before": before, "replicas": int(replicas)}

    def rollback_deployment(self, namespace: str, name: str, revision: int | None = None) -> JsonObj:
        """Put the template of ``revision`` (default: the one before the current) back."""
        dep = self._get("Deployment", namespace, name)
        history = self._history(namespace, dep)
        current = self._current(dep, history)
        if current is None:
            raise ActionRefused(f"deployment {namespace}/{name} has no ReplicaSet history")
        if revision is None:
            older = [rs for rs in history if rs is not current and revision_of(rs) < revision_of(current)]
            older = older or [rs for rs in history if rs is not current]
            if not older:
                raise ActionRefused(f"deployment {namespace}/{name} has no previous revision to roll back to")
            target = older[-1]
        else:
            found = [rs for rs in history if revision_of(rs) == int(revision)]
            if not found:
                known = ", ".join(str(revision_of(rs)) for rs in history)
                raise ActionRefused(f"deployment {namespace}/{name} has no revision {revision} (revisions: {known})")
            target = found[0]
            if target is current:
                raise ActionRefused(f"revision {revision} is already the current one of {namespace}/{name}")
        template = template_without_hash((target.get("spec") or {}).get("template") or {})
        self.client.patch(
            "Deployment", namespace, name, [{"op": "replace", "path": "/spec/template", "value": template}]
        )
        return {
            "namespace": namespace,
            "name": name,
            "from_revision": revision_of(current),
            "to_revision": revision_of(target),
            "replicaset": name_of(target),
        }

    def set_resources(
        self,
        namespace: str,
        name: str,
        container: str,
        kind: str = "Deployment",
        memory_limit: str | None = None,
        memory_factor: float | None = None,
        max_memory: str | None = None,
        cpu_limit: str | None = None,
        cpu_factor: float | None = None,
        max_cpu: str | None = None,
    ) -> JsonObj:
        """Set or scale the memory/CPU limit of one container of a workload's pod template.

        ``*_limit`` sets the value, ``*_factor`` multiplies the current limit, ``max_*`` caps
        the result (a request above ``max_*`` is refused, as is a change that changes nothing).
        Requests above the new limit are lowered to it (the API refuses request > limit).
        """
        self._kind(kind, ROLLOUT_KINDS)
        if memory_limit is None and memory_factor is None and cpu_limit is None and cpu_factor is None:
            raise InputError("set_resources needs memory_limit, memory_factor, cpu_limit or cpu_factor")
        obj = self._get(kind, namespace, name)
        containers = (((obj.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
        spec = next((c for c in containers if c.get("name") == container), None)
        if spec is None:
            names = ", ".join(str(c.get("name")) for c in containers)
            raise ActionRefused(f"{kind} {namespace}/{name} has no container {container!r} (containers: {names})")
        resources = spec.get("resources") or {}
        limits, requests = dict(resources.get("limits") or {}), dict(resources.get("requests") or {})
        new_limits: dict[str, str] = {}
        new_requests: dict[str, str] = {}
        for key, parse, fmt, value, factor, cap in (
            ("memory", views.memory_bytes, views.format_memory, memory_limit, memory_factor, max_memory),
            ("cpu", views.cpu_millis, views.format_cpu, cpu_limit, cpu_factor, max_cpu),
        ):
            if value is None and factor is None:
                continue
            if value is not None:
                target = parse(value)
            else:
                if key not in limits:
                    raise ActionRefused(f"container {container!r} has no {key} limit to multiply; give {key}_limit")
                if factor is None or not 0 < float(factor) <= 10:
                    raise InputError(f"{key}_factor must be in (0, 10] (got {factor})")
                target = int(parse(str(limits[key])) * float(factor))
            if cap is not None and target > parse(cap):
                if value is not None:
                    raise ActionRefused(f"{key} limit {value} is above max_{key} {cap}")
                target = parse(cap)
            if key in limits and target == parse(str(limits[key])):
                raise ActionRefused(f"{key} limit of {container!r} is already {limits[key]}; nothing to change")
            new_limits[key] = fmt(target)
            if key in requests and parse(str(requests[key])) > target:
                new_requests[key] = fmt(target)
        patch_resources: JsonObj = {"limits": new_limits}
        if new_requests:
            patch_resources["requests"] = new_requests
        body = {"spec": {"template": {"spec": {"containers": [{"name": container, "resources": patch_resources}]}}}}
        self.client.patch(kind, namespace, name, body)
        after = {"limits": {**limits, **new_limits}, "requests": {**requests, **new_requests}}
        return {
            "namespace": namespace,
            "kind": kind,
            "name": name,
            "container": container,
            "before": {"limits": limits, "requests": requests},
            "after": after,
        }

    def cordon_node(self, name: str) -> JsonObj:
        node = self._node(name)
        before = bool((node.get("spec") or {}).get("unschedulable"))
        self.client.patch("Node", None, name, {"spec": {"unschedulable": True}})
        return {"name": name, "unschedulable": True, "changed": not before}

    def uncordon_node(self, name: str) -> JsonObj:
        node = self._node(name)
        before = bool((node.get("spec") or {}).get("unschedulable"))
        self.client.patch("Node", None, name, {"spec": {"unschedulable": False}})
        return {"name": name, "unschedulable": False, "changed": before}

    def drain_node(self, name: str, grace_period: int | None = None) -> JsonObj:
        """Cordon, then delete the node's pods except DaemonSet/mirror pods and refused namespaces."""
        if grace_period is not None and int(grace_period) < 0:
            raise InputError(f"grace_period must be >= 0 (got {grace_period})")
        self.cordon_node(name)
        pods, _ = self.client.list("Pod", None, field_selector=f"spec.nodeName={name}")
        core = k8s.CoreV1Api(self.client.api_client)
        evicted: list[str] = []
        skipped: list[JsonObj] = []
        for pod in sorted(pods, key=lambda p: (p["metadata"].get("namespace", ""), name_of(p))):
            meta = pod.get("metadata") or {}
            if (pod.get("spec") or {}).get("nodeName") != name:
                continue
            ref = f"{meta.get('namespace')}/{meta.get('name')}"
            owner = views.controller_of(pod) or {}
            reason = self.policy.refusal(str(meta.get("namespace", "")))
            if owner.get("kind") == "DaemonSet":
                reason = "DaemonSet pod"
            elif "kubernetes.io/config.mirror" in (meta.get("annotations") or {}):
                reason = "mirror (static) pod"
            if reason:
                skipped.append({"pod": ref, "reason": reason})
                continue
            options = {"grace_period_seconds": int(grace_period)} if grace_period is not None else {}
            try:
                self._raw(f"delete pod {ref}", core.delete_namespaced_pod, meta["name"], meta["namespace"], **options)
            except KubeNotFound:
                continue  # gone already: drained either way
            evicted.append(ref)
        return {"name": name, "cordoned": True, "evicted": evicted, "skipped": skipped}

    def delete_failed_job(self, namespace: str, name: str, recreate: bool = False) -> JsonObj:
        """Delete a Job that has failed (and its pods); with ``recreate``, create it again from its spec."""
        job = self._get("Job", namespace, name)
        state = views.job_state(job)
        if state != "Failed":
            raise ActionRefused(f"job {namespace}/{name} is {state}, not Failed; refusing to delete it")
        batch = k8s.BatchV1Api(self.client.api_client)
        self._raw(
            f"delete job {namespace}/{name}",
            batch.delete_namespaced_job,
            name,
            namespace,
            propagation_policy="Background",
        )
        result: JsonObj = {"namespace": namespace, "deleted": name, "recreated": False}
        if not recreate:
            return result
        self._wait_gone("Job", namespace, name, (job.get("metadata") or {}).get("uid"))
        created = self._raw(
            f"create job {namespace}/{name}", batch.create_namespaced_job, namespace, self._job_copy(job)
        )
        result.update(recreated=True, uid=(created.get("metadata") or {}).get("uid"))
        return result

    def _wait_gone(self, kind: str, namespace: str, name: str, uid: str | None) -> None:
        deadline = time.monotonic() + self.job_gone_timeout
        while True:
            try:
                current = self.client.get(kind, namespace, name)
            except KubeNotFound:
                return
            if (current.get("metadata") or {}).get("uid") != uid:
                raise ActionRefused(f"{kind} {namespace}/{name} was already recreated by someone else")
            if time.monotonic() > deadline:
                raise TemporaryError(f"{kind} {namespace}/{name} is still being deleted; try again", delay=5.0)
            time.sleep(0.1)

    @staticmethod
    def _job_copy(job: JsonObj) -> JsonObj:
        """The job as a fresh object: no status, uid, selector or the labels the controller generates."""
        meta = job.get("metadata") or {}
        spec = copy.deepcopy(job.get("spec") or {})
        spec.pop("selector", None)
        spec.pop("manualSelector", None)
        template_meta = (spec.get("template") or {}).get("metadata") or {}
        labels = {k: v for k, v in (template_meta.get("labels") or {}).items() if k not in _JOB_GENERATED_LABELS}
        if "template" in spec:
            spec["template"]["metadata"] = {**template_meta, "labels": labels}
        return {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": meta.get("name"),
                "namespace": meta.get("namespace"),
                "labels": {k: v for k, v in (meta.get("labels") or {}).items() if k not in _JOB_GENERATED_LABELS},
                "annotations": {
                    k: v for k, v in (meta.get("annotations") or {}).items() if not k.startswith("batch.kubernetes.io/")
                },
            },
            "spec": spec,
        }
