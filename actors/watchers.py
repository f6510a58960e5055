"""Watchers: list+watch a namespace (or the cluster's nodes), detect, send signals on change.

A ``Watcher`` keeps informers for the kinds it needs, marks itself dirty on every watch
event, and a short flush loop (default 50 ms) re-runs the shared detectors over its cache.
It sends only what changed since the last send: a new finding or a changed ``state_key``
(a rising restart count) as a firing signal, a vanished finding as a recovery. What was
last sent is kept in Redis, so a restarted watcher does not re-announce every crash loop.

A ``WatcherHost`` is one watcher process: it hosts the ``Watcher`` of up to
``watch_namespaces_per_actor`` scopes, so a cluster with many namespaces does not pay a Ray
worker and a ``kubernetes`` client import (about 100 MB of unique memory) per namespace. Each
scope keeps its own informers, state, health and metrics; a host remembers its scopes in
Redis, so a host Ray restarts resumes them without waiting for the supervisor.

``WatcherSupervisor`` turns the namespace list into the desired set of scopes (include and
exclude globs from settings) and places them on hosts through a ``Spawner`` that
``actors/remote.py`` provides: this module never imports ray.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from adapters.kube import EventType, Informer, KubeClient, WatchEvent
from adapters.metrics import WatchMetrics, combine
from adapters.redis import RedisStore
from config.settings import Settings
from core.detectors import CLUSTER_INPUT_KINDS, NAMESPACED_INPUT_KINDS, Finding, detect_all
from core.errors import TemporaryError
from core.models import Signal, SignalStatus

log = logging.getLogger(__name__)

NAMESPACED_KINDS = NAMESPACED_INPUT_KINDS
CLUSTER_KINDS = CLUSTER_INPUT_KINDS
CLUSTER_SCOPE = "cluster"


class RulesHandle(Protocol):
    """What a watcher needs of the rule engine: ``ingest.remote(batch)`` returning an awaitable."""

    @property
    def ingest(self) -> Any: ...


def _utcnow() -> datetime:
    return datetime.now(UTC)


Sent = dict[str, dict[str, Any]]


def diff_findings(findings: Iterable[Finding], last_sent: Sent, now: datetime) -> tuple[list[Signal], Sent]:
    """Signals for what changed since ``last_sent`` and the new map.

    ``last_sent`` maps a fingerprint to ``{"key": state_key, "signal": signal json}``; a
    recovery repeats the last firing signal (same labels, object, owners) as resolved, so
    rules and notifications see what recovered.
    """
    current: dict[str, Finding] = {}
    for finding in findings:
        current.setdefault(finding.fingerprint(), finding)
    signals: list[Signal] = []
    sent: Sent = {}
    for fingerprint, finding in current.items():
        key = finding.state_key()
        previous = last_sent.get(fingerprint)
        if previous is not None and previous.get("key") == key:
            sent[fingerprint] = previous
            continue
        signal = finding.to_signal(now)
        signals.append(signal)
        sent[fingerprint] = {"key": key, "signal": signal.model_dump(mode="json")}
    for fingerprint, previous in last_sent.items():
        if fingerprint not in current:
            signals.append(_recovery(previous, now))
    return signals, sent


def _recovery(previous: dict[str, Any], now: datetime) -> Signal:
    firing = Signal.model_validate(previous["signal"])
    return firing.model_copy(
        update={"status": SignalStatus.RESOLVED, "observed_at": now, "message": f"recovered: {firing.message}"[:500]}
    )


class Watcher:
    """Watches one namespace (or ``cluster`` for nodes) and feeds the rule engine."""

    def __init__(
        self,
        settings: Settings,
        scope: str,
        rules: RulesHandle,
        *,
        resync_seconds: float | None = None,
        flush_interval: float = 0.05,
        reevaluate_seconds: float = 15.0,
        clock: Callable[[], datetime] = _utcnow,
        autostart: bool = False,
    ) -> None:
        self._settings = settings
        self.scope = scope
        self._rules = rules
        self._resync = resync_seconds if resync_seconds is not None else settings.watch_resync_seconds
        self._flush_interval = flush_interval
        self._reevaluate = reevaluate_seconds
        self._clock = clock
        self._informers: list[Informer] = []
        self._dirty = asyncio.Event()
        self._last_sent: Sent = {}
        self._task: asyncio.Task[None] | None = None
        self._client: KubeClient | None = None
        self._redis: RedisStore | None = None
        self._counters = {"events": 0, "flushes": 0, "signals_sent": 0, "send_errors": 0}
        self._last_error: str | None = None
        self._metrics = WatchMetrics(scope, lambda: [i.status() for i in self._informers])
        self._started = False
        self._lock = asyncio.Lock()
        self._boot = _autostart(self.start) if autostart else None

    @property
    def kinds(self) -> Sequence[str]:
        return CLUSTER_KINDS if self.scope == CLUSTER_SCOPE else NAMESPACED_KINDS

    async def start(self) -> dict[str, Any]:
        async with self._lock:
            if self._started:
                return self.status()
            self._client = KubeClient.from_kubeconfig(self._settings.kubeconfig)
            redis_url = self._settings.secret("redis_url")
            if redis_url:
                self._redis = RedisStore(redis_url, self._settings.redis_prefix)
                with contextlib.suppress(TemporaryError):
                    self._last_sent = dict(await self._redis.get_json(self._state_key()) or {})
            namespace = None if self.scope == CLUSTER_SCOPE else self.scope
            for kind in self.kinds:
                informer = Informer(self._client, kind, namespace, sink=self._on_event, resync_seconds=self._resync)
                await informer.start()
                self._informers.append(informer)
            self._task = asyncio.get_running_loop().create_task(self._flush_loop(), name=f"watch-{self.scope}")
            self._started = True
            return self.status()

    def _state_key(self) -> str:
        return f"watch:{self.scope}:sent"

    async def _on_event(self, event: WatchEvent) -> None:
        if event.type is not EventType.RESYNC:
            self._counters["events"] += 1
        self._dirty.set()

    async def _flush_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._dirty.wait(), timeout=self._reevaluate)
            # Let a burst of watch events land before detecting: one detection pass per burst.
            await asyncio.sleep(self._flush_interval)
            self._dirty.clear()
            if not self._informers or not self._informers[0].synced:
                continue  # no detection (and above all no recoveries) from a half-listed cache
            try:
                await self.flush()
            except Exception as e:  # noqa: BLE001 - a watcher must outlive any single failure
                self._last_error = f"{type(e).__name__}: {e}"
                self._counters["send_errors"] += 1
                self._metrics.send_errors.labels(namespace=self.scope).inc()
                log.warning("watcher %s flush failed: %s", self.scope, self._last_error)
                self._dirty.set()
                await asyncio.sleep(1.0)

    def findings(self) -> list[Finding]:
        objects: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        for informer in self._informers:
            for obj in informer.snapshot():
                if informer.kind == "Event":
                    events.append(obj)
                else:
                    objects.append({**obj, "kind": informer.kind} if "kind" not in obj else obj)
        return detect_all(objects, events, now=self._clock())

    async def flush(self) -> int:
        """Detect over the cache and send what changed; returns the number of signals sent."""
        signals, sent = diff_findings(self.findings(), self._last_sent, self._clock())
        self._counters["flushes"] += 1
        if not signals:
            return 0
        for start in range(0, len(signals), 200):
            batch = signals[start : start + 200]
            await self._rules.ingest.remote([s.model_dump(mode="json") for s in batch])
        self._last_sent = sent
        self._counters["signals_sent"] += len(signals)
        self._metrics.sent(signals)
        if self._redis is not None:
            with contextlib.suppress(TemporaryError):
                await self._redis.set_json(self._state_key(), sent)
        return len(signals)

    async def health(self) -> dict[str, Any]:
        """``status()`` plus a verdict: degraded while any stream is down or forbidden."""
        status = self.status()
        broken = [i for i in status["informers"] if i["forbidden"] or not i["connected"]]
        status["degraded"] = bool(broken) or not self._started
        status["problems"] = [f"{i['kind']}: {i['last_error'] or 'not connected'}" for i in broken][:5]
        return status

    def status(self) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "started": self._started,
            "active_findings": len(self._last_sent),
            "last_error": self._last_error,
            **self._counters,
            "informers": [i.status() for i in self._informers],
        }

    def metrics_text(self) -> str:
        """Prometheus text: informer counters per kind, detections by reason (see adapters.metrics)."""
        return self._metrics.render()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for informer in self._informers:
            await informer.stop()
        self._informers.clear()
        if self._client is not None:
            self._client.close()
        if self._redis is not None:
            await self._redis.close()
        self._started = False


def _autostart(start: Callable[[], Awaitable[Any]]) -> asyncio.Task[Any] | None:
    """Schedule ``start`` when constructed inside a running loop (a Ray async actor, also after
    Ray restarts it), so a restarted actor resumes watching without anyone calling it."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None

    async def run() -> None:
        try:
            await start()
        except Exception as e:  # noqa: BLE001 - logged; the next health check shows it
            log.warning("autostart failed: %s: %s", type(e).__name__, e)

    return loop.create_task(run())


