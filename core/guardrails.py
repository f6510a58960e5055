"""Guardrails: the checks an approved action must still pass right before it runs.

An approval says "a human agrees"; guardrails say "and the platform is allowed to act now".
They are pure: the caller passes the settings, the history of past actions and the
breaker count in ``GuardrailContext``; ``check(action, context, now)`` returns a verdict
naming the rule that said no, so chat can tell people *why* nothing happened. Checked in
this order, the first refusal wins:

1. ``paused``: a global stop switch for every mutating action.
2. ``change_freeze``: inside a freeze window nothing mutates. Windows are either absolute
   ``{start, end}`` datetimes (end exclusive) or weekly ranges written
   ``"fri 18:00 - mon 08:00"``: three-letter day names, 24-hour times, always UTC, the
   range may wrap over the weekend.
3. ``dry_run``: the platform (or this run) only plans.
4. ``circuit_breaker``: after N consecutive failed verifications of a playbook, stop it
   until a human looks (N = 0 disables).
5. ``budget``: at most ``max_actions`` of a set of tools per workload per ``per`` seconds,
   e.g. 3 restarts an hour per deployment; past that the answer is "budget exhausted,
   escalate to a human".

Read-only tools always pass. Call ``check`` for forward steps, not for rollbacks: a
rollback restores the state a human approved leaving, and blocking it would strand the
workload half-changed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.tools import TOOLS, Action

_FROZEN = ConfigDict(frozen=True, extra="forbid")
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WEEK_MINUTES = 7 * 24 * 60
_WEEKLY = re.compile(r"^\s*([a-z]{3})\s+(\d{1,2}):(\d{2})\s*-\s*([a-z]{3})\s+(\d{1,2}):(\d{2})\s*$")


class Budget(BaseModel):
    model_config = _FROZEN

    name: str = Field(min_length=1, description="What the budget counts, e.g. restarts.")
    tools: frozenset[str] = Field(min_length=1)
    max_actions: int = Field(ge=0)
    per: float = Field(gt=0, description="Window length in seconds.")


DEFAULT_BUDGETS = (
    Budget(name="restarts", tools=frozenset({"delete_pod", "rollout_restart"}), max_actions=3, per=3600.0),
    Budget(
        name="changes",
        tools=frozenset({"scale_deployment", "rollback_deployment", "set_resources", "delete_failed_job"}),
        max_actions=3,
        per=3600.0,
    ),
    Budget(name="node actions", tools=frozenset({"cordon_node", "drain_node"}), max_actions=2, per=3600.0),
)


class FreezeWindow(BaseModel):
    model_config = _FROZEN

    start: datetime
    end: datetime
    label: str = ""

    @model_validator(mode="after")
    def _ordered(self) -> FreezeWindow:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("freeze window times need a timezone, e.g. 2026-12-24T00:00:00Z")
        if self.end <= self.start:
            raise ValueError(f"freeze window ends ({self.end.isoformat()}) before it starts ({self.start.isoformat()})")
        return self

    def contains(self, now: datetime) -> bool:
        return self.start <= now < self.end

    def describe(self) -> str:
        return self.label or f"{self.start.isoformat()} - {self.end.isoformat()}"


class WeeklyWindow(BaseModel):
    model_config = _FROZEN

    text: str
    start_minute: int = Field(ge=0, lt=_WEEK_MINUTES, description="Minute of the week, Monday 00:00 UTC = 0.")
    end_minute: int = Field(ge=0, lt=_WEEK_MINUTES)

    @classmethod
    def parse(cls, text: str) -> WeeklyWindow:
        """``"fri 18:00 - mon 08:00"`` (UTC); ValueError names what is wrong."""
        match = _WEEKLY.match(text.lower())
        if match is None:
            raise ValueError(f"weekly window {text!r} must look like 'fri 18:00 - mon 08:00' (UTC)")
        start = _minute_of_week(text, match.group(1), match.group(2), match.group(3))
        end = _minute_of_week(text, match.group(4), match.group(5), match.group(6))
        if start == end:
            raise ValueError(f"weekly window {text!r} is empty: it starts and ends at the same time")
        return cls(text=text.strip(), start_minute=start, end_minute=end)

    def contains(self, now: datetime) -> bool:
        utc = now.astimezone(UTC)
        minute = utc.weekday() * 24 * 60 + utc.hour * 60 + utc.minute
        if self.start_minute < self.end_minute:
            return self.start_minute <= minute < self.end_minute
        return minute >= self.start_minute or minute < self.end_minute

    def describe(self) -> str:
        return f"{self.text} UTC"


def _minute_of_week(text: str, day: str, hour: str, minute: str) -> int:
    if day not in _DAYS:
        raise ValueError(f"weekly window {text!r}: unknown day {day!r}; use {', '.join(_DAYS)}")
    h, m = int(hour), int(minute)
    if h > 23 or m > 59:
        raise ValueError(f"weekly window {text!r}: invalid time {hour}:{minute}")
    return _DAYS.index(day) * 24 * 60 + h * 60 + m


class GuardrailConfig(BaseModel):
    model_config = _FROZEN

    paused: bool = False
    dry_run: bool = False
    budgets: tuple[Budget, ...] = DEFAULT_BUDGETS
    freezes: tuple[FreezeWindow | WeeklyWindow, ...] = ()
    breaker_threshold: int = Field(default=3, ge=0, description="Consecutive failed verifications; 0 = off.")


class PastAction(BaseModel):
    model_config = _FROZEN

    tool: str
    workload: str
    at: datetime


class GuardrailContext(BaseModel):
    model_config = _FROZEN

    config: GuardrailConfig = Field(default_factory=GuardrailConfig)
    workload: str | None = Field(default=None, description="Workload the action affects; default from its params.")
    history: tuple[PastAction, ...] = Field(default=(), description="Past mutating actions (any workload).")
    consecutive_failed_verifications: int = Field(default=0, ge=0)
    dry_run: bool = Field(default=False, description="This run only plans.")
    playbook: str = ""


class GuardrailVerdict(BaseModel):
    model_config = _FROZEN

    allowed: bool
    reason: str
    rule: str | None = Field(default=None, description="The rule that refused; None when allowed.")


def workload_of(action: Action) -> str:
    """``namespace/name`` (or ``node/name``) of what an action touches, for budgets.

    For pod actions pass the owning workload in ``GuardrailContext.workload`` instead (pods
    come and go; the budget belongs to their deployment), and record history the same way.
    """
    params = action.params
    info = TOOLS.get(action.tool)
    name = str(params.get("name", ""))
    if info is not None and info.cluster_scoped:
        return f"node/{name}"
    return f"{params.get('namespace', '')}/{name}"


def consecutive_failures(results: Sequence[bool]) -> int:
    """Trailing failures in a chronological list of verification results (True = passed)."""
    count = 0
    for passed in reversed(results):
        if passed:
            break
        count += 1
    return count


def _deny(rule: str, reason: str) -> GuardrailVerdict:
    return GuardrailVerdict(allowed=False, reason=reason, rule=rule)


def check(action: Action, context: GuardrailContext, now: datetime) -> GuardrailVerdict:
    """May this action run now? The first refusing rule wins; read-only tools always pass."""
    info = TOOLS.get(action.tool)
    if info is not None and not info.mutating:
        return GuardrailVerdict(allowed=True, reason=f"{action.tool} is read-only")
    config = context.config
    what = action.describe()
    if config.paused:
        return _deny("paused", f"remediation is paused platform-wide; {what} was not run")
    for window in config.freezes:
        if window.contains(now):
            return _deny("change_freeze", f"change freeze ({window.describe()}) is in effect; {what} was not run")
    if config.dry_run or context.dry_run:
        return _deny("dry_run", f"dry-run: would run {what}")
    failures = context.consecutive_failed_verifications
    if config.breaker_threshold and failures >= config.breaker_threshold:
        name = f"playbook {context.playbook}" if context.playbook else "this playbook"
        return _deny(
            "circuit_breaker",
            f"{name} failed verification {failures} times in a row; stopped until a human looks",
        )
    workload = context.workload or workload_of(action)
    for budget in config.budgets:
        if action.tool not in budget.tools:
            continue
        used = [
            past
            for past in context.history
            if past.workload == workload
            and past.tool in budget.tools
            and 0 <= (now - past.at).total_seconds() < budget.per
        ]
        if len(used) >= budget.max_actions:
            return _deny(
                "budget",
                f"budget exhausted: {len(used)} of {budget.max_actions} {budget.name} on {workload} in the last"
                f" {budget.per / 60:g} min; escalate to a human",
            )
    return GuardrailVerdict(allowed=True, reason=f"{what} passes every guardrail")
