"""The catalogue of Kubernetes tools: names, risk tiers, scope and parameters.

This is the single source of truth for what a tool may do. The MCP server exposes exactly
these names, the LLM only ever sees the read-only ones, and playbook validation refuses a
step that declares a risk lower than the tool's own (a ``delete_pod`` step cannot call
itself ``low`` to slip past the approval gate). Unknown tools are errors, never "probably
fine": DESIGN.md principle 1, unknown risk counts as high.

Parameter names are part of the contract too: every namespaced tool takes ``namespace``,
the object it acts on is ``name``. Verify checks and preconditions are named here so a
typo in a playbook is caught at load, not at 2 AM.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from pydantic import BaseModel, ConfigDict, Field

ParamValue = str | int | float | bool


class Risk(StrEnum):
    """How much a step can hurt: read < low < medium < high. Unknown counts as high."""

    READ = "read"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"

    @property
    def rank(self) -> int:
        return {"read": 0, "low": 1, "medium": 2, "high": 3}[self.value]

    @property
    def needs_approval(self) -> bool:
        """Only read and low steps run unattended (DESIGN.md principle 2)."""
        return self.rank >= Risk.MEDIUM.rank

    @classmethod
    def parse(cls, value: str | None) -> Risk:
        """Free text to a risk; anything unknown or missing is high."""
        try:
            return cls((value or "").strip().lower())
        except ValueError:
            return cls.HIGH


@dataclass(frozen=True)
class ToolInfo:
    risk: Risk
    cluster_scoped: bool = False
    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()

    @property
    def mutating(self) -> bool:
        return self.risk is not Risk.READ

    @property
    def params(self) -> frozenset[str]:
        return frozenset(self.required) | frozenset(self.optional)


_NS = ("namespace",)
_NS_NAME = ("namespace", "name")

TOOLS: Mapping[str, ToolInfo] = MappingProxyType(
    {
        # read-only
        "list_pods": ToolInfo(Risk.READ, required=_NS, optional=("label_selector",)),
        "get_pod": ToolInfo(Risk.READ, required=_NS_NAME),
        "describe_pod": ToolInfo(Risk.READ, required=_NS_NAME),
        "list_deployments": ToolInfo(Risk.READ, required=_NS),
        "get_deployment": ToolInfo(Risk.READ, required=_NS_NAME),
        "list_statefulsets": ToolInfo(Risk.READ, required=_NS),
        "list_daemonsets": ToolInfo(Risk.READ, required=_NS),
        "list_jobs": ToolInfo(Risk.READ, required=_NS),
        "list_nodes": ToolInfo(Risk.READ, cluster_scoped=True),
        "get_node": ToolInfo(Risk.READ, cluster_scoped=True, required=("name",)),
        "list_events": ToolInfo(Risk.READ, required=_NS, optional=("name", "kind")),
        "pod_logs": ToolInfo(
            Risk.READ, required=_NS_NAME, optional=("container", "tail_lines", "previous", "since_seconds")
        ),
        "rollout_history": ToolInfo(Risk.READ, required=_NS_NAME, optional=("kind",)),
        "resource_usage": ToolInfo(Risk.READ, required=_NS, optional=("name",)),
        # raw API objects, for the RCA evidence plan (kinds limited; never Secrets or ConfigMaps)
        "get_object": ToolInfo(Risk.READ, required=("kind", "name"), optional=("namespace",)),
        "list_objects": ToolInfo(Risk.READ, required=("kind",), optional=("namespace", "label_selector")),
        "object_events": ToolInfo(Risk.READ, required=("name",), optional=("kind", "namespace")),
        # mutating
        "delete_pod": ToolInfo(Risk.MEDIUM, required=_NS_NAME),
        "rollout_restart": ToolInfo(Risk.MEDIUM, required=_NS_NAME, optional=("kind",)),
        "scale_deployment": ToolInfo(Risk.MEDIUM, required=(*_NS_NAME, "replicas")),
        "rollback_deployment": ToolInfo(Risk.MEDIUM, required=_NS_NAME, optional=("revision",)),
        "set_resources": ToolInfo(
            Risk.MEDIUM,
            required=(*_NS_NAME, "container"),
            optional=("kind", "memory_limit", "memory_factor", "max_memory", "cpu_limit", "cpu_factor", "max_cpu"),
        ),
        "cordon_node": ToolInfo(Risk.MEDIUM, cluster_scoped=True, required=("name",)),
        "uncordon_node": ToolInfo(Risk.LOW, cluster_scoped=True, required=("name",)),
        "drain_node": ToolInfo(Risk.HIGH, cluster_scoped=True, required=("name",), optional=("grace_period",)),
        "delete_failed_job": ToolInfo(Risk.MEDIUM, required=_NS_NAME, optional=("recreate",)),
    }
)

TOOL_RISK: Mapping[str, Risk] = MappingProxyType({name: info.risk for name, info in TOOLS.items()})
READ_ONLY: frozenset[str] = frozenset(name for name, info in TOOLS.items() if not info.mutating)
MUTATING: frozenset[str] = frozenset(name for name, info in TOOLS.items() if info.mutating)

# Verify checks the executor implements; each reports passed/failed within its timeout.
VERIFY_CHECKS: frozenset[str] = frozenset(
    {"pod_ready", "workload_available", "node_ready", "node_cordoned", "node_drained", "job_succeeded"}
)
# Preconditions the executor evaluates before a step is offered for approval or run.
PRECONDITIONS: frozenset[str] = frozenset({"incident_open"})

# Parameters naming the object a tool acts on: after rendering they must not be empty.
TARGET_PARAMS: frozenset[str] = frozenset({"namespace", "name", "container"})


def risk_of(tool: str) -> Risk:
    """The catalogue risk of a tool; unknown tools count as high."""
    return TOOL_RISK.get(tool, Risk.HIGH)


def tool_problems(tool: str, declared: Risk, params: Mapping[str, object], *, complete: bool = True) -> list[str]:
    """Why a step (tool, declared risk, params) is not acceptable; empty when it is.

    ``complete=False`` skips the required-parameter check: playbook files are validated that
    way (a step may be sketched first), and the check runs again when a run is planned.
    """
    info = TOOLS.get(tool)
    if info is None:
        return [f"unknown tool {tool!r}; known tools: {', '.join(sorted(TOOLS))}"]
    problems = []
    if declared.rank < info.risk.rank:
        problems.append(
            f"tool {tool!r} is {info.risk.value} risk in the catalogue; a step cannot declare it {declared.value}"
        )
    if declared is Risk.READ and info.mutating:
        problems.append(f"tool {tool!r} mutates the cluster; it cannot be used in a read step")
    missing = [p for p in info.required if p not in params]
    if missing and complete:
        problems.append(f"tool {tool!r} needs parameter(s) {', '.join(missing)}")
    unknown = sorted(set(params) - info.params)
    if unknown:
        allowed = ", ".join(sorted(info.params)) or "none"
        problems.append(f"tool {tool!r} does not take parameter(s) {', '.join(unknown)} (takes: {allowed})")
    return problems


class Action(BaseModel):
    """One concrete tool call with rendered parameters: what a human approves, exactly."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tool: str
    params: dict[str, ParamValue] = Field(default_factory=dict)

    @property
    def risk(self) -> Risk:
        return risk_of(self.tool)

    @property
    def namespace(self) -> str | None:
        value = self.params.get("namespace")
        return value if isinstance(value, str) else None

    def describe(self) -> str:
        """``delete_pod(namespace=shop, name=api-1)``, sorted so equal actions read the same."""
        args = ", ".join(f"{key}={value}" for key, value in sorted(self.params.items()))
        return f"{self.tool}({args})"
