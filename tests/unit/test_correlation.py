"""Correlator lifecycle: dedup, grouping, out-of-order delivery, ack/resolve/reopen, flapping, group wait."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

import pytest

from core.correlation_events import (
    Acknowledge,
    AcknowledgeIncident,
    AddMaintenance,
    AddSilence,
    AttachSignal,
    Effect,
    EscalateIncident,
    Notify,
    NotifyDue,
    OpenIncident,
    RemoveSilence,
    ReopenIncident,
    ResolveIncident,
    Suppressed,
    SuppressReason,
)
from core.errors import NotFound
from core.incident_groups import CorrelationState, NotifyKind
from core.models import IncidentStatus, Reason, Severity, Signal
from core.silences import MaintenanceWindow, Silence
from tests.unit.correlation_support import (
    NO_WAIT_RULES,
    Driver,
    am_signal,
    at,
    inline_rules,
    pod_signal,
    refire,
    resolved,
)


def trace(effects: Sequence[Effect]) -> list[str]:
    """Effects as short words, so a scenario's expectation reads as one line."""
    words: list[str] = []
    for e in effects:
        if isinstance(e, OpenIncident):
            words.append("open")
        elif isinstance(e, AttachSignal):
            words.append("attach")
        elif isinstance(e, EscalateIncident):
            words.append(f"escalate:{e.to_severity.value}")
        elif isinstance(e, AcknowledgeIncident):
            words.append("ack")
        elif isinstance(e, ResolveIncident):
            words.append(f"resolve:{e.reason.value}")
        elif isinstance(e, ReopenIncident):
            words.append("reopen")
        elif isinstance(e, Suppressed):
            words.append(f"suppress:{e.reason.value}")
        elif isinstance(e, Notify):
            words.append(f"notify:{e.kind.value}")
        elif isinstance(e, NotifyDue):
            words.append("due")
    return words


def driver(rules: str = NO_WAIT_RULES) -> Driver:
    return Driver(rules=inline_rules(rules))


A = am_signal("KubeJobFailed", "fa", starts=0, namespace="batch", job_name="nightly")
B = am_signal("KubeJobFailed", "fb", starts=5, namespace="batch", job_name="weekly")
A_RESOLVED = am_signal(
    "KubeJobFailed", "fa", status="resolved", starts=0, ends=60, namespace="batch", job_name="nightly"
)
GROUPED = """
rules:
  - name: jobs
    match: {reason: [KubeJobFailed]}
    group_by: [namespace]
    cooldown: 5m
"""

Step = tuple[Signal, float]


@pytest.mark.parametrize(
    ("rules", "steps", "expected"),
    [
        pytest.param(
            NO_WAIT_RULES,
            [(A, 0), (A, 10)],
            ["open", "notify:new", "suppress:duplicate"],
            id="same-fingerprint-same-status-is-a-duplicate",
        ),
        pytest.param(
            NO_WAIT_RULES,
            [(A, 0), (am_signal("KubeJobFailed", "fa", starts=0, namespace="batch", job_name="nightly"), 1)],
            ["open", "notify:new", "suppress:duplicate"],
            id="the-same-alert-from-two-alertmanagers-is-one-incident",
        ),
        pytest.param(
            NO_WAIT_RULES,
            [(A, 0), (B, 5)],
            ["open", "notify:new", "open", "notify:new"],
            id="different-group-keys-open-separate-incidents",
        ),
        pytest.param(
            GROUPED, [(A, 0), (B, 5)], ["open", "notify:new", "attach"], id="same-group-key-joins-the-open-incident"
        ),
        pytest.param(
            NO_WAIT_RULES,
            [(A, 0), (A_RESOLVED, 60)],
            ["open", "notify:new", "attach", "resolve:recovered", "notify:resolved"],
            id="alertmanager-resolved-resolves-the-incident",
        ),
        pytest.param(
            GROUPED,
            [(A, 0), (B, 5), (A_RESOLVED, 60)],
            ["open", "notify:new", "attach", "attach"],
            id="incident-stays-open-while-one-signal-still-fires",
        ),
        pytest.param(
            NO_WAIT_RULES,
            [(A, 0), (A_RESOLVED, 60), (refire(A, 120), 120)],
            ["open", "notify:new", "attach", "resolve:recovered", "notify:resolved", "reopen", "notify:reopened"],
            id="recurrence-within-cooldown-reopens-the-same-incident",
        ),
        pytest.param(
            NO_WAIT_RULES,
            [(A, 0), (A_RESOLVED, 60), (refire(A, 1000), 1000)],
            ["open", "notify:new", "attach", "resolve:recovered", "notify:resolved", "open", "notify:new"],
            id="recurrence-after-cooldown-opens-a-new-incident",
        ),
        pytest.param(
            NO_WAIT_RULES,
            [(A, 0), (refire(A, 90), 90), (resolved(A, 60), 100)],
            ["open", "notify:new", "suppress:duplicate", "suppress:stale"],
            id="resolved-older-than-the-latest-firing-is-ignored",
        ),
        pytest.param(
            NO_WAIT_RULES,
            [(A_RESOLVED, 60), (A, 61)],
            ["suppress:stale", "suppress:stale"],
            id="resolved-before-firing-makes-the-older-firing-stale",
        ),
        pytest.param(
            NO_WAIT_RULES,
            [(A_RESOLVED, 60), (refire(A, 120), 120)],
            ["suppress:stale", "open", "notify:new"],
            id="firing-newer-than-an-orphan-resolved-opens-an-incident",
        ),
        pytest.param(
            NO_WAIT_RULES,
            [(A, 0), (A_RESOLVED, 60), (A, 70)],
            ["open", "notify:new", "attach", "resolve:recovered", "notify:resolved", "suppress:stale"],
            id="late-copy-of-the-old-firing-does-not-reopen",
        ),
        pytest.param(
            NO_WAIT_RULES,
            [
                (A, 0),
                (
                    am_signal(
                        "KubeJobFailed", "fa", starts=0, namespace="batch", job_name="nightly", severity="critical"
                    ),
                    5,
                ),
            ],
            ["open", "notify:new", "attach", "escalate:critical", "notify:escalated"],
            id="higher-severity-of-a-notified-incident-escalates-and-notifies",
        ),
        pytest.param(
            """
rules:
  - name: heartbeat
    match: {reason: [Watchdog]}
    drop: true
""",
            [(am_signal("Watchdog", "wd", starts=0), 0)],
            ["suppress:dropped"],
            id="dropped-signal-never-opens",
        ),
    ],
)
def test_lifecycle_scenarios(rules: str, steps: list[Step], expected: list[str]) -> None:
    run = driver(rules)
    for signal, when in steps:
        run.send(signal, when)
    assert trace(run.effects) == expected


