"""Events a playbook run accepts and effects it asks for: typed, frozen, discriminated by ``kind``.

They are split from ``core.playbooks`` only to keep modules short; import them from either.
Events come from the ApprovalCoordinator (results of tools, verifications, approvals and
guardrails, and ``Tick`` for time-outs); effects are what it must do next.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from core.effects import Announce, Audit, Refused
from core.models import ApprovalId, RunId
from core.tools import Action, ParamValue, Risk

_FROZEN = ConfigDict(frozen=True, extra="forbid")

# events -------------------------------------------------------------------------------


class EventBase(BaseModel):
    model_config = _FROZEN


class Start(EventBase):
    kind: Literal["start"] = "start"


class PreconditionResult(EventBase):
    kind: Literal["precondition"] = "precondition"
    step: str
    holds: bool
    detail: str = ""


class StepApproved(EventBase):
    kind: Literal["approved"] = "approved"
    step: str
    approval_id: ApprovalId
    approvers: tuple[str, ...] = ()


class StepRejected(EventBase):
    kind: Literal["rejected"] = "rejected"
    step: str
    approval_id: ApprovalId
    by: str
    reason: str = ""


class StepApprovalExpired(EventBase):
    kind: Literal["approval_expired"] = "approval_expired"
    step: str
    approval_id: ApprovalId


class StepResult(EventBase):
    kind: Literal["result"] = "result"
    step: str
    ok: bool
    detail: str = ""
    missing: bool = False  # the tool answered that what it reads does not exist (e.g. no previous container)


class VerifyResult(EventBase):
    kind: Literal["verify"] = "verify"
    step: str
    passed: bool
    detail: str = ""


class RollbackResult(EventBase):
    kind: Literal["rollback"] = "rollback"
    step: str
    ok: bool
    detail: str = ""


class StepBlocked(EventBase):
    kind: Literal["blocked"] = "blocked"
    step: str
    rule: str
    reason: str


class Tick(EventBase):
    kind: Literal["tick"] = "tick"


class CancelRun(EventBase):
    kind: Literal["cancel"] = "cancel"
    by: str
    reason: str = ""


RunEvent = (
    Start
    | PreconditionResult
    | StepApproved
    | StepRejected
    | StepApprovalExpired
    | StepResult
    | VerifyResult
    | RollbackResult
    | StepBlocked
    | Tick
    | CancelRun
)
AnyRunEvent = Annotated[RunEvent, Field(discriminator="kind")]

# effects ------------------------------------------------------------------------------


class EffectBase(BaseModel):
    model_config = _FROZEN

    run_id: RunId
    step: str


class CheckPrecondition(EffectBase):
    kind: Literal["check_precondition"] = "check_precondition"
    condition: str
    params: dict[str, ParamValue]


class RequestApproval(EffectBase):
    kind: Literal["request_approval"] = "request_approval"
    risk: Risk
    action: Action
    rollback: Action | None
    required_approvals: int
    requested_by: str | None


class ExecuteStep(EffectBase):
    kind: Literal["execute_step"] = "execute_step"
    action: Action
    risk: Risk
    timeout: float


class StartVerify(EffectBase):
    kind: Literal["start_verify"] = "start_verify"
    check: str
    params: dict[str, ParamValue]
    timeout: float
    stable_for: float


class ExecuteRollback(EffectBase):
    kind: Literal["execute_rollback"] = "execute_rollback"
    action: Action
    timeout: float


class CancelApproval(EffectBase):
    kind: Literal["cancel_approval"] = "cancel_approval"
    approval_id: ApprovalId | None = None


RunEffect = (
    CheckPrecondition
    | RequestApproval
    | ExecuteStep
    | StartVerify
    | ExecuteRollback
    | CancelApproval
    | Announce
    | Audit
    | Refused
)
Effects = list[RunEffect]
