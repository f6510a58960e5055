"""The RBAC in deploy/rbac.yaml is what the tools really do: every API request of every catalogue
tool, made against the sandbox cluster, is allowed by it, and the mutating tools together use
every write it grants (nothing granted in vain).

The requests are recorded at the official client's ``ApiClient.request`` (the one place every
call passes through); the calls themselves go to the sandbox unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes.client import AppsV1Api

from adapters.kube import KubeClient
from adapters.kube_actions import KubeActions
from adapters.kube_rbac import TOOL_WRITES, read_grants, write_grants
from adapters.kube_views import job_state
from adapters.sandbox import BackgroundSandbox
from core.tools import MUTATING, READ_ONLY, TOOLS
from tests.helpers import wait_until

pytestmark = pytest.mark.integration

Grant = tuple[str, str, str]
_PATH = re.compile(
    r"^/(?:api/v1|apis/(?P<group>[^/]+)/[^/]+)(?:/namespaces/(?P<ns>[^/]+))?/(?P<resource>[^/]+)"
    r"(?:/(?P<name>[^/]+))?(?:/(?P<sub>[^/]+))?$"
)


_LABELS = {"app": "node-agent"}
_DAEMONSET: Any = {
    "apiVersion": "apps/v1",
    "kind": "DaemonSet",
    "metadata": {"name": "node-agent", "namespace": "production"},
    "spec": {
        "selector": {"matchLabels": _LABELS},
        "template": {"metadata": {"labels": _LABELS}, "spec": {"containers": [{"name": "agent", "image": "busybox"}]}},
    },
}


def grant_of(method: str, url: str) -> Grant:
    path, _, query = re.sub(r"^https?://[^/]+", "", url).partition("?")
    match = _PATH.match(path)
    assert match is not None, f"unexpected API path {path}"
    group = match.group("group") or ""
    resource = match.group("resource")
    name, sub = match.group("name"), match.group("sub")
    if sub:
        resource = f"{resource}/{sub}"
    watching = bool(re.search(r"(^|&)watch=(true|1)(&|$)", query, re.IGNORECASE))
    verb = {
        "GET": "watch" if watching else ("get" if name else "list"),
        "POST": "create",
        "PATCH": "patch",
        "PUT": "update",
        "DELETE": "delete" if name else "deletecollection",
    }[method.upper()]
    return group, resource, verb


class Recorder:
    """Wraps the REST layer of one client (``ApiClient.rest_client.request``, through which every
    call passes) and keeps the (group, resource, verb) of each request."""

    def __init__(self, client: KubeClient) -> None:
        self.grants: list[Grant] = []
        rest = client.api_client.rest_client
        original: Callable[..., Any] = rest.request

        def request(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            self.grants.append(grant_of(method, url))
            return original(method, url, *args, **kwargs)

        rest.request = request  # type: ignore[method-assign]

    def take(self) -> set[Grant]:
        taken, self.grants = set(self.grants), []
        return taken


def _pods(actions: KubeActions, namespace: str, prefix: str) -> list[dict[str, Any]]:
    return [p for p in actions.list_pods(namespace)["pods"] if str(p["name"]).startswith(prefix)]


def test_every_tool_request_is_allowed_and_every_granted_write_is_used(sandbox: BackgroundSandbox) -> None:
    client = KubeClient.from_kubeconfig(sandbox.kubeconfig_path, request_timeout=10.0)
    actions = KubeActions(client, job_gone_timeout=20.0)
    recorder = Recorder(client)
    try:
        wait_until(lambda: len(_pods(actions, "production", "frontend-")) >= 3, timeout=30, message="frontend pods")
        wait_until(
            # Failed as a condition (backoff limit reached), not merely a failed pod: the tool refuses a Running job.
            lambda: job_state(actions.get_object("Job", "nightly-report", "batch")["object"]) == "Failed",
            timeout=60,
            message="nightly-report failed",
        )
        # The simulator runs no DaemonSets; one object is enough for the restart patch to apply to.
        AppsV1Api(client.api_client).create_namespaced_daemon_set("production", _DAEMONSET)
        recorder.take()
        pod = _pods(actions, "production", "frontend-")[0]["name"]
        container = next(iter(actions.describe_pod("production", pod)["summary"]["resources"]))
        used_reads = recorder.take()
        calls: list[tuple[str, dict[str, Any]]] = [
            ("delete_pod", {"namespace": "production", "name": pod}),
            ("rollout_restart", {"namespace": "production", "name": "frontend"}),
            ("rollout_restart", {"namespace": "production", "name": "redis", "kind": "StatefulSet"}),
            ("rollout_restart", {"namespace": "production", "name": "node-agent", "kind": "DaemonSet"}),
            ("scale_deployment", {"namespace": "production", "name": "frontend", "replicas": 3}),
            (
                "set_resources",
                {"namespace": "production", "name": "frontend", "container": container, "memory_limit": "384Mi"},
            ),
            ("rollback_deployment", {"namespace": "production", "name": "frontend"}),
            ("cordon_node", {"name": "node-1"}),
            ("uncordon_node", {"name": "node-1"}),
            ("drain_node", {"name": "node-2"}),
            ("delete_failed_job", {"namespace": "batch", "name": "nightly-report", "recreate": True}),
        ]
        assert {tool for tool, _ in calls} == set(MUTATING), "every mutating tool of the catalogue is exercised"
        allowed_reads = read_grants()
        writes_seen: set[Grant] = set()
        for tool, params in calls:
            if tool == "rollback_deployment":
                wait_until(
                    lambda: len(actions.rollout_history("production", "frontend")["revisions"]) >= 2,
                    timeout=30,
                    message="a second revision of frontend",
                )
                recorder.take()
            actions.run(tool, params)
            seen = recorder.take()
            writes = {g for g in seen if g[2] not in {"get", "list", "watch"}}
            assert writes <= write_grants([tool]), f"{tool} wrote {sorted(writes - write_grants([tool]))}, not granted"
            assert seen - writes <= allowed_reads, f"{tool} read {sorted(seen - writes - allowed_reads)}, not granted"
            writes_seen |= writes
        assert writes_seen == write_grants(TOOL_WRITES), "granted writes no tool uses"
        assert used_reads <= allowed_reads
        # A pod no call above replaces: the rollouts and the rollback above keep replacing frontend's pods.
        live = _pods(actions, "production", "payments-")[0]["name"]
        for tool in sorted(READ_ONLY):
            actions.run(tool, _read_params(tool, live))
            seen = recorder.take()
            assert seen, f"{tool} made no request"
            assert seen <= allowed_reads, f"{tool} read {sorted(seen - allowed_reads)}, not granted"
    finally:
        client.close()


_READ_PARAMS: dict[str, dict[str, Any]] = {
    "get_node": {"name": "node-1"},
    "list_nodes": {},
    "get_object": {"kind": "Deployment", "name": "frontend", "namespace": "production"},
    "list_objects": {"kind": "Pod", "namespace": "production"},
    "object_events": {"name": "frontend", "kind": "Deployment", "namespace": "production"},
    "rollout_history": {"namespace": "production", "name": "frontend"},
    "get_deployment": {"namespace": "production", "name": "frontend"},
}


def _read_params(tool: str, pod: str) -> dict[str, Any]:
    """Parameters for a read tool: a live payments pod, the frontend deployment, node-1."""
    if tool in _READ_PARAMS:
        return dict(_READ_PARAMS[tool])
    params: dict[str, Any] = {"namespace": "production"}
    if "name" in TOOLS[tool].required:
        params["name"] = pod
    return params