def test_duplicates_are_counted_on_the_incident_and_the_state() -> None:
    run = driver()
    for when in (0, 1, 2):
        run.send(A, when)
    (group,) = run.state.groups.values()
    assert group.duplicates == 2 and run.state.duplicates == 2 and group.signals[A.fingerprint].seen == 3


def test_acknowledge_then_recovery_resolves_and_reopen_clears_the_acknowledgement() -> None:
    run = driver()
    (opened,) = [e for e in run.send(A, 0) if isinstance(e, OpenIncident)]
    assert trace(run.send(Acknowledge(opened.incident_id, "alice"), 10)) == ["ack"]
    group = run.state.by_incident(opened.incident_id)
    assert group is not None and group.status is IncidentStatus.ACKNOWLEDGED and group.acknowledged_by == "alice"
    assert run.send(Acknowledge(opened.incident_id, "bob"), 11) == []
    run.send(A_RESOLVED, 60)
    assert run.state.groups[group.group_key].status is IncidentStatus.RESOLVED
    run.send(refire(A, 100), 100)
    reopened = run.state.groups[group.group_key]
    assert reopened.status is IncidentStatus.OPEN and reopened.acknowledged_by is None
    assert reopened.incident_id == opened.incident_id and reopened.reopened == 1


def test_acknowledging_an_unknown_incident_raises_not_found() -> None:
    with pytest.raises(NotFound, match="inc-nope"):
        driver().send(Acknowledge("inc-nope", "alice"), 0)


WAIT = """
rules:
  - name: jobs
    match: {reason: [KubeJobFailed]}
    group_by: [namespace]
    group_wait: 30s
"""


def test_group_wait_defers_the_first_notification_until_a_tick_at_the_due_time() -> None:
    run = driver(WAIT)
    out = run.send(A, 0)
    assert trace(out) == ["open", "due"]
    assert [e.at for e in out if isinstance(e, NotifyDue)] == [at(30)] and run.state.next_due() == at(30)
    assert trace(run.send(B, 5)) == ["attach"]
    assert run.tick(29) == []
    (note,) = run.tick(30)
    assert isinstance(note, Notify) and note.kind is NotifyKind.NEW and "2 firing signals" in note.summary
    assert run.state.next_due() is None and run.tick(31) == []


def test_incident_resolved_within_group_wait_never_notifies() -> None:
    run = driver(WAIT)
    run.send(A, 0)
    run.send(A_RESOLVED, 10)
    run.tick(60)
    assert run.notifications() == [] and trace(run.effects) == ["open", "due", "attach", "resolve:recovered"]


FLAPPY = [(A, 0)] + [(resolved(A, t) if i % 2 == 0 else refire(A, t), t) for i, t in enumerate(range(10, 100, 10))]


