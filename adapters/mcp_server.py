"""``aiops mcp-server``: the Kubernetes tools of the catalogue as an MCP server.

Any MCP client (Claude Desktop, an IDE, the platform's own RCA workers through
:mod:`adapters.mcp_client`) gets the tools of :data:`core.tools.TOOLS`, with the catalogue's
names and parameter names, typed parameters (JSON Schema with bounds and name patterns),
the risk tier in each description (``[risk: medium] ...``), in ``_meta["aiops/risk"]`` and
as MCP annotations (``readOnlyHint``/``destructiveHint``). With ``--read-only`` the
mutating tools are not registered at all: that is the server the LLM gets (DESIGN.md
principle 1), so a prompt injection cannot even name a destructive tool.

The work and the guards (namespace allow/deny globs, node existence, kinds, redaction)
are in :mod:`adapters.kube_actions`; this module types the parameters and turns every
error into a tool error with a plain message (404 -> "not found", 403 -> "forbidden by
RBAC"), never a traceback. Results are JSON: structured content plus the same as text.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import Field

from adapters.kube import KubeApiError, KubeClient, KubeForbidden, KubeNotFound
from adapters.kube_actions import (
    DEFAULT_TAIL_LINES,
    EVENT_KINDS,
    EXTRA_PARAMS,
    MAX_TAIL_LINES,
    KubeActions,
    NamespacePolicy,
)
from adapters.kube_reads import OBJECT_KINDS
from core.errors import AiopsError, ConfigError, InputError, TemporaryError
from core.tools import TOOLS, Risk

log = logging.getLogger(__name__)
JsonObj = dict[str, Any]
SERVER_NAME = "aiops-kubernetes"
RISK_META = "aiops/risk"
Transport = Literal["stdio", "streamable-http"]

_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
Namespace = Annotated[str, Field(description="namespace of the object", pattern=_DNS_LABEL, max_length=63)]
Name = Annotated[str, Field(description="name of the object", pattern=_DNS_SUBDOMAIN, max_length=253)]
NodeName = Annotated[str, Field(description="name of the node", pattern=_DNS_SUBDOMAIN, max_length=253)]
Container = Annotated[str, Field(description="container name", pattern=_DNS_LABEL, max_length=63)]
OptContainer = Annotated[
    str | None, Field(description="container name (default: the only one)", pattern=_DNS_LABEL, max_length=63)
]
RolloutKind = Annotated[Literal["Deployment", "StatefulSet", "DaemonSet"], Field(description="workload kind")]
EventKind = Literal[
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
]
ObjectKind = Literal[
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
]
OptNamespace = Annotated[
    str | None, Field(description="namespace (omit for cluster-scoped objects)", pattern=_DNS_LABEL, max_length=63)
]
MemoryQuantity = Annotated[str | None, Field(description="memory quantity, e.g. 512Mi or 1Gi", max_length=32)]
CpuQuantity = Annotated[str | None, Field(description="CPU quantity, e.g. 500m or 2", max_length=32)]
Factor = Annotated[float | None, Field(description="multiply the current limit by this", gt=0, le=10)]

_TITLES = {name: name.replace("_", " ").capitalize() for name in TOOLS}
_IDEMPOTENT = frozenset({"scale_deployment", "cordon_node", "uncordon_node", "set_resources"})


def error_message(e: BaseException) -> str:
    """The message a client sees for an error: the cause in words, no traceback."""
    if isinstance(e, KubeNotFound):
        return f"not found: {e}"
    if isinstance(e, KubeForbidden):
        return f"forbidden by RBAC: {e}"
    if isinstance(e, KubeApiError):
        return f"rejected by the Kubernetes API ({e.status}): {e}"
    if isinstance(e, TemporaryError):
        return f"Kubernetes API unavailable, try again later: {e}"
    if isinstance(e, InputError):
        return f"refused: {e}"
    return str(e) or type(e).__name__


class KubeTools:
    """One method per catalogue tool; names and parameters must match ``core.tools.TOOLS``."""

    def __init__(self, actions: KubeActions) -> None:
        self.actions = actions

    @staticmethod
    def _call(fn: Callable[[], JsonObj]) -> JsonObj:
        try:
            return fn()
        except AiopsError as e:
            raise ToolError(error_message(e)) from e
        except Exception as e:
            log.exception("tool failed unexpectedly")
            raise ToolError(f"internal error ({type(e).__name__}); see the server log") from e

    # -- read ------------------------------------------------------------------------------
    def list_pods(
        self,
        namespace: Namespace,
        label_selector: Annotated[str | None, Field(description="e.g. app=checkout", max_length=512)] = None,
    ) -> JsonObj:
        """List the pods of a namespace: phase, readiness, restarts, reasons, node, owner."""
        return self._call(lambda: self.actions.list_pods(namespace, label_selector))

    def get_pod(self, namespace: Namespace, name: Name) -> JsonObj:
        """Get one pod (spec and status, secrets masked)."""
        return self._call(lambda: self.actions.get_pod(namespace, name))

    def describe_pod(self, namespace: Namespace, name: Name) -> JsonObj:
        """Describe a pod: container states and last terminations, limits, conditions, events."""
        return self._call(lambda: self.actions.describe_pod(namespace, name))

    def list_deployments(self, namespace: Namespace) -> JsonObj:
        """List the deployments of a namespace with replicas, readiness, images and bad conditions."""
        return self._call(lambda: self.actions.list_deployments(namespace))

    def get_deployment(self, namespace: Namespace, name: Name) -> JsonObj:
        """Get one deployment and a summary of its rollout state."""
        return self._call(lambda: self.actions.get_deployment(namespace, name))

    def list_statefulsets(self, namespace: Namespace) -> JsonObj:
        """List the statefulsets of a namespace."""
        return self._call(lambda: self.actions.list_statefulsets(namespace))

    def list_daemonsets(self, namespace: Namespace) -> JsonObj:
        """List the daemonsets of a namespace."""
        return self._call(lambda: self.actions.list_daemonsets(namespace))

    def list_jobs(self, namespace: Namespace) -> JsonObj:
        """List the jobs of a namespace: state (Complete/Failed/Running), counts, conditions."""
        return self._call(lambda: self.actions.list_jobs(namespace))

    def list_nodes(self) -> JsonObj:
        """List the nodes: readiness, cordon state, taints, pressure conditions, allocatable."""
        return self._call(self.actions.list_nodes)

    def get_node(self, name: NodeName) -> JsonObj:
        """Get one node and a summary of its health."""
        return self._call(lambda: self.actions.get_node(name))

    def list_events(
        self,
        namespace: Namespace,
        name: Annotated[str | None, Field(description="only events of this object", max_length=253)] = None,
        kind: Annotated[EventKind | None, Field(description="only events of objects of this kind")] = None,
    ) -> JsonObj:
        """List the events of a namespace (oldest first, last 200), optionally of one object."""
        return self._call(lambda: self.actions.list_events(namespace, name, kind))

    def pod_logs(
        self,
        namespace: Namespace,
        name: Name,
        container: OptContainer = None,
        tail_lines: Annotated[
            int, Field(description=f"last lines to return (max {MAX_TAIL_LINES})", ge=1, le=MAX_TAIL_LINES)
        ] = DEFAULT_TAIL_LINES,
        previous: Annotated[bool, Field(description="the previous (crashed) container run")] = False,
        since_seconds: Annotated[int | None, Field(description="only lines newer than this", ge=1)] = None,
    ) -> JsonObj:
        """Read a pod's logs (bounded in lines and bytes, secrets masked); previous=true for the crashed run."""
        return self._call(
            lambda: self.actions.pod_logs(namespace, name, container, tail_lines, previous, since_seconds)
        )

    def rollout_history(
        self,
        namespace: Namespace,
        name: Name,
        kind: Annotated[Literal["Deployment"], Field(description="workload kind")] = "Deployment",
    ) -> JsonObj:
        """A deployment's revisions (its ReplicaSets by revision): images, restarts, which is current."""
        return self._call(lambda: self.actions.rollout_history(namespace, name, kind))

    def resource_usage(
        self,
        namespace: Namespace,
        name: Annotated[str | None, Field(description="only this pod", max_length=253)] = None,
    ) -> JsonObj:
        """CPU and memory usage per container (metrics.k8s.io) next to the limits."""
        return self._call(lambda: self.actions.resource_usage(namespace, name))

    # -- raw objects, for the RCA evidence plan ------------------------------------------------
    def get_object(
        self,
        kind: Annotated[ObjectKind, Field(description="kind of the object (no Secrets, no ConfigMaps)")],
        name: Name,
        namespace: OptNamespace = None,
    ) -> JsonObj:
        """Get one object as the API serves it (trimmed, secrets masked); namespace omitted for Node/Namespace."""
        return self._call(lambda: self.actions.get_object(kind, name, namespace))

    def list_objects(
        self,
        kind: Annotated[ObjectKind, Field(description="kind of the objects (no Secrets, no ConfigMaps)")],
        namespace: OptNamespace = None,
        label_selector: Annotated[str | None, Field(description="e.g. app=checkout", max_length=512)] = None,
    ) -> JsonObj:
        """List objects of a kind as the API serves them (trimmed, secrets masked, at most 500)."""
        return self._call(lambda: self.actions.list_objects(kind, namespace, label_selector))

    def object_events(
        self,
        name: Annotated[str, Field(description="name of the involved object", max_length=253)],
        kind: Annotated[EventKind | None, Field(description="kind of the involved object")] = None,
        namespace: OptNamespace = None,
    ) -> JsonObj:
        """The events of one object as the API serves them (oldest first, last 200); no namespace: all allowed."""
        return self._call(lambda: self.actions.object_events(name, kind, namespace))

    # -- mutating --------------------------------------------------------------------------
    def delete_pod(self, namespace: Namespace, name: Name) -> JsonObj:
        """Delete a pod; its controller (ReplicaSet, StatefulSet, Job) creates a fresh one."""
        return self._call(lambda: self.actions.delete_pod(namespace, name))

    def rollout_restart(self, namespace: Namespace, name: Name, kind: RolloutKind = "Deployment") -> JsonObj:
        """Restart a workload's pods with a rolling update (as kubectl rollout restart)."""
        return self._call(lambda: self.actions.rollout_restart(namespace, name, kind))

    def scale_deployment(
        self,
        namespace: Namespace,
        name: Name,
        replicas: Annotated[int, Field(description="desired replicas", ge=0, le=1000)],
    ) -> JsonObj:
        """Set the replica count of a deployment."""
        return self._call(lambda: self.actions.scale_deployment(namespace, name, replicas))

    def rollback_deployment(
        self,
        namespace: Namespace,
        name: Name,
        revision: Annotated[int | None, Field(description="revision to restore (default: previous)", ge=1)] = None,
    ) -> JsonObj:
        """Roll a deployment back to the previous (or the given) revision's pod template."""
        return self._call(lambda: self.actions.rollback_deployment(namespace, name, revision))

    def set_resources(
        self,
        namespace: Namespace,
        name: Name,
        container: Container,
        kind: RolloutKind = "Deployment",
        memory_limit: MemoryQuantity = None,
        memory_factor: Factor = None,
        max_memory: MemoryQuantity = None,
        cpu_limit: CpuQuantity = None,
        cpu_factor: Factor = None,
        max_cpu: CpuQuantity = None,
    ) -> JsonObj:
        """Set or scale a container's memory/CPU limits in a workload's pod template (rolls new pods)."""
        return self._call(
            lambda: self.actions.set_resources(
                namespace,
                name,
                container,
                kind,
                memory_limit,
                memory_factor,
                max_memory,
                cpu_limit,
                cpu_factor,
                max_cpu,
            )
        )

    def cordon_node(self, name: NodeName) -> JsonObj:
        """Mark a node unschedulable (running pods stay)."""
        return self._call(lambda: self.actions.cordon_node(name))

    def uncordon_node(self, name: NodeName) -> JsonObj:
        """Mark a node schedulable again."""
        return self._call(lambda: self.actions.uncordon_node(name))

    def drain_node(
        self,
        name: NodeName,
        grace_period: Annotated[int | None, Field(description="seconds each pod gets to stop", ge=0, le=3600)] = None,
    ) -> JsonObj:
        """Cordon a node and delete its pods, except DaemonSet/mirror pods and refused namespaces."""
        return self._call(lambda: self.actions.drain_node(name, grace_period))

    def delete_failed_job(
        self,
        namespace: Namespace,
        name: Name,
        recreate: Annotated[bool, Field(description="create the job again from its spec")] = False,
    ) -> JsonObj:
        """Delete a failed job and its pods; recreate=true runs it again."""
        return self._call(lambda: self.actions.delete_failed_job(namespace, name, recreate))


