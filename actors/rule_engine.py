"""RuleEngine: signals in, incidents out.

A plain class; ``actors/remote.py`` makes it the detached Ray actor ``aiops-rules``. Its
durable state is PostgreSQL (every signal and incident, written in one transaction per
signal, keyed for idempotency), so when Ray restarts it after a crash it continues the
same incidents with nothing to rebuild in memory. Rules are compiled once and swapped
atomically on reload; an invalid rules file is refused and the old rules stay.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from actors.stores import Stores
from adapters.metrics import RuleEngineMetrics
from config.loader import load_rules, rules_from_text
from config.settings import Settings
from core.errors import ConfigError, TemporaryError
from core.models import Signal
from core.rules import RuleSet

log = logging.getLogger(__name__)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class IngestSummary:
    received: int = 0
    duplicates: int = 0
    dropped: int = 0
    opened: int = 0
    updated: int = 0
    resolved: int = 0
    incidents: list[str] = field(default_factory=list)


def incident_title(signal: Signal) -> str:
    subject = signal.object.key() if signal.object else (signal.labels.get("instance") or "cluster")
    text = f"{signal.reason} on {subject}"
    summary = signal.annotations.get("summary")
    return f"{text}: {summary}"[:300] if summary else text


class RuleEngine:
    def __init__(
        self,
        settings: Settings,
        rules_path: str | None = None,
        *,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._rules_path = rules_path or settings.rules_file
        self._rules: RuleSet = load_rules(self._rules_path)
        self._stores: Stores | None = None
        self._start_lock = asyncio.Lock()
        self._metrics = RuleEngineMetrics()
        self._started_at = time.time()

    async def _ready(self) -> Stores:
        if self._stores is None:
            async with self._start_lock:
                if self._stores is None:
                    self._stores = await Stores.open(self._settings)
        return self._stores

    async def ingest(self, signals: Sequence[Signal | dict[str, Any]]) -> dict[str, Any]:
        """Fold signals into incidents; idempotent, so a retried call changes nothing twice."""
        stores = await self._ready()
        summary = IngestSummary()
        for item in signals:
            signal = item if isinstance(item, Signal) else Signal.model_validate(item)
            summary.received += 1
            self._metrics.signals.labels(source=signal.source.value).inc()
            decision = self._rules.evaluate(signal)
            for name in decision.matched:
                self._metrics.rule_matches.labels(rule=name).inc()
            if decision.drop:
                summary.dropped += 1
                continue
            outcome = None
            for attempt in range(5):
                try:
                    outcome = await stores.postgres.ingest(
                        signal,
                        group_key=decision.group_key,
                        rule=decision.rule_name,
                        severity=decision.severity,
                        title=incident_title(signal),
                        playbook=decision.playbook,
                        now=self._clock(),
                    )
                    break
                except TemporaryError as e:
                    if attempt == 4:
                        raise
                    await asyncio.sleep(e.delay)
            if outcome is None or outcome.duplicate:
                summary.duplicates += 1
                continue
            if outcome.incident_id and outcome.incident_id not in summary.incidents:
                summary.incidents.append(outcome.incident_id)
            if outcome.opened:
                summary.opened += 1
                self._metrics.incidents_opened.labels(severity=decision.severity.value).inc()
            elif outcome.resolved:
                summary.resolved += 1
                self._metrics.incidents_resolved.labels(severity=decision.severity.value).inc()
            else:
                summary.updated += 1
        return asdict(summary)

    def reload_rules(self, rules_path: str | None = None, rules_text: str | None = None) -> list[str]:
        """Swap in new rules; on any error keep the old ones and raise ConfigError."""
        if rules_text is not None:
            new = rules_from_text(rules_text, rules_path or "<rules>")
        else:
            new = load_rules(rules_path or self._rules_path)
            self._rules_path = rules_path or self._rules_path
        self._rules = new
        log.info("rules reloaded: %d rules", len(new.rules))
        return list(new.names())

    def rule_names(self) -> list[str]:
        return list(self._rules.names())

    async def health(self) -> dict[str, Any]:
        stores = await self._ready()
        status: dict[str, Any] = {"rules": len(self._rules.rules), "uptime_s": round(time.time() - self._started_at)}
        try:
            status["postgres_latency_ms"] = round(await stores.postgres.ping() * 1000, 2)
        except TemporaryError as e:
            status["postgres_error"] = str(e)
        return status

    def metrics_text(self) -> str:
        return self._metrics.render()

    async def close(self) -> None:
        if self._stores is not None:
            await self._stores.close()
            self._stores = None


__all__ = ["ConfigError", "IngestSummary", "RuleEngine"]