class WatcherHost:
    """One watcher process: the ``Watcher`` of each scope placed on it by the supervisor."""

    def __init__(
        self,
        settings: Settings,
        rules: RulesHandle,
        *,
        index: int = 0,
        watcher_options: dict[str, Any] | None = None,
        autostart: bool = False,
    ) -> None:
        self._settings = settings
        self._rules = rules
        self.index = index
        self._options = dict(watcher_options or {})
        self._watchers: dict[str, Watcher] = {}
        self._redis: RedisStore | None = None
        self._lock = asyncio.Lock()
        self._boot = _autostart(self.restore) if autostart else None

    def _scopes_key(self) -> str:
        return f"watch:host:{self.index}:scopes"

    async def _store(self) -> RedisStore | None:
        redis_url = self._settings.secret("redis_url")
        if self._redis is None and redis_url:
            self._redis = RedisStore(redis_url, self._settings.redis_prefix)
        return self._redis

    async def _remember(self) -> None:
        store = await self._store()
        if store is not None:
            with contextlib.suppress(TemporaryError):
                await store.set_json(self._scopes_key(), sorted(self._watchers))

    async def restore(self) -> list[str]:
        """Start the scopes this host had before a restart (kept in Redis); returns them."""
        store = await self._store()
        if store is None:
            return []
        with contextlib.suppress(TemporaryError):
            for scope in await store.get_json(self._scopes_key()) or []:
                await self.add(str(scope))
        return sorted(self._watchers)

    async def add(self, scope: str) -> dict[str, Any]:
        """Start watching ``scope`` here (idempotent); returns its status."""
        async with self._lock:
            watcher = self._watchers.get(scope)
            if watcher is None:
                watcher = self._watchers[scope] = Watcher(self._settings, scope, self._rules, **self._options)
                await self._remember()
        return await watcher.start()

    async def remove(self, scope: str) -> bool:
        """Stop watching ``scope`` (idempotent); whether it was here."""
        async with self._lock:
            watcher = self._watchers.pop(scope, None)
            if watcher is not None:
                await self._remember()
        if watcher is None:
            return False
        await watcher.stop()
        return True

    async def scopes(self) -> list[str]:
        """The scopes watched here; after a restart, once the remembered ones are back."""
        if self._boot is not None and not self._boot.done():
            with contextlib.suppress(Exception):
                await asyncio.shield(self._boot)
        return sorted(self._watchers)

    def watcher(self, scope: str) -> Watcher:
        return self._watchers[scope]

    async def status(self, scope: str | None = None) -> dict[str, Any]:
        """One scope's ``Watcher.status()``, or the host's: its scopes and theirs."""
        if scope is not None:
            watcher = self._watchers.get(scope)
            if watcher is None:
                raise KeyError(f"scope {scope!r} is not watched by watcher host {self.index}")
            return watcher.status()
        return {"index": self.index, "scopes": {s: w.status() for s, w in sorted(self._watchers.items())}}

    async def health(self) -> dict[str, Any]:
        """Degraded while any hosted scope is; ``parts`` is each scope's health under the name
        ``aiops-watch-<scope>`` (the ops app shows each as its own subsystem)."""
        parts = {f"aiops-watch-{s}": await w.health() for s, w in sorted(self._watchers.items())}
        problems = [f"{name}: {p}" for name, part in parts.items() for p in part["problems"]]
        return {
            "index": self.index,
            "scopes": sorted(self._watchers),
            "degraded": any(part["degraded"] for part in parts.values()),
            "problems": problems[:10],
            "parts": parts,
        }

    def metrics_text(self) -> str:
        return combine(w.metrics_text() for w in self._watchers.values())

    async def stop(self) -> None:
        """Stop every scope and forget them (a host Ray restarts after a crash keeps them)."""
        for scope in list(self._watchers):
            watcher = self._watchers.pop(scope)
            await watcher.stop()
        await self._remember()
        if self._redis is not None:
            await self._redis.close()
            self._redis = None


