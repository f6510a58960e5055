"""The remediation policy file: who may approve, how long approvals live, which guardrails hold.

``policy.yaml`` is a strict contract like the rules: unknown keys, unknown identity
schemes, unknown tools in a budget and half-written freeze windows are errors with a
dotted path (``policy.roles[2].identity: ...``), collected all at once. Loading compiles
the file into core values (``core.authz.Policy``, ``core.guardrails.GuardrailConfig``);
nothing downstream sees YAML.

Freeze windows come in two forms, both UTC: ``{weekly: "fri 18:00 - mon 08:00"}`` for
recurring ones and ``{start: 2026-12-24T00:00:00Z, end: 2026-12-27T00:00:00Z}`` for one-off
ones (timestamps must carry a timezone).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from config.loader import Problem, check_yaml_file, dotted, parse_yaml_text, read_yaml, validation_problems
from config.schema import Duration
from core.approvals import DEFAULT_TTL
from core.authz import Grant, Identity, Policy, Role, identity_problem
from core.errors import ConfigError
from core.guardrails import DEFAULT_BUDGETS, Budget, FreezeWindow, GuardrailConfig, WeeklyWindow
from core.tools import MUTATING

_STRICT = ConfigDict(extra="forbid", frozen=True)


class RoleGrantSpec(BaseModel):
    model_config = _STRICT

    identity: str = Field(description="telegram:<user id>, slack:<user id>, cli:<name> or api:<name>.")
    role: Role = Field(description="viewer | operator | admin.")
    namespaces: list[str] = Field(default_factory=list, description="Glob patterns; empty = every namespace.")

    @field_validator("identity")
    @classmethod
    def _identity_ok(cls, value: str) -> str:
        problem = identity_problem(value)
        if problem:
            raise ValueError(problem)
        return value


class ApprovalsSpec(BaseModel):
    model_config = _STRICT

    ttl: Duration = Field(default=DEFAULT_TTL, gt=0, le=24 * 3600, description="How long an approval stays open.")


class BudgetSpec(BaseModel):
    model_config = _STRICT

    name: str = Field(min_length=1, description="What it counts, e.g. restarts.")
    tools: list[str] = Field(min_length=1, description="Mutating tools from core/tools.py.")
    max: int = Field(ge=0, description="Actions allowed per workload per window.")
    per: Duration = Field(gt=0, description="Window, e.g. 1h.")

    @field_validator("tools")
    @classmethod
    def _tools_ok(cls, value: list[str]) -> list[str]:
        unknown = [t for t in value if t not in MUTATING]
        if unknown:
            raise ValueError(f"not mutating tools: {unknown}; budgets count {', '.join(sorted(MUTATING))}")
        return value

    def to_core(self) -> Budget:
        return Budget(name=self.name, tools=frozenset(self.tools), max_actions=self.max, per=self.per)


class FreezeSpec(BaseModel):
    model_config = _STRICT

    weekly: str | None = Field(default=None, description='UTC weekly range, e.g. "fri 18:00 - mon 08:00".')
    start: datetime | None = Field(default=None, description="One-off window start, with timezone.")
    end: datetime | None = Field(default=None, description="One-off window end (exclusive), with timezone.")
    label: str = ""

    @model_validator(mode="after")
    def _one_form(self) -> FreezeSpec:
        absolute = self.start is not None or self.end is not None
        if self.weekly is not None and absolute:
            raise ValueError("use either weekly or start/end, not both")
        if self.weekly is None and (self.start is None or self.end is None):
            raise ValueError("a freeze window needs weekly, or both start and end")
        self.to_core()
        return self

    def to_core(self) -> FreezeWindow | WeeklyWindow:
        if self.weekly is not None:
            return WeeklyWindow.parse(self.weekly)
        if self.start is None or self.end is None:
            raise ValueError("a freeze window needs both start and end")
        return FreezeWindow(start=self.start, end=self.end, label=self.label)


class CircuitBreakerSpec(BaseModel):
    model_config = _STRICT

    max_consecutive_failed_verifications: int = Field(default=3, ge=0, description="0 disables the breaker.")


class GuardrailsSpec(BaseModel):
    model_config = _STRICT

    paused: bool = Field(default=False, description="Stop every mutating action platform-wide.")
    dry_run: bool = Field(default=False, description="Plan and announce only; never mutate.")
    budgets: list[BudgetSpec] | None = Field(default=None, description="Omitted = the built-in defaults.")
    freeze: list[FreezeSpec] = Field(default_factory=list)
    circuit_breaker: CircuitBreakerSpec = Field(default_factory=CircuitBreakerSpec)

    def to_core(self) -> GuardrailConfig:
        budgets = DEFAULT_BUDGETS if self.budgets is None else tuple(b.to_core() for b in self.budgets)
        return GuardrailConfig(
            paused=self.paused,
            dry_run=self.dry_run,
            budgets=budgets,
            freezes=tuple(f.to_core() for f in self.freeze),
            breaker_threshold=self.circuit_breaker.max_consecutive_failed_verifications,
        )


class PolicySpec(BaseModel):
    model_config = _STRICT

    roles: list[RoleGrantSpec] = Field(default_factory=list, description="Identities and their roles.")
    approvals: ApprovalsSpec = Field(default_factory=ApprovalsSpec)
    guardrails: GuardrailsSpec = Field(default_factory=GuardrailsSpec)


class PolicyFile(BaseModel):
    model_config = _STRICT

    policy: PolicySpec


@dataclass(frozen=True)
class LoadedPolicy:
    """The compiled policy: what the ApprovalCoordinator is constructed with."""

    authz: Policy
    guardrails: GuardrailConfig
    approval_ttl: float


def _semantic_problems(name: str, spec: PolicySpec) -> list[Problem]:
    problems = []
    seen: dict[tuple[str, tuple[str, ...]], int] = {}
    for index, grant in enumerate(spec.roles):
        key = (grant.identity, tuple(sorted(grant.namespaces)))
        if key in seen:
            problems.append(
                Problem(
                    name,
                    dotted(("policy", "roles", index)),
                    f"{grant.identity} is already granted for these namespaces at roles[{seen[key]}]",
                )
            )
        seen.setdefault(key, index)
    return problems


def policy_problems(data: Any, name: str = "<policy>") -> list[Problem]:
    """Every problem in policy data, each with a dotted path; empty when it is valid."""
    try:
        spec = PolicyFile.model_validate(data)
    except ValidationError as e:
        return validation_problems(name, e)
    return _semantic_problems(name, spec.policy)


def policy_from_data(data: Any, name: str = "<policy>") -> LoadedPolicy:
    problems = policy_problems(data, name)
    if problems:
        raise ConfigError(f"{name}: {len(problems)} problem(s)", tuple(str(p) for p in problems))
    spec = PolicyFile.model_validate(data).policy
    grants = tuple(
        Grant(identity=Identity(g.identity), role=g.role, namespaces=tuple(g.namespaces)) for g in spec.roles
    )
    return LoadedPolicy(
        authz=Policy(grants=grants), guardrails=spec.guardrails.to_core(), approval_ttl=spec.approvals.ttl
    )


def policy_from_text(text: str, name: str = "<policy>") -> LoadedPolicy:
    return policy_from_data(parse_yaml_text(text, name), name)


def default_policy_path() -> Path:
    return Path(str(resources.files("config").joinpath("policy.yaml")))


def load_policy(path: str | Path | None = None) -> LoadedPolicy:
    """Load a policy file; ``None`` loads the shipped ``config/policy.yaml``."""
    target = Path(path) if path else default_policy_path()
    return policy_from_data(read_yaml(target), str(target))


def check_policy_file(path: str | Path) -> list[Problem]:
    """``aiops config check`` for a policy file: every problem, never an exception."""
    return check_yaml_file(path, policy_problems)
