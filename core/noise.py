"""Noise ratio: how many incidents and notifications a stream of signals becomes.

The point of correlation is a small number: a node storm of 78 signals should page once.
``simulate`` replays signals through the real rules and correlator on a virtual clock
(``Tick`` at every ``NotifyDue``, no sleeping), so benchmarks and tests measure the same
code the RuleEngine runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from core.correlation import CorrelationPolicy, Correlator
from core.correlation_events import Effect, Notify, OpenIncident, ResolveIncident, ResolveReason, Tick
from core.incident_groups import CorrelationState
from core.models import Signal
from core.rules import RuleSet


@dataclass(frozen=True)
class CorrelationReport:
    signals_in: int
    incidents_out: int
    notifications: int
    incidents: tuple[str, ...] = ()
    effects: tuple[Effect, ...] = field(default=(), repr=False)
    state: CorrelationState = field(default_factory=CorrelationState, repr=False)

    @property
    def noise_ratio(self) -> float:
        """Signals per incident (higher is better correlation)."""
        return self.signals_in / self.incidents_out if self.incidents_out else float(self.signals_in)


def _observed(signal: Signal) -> datetime:
    return signal.observed_at


def simulate(
    rules: RuleSet,
    signals: Iterable[Signal],
    now_fn: Callable[[Signal], datetime] = _observed,
    *,
    policy: CorrelationPolicy | None = None,
    settle: float = 3600.0,
) -> CorrelationReport:
    """Feed ``signals`` in order, ``now_fn(signal)`` giving each arrival time, then let ``settle`` seconds pass.

    ``incidents_out`` counts incidents opened and not merged into another one;
    ``notifications`` counts ``Notify`` effects of every kind.
    """
    correlator = Correlator(rules, policy or CorrelationPolicy())
    state = CorrelationState.from_scratch()
    effects: list[Effect] = []
    count = 0
    last: datetime | None = None

    def tick_until(moment: datetime) -> None:
        nonlocal state
        due = state.next_due()
        while due is not None and due <= moment:
            state, out = correlator.advance(state, Tick(), due)
            effects.extend(out)
            following = state.next_due()
            due = following if following is not None and following > due else None

    for signal in signals:
        now = now_fn(signal)
        if last is not None and now < last:
            now = last
        tick_until(now)
        state, out = correlator.advance(state, correlator.event(signal), now)
        effects.extend(out)
        count += 1
        last = now
    if last is not None:
        tick_until(last + timedelta(seconds=settle))
    opened = [e.incident_id for e in effects if isinstance(e, OpenIncident)]
    merged = {e.incident_id for e in effects if isinstance(e, ResolveIncident) and e.reason is ResolveReason.MERGED}
    kept = tuple(i for i in opened if i not in merged)
    return CorrelationReport(
        signals_in=count,
        incidents_out=len(kept),
        notifications=sum(1 for e in effects if isinstance(e, Notify)),
        incidents=kept,
        effects=tuple(effects),
        state=state,
    )
