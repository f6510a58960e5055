"""The read-only half of the catalogue's Kubernetes tools, and the guards every tool passes.

:class:`KubeReads` implements the read tools of :data:`core.tools.TOOLS` on top of
:class:`adapters.kube.KubeClient` (lists answer with the compact views of
:mod:`adapters.kube_views`, gets with trimmed objects); :class:`adapters.kube_actions.KubeActions`
extends it with the mutations. Each method is blocking and returns a JSON-able dict.

Guards live here, not in a transport, so every caller gets them: each namespaced call
passes the :class:`NamespacePolicy` (allow globs, deny globs; deny wins), node tools check
the node exists, kinds are limited to what the tools cover, logs are bounded in lines and
bytes, and every result is passed through ``redact_obj`` (logs through ``redact``) before
it leaves, because results reach chat, storage and an LLM.

Kubernetes errors stay in the taxonomy of :mod:`adapters.kube` (``KubeNotFound``,
``KubeForbidden``, ``TemporaryError``); refusals are :class:`ActionRefused`.
"""

from __future__ import annotations

import contextlib
import copy
import fnmatch
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import urllib3
from kubernetes import client as k8s

from adapters import kube_views as views
from adapters.kube import KubeClient, KubeNotFound, wrap_error
from core.detectors.objects import labels_of
from core.errors import InputError, TemporaryError
from core.rca.answers import selector_matches
from core.rca.redact import redact, redact_obj

JsonObj = dict[str, Any]

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
REVISION = "deployment.kubernetes.io/revision"
ROLLOUT_KINDS = ("Deployment", "StatefulSet", "DaemonSet")
EVENT_KINDS = (
    "Pod",
    "Deployment",
    "ReplicaSet",
    "StatefulSet",
    "DaemonSet",
    "Job",
    "CronJob",
    "Node",
    "Service",
    "Endpoints",
    "PersistentVolumeClaim",
)
# Kinds the raw-object tools (get_object, list_objects) serve: what the RCA evidence plan reads.
# Never Secret or ConfigMap (their data is the point of them); Namespace only for health probes.
OBJECT_KINDS = (
    "Pod",
    "ReplicaSet",
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "Job",
    "CronJob",
    "Service",
    "Endpoints",
    "PersistentVolumeClaim",
    "Node",
    "Namespace",
)
CLUSTER_KINDS = ("Node", "Namespace")
# Parameters a tool takes beyond the catalogue in core/tools.py (kept in one place).
EXTRA_PARAMS: Mapping[str, tuple[str, ...]] = {"pod_logs": ("since_seconds",)}
DEFAULT_TAIL_LINES = 200
MAX_TAIL_LINES = 2000
MAX_LOG_BYTES = 64 * 1024
MAX_ITEMS = 500
MAX_EVENTS = 200


class ActionRefused(InputError):
    """The guard said no: namespace not allowed, wrong kind, nothing to do, unsafe request."""


@dataclass(frozen=True)
class NamespacePolicy:
    """Which namespaces the tools may touch: ``allow`` and ``deny`` are fnmatch globs."""

    allow: tuple[str, ...] = ("*",)
    deny: tuple[str, ...] = ("kube-system",)

    @classmethod
    def parse(cls, allow: str | Sequence[str] = "*", deny: str | Sequence[str] = "kube-system") -> NamespacePolicy:
        """From comma-separated globs (``"prod-*,staging"``) or sequences of globs."""

        def split(value: str | Sequence[str]) -> tuple[str, ...]:
            items = value.split(",") if isinstance(value, str) else value
            return tuple(item.strip() for item in items if item.strip())

        return cls(allow=split(allow), deny=split(deny))

    def refusal(self, namespace: str) -> str | None:
        """Why ``namespace`` is refused, or None when it is allowed."""
        for pattern in self.deny:
            if fnmatch.fnmatchcase(namespace, pattern):
                return f"namespace {namespace!r} is denied by this server (deny: {', '.join(self.deny)})"
        if not any(fnmatch.fnmatchcase(namespace, pattern) for pattern in self.allow):
            allowed = ", ".join(self.allow) or "none"
            return f"namespace {namespace!r} is not in this server's allowlist (allow: {allowed})"
        return None

    def check(self, namespace: str) -> None:
        reason = self.refusal(namespace)
        if reason is not None:
            raise ActionRefused(reason)


