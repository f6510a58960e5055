"""Verification checks: did the step fix it, and does the fix hold?

Each check named in ``core.tools.VERIFY_CHECKS`` is one probe made with *read-only* tools
(the same ``tools.call`` the coordinator executes steps with, so it works through the MCP
server against any cluster). A probe answers ``(ok, detail, signature)``; ``verify`` polls
it until it has been ok, with an unchanged signature, for ``stable_for`` seconds, or until
``timeout`` passes without that. The signature is what must not move while the fix holds:
for ``pod_ready`` the pods and their restart counts, so a pod that goes Ready and then
crashes again resets the clock instead of passing.

The deadline is wall-clock (``time.monotonic``), not the coordinator's injectable clock: a
verification waits on a real cluster.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from core.errors import AiopsError
from core.tools import VERIFY_CHECKS

log = logging.getLogger(__name__)

Probe = tuple[bool, str, Any]


class Tools(Protocol):
    async def call(self, tool: str, params: Mapping[str, Any]) -> dict[str, Any]: ...


@dataclass(frozen=True)
class VerifyOutcome:
    passed: bool
    detail: str
    probes: int


def _text(params: Mapping[str, Any], key: str) -> str:
    value = params.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"verify check needs parameter {key!r}")
    return value


async def _deployment(tools: Tools, namespace: str, name: str) -> dict[str, Any]:
    result = await tools.call("get_deployment", {"namespace": namespace, "name": name})
    dep: dict[str, Any] = result.get("deployment") or {}
    return dep


def _selector(dep: dict[str, Any]) -> str:
    labels = ((dep.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


async def pod_ready(tools: Tools, params: Mapping[str, Any]) -> Probe:
    """The workload's pods all Running and Ready; signature = pods and restart counts."""
    namespace = _text(params, "namespace")
    name = params.get("deployment") or params.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError("pod_ready needs parameter 'deployment' (or 'name')")
    dep = await _deployment(tools, namespace, name)
    selector = _selector(dep) or f"app={name}"
    listed = await tools.call("list_pods", {"namespace": namespace, "label_selector": selector})
    pods = [p for p in listed.get("pods") or [] if str(p.get("owner") or "").startswith(f"ReplicaSet/{name}-")]
    desired = int((dep.get("spec") or {}).get("replicas", 1))
    signature = tuple(sorted((str(p.get("name")), int(p.get("restarts") or 0)) for p in pods))
    if len(pods) < desired:
        return False, f"{len(pods)} of {desired} pods of {namespace}/{name} exist", signature
    bad = []
    for pod in pods:
        ready, _, total = str(pod.get("ready", "0/0")).partition("/")
        if pod.get("phase") != "Running" or ready != total or total in ("", "0"):
            reasons = ",".join(pod.get("reasons") or []) or str(pod.get("phase"))
            bad.append(f"{pod.get('name')} ({reasons})")
    if bad:
        return False, f"pods not ready: {', '.join(bad)}", signature
    return True, f"{len(pods)} pod(s) of {namespace}/{name} ready", signature


async def workload_available(tools: Tools, params: Mapping[str, Any]) -> Probe:
    """The deployment rolled out (observed generation, updated replicas) and all replicas available."""
    namespace, name = _text(params, "namespace"), _text(params, "name")
    dep = await _deployment(tools, namespace, name)
    meta, spec, status = dep.get("metadata") or {}, dep.get("spec") or {}, dep.get("status") or {}
    desired = int(spec.get("replicas", 1))
    available = int(status.get("availableReplicas") or 0)
    updated = int(status.get("updatedReplicas") or 0)
    generation, observed = meta.get("generation"), status.get("observedGeneration")
    if generation is not None and observed is not None and int(observed) < int(generation):
        return False, f"{namespace}/{name}: generation {generation} not observed yet", None
    if updated < desired:
        return False, f"{namespace}/{name}: {updated} of {desired} replicas updated", None
    if available < desired:
        return False, f"{namespace}/{name}: {available} of {desired} replicas available", None
    return True, f"{namespace}/{name}: {available} of {desired} replicas available", (generation, available)


async def _node(tools: Tools, params: Mapping[str, Any]) -> dict[str, Any]:
    result = await tools.call("get_node", {"name": _text(params, "name")})
    summary: dict[str, Any] = result.get("summary") or {}
    return summary


