"""The RuleEngine class (no Ray) with the real correlator, PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from actors.rule_engine import PENDING_KEY, RuleEngine
from adapters.correlation_store import LEGACY_KEY, META, CorrelationStore
from config.settings import Settings
from core.errors import InputError, NotFound
from core.incident_groups import CorrelationState
from core.models import Fingerprint, ObjectRef, Severity, Signal, SignalSource, SignalStatus
from tests.payloads import am_alert, am_payload

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def am(fp: str, status: str = "firing", at: datetime = T0, severity: str = "warning", **labels: str) -> Signal:
    return Signal(
        source=SignalSource.ALERTMANAGER,
        reason=labels.pop("alertname", "KubePodCrashLooping"),
        severity=Severity(severity),
        status=SignalStatus(status),
        labels={"namespace": "prod", "pod": fp, **labels},
        object=ObjectRef(kind="Pod", name=fp, namespace="prod"),
        observed_at=at,
        starts_at=T0,
        fingerprint=Fingerprint(fp),
    )


@pytest.fixture
async def settings(database_url: str, redis_url: str, redis_prefix: str, tmp_path: Path) -> Settings:
    return Settings.from_env(
        database_url=database_url, redis_url=redis_url, redis_prefix=redis_prefix, data_dir=tmp_path
    )


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[RuleEngine]:
    clock = Clock()
    rule_engine = RuleEngine(settings, clock=clock)
    stores = await rule_engine._ready()
    async with stores.postgres.pool.acquire() as conn:
        await conn.execute("TRUNCATE incidents, signals, incident_events CASCADE")
    rule_engine.clock = clock  # type: ignore[attr-defined]
    yield rule_engine
    await rule_engine.close()


async def count(engine: RuleEngine, sql: str) -> int:
    stores = await engine._ready()
    return int(await stores.postgres.pool.fetchval(sql))


async def test_the_same_alert_twice_is_stored_once_and_opens_one_incident(engine: RuleEngine) -> None:
    first = await engine.ingest([am("a")])
    again = await engine.ingest([am("a")])
    assert first["opened"] == 1 and again["duplicates"] == 1 and again["opened"] == 0
    assert await count(engine, "SELECT count(*) FROM incidents") == 1
    assert await count(engine, "SELECT count(*) FROM signals") == 1


async def test_concurrent_batches_of_one_deployment_make_one_incident_per_pod_group(engine: RuleEngine) -> None:
    batches = [[am(f"p{i}", deployment="api")] for i in range(20)]
    await asyncio.gather(*(engine.ingest(b) for b in batches))
    # Alertmanager pod alerts without owners are not merged by name: each pod is its own object.
    assert await count(engine, "SELECT count(DISTINCT fingerprint) FROM signals") == 20
    assert await count(engine, "SELECT count(*) FROM incidents") == await count(
        engine, "SELECT count(DISTINCT incident_id) FROM signals"
    )


async def test_concurrent_calls_are_committed_together_and_each_caller_gets_its_own_summary(
    engine: RuleEngine,
) -> None:
    await engine.ingest([am("seen")])
    before = (await engine.health())["commits"]
    calls = [[am(f"q{i}", deployment=f"d{i}"), am("seen")] for i in range(20)]
    answers = await asyncio.gather(*(engine.ingest(c) for c in calls))
    assert [(a["received"], a["opened"], a["duplicates"]) for a in answers] == [(2, 1, 1)] * 20
    assert len({a["incidents"][0] for a in answers}) == 20
    commits = (await engine.health())["commits"] - before
    assert 1 <= commits < 20, f"{commits} commits for 20 concurrent calls: no group commit"
    assert await count(engine, "SELECT count(*) FROM incidents") == 21


async def test_resolved_before_firing_does_not_leave_an_open_incident(engine: RuleEngine) -> None:
    later = T0 + timedelta(minutes=5)
    await engine.ingest([am("a", "resolved", at=later)])
    await engine.ingest([am("a")])
    assert await count(engine, "SELECT count(*) FROM incidents WHERE status <> 'resolved'") == 0


async def test_incident_resolves_when_its_alert_resolves_and_the_timeline_shows_it(engine: RuleEngine) -> None:
    opened = await engine.ingest([am("a")])
    (incident_id,) = opened["incidents"]
    engine.clock.now = T0 + timedelta(minutes=1)  # type: ignore[attr-defined]
    done = await engine.ingest([am("a", "resolved", at=T0 + timedelta(minutes=1))])
    assert done["resolved"] == 1
    stores = await engine._ready()
    incident = await stores.postgres.get_incident(incident_id)
    assert incident is not None and incident.status.value == "resolved"
    kinds = [e["kind"] for e in await stores.postgres.timeline(incident_id)]
    assert kinds[0] == "opened" and "resolved" in kinds


async def test_a_critical_alert_escalates_the_open_incident(engine: RuleEngine) -> None:
    await engine.ingest([am("a")])
    await engine.ingest([am("a", severity="critical", alertname="KubePodCrashLooping")])
    stores = await engine._ready()
    (incident,) = await stores.postgres.list_incidents()
    assert incident.severity is Severity.CRITICAL


async def test_a_restarted_engine_continues_the_same_incidents(engine: RuleEngine, settings: Settings) -> None:
    await engine.ingest([am("a"), am("b", alertname="KubeNodeNotReady", node="n1")])
    before = await count(engine, "SELECT count(*) FROM incidents")
    restarted = RuleEngine(settings, clock=Clock())
    try:
        answer = await restarted.ingest([am("a")])
        assert answer["duplicates"] == 1 and answer["opened"] == 0
        assert await count(restarted, "SELECT count(*) FROM incidents") == before
    finally:
        await restarted.close()


async def test_the_state_stored_batch_by_batch_is_the_state_in_memory(engine: RuleEngine) -> None:
    pods = [am(f"p{i}", alertname="KubePodNotReady", node="n1", pod=f"api-7d9f8-{i}") for i in range(30)]
    await engine.ingest(pods[:10])
    await engine.ingest([am("node", alertname="KubeNodeNotReady", node="n1", severity="critical"), *pods[10:20]])
    recovered = am("p3", status="resolved", alertname="KubePodNotReady", node="n1", pod="api-7d9f8-3")
    await engine.ingest([*pods[20:], recovered])
    stores = await engine._ready()
    loaded = await CorrelationStore(stores.redis).load()
    assert loaded is not None and loaded == engine._state
    assert sum(len(g.signals) for g in loaded.groups.values()) == 31
    assert loaded.groups != CorrelationState.from_scratch().groups


async def test_a_state_saved_in_the_old_single_key_layout_is_converted_and_continued(
    engine: RuleEngine, settings: Settings
) -> None:
    await engine.ingest([am("a"), am("b", alertname="KubeNodeNotReady", node="n1")])
    stores = await engine._ready()
    old_layout = engine._state.model_dump_json()
    await CorrelationStore(stores.redis).clear()
    await stores.redis.client.set(stores.redis.key(LEGACY_KEY), old_layout)
    restarted = RuleEngine(settings, clock=Clock())
    try:
        answer = await restarted.ingest([am("a")])
        assert answer["duplicates"] == 1 and answer["opened"] == 0
        assert await stores.redis.client.get(stores.redis.key(LEGACY_KEY)) is None
        assert await CorrelationStore(stores.redis).load() == restarted._state
    finally:
        await restarted.close()


async def test_effects_of_an_interrupted_batch_are_applied_on_the_next_start(
    engine: RuleEngine, settings: Settings
) -> None:
    """A crash after the write-ahead to Redis but before PostgreSQL committed loses nothing."""
    stores = await engine._ready()
    await engine.ingest([am("seed")])
    incident_id = "inc-interrupted"
    signal = am("lost").model_dump(mode="json")
    pending = {
        "batch": "b-1",
        "now": T0.isoformat(),
        "effects": [
            {
                "type": "OpenIncident",
                "incident_id": incident_id,
                "group_key": "g",
                "rule": "r",
                "severity": "warning",
                "title": "t",
                "playbook": None,
                "namespace": "prod",
                "object": None,
                "signal": signal,
                "labels": {},
            },
        ],
    }
    await stores.redis.client.set(stores.redis.key(PENDING_KEY), json.dumps(pending))
    restarted = RuleEngine(settings, clock=Clock())
    try:
        await restarted._ready()
        assert await stores.postgres.get_incident(incident_id) is not None
        assert await stores.redis.get_json(PENDING_KEY) is None
        await restarted._ready()  # and applying it again would change nothing
        assert await count(restarted, f"SELECT count(*) FROM incidents WHERE id = '{incident_id}'") == 1
        assert await stores.redis.client.get(stores.redis.key(META)) is not None
    finally:
        await restarted.close()


async def test_a_silence_mutes_matching_alerts_survives_a_restart_and_can_be_removed(
    engine: RuleEngine, settings: Settings
) -> None:
    silence = {
        "id": "sil-1",
        "matchers": ['namespace="prod"', 'pod=~"quiet.*"'],
        "starts_at": T0.isoformat(),
        "ends_at": (T0 + timedelta(hours=1)).isoformat(),
        "created_by": "slack:U1",
    }
    assert (await engine.add_silence(silence))["silence"] == "sil-1"
    muted = await engine.ingest([am("quiet")])
    assert muted["opened"] == 0 and muted["suppressed"] == 1
    restarted = RuleEngine(settings, clock=Clock())
    try:
        assert [s["id"] for s in await restarted.silences()] == ["sil-1"]
        assert (await restarted.ingest([am("quiet-2")]))["suppressed"] == 1
        await restarted.remove_silence("sil-1")
        assert (await restarted.ingest([am("loud")]))["opened"] == 1
        with pytest.raises(NotFound):
            await restarted.remove_silence("sil-1")
    finally:
        await restarted.close()


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        pytest.param({"matchers": []}, "matchers", id="no-matchers"),
        pytest.param({"matchers": ["namespace=~\"(\""]}, "invalid regex", id="bad-regex"),
        pytest.param({"ends_at": (T0 - timedelta(hours=2)).isoformat()}, "end after it starts", id="ends-before-start"),
        pytest.param(
            {"starts_at": (T0 - timedelta(hours=3)).isoformat(), "ends_at": (T0 - timedelta(hours=2)).isoformat()},
            "before now",
            id="already-over",
        ),
    ],
)
async def test_an_invalid_silence_is_refused_with_the_reason_and_changes_nothing(
    engine: RuleEngine, change: dict[str, object], problem: str
) -> None:
    silence = {
        "id": "bad",
        "matchers": ['namespace="prod"'],
        "starts_at": T0.isoformat(),
        "ends_at": (T0 + timedelta(hours=1)).isoformat(),
        "created_by": "slack:U1",
        **change,
    }
    with pytest.raises(InputError, match=problem):
        await engine.add_silence(silence)
    assert await engine.silences() == []
    assert (await engine.ingest([am("still-loud")]))["opened"] == 1


async def test_acknowledging_an_incident_is_recorded(engine: RuleEngine) -> None:
    opened = await engine.ingest([am("a")])
    (incident_id,) = opened["incidents"]
    await engine.acknowledge(incident_id, "slack:U123")
    stores = await engine._ready()
    incident = await stores.postgres.get_incident(incident_id)
    assert incident is not None and incident.status.value == "acknowledged"


def test_payload_helper_still_builds_alertmanager_bodies() -> None:
    assert am_payload(am_alert("X", "f"))["version"] == "4"
