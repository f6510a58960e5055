"""Strict schemas of the YAML files users write: rules and playbooks.

Every model forbids unknown keys and is frozen, so a typo (``group_bye``) is an error
with a dotted path, not a silently ignored setting. Values that have their own grammar
(matchers, regexes, durations) are validated here with the same parsers core uses, so
a file that passes ``aiops config check`` compiles without surprises.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from core.matchers import parse_matcher
from core.models import Severity, SignalSource
from core.plans import Playbook, Step, ToolCall, Verify, step_problems
from core.rules import parse_duration
from core.tools import ParamValue as ParamValue  # re-exported: the catalogue in core.tools owns these
from core.tools import Risk as Risk

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


class ToolCallSpec(BaseModel):
    model_config = _STRICT

    tool: str = Field(min_length=1, description="MCP tool name, e.g. delete_pod.")
    params: dict[str, ParamValue] = Field(
        default_factory=dict, description="Templated parameters: {{ incident.namespace }}, {{ rca.container }}."
    )

    def to_core(self) -> ToolCall:
        return ToolCall(tool=self.tool, params=dict(self.params))


class VerifySpec(BaseModel):
    model_config = _STRICT

    check: str = Field(min_length=1, description="Named check, e.g. pod_ready, workload_available.")
    params: dict[str, ParamValue] = Field(default_factory=dict)
    timeout: Duration = Field(default=120.0, gt=0, description="How long the check may take to start passing.")
    stable_for: Duration = Field(default=0.0, ge=0, description="The check must then hold this long.")

    def to_core(self) -> Verify:
        return Verify(check=self.check, params=dict(self.params), timeout=self.timeout, stable_for=self.stable_for)


class StepSpec(BaseModel):
    """One step. The tool must be in core.tools' catalogue and the risk at least the tool's."""

    model_config = _STRICT

    name: str = Field(min_length=1)
    tool: str = Field(min_length=1, description="A tool from the catalogue in core/tools.py.")
    params: dict[str, ParamValue] = Field(default_factory=dict)
    risk: Risk = Field(default=Risk.HIGH, description="read | low | medium | high; omitted counts as high.")
    precondition: str | None = Field(default=None, description="Named condition that must hold first.")
    verify: VerifySpec | None = None
    rollback: ToolCallSpec | None = Field(
        default=None, description="Runs when verification fails; approved together with the step."
    )
    timeout: Duration = Field(default=60.0, gt=0)

    @model_validator(mode="after")
    def _safe(self) -> StepSpec:
        problems = step_problems(self.to_core())
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def to_core(self) -> Step:
        return Step(
            name=self.name,
            tool=self.tool,
            params=dict(self.params),
            risk=self.risk,
            precondition=self.precondition,
            verify=self.verify.to_core() if self.verify else None,
            rollback=self.rollback.to_core() if self.rollback else None,
            timeout=self.timeout,
        )


def _duplicate_step_names(value: Any) -> list[str]:
    if not isinstance(value, list):
        return []
    names = [item.get("name") if isinstance(item, dict) else getattr(item, "name", None) for item in value]
    return sorted({n for n in names if isinstance(n, str) and names.count(n) > 1})


class PlaybookSpec(BaseModel):
    model_config = _STRICT

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    description: str = ""
    reasons: list[str] = Field(default_factory=list, description="Incident reasons this playbook fits.")
    steps: list[StepSpec] = Field(min_length=1)

    @field_validator("steps", mode="wrap")
    @classmethod
    def _unique_steps(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> list[StepSpec]:
        """Duplicate names are reported together with any problem inside the steps, not instead of it."""
        dupes = _duplicate_step_names(value)
        try:
            steps: list[StepSpec] = handler(value)
        except ValidationError as e:
            if not dupes:
                raise
            details: list[InitErrorDetails] = []
            for err in e.errors():
                detail: InitErrorDetails = {"type": err["type"], "loc": err["loc"], "input": err["input"]}
                if "ctx" in err:
                    detail["ctx"] = err["ctx"]
                details.append(detail)
            details.append(
                {
                    "type": PydanticCustomError(
                        "duplicate_steps", "duplicate step names {names}", {"names": str(dupes)}
                    ),
                    "loc": (),
                    "input": value,
                }
            )
            raise ValidationError.from_exception_data(e.title, details) from e
        if dupes:
            raise ValueError(f"duplicate step names {dupes}")
        return steps

    def to_core(self) -> Playbook:
        return Playbook(
            name=self.name,
            description=self.description,
            reasons=tuple(self.reasons),
            steps=tuple(s.to_core() for s in self.steps),
        )


class PlaybookFile(BaseModel):
    model_config = _STRICT

    playbook: PlaybookSpec
