"""Strict schemas of the YAML files users write: rules and playbooks.

Every model forbids unknown keys and is frozen, so a typo (``group_bye``) is an error
with a dotted path, not a silently ignored setting. Values that have their own grammar
(matchers, regexes, durations) are validated here with the same parsers core uses, so
a file that passes ``aiops config check`` compiles without surprises.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from core.matchers import parse_matcher
from core.models import Severity, SignalSource
from core.rules import parse_duration

_STRICT = ConfigDict(extra="forbid", frozen=True)


def _duration(value: Any) -> float:
    if not isinstance(value, str | int | float):
        raise ValueError(f"invalid duration {value!r}: expected e.g. 30s, 5m, 1h")
    return parse_duration(value)


Duration = Annotated[float, BeforeValidator(_duration)]


def _check_matchers(values: list[str]) -> list[str]:
    for text in values:
        parse_matcher(text)
    return values


class MatchSpec(BaseModel):
    model_config = _STRICT

    source: list[SignalSource] = Field(default_factory=list, description="k8s and/or alertmanager; empty = any.")
    reason: list[str] = Field(
        default_factory=list, description="Detection reasons or Alertmanager alertnames; empty = any."
    )
    severity: list[Severity] = Field(default_factory=list, description="Severities this rule applies to.")
    namespaces: list[str] = Field(default_factory=list, description="Glob patterns, e.g. prod-*.")
    matchers: list[str] = Field(
        default_factory=list, description='Alertmanager-style label matchers: team="db", pod=~"api-.*".'
    )

    @field_validator("matchers")
    @classmethod
    def _matchers_ok(cls, value: list[str]) -> list[str]:
        return _check_matchers(value)


class InhibitSpec(BaseModel):
    model_config = _STRICT

    target: list[str] = Field(description="Matchers selecting the signals to mute.", min_length=1)
    equal: list[str] = Field(default_factory=list, description="Labels that must be equal on both sides.")

    @field_validator("target")
    @classmethod
    def _target_ok(cls, value: list[str]) -> list[str]:
        return _check_matchers(value)


class RuleSpec(BaseModel):
    model_config = _STRICT

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$", description="Unique rule name.")
    description: str = ""
    match: MatchSpec = Field(default_factory=MatchSpec)
    set_severity: Severity | None = Field(default=None, description="Force this severity.")
    raise_severity: Severity | None = Field(default=None, description="Raise to at least this severity.")
    playbook: str | None = Field(default=None, description="Playbook to attach to incidents of this rule.")
    notify: list[str] = Field(default_factory=list, description="Notification routes.")
    continue_: bool = Field(default=False, alias="continue", description="Keep evaluating later rules.")
    drop: bool = Field(default=False, description="Discard matching signals (heartbeats such as Watchdog).")
    group_by: list[str] = Field(default_factory=list, description="Labels that form the incident key.")
    group_wait: Duration = Field(default=0.0, description="Wait before the first notification.")
    cooldown: Duration = Field(default=300.0, description="A recurrence after this long reopens the incident.")
    inhibit: list[InhibitSpec] = Field(default_factory=list)


class RulesFile(BaseModel):
    model_config = _STRICT

    rules: list[RuleSpec]

    @field_validator("rules")
    @classmethod
    def _unique_names(cls, rules: list[RuleSpec]) -> list[RuleSpec]:
        seen: set[str] = set()
        for rule in rules:
            if rule.name in seen:
                raise ValueError(f"duplicate rule name {rule.name!r}")
            seen.add(rule.name)
        return rules


class Risk(StrEnum):
    READ = "read"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


ParamValue = str | int | float | bool


class ToolCallSpec(BaseModel):
    model_config = _STRICT

    tool: str = Field(min_length=1, description="MCP tool name, e.g. delete_pod.")
    params: dict[str, ParamValue] = Field(
        default_factory=dict, description="Templated parameters: {{ incident.namespace }}, {{ rca.container }}."
    )


class VerifySpec(BaseModel):
    model_config = _STRICT

    check: str = Field(min_length=1, description="Named check, e.g. pod_ready, workload_available.")
    params: dict[str, ParamValue] = Field(default_factory=dict)
    timeout: Duration = Field(default=120.0)
    stable_for: Duration = Field(default=0.0, description="The check must hold this long.")


class StepSpec(BaseModel):
    model_config = _STRICT

    name: str = Field(min_length=1)
    tool: str = Field(min_length=1)
    params: dict[str, ParamValue] = Field(default_factory=dict)
    risk: Risk = Field(default=Risk.HIGH, description="read | low | medium | high; omitted counts as high.")
    precondition: str | None = Field(default=None, description="Named condition that must hold first.")
    verify: VerifySpec | None = None
    rollback: ToolCallSpec | None = None
    timeout: Duration = Field(default=60.0)


class PlaybookSpec(BaseModel):
    model_config = _STRICT

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    description: str = ""
    reasons: list[str] = Field(default_factory=list, description="Incident reasons this playbook fits.")
    steps: list[StepSpec] = Field(min_length=1)

    @field_validator("steps")
    @classmethod
    def _unique_steps(cls, steps: list[StepSpec]) -> list[StepSpec]:
        names = [s.name for s in steps]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate step names {dupes}")
        return steps


class PlaybookFile(BaseModel):
    model_config = _STRICT

    playbook: PlaybookSpec