def _annotations(name: str, risk: Risk) -> ToolAnnotations:
    if risk is Risk.READ:
        return ToolAnnotations(title=_TITLES[name], read_only_hint=True, destructive_hint=False, idempotent_hint=True)
    return ToolAnnotations(
        title=_TITLES[name],
        read_only_hint=False,
        destructive_hint=risk.rank >= Risk.MEDIUM.rank,
        idempotent_hint=name in _IDEMPOTENT,
    )


def catalogue_problems(tools: KubeTools) -> list[str]:
    """Where the typed tool methods differ from the catalogue (names, required, optional)."""
    problems = []
    if set(get_args(EventKind)) != set(EVENT_KINDS):
        problems.append("list_events: EventKind differs from kube_actions.EVENT_KINDS")
    if set(get_args(ObjectKind)) != set(OBJECT_KINDS):
        problems.append("get_object: ObjectKind differs from kube_reads.OBJECT_KINDS")
    for name, info in TOOLS.items():
        fn = getattr(tools, name, None)
        if fn is None:
            problems.append(f"tool {name!r} has no implementation")
            continue
        params = inspect.signature(fn).parameters
        required = {p for p, v in params.items() if v.default is inspect.Parameter.empty}
        optional = set(params) - required
        if required != set(info.required):
            problems.append(f"tool {name!r} requires {sorted(required)}, the catalogue {sorted(info.required)}")
        if optional != set(info.optional) | set(EXTRA_PARAMS.get(name, ())):
            problems.append(f"tool {name!r} takes optional {sorted(optional)}, the catalogue {sorted(info.optional)}")
    return problems