class Spawner(Protocol):
    """Places scopes on watcher hosts; implemented over Ray actors in ``actors/remote.py``."""

    def hosts(self) -> Awaitable[dict[int, list[str]]]:
        """The hosts alive now and the scopes each one watches."""
        ...

    def add(self, host: int, scope: str) -> Awaitable[Any]: ...

    def remove(self, host: int, scope: str) -> Awaitable[Any]: ...

    def retire(self, host: int) -> Awaitable[Any]:
        """Stop an empty host."""
        ...


def wanted(namespace: str, include: Sequence[str], exclude: Sequence[str]) -> bool:
    """Whether a namespace is watched: matches an include glob and no exclude glob."""
    if any(fnmatch.fnmatchcase(namespace, pattern) for pattern in exclude):
        return False
    return any(fnmatch.fnmatchcase(namespace, pattern) for pattern in include)


def place(scope: str, hosts: dict[int, list[str]], per_host: int) -> int:
    """The host for a new scope: the fullest host with room (fewer processes), else a new one
    with the lowest free index."""
    open_hosts = [(len(scopes), index) for index, scopes in hosts.items() if len(scopes) < per_host]
    if open_hosts:
        return max(open_hosts, key=lambda item: (item[0], -item[1]))[1]
    index = 0
    while index in hosts:
        index += 1
    return index


