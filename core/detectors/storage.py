"""Storage detectors: PersistentVolumeClaims stuck in Pending.

A Pending claim blocks every pod that mounts it. The exception is a claim whose
StorageClass binds on first consumer: it is Pending by design until a pod uses it,
which the PV controller announces with a ``WaitForFirstConsumer`` Event; when that is
the latest Event we know of for the claim, nothing is reported. The latest Warning
Event (e.g. ProvisioningFailed) is quoted, because it usually names the cause.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from core.detectors.events import DEFAULT_EVENT_WINDOW, events_for
from core.detectors.findings import DetailValue, Finding
from core.detectors.objects import first_line, name_of, namespace_of, sub, text
from core.models import Reason, Severity


def detect_pvc(
    pvc: Mapping[str, Any],
    events: Sequence[Mapping[str, Any]] = (),
    *,
    now: datetime | None = None,
) -> list[Finding]:
    """PVCPending (warning) unless the claim is waiting for its first consumer."""
    name = name_of(pvc)
    if name is None or text(sub(pvc, "status").get("phase")) != "Pending":
        return []
    claim_events = events_for(pvc, "PersistentVolumeClaim", events, now=now, window=DEFAULT_EVENT_WINDOW * 4)
    if claim_events and claim_events[-1].reason == "WaitForFirstConsumer":
        return []
    spec = sub(pvc, "spec")
    details: dict[str, DetailValue] = {
        "storage_class": text(spec.get("storageClassName")),
        "requested": text(sub(spec, "resources", "requests").get("storage")),
    }
    message = "claim is Pending (no volume bound)"
    warnings = [event for event in claim_events if event.type == "Warning"]
    if warnings:
        details["event_reason"] = warnings[-1].reason
        message += f": {warnings[-1].reason}: {first_line(warnings[-1].message, 400)}"
    return [
        Finding(
            kind="PersistentVolumeClaim",
            namespace=namespace_of(pvc),
            name=name,
            reason=Reason.PVC_PENDING,
            severity=Severity.WARNING,
            message=message,
            details=details,
        )
    ]