def name_of(obj: JsonObj) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def revision_of(rs: JsonObj) -> int:
    try:
        return int(((rs.get("metadata") or {}).get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def template_without_hash(template: JsonObj) -> JsonObj:
    result = copy.deepcopy(template)
    labels = (result.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop("pod-template-hash", None)
    return result


def redacted(obj: JsonObj) -> JsonObj:
    """``redact_obj`` for a result dict (typed)."""
    result: JsonObj = redact_obj(obj)
    return result


def _bounded(items: list[JsonObj], limit: int) -> tuple[list[JsonObj], bool]:
    return items[:limit], len(items) > limit


def _tail_bytes(text: str, limit: int) -> tuple[str, bool]:
    """The end of ``text`` within ``limit`` UTF-8 bytes, cut at a line start."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text, False
    tail = data[-limit:]
    cut = tail.find(b"\n")
    if 0 <= cut < len(tail) - 1:
        tail = tail[cut + 1 :]
    return tail.decode("utf-8", errors="replace"), True


class KubeReads:
    """The read-only tools of the catalogue on one cluster, behind a namespace policy."""

    def __init__(
        self,
        client: KubeClient,
        policy: NamespacePolicy | None = None,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        max_log_bytes: int = MAX_LOG_BYTES,
        job_gone_timeout: float = 30.0,
    ) -> None:
        self.client = client
        self.policy = policy or NamespacePolicy()
        self.clock = clock
        self.max_log_bytes = max_log_bytes
        self.job_gone_timeout = job_gone_timeout

    # -- plumbing --------------------------------------------------------------------------
    def _raw(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> JsonObj:
        """Call a generated client method the thin KubeClient does not wrap; parse its JSON."""
        resp = None
        try:
            resp = fn(*args, _preload_content=False, _request_timeout=self.client.request_timeout, **kwargs)
            data = resp.data
        except k8s.ApiException as e:
            raise wrap_error(e, what) from e
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as e:
            raise wrap_error(e, what) from e
        finally:
            if resp is not None:
                resp.release_conn()
        try:
            result: JsonObj = json.loads(data) if data else {}
        except ValueError as e:
            raise TemporaryError(f"{what}: the API server answered non-JSON") from e
        return result

    def _ns(self, namespace: str) -> None:
        self.policy.check(namespace)

    def _node(self, name: str) -> JsonObj:
        try:
            return self.client.get("Node", None, name)
        except KubeNotFound as e:
            raise KubeNotFound(f"node {name!r} does not exist", 404) from e

    @staticmethod
    def _kind(kind: str, allowed: Iterable[str]) -> None:
        allowed = tuple(allowed)
        if kind not in allowed:
            raise ActionRefused(f"kind {kind!r} is not covered by this tool (kinds: {', '.join(allowed)})")

    def _list_view(self, kind: str, namespace: str, view: Callable[[JsonObj], JsonObj], key: str) -> JsonObj:
        self._ns(namespace)
        items, _ = self.client.list(kind, namespace)
        rows, truncated = _bounded(sorted((view(o) for o in items), key=lambda r: str(r.get("name"))), MAX_ITEMS)
        result: JsonObj = redacted({"namespace": namespace, "count": len(items), key: rows})
        if truncated:
            result["truncated"] = True
        return result

    def _get(self, kind: str, namespace: str, name: str) -> JsonObj:
        self._ns(namespace)
        return self.client.get(kind, namespace, name)

    def _events_for(self, namespace: str, name: str | None, kind: str | None) -> list[JsonObj]:
        selectors = [f"involvedObject.name={name}"] if name else []
        if kind:
            selectors.append(f"involvedObject.kind={kind}")
        items, _ = self.client.list("Event", namespace, field_selector=",".join(selectors) or None)
        matching = [
            e
            for e in items
            if (not name or (e.get("involvedObject") or {}).get("name") == name)
            and (not kind or (e.get("involvedObject") or {}).get("kind") == kind)
        ]
        return sorted(matching, key=views.event_sort_key)

    # -- reads -----------------------------------------------------------------------------
    def list_pods(self, namespace: str, label_selector: str | None = None) -> JsonObj:
        self._ns(namespace)
        items, _ = self.client.list("Pod", namespace, label_selector=label_selector or None)
        rows, truncated = _bounded(sorted((views.pod_view(p) for p in items), key=lambda r: str(r["name"])), MAX_ITEMS)
        result: JsonObj = redacted({"namespace": namespace, "count": len(items), "pods": rows})
        if truncated:
            result["truncated"] = True
        return result

    def get_pod(self, namespace: str, name: str) -> JsonObj:
        pod = self._get("Pod", namespace, name)
        return {"pod": redacted(views.trimmed(pod))}

    def describe_pod(self, namespace: str, name: str) -> JsonObj:
        """The pod, a digest of its state (container states, limits, conditions) and its events."""
        pod = self._get("Pod", namespace, name)
        spec = pod.get("spec") or {}
        events = self._events_for(namespace, name, "Pod")[-MAX_EVENTS:]
        summary = {
            **views.pod_view(pod),
            "containers": views.container_states(pod),
            "resources": {c.get("name"): c.get("resources") or {} for c in spec.get("containers") or []},
            "conditions": [
                f"{c.get('type')}={c.get('status')}" for c in (pod.get("status") or {}).get("conditions") or []
            ],
        }
        return redacted(
            {"summary": summary, "events": [views.event_view(e) for e in events], "pod": views.trimmed(pod)}
        )

    def list_deployments(self, namespace: str) -> JsonObj:
        return self._list_view("Deployment", namespace, views.deployment_view, "deployments")

    def get_deployment(self, namespace: str, name: str) -> JsonObj:
        dep = self._get("Deployment", namespace, name)
        return {"deployment": redact_obj(views.trimmed(dep)), "summary": redact_obj(views.deployment_view(dep))}

    def list_statefulsets(self, namespace: str) -> JsonObj:
        return self._list_view("StatefulSet", namespace, views.statefulset_view, "statefulsets")

    def list_daemonsets(self, namespace: str) -> JsonObj:
        return self._list_view("DaemonSet", namespace, views.daemonset_view, "daemonsets")

    def list_jobs(self, namespace: str) -> JsonObj:
        return self._list_view("Job", namespace, views.job_view, "jobs")

    def list_nodes(self) -> JsonObj:
        items, _ = self.client.list("Node")
        rows = sorted((views.node_view(n) for n in items), key=lambda r: str(r["name"]))
        return redacted({"count": len(rows), "nodes": rows})

    def get_node(self, name: str) -> JsonObj:
        node = self._node(name)
        return {"node": redact_obj(views.trimmed(node)), "summary": redact_obj(views.node_view(node))}

    def list_events(self, namespace: str, name: str | None = None, kind: str | None = None) -> JsonObj:
        self._ns(namespace)
        if kind:
            self._kind(kind, EVENT_KINDS)
        events = self._events_for(namespace, name, kind)
        rows = [views.event_view(e) for e in events[-MAX_EVENTS:]]
        result: JsonObj = redacted({"namespace": namespace, "count": len(events), "events": rows})
        if len(events) > MAX_EVENTS:
            result["truncated"] = True
        return result

    def pod_logs(
        self,
        namespace: str,
        name: str,
        container: str | None = None,
        tail_lines: int = DEFAULT_TAIL_LINES,
        previous: bool = False,
        since_seconds: int | None = None,
    ) -> JsonObj:
        """The last ``tail_lines`` (max 2000) log lines, at most ``max_log_bytes``, redacted."""
        self._ns(namespace)
        if not 1 <= int(tail_lines) <= MAX_TAIL_LINES:
            raise InputError(f"tail_lines must be between 1 and {MAX_TAIL_LINES} (got {tail_lines})")
        if since_seconds is not None and int(since_seconds) < 1:
            raise InputError(f"since_seconds must be positive (got {since_seconds})")
        text = self.client.read_pod_log(
            namespace,
            name,
            container=container or None,
            previous=bool(previous),
            tail_lines=int(tail_lines),
            since_seconds=int(since_seconds) if since_seconds is not None else None,
        )
        text, truncated = _tail_bytes(redact(text), self.max_log_bytes)
        return {
            "namespace": namespace,
            "name": name,
            "container": container,
            "previous": bool(previous),
            "lines": text.count("\n") + (0 if not text or text.endswith("\n") else 1),
            "truncated": truncated,
            "log": text,
        }

    def _history(self, namespace: str, dep: JsonObj) -> list[JsonObj]:
        uid = (dep.get("metadata") or {}).get("uid")
        match = ((dep.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        selector = ",".join(f"{k}={v}" for k, v in sorted(match.items())) or None
        items, _ = self.client.list("ReplicaSet", namespace, label_selector=selector)
        owned = [rs for rs in items if (views.controller_of(rs) or {}).get("uid") == uid]
        return sorted(owned, key=revision_of)

    @staticmethod
    def _current(dep: JsonObj, history: list[JsonObj]) -> JsonObj | None:
        template = (dep.get("spec") or {}).get("template") or {}
        for rs in reversed(history):
            if template_without_hash((rs.get("spec") or {}).get("template") or {}) == template:
                return rs
        return history[-1] if history else None

    def rollout_history(self, namespace: str, name: str, kind: str = "Deployment") -> JsonObj:
        """ReplicaSets owned by the deployment, oldest revision first; ``current`` marks the live one."""
        self._kind(kind, ("Deployment",))
        dep = self._get("Deployment", namespace, name)
        history = self._history(namespace, dep)
        current = self._current(dep, history)
        rows = []
        for rs in history:
            meta, spec, status = rs.get("metadata") or {}, rs.get("spec") or {}, rs.get("status") or {}
            rows.append(
                {
                    "revision": revision_of(rs),
                    "replicaset": meta.get("name"),
                    "current": rs is current,
                    "replicas": spec.get("replicas", 0),
                    "ready": status.get("readyReplicas", 0),
                    "images": [
                        c.get("image") for c in ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
                    ],
                    "restarted_at": (((spec.get("template") or {}).get("metadata") or {}).get("annotations") or {}).get(
                        RESTARTED_AT
                    ),
                    "change_cause": (meta.get("annotations") or {}).get("kubernetes.io/change-cause"),
                    "created": meta.get("creationTimestamp"),
                }
            )
        return redacted({"namespace": namespace, "name": name, "kind": kind, "revisions": rows})

    # -- raw objects (the RCA evidence plan reads API JSON, as kubectl get -o json) ------------
    def _scope(self, kind: str, namespace: str | None) -> str | None:
        """Check kind and namespace for a raw read; the namespace to use (None when cluster-scoped)."""
        self._kind(kind, OBJECT_KINDS)
        if kind in CLUSTER_KINDS:
            return None
        if not namespace:
            raise InputError(f"kind {kind!r} is namespaced: a namespace is required")
        self._ns(namespace)
        return namespace

    def get_object(self, kind: str, name: str, namespace: str | None = None) -> JsonObj:
        """One object as the API serves it (trimmed, redacted)."""
        scope = self._scope(kind, namespace)
        obj = self.client.get(kind, scope, name)
        return {"object": redacted(views.trimmed(obj))}

    def list_objects(self, kind: str, namespace: str | None = None, label_selector: str | None = None) -> JsonObj:
        """Objects of a kind (trimmed, redacted, at most MAX_ITEMS); the selector is applied here too."""
        scope = self._scope(kind, namespace)
        found, _ = self.client.list(kind, scope, label_selector=label_selector or None)
        if label_selector:  # a server that ignores selectors still gets the right answer
            found = [o for o in found if selector_matches(label_selector, labels_of(o))]
        rows, truncated = _bounded(found, MAX_ITEMS)
        result: JsonObj = redacted(
            {"kind": kind, "namespace": scope, "count": len(found), "items": [views.trimmed(o) for o in rows]}
        )
        if truncated:
            result["truncated"] = True
        return result

    def object_events(self, name: str, kind: str | None = None, namespace: str | None = None) -> JsonObj:
        """Events of one object as the API serves them, oldest first (last MAX_EVENTS).

        Without a namespace (a node's events), every namespace is searched and events in
        namespaces the policy refuses are left out.
        """
        if kind:
            self._kind(kind, EVENT_KINDS)
        if namespace:
            events = self._events_for(namespace, name, kind)
        else:
            selectors = [f"involvedObject.name={name}"] + ([f"involvedObject.kind={kind}"] if kind else [])
            items, _ = self.client.list("Event", None, field_selector=",".join(selectors))
            events = sorted(
                (
                    e
                    for e in items
                    if (e.get("involvedObject") or {}).get("name") == name
                    and (not kind or (e.get("involvedObject") or {}).get("kind") == kind)
                    and self.policy.refusal(str((e.get("metadata") or {}).get("namespace") or "default")) is None
                ),
                key=views.event_sort_key,
            )
        rows = [views.trimmed(e) for e in events[-MAX_EVENTS:]]
        result: JsonObj = redacted({"namespace": namespace, "name": name, "count": len(events), "events": rows})
        if len(events) > MAX_EVENTS:
            result["truncated"] = True
        return result

    def resource_usage(self, namespace: str, name: str | None = None) -> JsonObj:
        """CPU/memory usage from metrics.k8s.io next to the pods' limits; says so when there is no metrics API."""
        self._ns(namespace)
        api = k8s.CustomObjectsApi(self.client.api_client)
        try:
            metrics = self._raw(
                f"list pod metrics in {namespace}",
                api.list_namespaced_custom_object,
                "metrics.k8s.io",
                "v1beta1",
                namespace,
                "pods",
            )
        except KubeNotFound as e:
            return {"namespace": namespace, "available": False, "message": f"metrics API not available ({e})"}
        items = [m for m in metrics.get("items") or [] if not name or name_of(m) == name]
        if name and not items:
            raise KubeNotFound(f"no metrics for pod {namespace}/{name} (not found or not running)", 404)
        limits: dict[tuple[str, str], JsonObj] = {}
        with contextlib.suppress(KubeNotFound):
            pods, _ = self.client.list("Pod", namespace)
            for pod in pods:
                for c in (pod.get("spec") or {}).get("containers") or []:
                    limits[(name_of(pod), str(c.get("name")))] = (c.get("resources") or {}).get("limits") or {}
        rows = [
            {
                "pod": name_of(m),
                "window": m.get("window"),
                "containers": [
                    {
                        "name": c.get("name"),
                        "usage": c.get("usage") or {},
                        "limits": limits.get((name_of(m), c.get("name")), {}),
                    }
                    for c in m.get("containers") or []
                ],
            }
            for m in sorted(items, key=name_of)[:MAX_ITEMS]
        ]
        return redacted({"namespace": namespace, "available": True, "pods": rows})