def build_server(actions: KubeActions, *, read_only: bool = False) -> MCPServer[Any]:
    """The MCP server with every catalogue tool, or only the read-only ones."""
    tools = KubeTools(actions)
    problems = catalogue_problems(tools)
    if problems:
        raise ConfigError("the MCP tools do not match core/tools.py", tuple(problems))
    policy = actions.policy
    server: MCPServer[Any] = MCPServer(
        SERVER_NAME,
        instructions=(
            "Kubernetes tools of ray-aiops. Each description starts with its risk tier. "
            f"Namespaces allowed: {', '.join(policy.allow) or 'none'}; denied: {', '.join(policy.deny) or 'none'}."
            + (" This server is read-only." if read_only else "")
        ),
        log_level="WARNING",
    )
    for name, info in TOOLS.items():
        if read_only and info.mutating:
            continue
        fn = getattr(tools, name)
        server.add_tool(
            fn,
            name=name,
            description=f"[risk: {info.risk.value}] {inspect.getdoc(fn) or name}",
            annotations=_annotations(name, info.risk),
            meta={RISK_META: info.risk.value},
            structured_output=True,
        )
    return server


def run(
    *,
    kubeconfig: str | Path | None = None,
    allow_namespaces: str = "*",
    deny_namespaces: str = "kube-system",
    read_only: bool = False,
    transport: Transport = "stdio",
    host: str = "127.0.0.1",
    port: int = 8765,
) -> None:
    """Serve until the client goes away (stdio) or the process is stopped (HTTP)."""
    client = KubeClient.from_kubeconfig(kubeconfig)
    try:
        actions = KubeActions(client, NamespacePolicy.parse(allow_namespaces, deny_namespaces))
        server = build_server(actions, read_only=read_only)
        if transport == "stdio":
            server.run("stdio")
        else:
            server.run("streamable-http", host=host, port=port)
    finally:
        client.close()
