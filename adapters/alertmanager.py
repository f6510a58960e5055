"""Alertmanager webhook payloads (version 4) and their translation into signals.

The model accepts the full payload Alertmanager 0.2x sends (``groupKey``,
``truncatedAlerts``, per-alert ``fingerprint``, ``startsAt``/``endsAt``, ...) and rejects
anything else with a clear error: unknown versions, missing fields, wrong types.
Translation maps well-known kube-state-metrics labels (``pod``, ``deployment``, ``node``,
...) onto the object the alert is about, so correlation can join alerts with what the
watchers see.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.errors import InputError
from core.models import Fingerprint, ObjectRef, Severity, Signal, SignalSource, SignalStatus, fingerprint_of

MAX_ALERTS = 20_000


class AmAlert(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime  # noqa: N815 - wire name
    endsAt: datetime | None = None  # noqa: N815
    generatorURL: str = ""  # noqa: N815
    fingerprint: str = ""


class AmWebhook(BaseModel):
    """Alertmanager's webhook body, version 4."""

    model_config = ConfigDict(extra="allow", frozen=True)

    version: Literal["4"]
    groupKey: str  # noqa: N815
    truncatedAlerts: int = Field(default=0, ge=0)  # noqa: N815
    status: Literal["firing", "resolved"]
    receiver: str
    groupLabels: dict[str, str] = Field(default_factory=dict)  # noqa: N815
    commonLabels: dict[str, str] = Field(default_factory=dict)  # noqa: N815
    commonAnnotations: dict[str, str] = Field(default_factory=dict)  # noqa: N815
    externalURL: str = ""  # noqa: N815
    alerts: list[AmAlert] = Field(max_length=MAX_ALERTS)


def parse_webhook(raw: bytes | str) -> AmWebhook:
    """Parse and validate a webhook body; InputError says what is wrong and where."""
    try:
        return AmWebhook.model_validate_json(raw)
    except ValidationError as e:
        first = e.errors()[:5]
        parts = []
        for item in first:
            where = ".".join(str(p) for p in item["loc"]) or "body"
            message = item["msg"]
            if item["type"] == "literal_error" and item["loc"] == ("version",):
                message = f'unsupported webhook version {item.get("input")!r}; only version "4" is accepted'
            elif item["type"] == "json_invalid":
                message = f"malformed JSON: {item.get('ctx', {}).get('error', item['msg'])}"
            parts.append(f"{where}: {message}")
        more = f" (+{e.error_count() - len(first)} more)" if e.error_count() > len(first) else ""
        raise InputError("invalid Alertmanager payload: " + "; ".join(parts) + more) from e


_OBJECT_LABELS = (
    ("pod", "Pod"),
    ("deployment", "Deployment"),
    ("statefulset", "StatefulSet"),
    ("daemonset", "DaemonSet"),
    ("job_name", "Job"),
    ("cronjob", "CronJob"),
    ("persistentvolumeclaim", "PersistentVolumeClaim"),
    ("service", "Service"),
    ("node", "Node"),
)
_CLUSTER_SCOPED = {"Node"}


def object_of(labels: dict[str, str]) -> ObjectRef | None:
    """The Kubernetes object an alert is about, from kube-state-metrics label names."""
    for label, kind in _OBJECT_LABELS:
        name = labels.get(label)
        if name:
            namespace = None if kind in _CLUSTER_SCOPED else labels.get("namespace")
            return ObjectRef(kind=kind, name=name, namespace=namespace)
    return None


def _fingerprint(alert: AmAlert) -> Fingerprint:
    if alert.fingerprint:
        return Fingerprint(f"am-{alert.fingerprint}")
    parts = [f"{k}={v}" for k, v in sorted(alert.labels.items())]
    return Fingerprint(f"am-{fingerprint_of(*parts)}")


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def to_signals(payload: AmWebhook, received_at: datetime) -> list[Signal]:
    """One signal per alert; resolved alerts become recovery signals observed at ``endsAt``."""
    signals = []
    for alert in payload.alerts:
        labels = dict(alert.labels)
        obj = object_of(labels)
        starts = _utc(alert.startsAt)
        if alert.status == "resolved":
            ends = _utc(alert.endsAt) if alert.endsAt and alert.endsAt.year > 1 else received_at
            observed = max(ends, starts)
        else:
            observed = starts
        node = labels.get("node") or labels.get("instance_node")
        signals.append(
            Signal(
                source=SignalSource.ALERTMANAGER,
                reason=labels.get("alertname", "UnnamedAlert"),
                severity=Severity.parse(labels.get("severity")),
                status=SignalStatus(alert.status),
                labels=labels,
                annotations=dict(alert.annotations),
                object=obj,
                node=node,
                message=(alert.annotations.get("summary") or alert.annotations.get("description") or "")[:1000],
                observed_at=observed,
                starts_at=starts,
                fingerprint=_fingerprint(alert),
            )
        )
    return signals
