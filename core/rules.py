"""Compiled rules: which signals matter, how bad they are, how they group, what they trigger.

A rule set is evaluated like an Alertmanager routing tree flattened into a list: rules
are tried in order, the first match decides grouping, and ``continue: true`` lets later
rules add their actions too. A signal no rule matches still becomes an incident under the
built-in ``default`` rule, because dropping an unknown failure silently is the worst
outcome for an on-call engineer; only an explicit ``drop`` (e.g. Watchdog) discards.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from core.matchers import Matcher, matches_all
from core.models import Severity, Signal

ALL_LABELS = "..."


@dataclass(frozen=True)
class Match:
    sources: frozenset[str] = frozenset()
    reasons: frozenset[str] = frozenset()
    severities: frozenset[Severity] = frozenset()
    namespaces: tuple[str, ...] = ()
    matchers: tuple[Matcher, ...] = ()

    def matches(self, signal: Signal, labels: Mapping[str, str]) -> bool:
        if self.sources and signal.source.value not in self.sources:
            return False
        if self.reasons and signal.reason not in self.reasons and labels.get("alertname", "") not in self.reasons:
            return False
        if self.severities and signal.severity not in self.severities:
            return False
        if self.namespaces:
            namespace = signal.namespace or ""
            if not any(fnmatch.fnmatchcase(namespace, pattern) for pattern in self.namespaces):
                return False
        return matches_all(self.matchers, labels)


@dataclass(frozen=True)
class Inhibit:
    """While a firing signal matching the owning rule exists, mute targets with equal labels."""

    target: tuple[Matcher, ...]
    equal: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rule:
    name: str
    match: Match = field(default_factory=Match)
    set_severity: Severity | None = None
    raise_severity: Severity | None = None
    playbook: str | None = None
    notify: tuple[str, ...] = ()
    continue_: bool = False
    drop: bool = False
    group_by: tuple[str, ...] = ()
    group_wait: float = 0.0
    cooldown: float = 300.0
    inhibit: tuple[Inhibit, ...] = ()
    description: str = ""


DEFAULT_RULE = Rule(name="default", description="Any signal no rule matched.")


@dataclass(frozen=True)
class Decision:
    """What the rule set says about one signal."""

    rule: Rule
    matched: tuple[str, ...]
    severity: Severity
    group_key: str
    playbook: str | None
    notify: tuple[str, ...]
    drop: bool

    @property
    def rule_name(self) -> str:
        return self.rule.name


def group_key(rule: Rule, signal: Signal, labels: Mapping[str, str]) -> str:
    """The key that puts signals into one incident: rule name plus its ``group_by`` label values."""
    if not rule.group_by:
        return f"{rule.name}|fp={signal.fingerprint}"
    if ALL_LABELS in rule.group_by:
        keys: Iterable[str] = sorted(labels)
    else:
        keys = rule.group_by
    return rule.name + "|" + ",".join(f"{key}={labels.get(key, '')}" for key in keys)


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...] = ()
    default: Rule = DEFAULT_RULE

    def evaluate(self, signal: Signal) -> Decision:
        labels = signal.all_labels()
        primary: Rule | None = None
        matched: list[str] = []
        severity = signal.severity
        playbook: str | None = None
        notify: list[str] = []
        drop = False
        for rule in self.rules:
            if not rule.match.matches(signal, labels):
                continue
            matched.append(rule.name)
            primary = primary or rule
            if rule.set_severity is not None:
                severity = rule.set_severity
            if rule.raise_severity is not None and rule.raise_severity.rank > severity.rank:
                severity = rule.raise_severity
            playbook = playbook or rule.playbook
            notify.extend(n for n in rule.notify if n not in notify)
            drop = drop or rule.drop
            if not rule.continue_:
                break
        chosen = primary or self.default
        return Decision(
            rule=chosen,
            matched=tuple(matched) or (self.default.name,),
            severity=severity,
            group_key=group_key(chosen, signal, labels),
            playbook=playbook,
            notify=tuple(notify),
            drop=drop,
        )

    def inhibited(self, target: Signal, active_sources: Iterable[Signal]) -> str | None:
        """Name of the rule whose inhibit clause mutes ``target``, given the firing signals."""
        target_labels = target.all_labels()
        for source in active_sources:
            if not source.firing or source.fingerprint == target.fingerprint:
                continue
            source_labels = source.all_labels()
            for rule in self.rules:
                if not rule.inhibit or not rule.match.matches(source, source_labels):
                    continue
                for clause in rule.inhibit:
                    if not matches_all(clause.target, target_labels):
                        continue
                    if all(source_labels.get(k, "") == target_labels.get(k, "") for k in clause.equal):
                        return rule.name
        return None

    def names(self) -> tuple[str, ...]:
        return tuple(rule.name for rule in self.rules)


_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: str | float | int) -> float:
    """``"30s"``, ``"5m"``, ``"1h"``, ``"1.5h"``, plain numbers (seconds) -> seconds."""
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"invalid duration {value!r}: must not be negative")
        return float(value)
    found = _DURATION_RE.match(value)
    if found is None:
        raise ValueError(f"invalid duration {value!r}: expected a number with unit ms, s, m, h or d")
    return float(found[1]) * _UNIT_SECONDS[found[2] or "s"]