class WatcherSupervisor:
    """Keeps one watcher per wanted namespace plus the cluster watcher, placed on hosts of up
    to ``watch_namespaces_per_actor`` scopes each."""

    def __init__(self, settings: Settings, spawner: Spawner, *, interval: float = 1.0, autostart: bool = False) -> None:
        self._settings = settings
        self._spawner = spawner
        self._interval = interval
        self._placement: dict[int, list[str]] | None = None
        self._informer: Informer | None = None
        self._client: KubeClient | None = None
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._last_error: str | None = None
        self._metrics = WatchMetrics(CLUSTER_SCOPE, lambda: [self._informer.status()] if self._informer else [])
        self._boot = _autostart(self.start) if autostart else None

    async def start(self) -> dict[str, Any]:
        if self._task is None:
            self._client = KubeClient.from_kubeconfig(self._settings.kubeconfig)
            self._informer = Informer(self._client, "Namespace", None, sink=self._on_event, resync_seconds=None)
            await self._informer.start()
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="watch-supervisor")
        return self.status()

    async def _on_event(self, event: WatchEvent) -> None:
        self._changed.set()

    def desired(self) -> set[str]:
        include = self._settings.watch_namespaces
        exclude = self._settings.exclude_namespaces
        names = set()
        if self._informer is not None:
            for obj in self._informer.snapshot():
                name = (obj.get("metadata") or {}).get("name")
                phase = (obj.get("status") or {}).get("phase")
                if name and phase != "Terminating" and wanted(name, include, exclude):
                    names.add(name)
        return names | {CLUSTER_SCOPE}

    @property
    def _running(self) -> set[str]:
        return {scope for scopes in (self._placement or {}).values() for scope in scopes}

    async def reconcile(self) -> dict[str, list[str]]:
        """Ask the hosts what they watch (a restarted host or supervisor starts from the truth),
        then add what is wanted and missing, remove what is no longer wanted, retire empty hosts."""
        placement = {index: list(scopes) for index, scopes in (await self._spawner.hosts()).items()}
        self._placement = placement
        running = self._running
        desired = self.desired() if (self._informer and self._informer.synced) else running | {CLUSTER_SCOPE}
        started, stopped = [], []
        seen: set[str] = set()
        for index in sorted(placement):
            for scope in list(placement[index]):
                # Not wanted any more, or already on a lower host (a supervisor restarted mid-placement).
                if scope not in desired or scope in seen:
                    await self._spawner.remove(index, scope)
                    placement[index].remove(scope)
                    if scope not in desired:
                        stopped.append(scope)
                seen.add(scope)
        per_host = self._settings.watch_namespaces_per_actor
        for scope in sorted(desired - seen):
            index = place(scope, placement, per_host)
            await self._spawner.add(index, scope)
            placement.setdefault(index, []).append(scope)
            started.append(scope)
        for index in [i for i, scopes in placement.items() if not scopes]:
            await self._spawner.retire(index)
            del placement[index]
        return {"started": started, "stopped": stopped}

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=self._interval * 10)
            self._changed.clear()
            try:
                await self.reconcile()
                self._last_error = None
            except Exception as e:  # noqa: BLE001 - the supervisor must outlive any single failure
                self._last_error = f"{type(e).__name__}: {e}"
                log.warning("watch supervisor reconcile failed: %s", self._last_error)
                await asyncio.sleep(self._interval)
                self._changed.set()

    async def health(self) -> dict[str, Any]:
        status = self.status()
        informer = status["namespace_informer"] or {}
        status["degraded"] = bool(self._last_error) or not informer.get("connected", False)
        return status

    def status(self) -> dict[str, Any]:
        return {
            "watching": sorted(self._running),
            "hosts": {str(index): sorted(scopes) for index, scopes in sorted((self._placement or {}).items())},
            "last_error": self._last_error,
            "namespace_informer": self._informer.status() if self._informer else None,
        }

    def metrics_text(self) -> str:
        """Prometheus text of the Namespace informer (see adapters.metrics)."""
        return self._metrics.render()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._informer is not None:
            await self._informer.stop()
        if self._client is not None:
            self._client.close()
