"""Node detectors: NotReady nodes and resource pressure.

A node whose Ready condition is False or Unknown (the kubelet stopped reporting) takes
every pod on it down, so NodeNotReady is critical. Memory, disk and PID pressure mean
the kubelet is about to evict or already refuses pods: one NodePressure warning per
node, listing every pressure type, because the fingerprint names the node, not the type.
Cordoned nodes (spec.unschedulable) are an operator's choice and yield nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.detectors.findings import DetailValue, Finding
from core.detectors.objects import conditions, first_line, name_of, text
from core.models import Reason, Severity

PRESSURE_CONDITIONS = ("MemoryPressure", "DiskPressure", "PIDPressure")


def _node_finding(
    name: str, reason: Reason, severity: Severity, message: str, details: dict[str, DetailValue]
) -> Finding:
    return Finding(
        kind="Node",
        namespace=None,
        name=name,
        reason=reason,
        severity=severity,
        message=message,
        node=name,
        details=details,
    )


def detect_node(node: Mapping[str, Any]) -> list[Finding]:
    """NodeNotReady (critical) and NodePressure (warning)."""
    name = name_of(node)
    if name is None:
        return []
    found = conditions(node)
    findings: list[Finding] = []
    ready = found.get("Ready")
    if ready is not None and ready.get("status") in ("False", "Unknown"):
        status = str(ready.get("status"))
        condition_reason = text(ready.get("reason")) or "NotReady"
        message = f"node is not Ready (status {status}, {condition_reason})"
        if text(ready.get("message")):
            message += f": {first_line(ready.get('message'))}"
        findings.append(
            _node_finding(
                name,
                Reason.NODE_NOT_READY,
                Severity.CRITICAL,
                message,
                {"ready_status": status, "condition_reason": condition_reason},
            )
        )
    pressures = [kind for kind in PRESSURE_CONDITIONS if (found.get(kind) or {}).get("status") == "True"]
    if pressures:
        notes = [first_line((found.get(kind) or {}).get("message"), 120) for kind in pressures]
        message = f"node under {', '.join(pressures)}"
        if any(notes):
            message += ": " + "; ".join(note for note in notes if note)
        details: dict[str, DetailValue] = {"pressure": ",".join(pressures)}
        findings.append(_node_finding(name, Reason.NODE_PRESSURE, Severity.WARNING, message, details))
    return findings
