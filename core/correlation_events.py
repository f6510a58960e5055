"""What goes into the correlator (events) and what comes out (effects), as frozen values.

The correlator never stores, sends or sleeps: it answers each event with effects that
the RuleEngine actor carries out in order (write the incident, attach the signal, send
the notification, schedule a ``Tick`` at ``NotifyDue.at``). Keeping both sides typed
and small makes the actor a loop over a ``match`` statement and lets tests read the
correlator's decisions as plain lists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from core.incident_groups import NotifyKind
from core.models import Fingerprint, IncidentId, ObjectRef, Severity, Signal
from core.rules import Decision
from core.silences import MaintenanceWindow, Silence

# --- events ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SignalEvent:
    """A signal and what the rules said about it (``RuleSet.evaluate``)."""

    signal: Signal
    decision: Decision


@dataclass(frozen=True)
class Acknowledge:
    incident_id: str
    who: str


@dataclass(frozen=True)
class Tick:
    """Time passed (``now`` is the argument of ``advance``): flush due notifications, prune."""


@dataclass(frozen=True)
class AddSilence:
    silence: Silence


@dataclass(frozen=True)
class RemoveSilence:
    silence_id: str


@dataclass(frozen=True)
class AddMaintenance:
    window: MaintenanceWindow


@dataclass(frozen=True)
class RemoveMaintenance:
    window_id: str


Event = SignalEvent | Acknowledge | Tick | AddSilence | RemoveSilence | AddMaintenance | RemoveMaintenance


# --- effects --------------------------------------------------------------------------


class SuppressReason(StrEnum):
    SILENCE = "silence"
    MAINTENANCE = "maintenance"
    INHIBIT = "inhibit"
    FLAPPING = "flapping"
    DUPLICATE = "duplicate"
    DROPPED = "dropped"
    STALE = "stale"


class ResolveReason(StrEnum):
    RECOVERED = "recovered"
    MERGED = "merged"


@dataclass(frozen=True)
class OpenIncident:
    incident_id: IncidentId
    group_key: str
    rule: str
    severity: Severity
    title: str
    playbook: str | None
    namespace: str | None
    object: ObjectRef | None
    signal: Signal
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AttachSignal:
    """Store ``signal`` (firing or recovered) as part of the incident."""

    incident_id: IncidentId
    group_key: str
    signal: Signal
    affected: bool = False
    moved_from: IncidentId | None = None


@dataclass(frozen=True)
class EscalateIncident:
    incident_id: IncidentId
    group_key: str
    from_severity: Severity
    to_severity: Severity


@dataclass(frozen=True)
class AcknowledgeIncident:
    incident_id: IncidentId
    group_key: str
    who: str


@dataclass(frozen=True)
class ResolveIncident:
    incident_id: IncidentId
    group_key: str
    reason: ResolveReason
    merged_into: IncidentId | None = None


@dataclass(frozen=True)
class ReopenIncident:
    incident_id: IncidentId
    group_key: str
    signal: Signal


@dataclass(frozen=True)
class Suppressed:
    """No notification (and, except for ``inhibit``, no attachment) because of ``reason``."""

    reason: SuppressReason
    fingerprint: Fingerprint | None = None
    incident_id: IncidentId | None = None
    detail: str = ""


@dataclass(frozen=True)
class Notify:
    kind: NotifyKind
    incident_id: IncidentId
    group_key: str
    severity: Severity
    title: str
    summary: str
    playbook: str | None
    routes: tuple[str, ...] = ()


@dataclass(frozen=True)
class NotifyDue:
    """A notification waits (``group_wait``): send ``Tick`` at or after ``at``."""

    incident_id: IncidentId
    group_key: str
    at: datetime


Effect = (
    OpenIncident
    | AttachSignal
    | EscalateIncident
    | AcknowledgeIncident
    | ResolveIncident
    | ReopenIncident
    | Suppressed
    | Notify
    | NotifyDue
)
