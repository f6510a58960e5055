"""Incremental storage of the correlation state: the parts written batch by batch rebuild it exactly."""

from __future__ import annotations

from datetime import timedelta

import pytest

from core.correlation_events import AddSilence, RemoveSilence, Tick
from core.incident_groups import CorrelationState, StateDelta, state_from_parts, storage_delta
from core.models import Reason
from core.silences import Silence
from tests.unit.correlation_support import (
    T0,
    Driver,
    am_signal,
    node_signal,
    pod_signal,
    refire,
    resolved,
)


class Parts:
    """What Redis holds, as plain dicts, updated by each delta the way the store's commands do."""

    def __init__(self) -> None:
        self.meta: str | None = None
        self.headers: dict[str, str] = {}
        self.signals: dict[str, dict[str, str]] = {}
        self.flaps: dict[str, str] = {}
        self.tombstones: dict[str, str] = {}
        self.writes = 0

    def apply(self, delta: StateDelta) -> None:
        if delta.meta is not None:
            self.meta = delta.meta
            self.writes += 1
        keyed = ((self.headers, delta.groups), (self.flaps, delta.flaps), (self.tombstones, delta.tombstones))
        for target, part in keyed:
            target.update(part.changed)
            for key in part.removed:
                target.pop(key, None)
            self.writes += len(part.changed) + len(part.removed)
        for key in delta.dropped_groups:
            self.signals.pop(key, None)
        for key, part in delta.signals.items():
            stored = self.signals.setdefault(key, {})
            stored.update(part.changed)
            for fp in part.removed:
                stored.pop(fp, None)
            self.writes += len(part.changed) + len(part.removed)

    def state(self) -> CorrelationState:
        return state_from_parts(self.meta, self.headers, self.signals, self.flaps, self.tombstones)


def storm_with_everything() -> list[object]:
    """Pods before their node fails (they move into the node incident), recoveries, flaps, a silence."""
    pods = [pod_signal(f"api-7d9f8-{i}", deployment="api", node="n1", when=i) for i in range(12)]
    others = [pod_signal(f"web-5c4b3-{i}", deployment="web", node="n2", when=20 + i) for i in range(6)]
    node = node_signal("n1", 30)
    alerts = [am_signal("KubePodCrashLooping", f"am-{i}", namespace="shop", pod=f"api-7d9f8-{i}") for i in range(4)]
    flapper = pod_signal("db-1a2b3-0", Reason.NOT_READY, deployment="db", when=40)
    flaps: list[object] = []
    for n in range(6):
        flaps.append(resolved(flapper, 41 + 2 * n) if n % 2 == 0 else refire(flapper, 41 + 2 * n))
    silence = Silence(
        id="s1", matchers=('namespace="quiet"',), starts_at=T0, ends_at=T0 + timedelta(hours=1), created_by="test"
    )
    early_recovery = resolved(pod_signal("late-9f8e7-0", deployment="late", when=60), 60)
    return [
        *pods, *others, node, *alerts, flapper, *flaps, AddSilence(silence), early_recovery,
        *(resolved(p, 70 + i) for i, p in enumerate(others)), RemoveSilence("s1"),
    ]


@pytest.mark.parametrize("rebuild_every", [1, 7, 1000])
def test_parts_written_delta_by_delta_rebuild_the_same_state_and_the_run_continues_identically(
    rebuild_every: int,
) -> None:
    steady = Driver()
    stored = Driver()
    parts = Parts()
    previous: CorrelationState | None = None
    items: list[tuple[object, float | None]] = [(item, None) for item in storm_with_everything()]
    items.append((Tick(), 4 * 3600))  # hours later: flaps and tombstones are pruned, removals must be stored
    for number, (item, when) in enumerate(items):
        if number == len(items) - 1:
            assert steady.state.flaps and steady.state.tombstones, "the scenario must exercise flaps and tombstones"
        steady.send(item, when)  # type: ignore[arg-type]
        stored.send(item, when)  # type: ignore[arg-type]
        parts.apply(storage_delta(previous, stored.state))
        previous = stored.state
        if number % rebuild_every == 0:
            rebuilt = parts.state()
            assert rebuilt == stored.state
            stored = Driver(state=rebuilt, effects=stored.effects)
            previous = rebuilt
    assert parts.state() == steady.state
    assert stored.effects == steady.effects
    assert not steady.state.flaps and not steady.state.tombstones


def test_a_batch_writes_only_what_it_changed_not_the_whole_state() -> None:
    run = Driver()
    pods = [pod_signal(f"api-7d9f8-{i}", deployment="api", node="n1", when=i) for i in range(200)]
    run.feed(pods)
    before = run.state
    run.send(pod_signal("api-7d9f8-200", deployment="api", node="n1", when=300))
    delta = storage_delta(before, run.state)
    assert delta.meta is None
    assert sum(len(p.changed) for p in delta.signals.values()) == 1
    assert len(delta.groups.changed) == 1
    assert storage_delta(run.state, run.state).empty


def test_a_full_delta_from_nothing_holds_every_signal() -> None:
    run = Driver()
    run.feed([pod_signal(f"api-7d9f8-{i}", deployment="api", when=i) for i in range(5)])
    delta = storage_delta(None, run.state)
    assert delta.meta is not None
    assert sum(len(p.changed) for p in delta.signals.values()) == 5
    parts = Parts()
    parts.apply(delta)
    assert parts.state() == run.state
