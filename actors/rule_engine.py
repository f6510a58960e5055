"""RuleEngine: signals in, incidents out.

A plain class; ``actors/remote.py`` makes it the detached Ray actor ``aiops-rules``. Each
ingest batch goes through the pure correlator (``core/correlation.py``) under one lock,
and its effects are made durable with a write-ahead step: the new correlation state and
the encoded effects go to Redis first, then the effects are applied to PostgreSQL in one
idempotent transaction, then the pending entry is cleared. A crash anywhere in between is
repaired on start by applying the pending effects again, so nothing is lost and nothing
is written twice. Rules are swapped atomically on reload; an invalid file is refused and
the old rules stay.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import ValidationError

from actors.stores import Stores
from adapters.correlation_store import CorrelationStore
from adapters.incident_store import IncidentWriter, encode_effect
from adapters.metrics import RuleEngineMetrics
from config.loader import dotted, load_rules, rules_from_text
from config.settings import Settings
from core.correlation import (
    Acknowledge,
    AddSilence,
    AttachSignal,
    CorrelationState,
    Correlator,
    OpenIncident,
    RemoveSilence,
    ResolveIncident,
    Suppressed,
    Tick,
)
from core.errors import ConfigError, InputError, TemporaryError
from core.incident_groups import storage_delta
from core.models import Incident, IncidentStatus, Signal
from core.rules import RuleSet
from core.silences import Silence

log = logging.getLogger(__name__)

PENDING_KEY = "rules:pending"
# Calls committed together at most (each is one webhook or watcher batch).
_GROUP_CALLS = 32
_FLUSH_RETRY_SECONDS = 1.0  # how often a committed batch that PostgreSQL refused is tried again
_STORED_EFFECTS = {
    "OpenIncident",
    "AttachSignal",
    "EscalateIncident",
    "AcknowledgeIncident",
    "ResolveIncident",
    "ReopenIncident",
    "Notify",
}


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class IngestSummary:
    received: int = 0
    duplicates: int = 0
    dropped: int = 0
    suppressed: int = 0
    opened: int = 0
    updated: int = 0
    resolved: int = 0
    incidents: list[str] = field(default_factory=list)


def summarize(received: int, effects: Sequence[Any]) -> IngestSummary:
    summary = IngestSummary(received=received)
    for effect in effects:
        incident = getattr(effect, "incident_id", None)
        if incident and isinstance(effect, OpenIncident | AttachSignal) and incident not in summary.incidents:
            summary.incidents.append(incident)
        if isinstance(effect, OpenIncident):
            summary.opened += 1
        elif isinstance(effect, AttachSignal):
            summary.updated += 1
        elif isinstance(effect, ResolveIncident) and effect.reason.value == "recovered":
            summary.resolved += 1
        elif isinstance(effect, Suppressed):
            reason = effect.reason.value
            if reason == "duplicate":
                summary.duplicates += 1
            elif reason == "dropped":
                summary.dropped += 1
            elif reason != "inhibit":
                summary.suppressed += 1
    return summary


class RcaSink(Protocol):
    """Where new incidents go for root-cause analysis (``actors/remote.py`` provides the pool)."""

    def submit(self, incident: dict[str, Any]) -> None: ...


class RemediationSink(Protocol):
    """Where incidents with a playbook go to start a run (the approval coordinator)."""

    def submit(self, incident: dict[str, Any], playbook: str) -> None: ...


def incident_of(effect: OpenIncident, now: datetime) -> dict[str, Any]:
    """The stored shape of a newly opened incident, for the coordinator."""
    return Incident(
        id=effect.incident_id,
        group_key=effect.group_key,
        status=IncidentStatus.OPEN,
        severity=effect.severity,
        title=effect.title,
        rule=effect.rule,
        namespace=effect.namespace,
        object=effect.object,
        labels=dict(effect.labels or effect.signal.labels),
        signal_count=1,
        playbook=effect.playbook,
        opened_at=now,
        updated_at=now,
    ).model_dump(mode="json")


def rca_request(effect: OpenIncident) -> dict[str, Any]:
    """What an RCA worker needs to know about a newly opened incident."""
    signal = effect.signal
    return {
        "id": effect.incident_id,
        "reason": signal.reason,
        "object": signal.object.model_dump(mode="json") if signal.object else None,
        "owners": [o.model_dump(mode="json") for o in signal.owners],
        "node": signal.node,
        "labels": dict(signal.labels),
        "annotations": dict(signal.annotations),
        "source": signal.source.value,
        "message": signal.message,
    }


def _answer(answers: Sequence[tuple[asyncio.Future[dict[str, Any]], dict[str, Any]]], _done: object = None) -> None:
    for waiter, summary in answers:
        if not waiter.done():
            waiter.set_result(summary)


class RuleEngine:
    def __init__(
        self,
        settings: Settings,
        rules_path: str | None = None,
        *,
        clock: Callable[[], datetime] = _utcnow,
        rca: RcaSink | None = None,
        remediation: RemediationSink | None = None,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._rca = rca
        self._remediation = remediation
        self._rules_path = rules_path or settings.rules_file
        self._rules: RuleSet = load_rules(self._rules_path)
        self._correlator = Correlator(self._rules)
        self._state = CorrelationState.from_scratch()
        self._stored: CorrelationState | None = None
        self._state_store: CorrelationStore | None = None
        self._stores: Stores | None = None
        self._writer: IncidentWriter | None = None
        self._start_lock = asyncio.Lock()
        self._lock = asyncio.Lock()
        self._commits = 0
        self._unapplied: tuple[list[dict[str, Any]], datetime, str] | None = None
        self._inbox: list[tuple[list[Signal], asyncio.Future[dict[str, Any]]]] = []
        self._committer: asyncio.Task[None] | None = None
        self._tick: asyncio.Task[None] | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._applying: asyncio.Task[None] | None = None
        self._stage_totals: dict[str, float] = {}
        self._closing = False
        self._reload_error: str | None = None
        self._metrics = RuleEngineMetrics()
        self._started_at = time.time()

    async def _ready(self) -> Stores:
        if self._stores is None:
            async with self._start_lock:
                if self._stores is None:
                    stores = await Stores.open(self._settings)
                    writer = IncidentWriter(stores.postgres)
                    state_store = CorrelationStore(stores.redis)
                    saved = await state_store.load()
                    if saved is not None:
                        self._state = saved
                    self._stored = saved
                    self._state_store = state_store
                    pending = await stores.redis.get_json(PENDING_KEY)
                    if pending:
                        log.warning("re-applying %d effects of an interrupted batch", len(pending["effects"]))
                        await writer.apply(pending["effects"], datetime.fromisoformat(pending["now"]), pending["batch"])
                        await stores.redis.delete(PENDING_KEY)
                    self._writer = writer
                    self._stores = stores
                    self._schedule_tick()
        return self._stores

    async def _commit(self, state: CorrelationState, effects: Sequence[Any], now: datetime) -> asyncio.Task[None]:
        """Write the state and the write-ahead effects to Redis (the commit), then start writing the
        effects to PostgreSQL; returns that task. The caller holds the lock only up to here, so the
        next group is correlated while PostgreSQL writes this one (the storm's slowest stage). The
        next commit waits for it first: at most one committed batch is ever not yet in PostgreSQL."""
        stores = await self._ready()
        assert self._writer is not None  # noqa: S101 - set together with _stores
        encoded = [encode_effect(e) for e in effects if type(e).__name__ in _STORED_EFFECTS]
        batch = uuid.uuid4().hex
        assert self._state_store is not None  # noqa: S101 - set together with _stores
        pipe = stores.redis.client.pipeline(transaction=True)
        self._state_store.stage(pipe, storage_delta(self._stored, state))
        if encoded:
            pipe.set(
                stores.redis.key(PENDING_KEY),
                json.dumps({"batch": batch, "now": now.isoformat(), "effects": encoded}, default=str),
            )
        await self._flush_pending()  # the earlier batch's PostgreSQL write first: PENDING_KEY holds one batch
        started = time.perf_counter()
        try:
            await pipe.execute()
        except Exception as e:  # noqa: BLE001 - any Redis failure means: not committed, retry later
            raise TemporaryError(f"Redis: cannot save correlation state: {e}") from e
        self._stage("redis", started)
        # Committed: Redis holds the state and the write-ahead effects. From here on a failure must not
        # make callers retry from the old state, which (with time moved on) would open the incidents again.
        self._stored = state
        self._state = state
        self._commits += 1
        if encoded:
            self._unapplied = (encoded, now, batch)
        self._applying = asyncio.get_running_loop().create_task(self._apply_committed(effects, state, now))
        self._schedule_tick()
        return self._applying

    async def _apply_committed(self, effects: Sequence[Any], state: CorrelationState, now: datetime) -> None:
        """PostgreSQL write of a committed batch, then the hand-offs to RCA and playbooks (they read
        the incident rows). Never raises: a batch PostgreSQL refuses stays in the write-ahead."""
        started = time.perf_counter()
        try:
            await self._write_unapplied()
            self._stage("postgres", started)
        except Exception as e:  # noqa: BLE001 - kept in Redis and in memory; applied by the next commit
            log.warning("committed batch not yet in PostgreSQL, retried every second: %s", e)
            self._retry_flush()  # or by the retry loop, when no next commit comes
        for effect in effects:
            if isinstance(effect, OpenIncident):
                self._metrics.incidents_opened.labels(severity=effect.severity.value).inc()
                if self._rca is not None:
                    try:
                        self._rca.submit(rca_request(effect))
                    except Exception as e:  # noqa: BLE001 - RCA is best effort; the incident is stored
                        log.warning("RCA hand-off failed for %s: %s", effect.incident_id, e)
                if self._remediation is not None and effect.playbook:
                    try:
                        self._remediation.submit(incident_of(effect, now), effect.playbook)
                    except Exception as e:  # noqa: BLE001 - logged; the run can be started by hand
                        log.warning("playbook hand-off failed for %s: %s", effect.incident_id, e)
            elif isinstance(effect, ResolveIncident):
                self._metrics.resolved(effect.reason.value, state.groups.get(effect.group_key))

    def _stage(self, stage: str, started: float) -> float:
        """Record the time since ``started`` for ``stage``; returns now (the next stage's start)."""
        now = time.perf_counter()
        self._metrics.stage_seconds.labels(stage=stage).observe(now - started)
        self._stage_totals[stage] = self._stage_totals.get(stage, 0.0) + now - started
        return now

    async def _flush_pending(self) -> None:
        """Wait for the PostgreSQL write under way; a batch it could not write is tried once more
        here, raising ``TemporaryError`` if PostgreSQL still refuses it."""
        applying = self._applying
        if applying is not None and not applying.done():
            await asyncio.shield(applying)
        await self._write_unapplied()

    async def _write_unapplied(self) -> None:
        """Write a committed batch's effects to PostgreSQL (idempotent per batch) and drop its write-ahead."""
        if self._unapplied is None:
            return
        stores = await self._ready()
        assert self._writer is not None  # noqa: S101 - set together with _stores
        encoded, at, batch = self._unapplied
        await self._writer.apply(encoded, at, batch)
        await stores.redis.delete(PENDING_KEY)
        self._unapplied = None

    def _retry_flush(self) -> None:
        if self._closing or (self._flusher is not None and not self._flusher.done()):
            return
        self._flusher = asyncio.get_running_loop().create_task(self._flush_until_applied())

    async def _flush_until_applied(self) -> None:
        """Apply a committed batch that PostgreSQL refused, once it is back, even if no call comes."""
        while self._unapplied is not None and not self._closing:
            await asyncio.sleep(_FLUSH_RETRY_SECONDS)
            async with self._lock:
                try:
                    await self._flush_pending()
                except Exception as e:  # noqa: BLE001 - keep trying; the batch is safe in the write-ahead
                    log.info("committed batch still not in PostgreSQL: %s", e)

    async def ingest(self, signals: Sequence[Signal | dict[str, Any]]) -> dict[str, Any]:
        """Fold signals into incidents; idempotent, so a retried call changes nothing twice.

        Answers once the batch is committed. Calls that arrive while a commit is under way
        are committed together by the next one (group commit): the correlator still sees
        each call's signals in arrival order, but Redis and PostgreSQL are written once for
        the group, which is what keeps a storm of concurrent webhooks from queueing up.
        """
        await self._ready()
        parsed = [s if isinstance(s, Signal) else Signal.model_validate(s) for s in signals]
        for signal in parsed:
            self._metrics.signals.labels(source=signal.source.value).inc()
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._inbox.append((parsed, waiter))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.get_running_loop().create_task(self._drain())
        return await waiter

    async def _drain(self) -> None:
        """Commit everything in the inbox, a group at a time, until it is empty."""
        while self._inbox:
            async with self._lock:
                group, self._inbox = self._inbox[:_GROUP_CALLS], self._inbox[_GROUP_CALLS:]
                now = self._clock()
                state = self._state
                effects: list[Any] = []
                done: list[tuple[asyncio.Future[dict[str, Any]], dict[str, Any]]] = []
                started = time.perf_counter()
                for parsed, waiter in group:
                    try:
                        events = [self._correlator.event(s) for s in parsed]
                        state, produced = self._correlator.advance_all(state, events, now)
                    except Exception as e:  # noqa: BLE001 - this call fails alone; the rest of the group goes on
                        if not waiter.done():
                            waiter.set_exception(e)
                        continue
                    for event in events:
                        for name in event.decision.matched:
                            self._metrics.rule_matches.labels(rule=name).inc()
                    effects.extend(produced)
                    done.append((waiter, asdict(summarize(len(parsed), produced))))
                self._stage("correlate", started)
                try:
                    applied = await self._commit(state, effects, now)
                except Exception as e:  # noqa: BLE001 - nothing of the group is committed; every caller hears why
                    for waiter, _ in done:
                        if not waiter.done():
                            waiter.set_exception(e)
                    continue
                # Callers hear back once PostgreSQL has the batch too; the next group goes on meanwhile.
                applied.add_done_callback(functools.partial(_answer, done))

    async def acknowledge(self, incident_id: str, who: str) -> dict[str, Any]:
        await self._ready()
        effects = await self._advance(Acknowledge(incident_id=incident_id, who=who))
        return {"acknowledged": incident_id, "by": who, "effects": len(effects)}

    async def _advance(self, event: Any) -> tuple[Any, ...]:
        """One non-signal event (ack, silence, tick) through the correlator, committed under the lock."""
        async with self._lock:
            now = self._clock()
            state, effects = self._correlator.advance(self._state, event, now)
            applied = await self._commit(state, effects, now)
        await asyncio.shield(applied)
        return effects

    async def add_silence(self, silence: Silence | dict[str, Any]) -> dict[str, Any]:
        """Mute matching signals until the silence ends (chat ``/silence``); stored with the state."""
        try:
            parsed = silence if isinstance(silence, Silence) else Silence.model_validate(silence)
        except ValidationError as e:
            problems = "; ".join(f"{dotted(err['loc']) or 'silence'}: {err['msg']}" for err in e.errors())
            raise InputError(f"invalid silence: {problems}") from e
        await self._ready()
        if parsed.expired(self._clock()):
            raise InputError(f"silence {parsed.id} ended at {parsed.ends_at.isoformat()}, before now")
        await self._advance(AddSilence(parsed))
        return {"silence": parsed.id, "matchers": list(parsed.matchers), "ends_at": parsed.ends_at.isoformat()}

    async def remove_silence(self, silence_id: str) -> dict[str, Any]:
        await self._ready()
        await self._advance(RemoveSilence(silence_id))
        return {"removed": silence_id}

    async def silences(self) -> list[dict[str, Any]]:
        await self._ready()
        now = self._clock()
        return [s.model_dump(mode="json") for s in self._state.silences.values() if not s.expired(now)]

    def _schedule_tick(self) -> None:
        due = self._state.next_due()
        if self._closing or due is None or (self._tick is not None and not self._tick.done()):
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._tick = loop.create_task(self._tick_at(due))

    async def _tick_at(self, due: datetime) -> None:
        delay = max(0.0, (due - self._clock()).total_seconds())
        await asyncio.sleep(delay)
        try:
            await self._advance(Tick())
        except TemporaryError as e:
            log.warning("tick failed, retrying in 1s: %s", e)
            await asyncio.sleep(1.0)
        self._tick = None
        if not self._closing:
            self._schedule_tick()

    def reload_rules(self, rules_path: str | None = None, rules_text: str | None = None) -> list[str]:
        """Swap in new rules; on any error keep the old ones, remember why, and raise ConfigError."""
        try:
            if rules_text is not None:
                new = rules_from_text(rules_text, rules_path or "<rules>")
            else:
                new = load_rules(rules_path or self._rules_path)
        except ConfigError as e:
            self._reload_error = str(e)[:2000]
            log.error("rules reload refused, keeping %d old rules: %s", len(self._rules.rules), e)
            raise
        if rules_text is None:
            self._rules_path = rules_path or self._rules_path
        self._reload_error = None
        self._rules = new
        self._correlator = Correlator(new)
        log.info("rules reloaded: %d rules", len(new.rules))
        return list(new.names())

    def rule_names(self) -> list[str]:
        return list(self._rules.names())

    async def health(self) -> dict[str, Any]:
        stores = await self._ready()
        status: dict[str, Any] = {
            "rules": len(self._rules.rules),
            "active_incidents": len(self._state.active_groups()),
            "rules_file": self._rules_path or "shipped default",
            "rules_reload_error": self._reload_error,
            "commits": self._commits,
            "stage_seconds": {k: round(v, 3) for k, v in sorted(self._stage_totals.items())},
            "uptime_s": round(time.time() - self._started_at),
        }
        try:
            status["postgres_latency_ms"] = round(await stores.postgres.ping() * 1000, 2)
        except TemporaryError as e:
            status["postgres_error"] = str(e)
        return status

    def metrics_text(self) -> str:
        return self._metrics.render()

    async def close(self) -> None:
        self._closing = True
        for task in (self._tick, self._flusher):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._committer is not None and not self._committer.done():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._committer, timeout=30)
        if self._applying is not None and not self._applying.done():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._applying), timeout=30)
        if self._stores is not None:
            await self._stores.close()
            self._stores = None
