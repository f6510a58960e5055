"""Scenario files: the strict contract that says what the sandbox cluster should look like.

A scenario names namespaces, nodes and workloads, and for each workload a *behaviour* the
simulated kubelet plays (crash loop, OOM, image pull failure, ...) plus the *fix* that ends
it, so remediation playbooks can be tested end to end. Unknown keys are errors: a typo in a
scenario must not silently give a healthy cluster.
"""

from __future__ import annotations

import math
import re
from enum import StrEnum
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.errors import ConfigError

SCENARIO_DIR = Path(__file__).with_name("scenarios")


class Behaviour(StrEnum):
    HEALTHY = "healthy"
    CRASHLOOP = "crashloop"
    OOM = "oom"
    IMAGE_PULL = "image_pull"
    UNSCHEDULABLE = "unschedulable"
    PROBE_FAILURE = "probe_failure"
    JOB_FAIL = "job_fail"
    PVC_PENDING = "pvc_pending"


class Fix(StrEnum):
    RESTART = "restart"  # pods created after a pod deletion or a rollout restart are healthy
    MEMORY = "memory"  # oom: limit >= threshold; unschedulable: limit <= threshold
    IMAGE = "image"  # pods whose image differs from the scenario's image are healthy
    RECREATE = "recreate"  # a Job deleted and created again succeeds
    NONE = "none"


DEFAULT_FIX: dict[Behaviour, Fix] = {
    Behaviour.HEALTHY: Fix.NONE,
    Behaviour.CRASHLOOP: Fix.RESTART,
    Behaviour.OOM: Fix.MEMORY,
    Behaviour.IMAGE_PULL: Fix.IMAGE,
    Behaviour.UNSCHEDULABLE: Fix.MEMORY,
    Behaviour.PROBE_FAILURE: Fix.RESTART,
    Behaviour.JOB_FAIL: Fix.RECREATE,
    Behaviour.PVC_PENDING: Fix.NONE,
}

_QUANTITY = re.compile(r"^([0-9.]+)([A-Za-z]*)$")
_UNITS = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def memory_bytes(quantity: str) -> int:
    """Parse a Kubernetes memory quantity (``256Mi``, ``1G``, ``1048576``) into bytes."""
    m = _QUANTITY.match(quantity.strip())
    if not m or m.group(2) not in _UNITS:
        raise ValueError(f"not a memory quantity: {quantity!r}")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NodeSpec(_Strict):
    name: str = Field(description="node name")
    memory: str = Field("8Gi", description="allocatable memory")
    cpu: str = Field("4", description="allocatable CPU")


class WorkloadSpec(_Strict):
    kind: Literal["Deployment", "StatefulSet", "Job"] = Field("Deployment", description="workload kind")
    name: str = Field(description="workload name; also the app label")
    namespace: str = Field(description="namespace, must be listed under namespaces")
    replicas: int = Field(1, ge=0, description="desired pods (Jobs: 1)")
    image: str = Field("nginx:1.27", description="container image")
    container: str = Field("app", description="container name")
    memory_limit: str = Field("256Mi", description="container memory limit")
    behaviour: Behaviour = Field(Behaviour.HEALTHY, description="what the simulated kubelet plays")
    after_seconds: float = Field(0.0, ge=0, description="behaviour starts this long after the scenario")
    fixed_by: Fix | None = Field(None, description="what ends the behaviour; default per behaviour")
    memory_threshold: str | None = Field(None, description="limit that fixes oom (>=) or unschedulable (<=)")
    pull_error: Literal["not_found", "unauthorized"] = Field("not_found", description="image_pull flavour")
    backoff_limit: int = Field(2, ge=0, description="Job backoffLimit")
    logs: list[str] = Field(default_factory=list, description="lines each container run prints")
    service: bool = Field(False, description="also create a Service and Endpoints")

    @model_validator(mode="after")
    def _check(self) -> WorkloadSpec:
        memory_bytes(self.memory_limit)
        if self.memory_threshold is not None:
            memory_bytes(self.memory_threshold)
        if self.behaviour == Behaviour.JOB_FAIL and self.kind != "Job":
            raise ValueError("behaviour job_fail needs kind Job")
        return self

    @property
    def fix(self) -> Fix:
        return self.fixed_by or DEFAULT_FIX[self.behaviour]

    @property
    def threshold_bytes(self) -> int:
        if self.memory_threshold is not None:
            return memory_bytes(self.memory_threshold)
        limit = memory_bytes(self.memory_limit)
        return limit * 2 if self.behaviour == Behaviour.OOM else limit // 2


