"""The one output of every detector: a ``Finding``.

A finding names one failing condition on one object (and, for pods, one container).
It is deliberately small and frozen so watchers can compare successive scans:

* ``fingerprint()`` names the *condition* (object + reason + container) and never
  changes while the condition lasts, which keeps ingest idempotent;
* ``state_key()`` names the condition's *state* (reason, severity and the details that
  matter, e.g. restart count or exit code), so a watcher re-sends a signal only when
  that state changes, not on every resync;
* ``to_signal()`` is the bridge into the rule engine, ``to_json()`` the
  ``aiops scan --output json`` row.

Messages and detail strings are truncated here, once, so a 1 MB event message can
never travel further than a finding.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.models import (
    Fingerprint,
    ObjectRef,
    Reason,
    Severity,
    Signal,
    SignalSource,
    SignalStatus,
    fingerprint_of,
)

MAX_MESSAGE = 500
MAX_DETAIL = 200
MAX_LABEL = 200

# Details that change while the condition stays the same (event counts, ages): they
# are shown to humans but do not make a new state for the watcher.
VOLATILE_DETAILS = frozenset({"event_count", "not_ready_seconds", "last_seen"})

DetailValue = str | int | None


def truncate(value: str, limit: int) -> str:
    """``value`` cut to at most ``limit`` characters, marking the cut with an ellipsis."""
    return value if len(value) <= limit else value[: limit - 1] + "…"


class Finding(BaseModel):
    """One failing condition found on one Kubernetes object."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str = Field(description='Kubernetes kind of the object: "Pod", "Deployment", "Node", ...')
    namespace: str | None = Field(description="None for cluster-scoped objects (nodes).")
    name: str
    reason: Reason
    severity: Severity
    message: str = Field(description=f"Human readable, at most {MAX_MESSAGE} characters.")
    container: str | None = Field(default=None, description="The container's real name, when one.")
    owners: tuple[ObjectRef, ...] = Field(
        default=(), description="Owner chain, nearest first: pod -> replicaset -> deployment."
    )
    node: str | None = None
    details: dict[str, DetailValue] = Field(
        default_factory=dict,
        description="Machine-readable facts: restart_count, exit_code, last_reason, probe, ...",
    )

    @field_validator("message", mode="before")
    @classmethod
    def _bound_message(cls, value: Any) -> Any:
        return truncate(value, MAX_MESSAGE) if isinstance(value, str) else value

    @field_validator("details", mode="before")
    @classmethod
    def _bound_details(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        return {key: truncate(item, MAX_DETAIL) if isinstance(item, str) else item for key, item in value.items()}

    @property
    def is_init_container(self) -> bool:
        return self.details.get("container_type") == "init"

    def object_ref(self) -> ObjectRef:
        return ObjectRef(kind=self.kind, namespace=self.namespace, name=self.name)

    def fingerprint(self) -> Fingerprint:
        """Stable for the life of the condition: independent of restarts, counts and messages."""
        return fingerprint_of(
            SignalSource.K8S.value,
            self.kind,
            self.namespace or "",
            self.name,
            self.reason.value,
            self.container or "",
        )

    def state_key(self) -> str:
        """What "changed" means for a watcher: reason, severity and the non-volatile details."""
        stable = {key: value for key, value in self.details.items() if key not in VOLATILE_DETAILS}
        return "|".join(
            (
                self.reason.value,
                self.severity.value,
                json.dumps(stable, sort_keys=True, separators=(",", ":")),
            )
        )

    def labels(self) -> dict[str, str]:
        """Labels rules match on: the object, its owners, the node, container and details."""
        labels = {"kind": self.kind, self.kind.lower(): self.name, "reason": self.reason.value}
        if self.namespace:
            labels["namespace"] = self.namespace
        if self.container:
            labels["container"] = self.container
        for owner in self.owners:
            labels.setdefault(owner.kind.lower(), owner.name)
        if self.node:
            labels.setdefault("node", self.node)
        for key, value in self.details.items():
            if value is not None:
                labels.setdefault(key, truncate(str(value), MAX_LABEL))
        return labels

    def to_signal(self, observed_at: datetime) -> Signal:
        return Signal(
            source=SignalSource.K8S,
            reason=self.reason.value,
            severity=self.severity,
            status=SignalStatus.FIRING,
            labels=self.labels(),
            object=self.object_ref(),
            owners=self.owners,
            node=self.node,
            message=self.message,
            observed_at=observed_at,
            fingerprint=self.fingerprint(),
        )

    def to_json(self) -> dict[str, str | None]:
        """The ``aiops scan --output json`` row."""
        return {
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
            "reason": self.reason.value,
            "severity": self.severity.value,
            "message": self.message,
        }