async def node_ready(tools: Tools, params: Mapping[str, Any]) -> Probe:
    node = await _node(tools, params)
    ready = node.get("ready") == "True"
    return ready, f"node {params.get('name')} Ready={node.get('ready')}", node.get("ready")


async def node_cordoned(tools: Tools, params: Mapping[str, Any]) -> Probe:
    node = await _node(tools, params)
    cordoned = bool(node.get("unschedulable"))
    return cordoned, f"node {params.get('name')} unschedulable={cordoned}", cordoned


async def node_drained(tools: Tools, params: Mapping[str, Any]) -> Probe:
    """Cordoned, and (for each namespace in ``namespaces``, comma-separated) no non-DaemonSet pod left on it."""
    name = _text(params, "name")
    node = await _node(tools, params)
    if not node.get("unschedulable"):
        return False, f"node {name} is not cordoned", None
    left: list[str] = []
    namespaces = [n.strip() for n in str(params.get("namespaces") or "").split(",") if n.strip()]
    for namespace in namespaces:
        listed = await tools.call("list_pods", {"namespace": namespace})
        left += [
            f"{namespace}/{p.get('name')}"
            for p in listed.get("pods") or []
            if p.get("node") == name and not str(p.get("owner") or "").startswith("DaemonSet/")
        ]
    if left:
        return False, f"node {name} still runs {', '.join(sorted(left))}", None
    return True, f"node {name} cordoned and drained", tuple(left)


async def job_succeeded(tools: Tools, params: Mapping[str, Any]) -> Probe:
    namespace, name = _text(params, "namespace"), _text(params, "name")
    listed = await tools.call("list_jobs", {"namespace": namespace})
    job = next((j for j in listed.get("jobs") or [] if j.get("name") == name), None)
    if job is None:
        return False, f"job {namespace}/{name} does not exist (yet)", None
    state = str(job.get("state"))
    return state == "Complete", f"job {namespace}/{name} is {state}", state


CHECKS: Mapping[str, Callable[[Tools, Mapping[str, Any]], Awaitable[Probe]]] = {
    "pod_ready": pod_ready,
    "workload_available": workload_available,
    "node_ready": node_ready,
    "node_cordoned": node_cordoned,
    "node_drained": node_drained,
    "job_succeeded": job_succeeded,
}
if set(CHECKS) != VERIFY_CHECKS:  # pragma: no cover - a catalogue change without an implementation
    raise RuntimeError(f"verify checks out of sync with core.tools: {sorted(set(CHECKS) ^ VERIFY_CHECKS)}")


async def verify(
    tools: Tools,
    check: str,
    params: Mapping[str, Any],
    *,
    timeout: float,  # noqa: ASYNC109 - a polling deadline handed down from the playbook
    stable_for: float,
    interval: float = 1.0,
) -> VerifyOutcome:
    """Poll ``check`` until it holds for ``stable_for`` seconds (passed) or ``timeout`` runs out (failed)."""
    probe = CHECKS.get(check)
    if probe is None:
        return VerifyOutcome(False, f"unknown verify check {check!r}", 0)
    started = time.monotonic()
    since: float | None = None
    signature: Any = None
    detail = "not checked yet"
    probes = 0
    while True:
        now = time.monotonic()
        try:
            ok, detail, sig = await probe(tools, params)
        except (AiopsError, ValueError, KeyError, TypeError) as e:
            ok, detail, sig = False, f"{check} could not be checked: {e}", None
            log.info("verify %s probe failed: %s", check, e)
        probes += 1
        if ok and since is not None and sig != signature:
            since = now  # still fine, but something moved (a restart): the fix must hold from here
        if ok and since is None:
            since = now
        if not ok:
            since = None
        signature = sig
        if since is not None and now - since >= stable_for:
            held = f", held {now - since:.1f}s" if stable_for else ""
            return VerifyOutcome(True, f"{detail}{held}", probes)
        if since is None and now - started >= timeout:
            return VerifyOutcome(False, f"{detail} (after {now - started:.1f}s)", probes)
        if now - started >= timeout + stable_for:
            return VerifyOutcome(False, f"{detail}: did not hold {stable_for:g}s within the deadline", probes)
        await asyncio.sleep(interval)