def test_flapping_fingerprint_has_its_notifications_suppressed_until_it_calms_down() -> None:
    run = driver()
    for signal, when in FLAPPY:
        run.send(signal, when)
    kinds = [e.kind for e in run.notifications()]
    # changes 1-4 still notify; the 5th change within 10 minutes (t=50s) makes it flap
    assert kinds == [NotifyKind.NEW, NotifyKind.RESOLVED, NotifyKind.REOPENED, NotifyKind.RESOLVED, NotifyKind.REOPENED]
    assert len(run.suppressed(SuppressReason.FLAPPING)) == 5
    (group,) = run.state.groups.values()
    assert group.status is IncidentStatus.RESOLVED
    run.send(refire(A, 800), 800)
    assert run.notifications()[-1].kind is NotifyKind.NEW


SILENCE = Silence(
    id="s1", matchers=('namespace="batch"',), starts_at=at(0), ends_at=at(600), created_by="alice", comment="x"
)
WINDOW = MaintenanceWindow(id="m1", namespaces=("bat*",), starts_at=at(0), ends_at=at(600), created_by="bob")


@pytest.mark.parametrize(
    ("setup", "when", "expected"),
    [
        pytest.param(AddSilence(SILENCE), 10, ["suppress:silence"], id="silenced-signal-opens-nothing"),
        pytest.param(AddSilence(SILENCE), 700, ["open", "notify:new"], id="expired-silence-mutes-nothing"),
        pytest.param(AddMaintenance(WINDOW), 10, ["suppress:maintenance"], id="namespace-in-maintenance"),
        pytest.param(AddMaintenance(WINDOW), 600, ["open", "notify:new"], id="maintenance-window-over"),
    ],
)
def test_silences_and_maintenance_windows_mute_matching_signals(
    setup: AddSilence | AddMaintenance, when: float, expected: list[str]
) -> None:
    run = driver()
    run.send(setup, 0)
    assert trace(run.send(refire(A, when), when)) == expected


def test_silence_created_during_group_wait_mutes_the_pending_notification() -> None:
    run = driver(WAIT)
    run.send(A, 0)
    run.send(AddSilence(SILENCE), 5)
    assert trace(run.tick(30)) == ["suppress:silence"]
    run.send(RemoveSilence("s1"), 40)
    assert run.state.silences == {}
    with pytest.raises(NotFound):
        run.send(RemoveSilence("s1"), 41)


def test_expired_silences_are_pruned_from_state() -> None:
    run = driver()
    run.send(AddSilence(SILENCE), 0)
    run.tick(601)
    assert run.state.silences == {}


def test_state_survives_a_storage_round_trip_and_continues_the_same_incident() -> None:
    run = driver(WAIT)
    run.send(A, 0)
    run.send(B, 1)
    run.send(AddSilence(SILENCE.model_copy(update={"matchers": ('job_name="other"',)})), 2)
    stored = json.loads(json.dumps(run.state.for_storage()))
    restored = CorrelationState.from_storage(stored)
    assert restored == run.state
    run.state = restored
    (note,) = run.tick(30)
    assert isinstance(note, Notify) and note.kind is NotifyKind.NEW
    run.send(A_RESOLVED, 60)
    run.send(
        am_signal("KubeJobFailed", "fb", status="resolved", starts=5, ends=70, namespace="batch", job_name="weekly"), 70
    )
    assert [e.kind for e in run.notifications()] == [NotifyKind.NEW, NotifyKind.RESOLVED]


def _k8s_pod(when: float) -> Signal:
    return pod_signal("api-7d9f8-a", Reason.CRASH_LOOP_BACK_OFF, deployment="api", when=when)


@pytest.mark.parametrize(
    ("make", "expected_severity"),
    [
        pytest.param(lambda: _k8s_pod(0), Severity.WARNING, id="k8s-signal-keeps-its-severity"),
        pytest.param(
            lambda: pod_signal("db-0", Reason.OOM_KILLED, severity=Severity.CRITICAL),
            Severity.CRITICAL,
            id="critical-k8s-signal",
        ),
    ],
)
def test_open_incident_carries_decision_severity_and_a_deterministic_id(
    make: Callable[[], Signal], expected_severity: Severity
) -> None:
    first, second = driver(), driver()
    first.send(make(), 0)
    second.send(make(), 0)
    (a,), (b,) = first.opened(), second.opened()
    assert a.severity is expected_severity and a.incident_id == b.incident_id and a.incident_id.startswith("inc-")


def test_pruned_resolved_incident_frees_its_group_key_after_cooldown() -> None:
    run = driver()
    run.send(A, 0)
    run.send(A_RESOLVED, 60)
    run.tick(60 + 300 + 1)
    assert run.state.groups == {}
    assert run.state.next_due() is None
