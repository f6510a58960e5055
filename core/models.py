"""Domain values shared by every ring: signals, object references, incidents.

These are frozen pydantic models so they cross Ray process boundaries and storage
without losing their shape. Nothing here does I/O or reads a clock: callers pass
``now`` in.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any, NewType

from pydantic import BaseModel, ConfigDict, Field

Fingerprint = NewType("Fingerprint", str)
IncidentId = NewType("IncidentId", str)
ApprovalId = NewType("ApprovalId", str)
RunId = NewType("RunId", str)


class Severity(StrEnum):
    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        """Higher is worse: info 0, warning 1, critical 2."""
        return {"info": 0, "warning": 1, "critical": 2}[self.value]

    @classmethod
    def parse(cls, value: str | None, default: Severity | None = None) -> Severity:
        """Map free-form severities (Alertmanager labels) onto ours; unknown -> default or warning."""
        text = (value or "").strip().lower()
        aliases = {
            "critical": cls.CRITICAL,
            "crit": cls.CRITICAL,
            "page": cls.CRITICAL,
            "error": cls.CRITICAL,
            "high": cls.CRITICAL,
            "emergency": cls.CRITICAL,
            "warning": cls.WARNING,
            "warn": cls.WARNING,
            "medium": cls.WARNING,
            "info": cls.INFO,
            "informational": cls.INFO,
            "low": cls.INFO,
            "none": cls.INFO,
        }
        return aliases.get(text, default or cls.WARNING)


class SignalSource(StrEnum):
    K8S = "k8s"
    ALERTMANAGER = "alertmanager"


class SignalStatus(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


class Reason(StrEnum):
    """The fixed vocabulary of Kubernetes detection reasons (DESIGN.md)."""

    CRASH_LOOP_BACK_OFF = "CrashLoopBackOff"
    OOM_KILLED = "OOMKilled"
    IMAGE_PULL_BACK_OFF = "ImagePullBackOff"
    ERR_IMAGE_PULL = "ErrImagePull"
    INVALID_IMAGE_NAME = "InvalidImageName"
    CREATE_CONTAINER_CONFIG_ERROR = "CreateContainerConfigError"
    CREATE_CONTAINER_ERROR = "CreateContainerError"
    RUN_CONTAINER_ERROR = "RunContainerError"
    UNSCHEDULABLE = "Unschedulable"
    EVICTED = "Evicted"
    NON_ZERO_EXIT = "NonZeroExit"
    PROBE_FAILURE = "ProbeFailure"
    NOT_READY = "NotReady"
    FAILED_MOUNT = "FailedMount"
    DEPLOYMENT_UNAVAILABLE = "DeploymentUnavailable"
    PROGRESS_DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"
    REPLICA_FAILURE = "ReplicaFailure"
    STATEFUL_SET_UNAVAILABLE = "StatefulSetUnavailable"
    DAEMON_SET_UNAVAILABLE = "DaemonSetUnavailable"
    JOB_FAILED = "JobFailed"
    PVC_PENDING = "PVCPending"
    NODE_NOT_READY = "NodeNotReady"
    NODE_PRESSURE = "NodePressure"
    SERVICE_NO_ENDPOINTS = "ServiceNoEndpoints"


_FROZEN = ConfigDict(frozen=True, extra="forbid")


class ObjectRef(BaseModel):
    """A Kubernetes object by kind, namespace (None for cluster-scoped) and name."""

    model_config = _FROZEN

    kind: str
    name: str
    namespace: str | None = None

    def key(self) -> str:
        """A stable text form: ``Kind/namespace/name`` or ``Kind//name`` when cluster-scoped."""
        return f"{self.kind}/{self.namespace or ''}/{self.name}"

    def __str__(self) -> str:
        return self.key()


class Signal(BaseModel):
    """One observation, from a watcher (k8s) or from Alertmanager.

    ``fingerprint`` identifies the condition (same pod + same reason, or Alertmanager's
    own fingerprint), not the observation: the same condition seen twice has one
    fingerprint, which is what makes ingest idempotent.
    """

    model_config = _FROZEN

    source: SignalSource
    reason: str
    severity: Severity
    status: SignalStatus = SignalStatus.FIRING
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    object: ObjectRef | None = None
    owners: tuple[ObjectRef, ...] = Field(
        default=(), description="Owner chain, nearest first: pod -> replicaset -> deployment."
    )
    node: str | None = None
    message: str = ""
    observed_at: datetime
    starts_at: datetime | None = None
    fingerprint: Fingerprint

    @property
    def namespace(self) -> str | None:
        if self.object is not None and self.object.namespace:
            return self.object.namespace
        return self.labels.get("namespace")

    @property
    def firing(self) -> bool:
        return self.status is SignalStatus.FIRING

    def all_labels(self) -> Mapping[str, str]:
        """Labels plus the derived ones rules match on (reason, source, severity, namespace, ...).

        Computed once per signal (the correlator asks several times per signal in a storm); read-only.
        """
        return self._all_labels

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Signal:
        copied = super().model_copy(update=update, deep=deep)
        copied.__dict__.pop("_all_labels", None)  # derived from fields the update may change
        return copied

    @functools.cached_property
    def _all_labels(self) -> Mapping[str, str]:
        merged = dict(self.labels)
        merged.setdefault("reason", self.reason)
        merged.setdefault("source", self.source.value)
        merged.setdefault("severity", self.severity.value)
        if self.namespace:
            merged.setdefault("namespace", self.namespace)
        if self.object is not None:
            merged.setdefault("kind", self.object.kind)
            merged.setdefault(self.object.kind.lower(), self.object.name)
        if self.node:
            merged.setdefault("node", self.node)
        return merged


def fingerprint_of(*parts: str) -> Fingerprint:
    """A short stable hash of its parts (order matters)."""
    digest = hashlib.sha256(json.dumps(parts, separators=(",", ":")).encode()).hexdigest()
    return Fingerprint(digest[:16])


class IncidentStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class Incident(BaseModel):
    """An incident as stored and served: one problem, many signals."""

    model_config = _FROZEN

    id: IncidentId
    group_key: str
    status: IncidentStatus
    severity: Severity
    title: str
    rule: str
    namespace: str | None = None
    object: ObjectRef | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    signal_count: int = 0
    playbook: str | None = None
    opened_at: datetime
    updated_at: datetime
    resolved_at: datetime | None = None