class NodeEvent(_Strict):
    node: str = Field(description="node name")
    at_seconds: float = Field(ge=0, description="seconds after the scenario start")
    condition: Literal["Ready", "NotReady", "Unknown", "MemoryPressure", "DiskPressure"] = Field(
        description="new node state"
    )


class Scenario(_Strict):
    name: str = Field("scenario", description="scenario name")
    namespaces: list[str] = Field(description="namespaces to create")
    nodes: list[NodeSpec] = Field(
        default_factory=lambda: [NodeSpec(name=f"node-{i}") for i in (1, 2, 3)], description="nodes"
    )
    workloads: list[WorkloadSpec] = Field(default_factory=list, description="workloads")
    node_events: list[NodeEvent] = Field(default_factory=list, description="node condition changes")
    restart_interval_seconds: float = Field(1.0, gt=0, description="seconds between simulated restarts")

    @model_validator(mode="after")
    def _check(self) -> Scenario:
        nodes = {n.name for n in self.nodes}
        for i, w in enumerate(self.workloads):
            if w.namespace not in self.namespaces:
                raise ValueError(f"workloads[{i}].namespace {w.namespace!r} is not listed under namespaces")
        for i, e in enumerate(self.node_events):
            if e.node not in nodes:
                raise ValueError(f"node_events[{i}].node {e.node!r} is not listed under nodes")
        return self


def parse_scenario(text: str, source: str = "<scenario>") -> Scenario:
    try:
        data = yaml.safe_load(text)
        return Scenario.model_validate(data)
    except yaml.YAMLError as e:
        raise ConfigError(f"{source}: not valid YAML: {e}") from e
    except ValidationError as e:
        problems = tuple(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']} (got {err.get('input')!r})"
            for err in e.errors()
        )
        raise ConfigError(f"{source}: invalid scenario", problems) from e


def load_scenario(path: str | Path) -> Scenario:
    """Load a scenario file; a bare name (``demo``) means a shipped scenario."""
    p = Path(path)
    if not p.exists() and (SCENARIO_DIR / f"{path}.yaml").exists():
        p = SCENARIO_DIR / f"{path}.yaml"
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read scenario {str(path)!r}: {e}") from e
    return parse_scenario(text, str(p))


def large_scenario(
    namespaces: int, pods_per_namespace: int, *, pods_per_deployment: int = 10, nodes: int = 10
) -> Scenario:
    """A healthy cluster of ``namespaces x pods_per_namespace`` pods, for benchmarks."""
    workloads = []
    for i in range(namespaces):
        ns = f"bench-{i:03d}"
        count = math.ceil(pods_per_namespace / pods_per_deployment) if pods_per_namespace else 0
        left = pods_per_namespace
        for j in range(count):
            replicas = min(pods_per_deployment, left)
            left -= replicas
            workloads.append(WorkloadSpec(name=f"svc-{j:03d}", namespace=ns, replicas=replicas))
    return Scenario(
        name=f"large-{namespaces}x{pods_per_namespace}",
        namespaces=[f"bench-{i:03d}" for i in range(namespaces)],
        nodes=[NodeSpec(name=f"node-{i}", memory="64Gi", cpu="32") for i in range(1, nodes + 1)],
        workloads=workloads,
    )
