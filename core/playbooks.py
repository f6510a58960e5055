"""A playbook run as a frozen value: ``advance(run, event, now) -> (run, effects)``.

The run decides, the ApprovalCoordinator acts. Steps go in order; for each one::

    [precondition?] -> read/low: ExecuteStep | medium/high: RequestApproval -> (approved) ExecuteStep
      -> result ok -> [StartVerify -> passed] -> next step
                               `-> failed or timed out -> [ExecuteRollback] -> rolled_back | failed

Terminal states: succeeded, failed, rolled_back, rejected, expired, blocked (a guardrail
said no), cancelled. Every transition returns an ``Audit`` effect and, when a person
should know, an ``Announce``; nothing ends silently.

Idempotency is structural: an event that does not fit the current state (a second
approval, an approval after a rejection, a result for a step that is not running, a
late verify) returns the *same* run and a ``Refused`` effect. ``ExecuteStep`` for a step
is only ever emitted on the one transition into ``executing`` for that step.

Dry-run: the plan is announced, read steps still run (they are harmless and make the
report useful), every other step is skipped with "would run ..."; no ExecuteStep,
RequestApproval or ExecuteRollback is emitted for a mutating step.

Guardrails (``core.guardrails``) are checked by the caller when it handles a
RequestApproval or ExecuteStep effect; a refusal comes back as ``StepBlocked``.
Timeouts are detected on ``Tick``: a step (or precondition, or rollback) that has no result
after its ``timeout`` fails; a verification with no result after ``timeout + stable_for``
counts as failed, which triggers the rollback.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from core.approvals import Approval, Decide, Denied, Granted, Lapsed, Withdrawn, required_approvals
from core.approvals import advance as advance_approval
from core.effects import Announce, Audit, AuditValue, Refused
from core.errors import ApprovalError
from core.models import ApprovalId, IncidentId, RunId
from core.plans import PlannedStep, Playbook, plan_steps
from core.run_events import (
    AnyRunEvent,
    CancelApproval,
    CancelRun,
    CheckPrecondition,
    Effects,
    EventBase,
    ExecuteRollback,
    ExecuteStep,
    PreconditionResult,
    RequestApproval,
    RollbackResult,
    RunEffect,
    RunEvent,
    Start,
    StartVerify,
    StepApprovalExpired,
    StepApproved,
    StepBlocked,
    StepRejected,
    StepResult,
    Tick,
    VerifyResult,
)
from core.templates import Context
from core.tools import Risk

_FROZEN = ConfigDict(frozen=True, extra="forbid")

__all__ = [
    "AnyRunEvent",
    "CancelApproval",
    "CancelRun",
    "CheckPrecondition",
    "Effects",
    "ExecuteRollback",
    "ExecuteStep",
    "PreconditionResult",
    "RequestApproval",
    "RollbackResult",
    "Run",
    "RunEffect",
    "RunEvent",
    "RunStatus",
    "Start",
    "StartVerify",
    "StepApprovalExpired",
    "StepApproved",
    "StepBlocked",
    "StepOutcome",
    "StepRejected",
    "StepResult",
    "Tick",
    "VerifyResult",
    "advance",
    "decide",
    "event_from_approval",
]


class RunStatus(StrEnum):
    PLANNED = "planned"
    CHECKING = "checking"
    AWAITING_APPROVAL = "awaiting_approval"
    EXECUTING = "executing"
    VERIFYING = "verifying"
    ROLLING_BACK = "rolling_back"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    REJECTED = "rejected"
    EXPIRED = "expired"
    BLOCKED = "blocked"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        return self in _FINAL


_FINAL = frozenset(
    {
        RunStatus.SUCCEEDED,
        RunStatus.FAILED,
        RunStatus.ROLLED_BACK,
        RunStatus.REJECTED,
        RunStatus.EXPIRED,
        RunStatus.BLOCKED,
        RunStatus.CANCELLED,
    }
)


class StepOutcome(BaseModel):
    model_config = _FROZEN

    step: str
    status: Literal["succeeded", "skipped", "failed", "verify_failed", "timed_out", "rejected", "expired", "blocked"]
    detail: str = ""
    at: datetime


class Run(BaseModel):
    model_config = _FROZEN

    id: RunId
    playbook: str
    incident_id: IncidentId | None = None
    namespace: str | None = None
    requested_by: str | None = None
    dry_run: bool = False
    plan: tuple[PlannedStep, ...]
    status: RunStatus = RunStatus.PLANNED
    index: int = Field(default=0, description="The current step; len(plan) once past the last one.")
    phase_started_at: datetime | None = None
    approvals: dict[str, ApprovalId] = Field(default_factory=dict, description="Step name -> approval id.")
    outcomes: tuple[StepOutcome, ...] = ()
    reason: str = ""
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_scratch(
        cls,
        id: RunId,
        playbook: Playbook,
        context: Context,
        namespace: str | None,
        now: datetime,
        *,
        incident_id: IncidentId | None = None,
        requested_by: str | None = None,
        dry_run: bool = False,
    ) -> Run:
        """Plan a run; raises ConfigError (template) or ApprovalError (refused target) before anything runs."""
        return cls(
            id=id,
            playbook=playbook.name,
            incident_id=incident_id,
            namespace=namespace,
            requested_by=requested_by,
            dry_run=dry_run,
            plan=plan_steps(playbook, context, namespace),
            created_at=now,
            updated_at=now,
        )

    @classmethod
    def from_storage(cls, data: dict[str, Any]) -> Run:
        return cls.model_validate(data)

    def for_storage(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @property
    def current(self) -> PlannedStep | None:
        return self.plan[self.index] if self.index < len(self.plan) else None

    @property
    def failed_verifications(self) -> int:
        return sum(1 for o in self.outcomes if o.status == "verify_failed")


# transitions --------------------------------------------------------------------------


def advance(run: Run, event: RunEvent, now: datetime) -> tuple[Run, Effects]:
    """Apply one event. Events that do not fit return the same run and a Refused effect."""
    if isinstance(event, Tick):
        return _tick(run, now)
    if run.status.final:
        return _refuse(run, event, f"run {run.id} is already {run.status.value}")
    if isinstance(event, Start):
        if run.status is not RunStatus.PLANNED:
            return _refuse(run, event, f"run {run.id} has already started")
        steps = "; ".join(s.describe() for s in run.plan)
        mode = "dry-run of" if run.dry_run else "running"
        effects: Effects = [_announce(run, f"{mode} playbook {run.playbook} (run {run.id}): {steps}")]
        new, more = _enter(run, 0, now)
        return new, effects + more
    if isinstance(event, CancelRun):
        return _cancel(run, event, now)
    step = run.current
    if step is None or event.step != step.name:
        current = step.name if step else "none"
        return _refuse(run, event, f"run {run.id} is not on step {event.step!r} (current: {current})")
    expected = _EXPECTS[type(event)]
    if run.status not in expected:
        return _refuse(run, event, f"step {step.name!r} of run {run.id} is {run.status.value}")
    if isinstance(event, PreconditionResult):
        if event.holds:
            return _offer(run, step, now)
        return _next(run, step, "skipped", f"precondition {step.precondition} does not hold {event.detail}", now)
    if isinstance(event, StepApproved):
        approvals = {**run.approvals, step.name: event.approval_id}
        approved = run.model_copy(update={"approvals": approvals})
        return _execute(approved, step, now, f"approved by {', '.join(event.approvers) or 'an approver'}")
    if isinstance(event, StepRejected):
        text = f"step {step.name!r} rejected by {event.by}: {event.reason or 'no reason given'}; nothing was run"
        return _finish(run, RunStatus.REJECTED, step, "rejected", text, now)
    if isinstance(event, StepApprovalExpired):
        text = f"expired: approval {event.approval_id} for step {step.name!r} lapsed unanswered; nothing was run"
        return _finish(run, RunStatus.EXPIRED, step, "expired", text, now)
    if isinstance(event, StepBlocked):
        text = f"step {step.name!r} blocked by guardrail {event.rule}: {event.reason}; escalate to a human"
        return _finish(run, RunStatus.BLOCKED, step, "blocked", text, now)
    if isinstance(event, StepResult):
        if not event.ok and step.risk is Risk.READ and event.missing:
            # Absent evidence is evidence: a pod with no previous container has no previous logs,
            # which is no reason to abandon the remediation. A refused or hung read still fails.
            return _next(run, step, "failed", f"read step failed, continuing: {event.detail or 'no detail'}", now)
        if not event.ok:
            text = f"step {step.name!r} failed: {event.detail or 'no detail'}; a human should look"
            return _finish(run, RunStatus.FAILED, step, "failed", text, now)
        if step.verify is None:
            return _next(run, step, "succeeded", event.detail, now)
        verify = step.verify
        effect = StartVerify(
            run_id=run.id,
            step=step.name,
            check=verify.check,
            params=verify.params,
            timeout=verify.timeout,
            stable_for=verify.stable_for,
        )
        new = _move(run, RunStatus.VERIFYING, now)
        return new, [
            effect,
            _announce(run, f"step {step.name!r} done; verifying {verify.check} (must hold {verify.stable_for:g}s)"),
            _audit(run, "verify_started", step=step.name, check=verify.check),
        ]
    if isinstance(event, VerifyResult):
        if event.passed:
            return _next(run, step, "succeeded", f"verified {event.detail}".strip(), now)
        return _verify_failed(run, step, event.detail or "check failed", now)
    if not isinstance(event, RollbackResult):
        return _refuse(run, event, "unexpected event")
    if event.ok:
        text = f"rolled back step {step.name!r} after a failed verification; the incident still needs a human"
        return _finish(run, RunStatus.ROLLED_BACK, None, "verify_failed", text, now)
    text = f"rollback of step {step.name!r} failed: {event.detail or 'no detail'}; a human must step in now"
    return _finish(run, RunStatus.FAILED, None, "failed", text, now)


_EXPECTS: dict[type[EventBase], frozenset[RunStatus]] = {
    PreconditionResult: frozenset({RunStatus.CHECKING}),
    StepApproved: frozenset({RunStatus.AWAITING_APPROVAL}),
    StepRejected: frozenset({RunStatus.AWAITING_APPROVAL}),
    StepApprovalExpired: frozenset({RunStatus.AWAITING_APPROVAL}),
    StepBlocked: frozenset({RunStatus.AWAITING_APPROVAL, RunStatus.EXECUTING}),
    StepResult: frozenset({RunStatus.EXECUTING}),
    VerifyResult: frozenset({RunStatus.VERIFYING}),
    RollbackResult: frozenset({RunStatus.ROLLING_BACK}),
}


def _refuse(run: Run, event: RunEvent, reason: str) -> tuple[Run, Effects]:
    return run, [Refused(subject=run.id, reason=f"{event.kind}: {reason}")]


def _announce(run: Run, text: str) -> Announce:
    return Announce(subject=run.id, text=text)


def _audit(run: Run, event: str, **detail: AuditValue) -> Audit:
    return Audit(subject=run.id, event=event, detail={"playbook": run.playbook, **detail})


def _move(run: Run, status: RunStatus, now: datetime, **update: Any) -> Run:
    return run.model_copy(update={"status": status, "phase_started_at": now, "updated_at": now, **update})


def _enter(run: Run, index: int, now: datetime) -> tuple[Run, Effects]:
    """Enter step ``index``, skipping mutating steps in dry-run, finishing after the last one."""
    effects: Effects = []
    while index < len(run.plan) and run.dry_run and run.plan[index].risk is not Risk.READ:
        step = run.plan[index]
        need = required_approvals(step.risk)
        gate = f"needs {need} approval(s)" if need else "runs unattended"
        effects.append(_announce(run, f"dry-run: would run {step.describe()} ({gate}); skipped"))
        effects.append(_audit(run, "step_skipped", step=step.name, dry_run=True))
        outcome = StepOutcome(step=step.name, status="skipped", detail="dry-run", at=now)
        run = run.model_copy(update={"outcomes": (*run.outcomes, outcome)})
        index += 1
    if index >= len(run.plan):
        done = _move(run, RunStatus.SUCCEEDED, now, index=len(run.plan))
        summary = ", ".join(f"{o.step}: {o.status}" for o in done.outcomes) or "no steps"
        mode = "dry-run of " if run.dry_run else ""
        effects.append(_announce(run, f"{mode}playbook {run.playbook} (run {run.id}) succeeded: {summary}"))
        effects.append(_audit(run, "run_succeeded", dry_run=run.dry_run))
        return done, effects
    step = run.plan[index]
    run = run.model_copy(update={"index": index})
    if step.precondition is not None:
        checking = _move(run, RunStatus.CHECKING, now)
        effects.append(
            CheckPrecondition(run_id=run.id, step=step.name, condition=step.precondition, params=step.action.params)
        )
        effects.append(_audit(run, "precondition_check", step=step.name, condition=step.precondition))
        return checking, effects
    new, more = _offer(run, step, now)
    return new, effects + more


def _offer(run: Run, step: PlannedStep, now: datetime) -> tuple[Run, Effects]:
    if not step.risk.needs_approval:
        return _execute(run, step, now, f"{step.risk.value} risk, runs unattended")
    need = required_approvals(step.risk)
    request = RequestApproval(
        run_id=run.id,
        step=step.name,
        risk=step.risk,
        action=step.action,
        rollback=step.rollback,
        required_approvals=need,
        requested_by=run.requested_by,
    )
    return _move(run, RunStatus.AWAITING_APPROVAL, now), [
        request,
        _announce(run, f"step {step.describe()} needs {need} approval(s)"),
        _audit(run, "approval_requested", step=step.name, risk=step.risk.value, action=step.action.describe()),
    ]


def _execute(run: Run, step: PlannedStep, now: datetime, why: str) -> tuple[Run, Effects]:
    return _move(run, RunStatus.EXECUTING, now), [
        ExecuteStep(run_id=run.id, step=step.name, action=step.action, risk=step.risk, timeout=step.timeout),
        _announce(run, f"running step {step.name!r}: {step.action.describe()} ({why})"),
        _audit(run, "step_started", step=step.name, action=step.action.describe(), why=why),
    ]


def _next(
    run: Run, step: PlannedStep, status: Literal["succeeded", "skipped", "failed"], detail: str, now: datetime
) -> tuple[Run, Effects]:
    outcome = StepOutcome(step=step.name, status=status, detail=detail.strip(), at=now)
    done = run.model_copy(update={"outcomes": (*run.outcomes, outcome), "updated_at": now})
    effects: Effects = [
        _announce(run, f"step {step.name!r} {status}{': ' + detail.strip() if detail.strip() else ''}"),
        _audit(run, f"step_{status}", step=step.name, detail=detail.strip()),
    ]
    new, more = _enter(done, run.index + 1, now)
    return new, effects + more


def _finish(
    run: Run,
    status: RunStatus,
    step: PlannedStep | None,
    outcome: Literal["failed", "verify_failed", "timed_out", "rejected", "expired", "blocked"],
    text: str,
    now: datetime,
) -> tuple[Run, Effects]:
    outcomes = run.outcomes
    if step is not None:
        outcomes = (*outcomes, StepOutcome(step=step.name, status=outcome, detail=text, at=now))
    done = _move(run, status, now, outcomes=outcomes, reason=text)
    return done, [
        _announce(run, f"playbook {run.playbook} (run {run.id}) {status.value}: {text}"),
        _audit(run, f"run_{status.value}", reason=text),
    ]


def _verify_failed(run: Run, step: PlannedStep, detail: str, now: datetime) -> tuple[Run, Effects]:
    outcome = StepOutcome(step=step.name, status="verify_failed", detail=detail, at=now)
    if step.rollback is None:
        text = f"verification of step {step.name!r} failed ({detail}) and it has no rollback; a human should look"
        failed = run.model_copy(update={"outcomes": (*run.outcomes, outcome)})
        return _finish(failed, RunStatus.FAILED, None, "verify_failed", text, now)
    rolling = _move(run, RunStatus.ROLLING_BACK, now, outcomes=(*run.outcomes, outcome))
    return rolling, [
        ExecuteRollback(run_id=run.id, step=step.name, action=step.rollback, timeout=step.timeout),
        _announce(
            run, f"verification of step {step.name!r} failed ({detail}); rolling back: {step.rollback.describe()}"
        ),
        _audit(run, "rollback_started", step=step.name, action=step.rollback.describe(), detail=detail),
    ]


def _tick(run: Run, now: datetime) -> tuple[Run, Effects]:
    """Time-outs. A tick that finds nothing overdue changes nothing and says nothing."""
    step, started = run.current, run.phase_started_at
    if run.status.final or step is None or started is None:
        return run, []
    waited = (now - started).total_seconds()
    if run.status is RunStatus.VERIFYING and step.verify is not None:
        if waited >= step.verify.deadline_seconds:
            return _verify_failed(run, step, f"verify timed out after {waited:g}s", now)
        return run, []
    if run.status in (RunStatus.CHECKING, RunStatus.EXECUTING, RunStatus.ROLLING_BACK) and waited >= step.timeout:
        what = {
            RunStatus.CHECKING: "precondition check",
            RunStatus.EXECUTING: "step",
            RunStatus.ROLLING_BACK: "rollback",
        }[run.status]
        text = f"{what} {step.name!r} timed out after {step.timeout:g}s; its effect is unknown, check by hand"
        recorded = None if run.status is RunStatus.ROLLING_BACK else step
        return _finish(run, RunStatus.FAILED, recorded, "timed_out", text, now)
    return run, []


def _cancel(run: Run, event: CancelRun, now: datetime) -> tuple[Run, Effects]:
    step = run.current
    effects: Effects = []
    if run.status is RunStatus.AWAITING_APPROVAL and step is not None:
        effects.append(CancelApproval(run_id=run.id, step=step.name, approval_id=run.approvals.get(step.name)))
    in_flight = run.status in (RunStatus.EXECUTING, RunStatus.VERIFYING, RunStatus.ROLLING_BACK)
    text = f"cancelled by {event.by}: {event.reason or 'no reason given'}"
    if in_flight and step is not None:
        text += f"; step {step.name!r} was already running and may have taken effect"
    done = _move(run, RunStatus.CANCELLED, now, reason=text)
    effects.append(_announce(run, f"playbook {run.playbook} (run {run.id}) {text}"))
    effects.append(_audit(run, "run_cancelled", by=event.by, reason=event.reason))
    return done, effects


# approvals -> run ---------------------------------------------------------------------


def event_from_approval(effect: Granted | Denied | Lapsed | Withdrawn) -> RunEvent:
    """The run event an approval outcome means."""
    if isinstance(effect, Granted):
        return StepApproved(step=effect.step, approval_id=effect.approval_id, approvers=effect.approvers)
    if isinstance(effect, Denied):
        return StepRejected(step=effect.step, approval_id=effect.approval_id, by=effect.by, reason=effect.reason)
    if isinstance(effect, Lapsed):
        return StepApprovalExpired(step=effect.step, approval_id=effect.approval_id)
    return CancelRun(by=effect.by, reason=effect.reason or f"approval {effect.approval_id} cancelled")


def decide(run: Run, approval: Approval, event: Decide, now: datetime) -> tuple[Run, Approval, list[Any]]:
    """Apply a chat decision to an approval and, when it settles, to its run.

    Raises ApprovalError when the approval refuses the decision; then neither changes.
    """
    if approval.run_id != run.id:
        raise ApprovalError(f"approval {approval.id} belongs to run {approval.run_id}, not {run.id}")
    approval, effects = advance_approval(approval, event, now)
    out: list[Any] = list(effects)
    for effect in effects:
        if isinstance(effect, Granted | Denied | Lapsed | Withdrawn):
            run, more = advance(run, event_from_approval(effect), now)
            out.extend(more)
    return run, approval, out
