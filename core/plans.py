"""Playbooks as core values, their validation, and rendering one into a plan for an incident.

``config.schema.PlaybookSpec`` is what users write; ``Playbook`` here is what core runs.
The safety rules live here, once: a step's tool must be in the catalogue
(``core.tools``), its declared risk may not be lower than the tool's, a ``read`` step may
not mutate, a rollback may not be riskier than the step it undoes (it runs without a new
approval: approving a step approves its rollback, and the approval shows both), verify
checks and preconditions must be ones the executor knows.

A plan is a playbook rendered against one incident: every action, verify and rollback
parameter is rendered and target-checked up front, so a wrong-namespace step refuses the
whole run before anything mutates.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.templates import Context, render_action, render_params
from core.tools import PRECONDITIONS, TOOLS, VERIFY_CHECKS, Action, ParamValue, Risk, tool_problems

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class ToolCall(BaseModel):
    model_config = _FROZEN

    tool: str
    params: dict[str, ParamValue] = Field(default_factory=dict)


class Verify(BaseModel):
    model_config = _FROZEN

    check: str
    params: dict[str, ParamValue] = Field(default_factory=dict)
    timeout: float = Field(default=120.0, gt=0, description="Seconds for the check to start passing.")
    stable_for: float = Field(default=0.0, ge=0, description="Seconds it must then keep passing.")


class Step(BaseModel):
    model_config = _FROZEN

    name: str
    tool: str
    params: dict[str, ParamValue] = Field(default_factory=dict)
    risk: Risk = Risk.HIGH
    precondition: str | None = None
    verify: Verify | None = None
    rollback: ToolCall | None = None
    timeout: float = Field(default=60.0, gt=0)


def step_problems(step: Step, *, complete: bool = False) -> list[str]:
    """Every reason this step may not be run; ``complete`` also demands every required parameter."""
    problems = tool_problems(step.tool, step.risk, step.params, complete=complete)
    if step.verify is not None and step.verify.check not in VERIFY_CHECKS:
        problems.append(f"unknown verify check {step.verify.check!r}; known: {', '.join(sorted(VERIFY_CHECKS))}")
    if step.precondition is not None and step.precondition not in PRECONDITIONS:
        problems.append(f"unknown precondition {step.precondition!r}; known: {', '.join(sorted(PRECONDITIONS))}")
    if step.rollback is not None:
        info = TOOLS.get(step.rollback.tool)
        if info is None:
            problems.append(f"rollback: unknown tool {step.rollback.tool!r}")
        else:
            problems.extend(
                f"rollback: {p}"
                for p in tool_problems(step.rollback.tool, info.risk, step.rollback.params, complete=complete)
            )
            if info.risk.rank > step.risk.rank:
                problems.append(
                    f"rollback tool {step.rollback.tool!r} is {info.risk.value} risk, riskier than the"
                    f" {step.risk.value} step it undoes"
                )
        if step.risk is Risk.READ:
            problems.append("a read step changes nothing and cannot have a rollback")
    return problems


class Playbook(BaseModel):
    model_config = _FROZEN

    name: str = Field(min_length=1)
    description: str = ""
    reasons: tuple[str, ...] = ()
    steps: tuple[Step, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _safe(self) -> Playbook:
        problems = []
        names = [s.name for s in self.steps]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            problems.append(f"duplicate step names {dupes}")
        for step in self.steps:
            problems.extend(f"step {step.name!r}: {p}" for p in step_problems(step))
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def mutating(self) -> bool:
        return any(s.risk is not Risk.READ for s in self.steps)


class VerifyPlan(BaseModel):
    model_config = _FROZEN

    check: str
    params: dict[str, ParamValue]
    timeout: float
    stable_for: float

    @property
    def deadline_seconds(self) -> float:
        """How long after StartVerify a missing result counts as a failed verification."""
        return self.timeout + self.stable_for


class PlannedStep(BaseModel):
    model_config = _FROZEN

    name: str
    risk: Risk
    action: Action
    precondition: str | None = None
    verify: VerifyPlan | None = None
    rollback: Action | None = None
    timeout: float

    def describe(self) -> str:
        text = f"{self.name}: {self.action.describe()} [{self.risk.value}]"
        if self.verify is not None:
            text += f", verify {self.verify.check}"
        if self.rollback is not None:
            text += f", rollback {self.rollback.describe()}"
        return text


def plan_steps(playbook: Playbook, context: Context, namespace: str | None) -> tuple[PlannedStep, ...]:
    """Render every step for one incident; ConfigError (template) or ApprovalError (target) refuse it."""
    planned = []
    for step in playbook.steps:
        where = f"playbook {playbook.name}: step {step.name}"
        verify = None
        if step.verify is not None:
            verify = VerifyPlan(
                check=step.verify.check,
                params=render_params(step.verify.params, context, f"{where}: verify.params"),
                timeout=step.verify.timeout,
                stable_for=step.verify.stable_for,
            )
        rollback = None
        if step.rollback is not None:
            rollback = render_action(step.rollback.tool, step.rollback.params, context, namespace, f"{where}: rollback")
        planned.append(
            PlannedStep(
                name=step.name,
                risk=step.risk,
                action=render_action(step.tool, step.params, context, namespace, where),
                precondition=step.precondition,
                verify=verify,
                rollback=rollback,
                timeout=step.timeout,
            )
        )
    return tuple(planned)


def playbook_from_data(data: Mapping[str, Any]) -> Playbook:
    """Build a Playbook from plain data (e.g. ``PlaybookSpec.model_dump()``); ValidationError when unsafe."""
    return Playbook.model_validate(dict(data))
