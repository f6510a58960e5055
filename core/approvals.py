"""Approvals of risky playbook steps: a frozen value and its transitions.

An approval is asked for one exact action (tool and rendered parameters, plus the rollback
that would follow a failed verification) and lives ``pending -> approved | rejected |
expired | cancelled``. It never goes back: a decision on a final approval raises
``ApprovalError("already approved ...")``, which ingress maps to 409, so a Slack retry or a
second click cannot run a step twice.

Counting rules (DESIGN.md principle 2):

- ``medium`` needs one authorised approver (operator or admin).
- ``high`` needs two distinct authorised approvers, or one admin deciding with
  ``confirm=True``. An admin without confirm counts as one of the two.
- The same identity approving twice counts once: the second attempt is refused.
- The requester (``requested_by``: the person who asked for this action, e.g. by accepting
  an LLM suggestion) never counts as an approver, at any risk: asking is one pair of eyes,
  approving must be another. Runs started by rules have no requester. The requester may
  still reject (withdraw) their own request.
- Viewers and unknown identities may not decide at all (``core.authz.role_may_decide``).
  Any authorised decider may reject; one rejection is final.
- A decision arriving at or after ``expires_at`` expires the approval instead (the
  returned state is ``expired`` and the effects say the decision came too late).

Lookup by id is ``ApprovalBook``'s job: an unknown id raises ``NotFound``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from core.authz import Role, role_may_decide
from core.effects import Announce, Audit
from core.errors import ApprovalError, NotFound
from core.models import ApprovalId, RunId
from core.tools import Action, Risk

DEFAULT_TTL = 15 * 60.0
_FROZEN = ConfigDict(frozen=True, extra="forbid")


class ApprovalState(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        return self is not ApprovalState.PENDING


class Verdict(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"


class DecisionRecord(BaseModel):
    model_config = _FROZEN

    who: str
    role: Role | None
    channel: str
    at: datetime
    decision: Verdict
    confirm: bool = False
    note: str = ""


# events -------------------------------------------------------------------------------


class Decide(BaseModel):
    model_config = _FROZEN

    kind: Literal["decide"] = "decide"
    who: str = Field(min_length=1, description="Identity, e.g. telegram:123 or slack:U42.")
    role: Role | None = Field(description="The identity's role for this namespace (None = unknown).")
    channel: str = Field(default="", description="Where the decision came from: telegram, slack, api, cli.")
    decision: Verdict
    confirm: bool = Field(default=False, description="An admin's explicit confirm to approve a high step alone.")
    note: str = ""


class Expire(BaseModel):
    model_config = _FROZEN

    kind: Literal["expire"] = "expire"


class Cancel(BaseModel):
    model_config = _FROZEN

    kind: Literal["cancel"] = "cancel"
    by: str
    reason: str = ""


ApprovalEvent = Annotated[Decide | Expire | Cancel, Field(discriminator="kind")]

# effects ------------------------------------------------------------------------------


class Granted(BaseModel):
    model_config = _FROZEN

    kind: Literal["granted"] = "granted"
    approval_id: ApprovalId
    run_id: RunId
    step: str
    approvers: tuple[str, ...]


class Denied(BaseModel):
    model_config = _FROZEN

    kind: Literal["denied"] = "denied"
    approval_id: ApprovalId
    run_id: RunId
    step: str
    by: str
    reason: str = ""


class Lapsed(BaseModel):
    model_config = _FROZEN

    kind: Literal["lapsed"] = "lapsed"
    approval_id: ApprovalId
    run_id: RunId
    step: str


class Withdrawn(BaseModel):
    model_config = _FROZEN

    kind: Literal["withdrawn"] = "withdrawn"
    approval_id: ApprovalId
    run_id: RunId
    step: str
    by: str
    reason: str = ""


ApprovalEffect = Annotated[Granted | Denied | Lapsed | Withdrawn | Announce | Audit, Field(discriminator="kind")]


def required_approvals(risk: Risk) -> int:
    """How many distinct approvers a step of this risk needs (an admin confirm can replace two)."""
    return {Risk.READ: 0, Risk.LOW: 0, Risk.MEDIUM: 1, Risk.HIGH: 2}[risk]


class Approval(BaseModel):
    model_config = _FROZEN

    id: ApprovalId
    run_id: RunId
    step: str
    risk: Risk
    action: Action
    rollback: Action | None = None
    namespace: str | None = None
    requested_by: str | None = None
    requested_at: datetime
    expires_at: datetime
    state: ApprovalState = ApprovalState.PENDING
    decisions: tuple[DecisionRecord, ...] = ()
    closed_at: datetime | None = None

    @classmethod
    def from_scratch(
        cls,
        id: ApprovalId,
        run_id: RunId,
        step: str,
        risk: Risk,
        action: Action,
        now: datetime,
        ttl: float = DEFAULT_TTL,
        requested_by: str | None = None,
        rollback: Action | None = None,
        namespace: str | None = None,
    ) -> Approval:
        if not risk.needs_approval:
            raise ApprovalError(f"step {step!r} is {risk.value} risk and runs without approval")
        if ttl <= 0:
            raise ApprovalError(f"approval ttl must be positive, got {ttl}")
        return cls(
            id=ApprovalId(id.strip().lower()),
            run_id=run_id,
            step=step,
            risk=risk,
            action=action,
            rollback=rollback,
            namespace=namespace,
            requested_by=requested_by,
            requested_at=now,
            expires_at=now + timedelta(seconds=ttl),
        )

    @classmethod
    def from_storage(cls, data: dict[str, Any]) -> Approval:
        return cls.model_validate(data)

    def for_storage(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @property
    def required(self) -> int:
        return required_approvals(self.risk)

    @property
    def approvers(self) -> tuple[str, ...]:
        """Distinct identities whose approvals count, in decision order."""
        seen: list[str] = []
        for d in self.decisions:
            if d.decision is Verdict.APPROVE and d.who != self.requested_by and d.who not in seen:
                seen.append(d.who)
        return tuple(seen)

    def is_due(self, now: datetime) -> bool:
        return self.state is ApprovalState.PENDING and now >= self.expires_at

    def describe(self) -> str:
        text = (
            f"approval {self.id}: {self.risk.value} step {self.step!r} of run {self.run_id}: {self.action.describe()}"
        )
        if self.rollback is not None:
            text += f" (rollback: {self.rollback.describe()})"
        return text

    def _final_reason(self) -> str:
        last = self.decisions[-1] if self.decisions else None
        by = (
            f" by {last.who}"
            if last is not None and self.state in (ApprovalState.APPROVED, ApprovalState.REJECTED)
            else ""
        )
        at = f" at {self.closed_at.isoformat()}" if self.closed_at else ""
        return f"approval {self.id} already {self.state.value}{by}{at}"


Effects = list[Granted | Denied | Lapsed | Withdrawn | Announce | Audit]


def advance(approval: Approval, event: Decide | Expire | Cancel, now: datetime) -> tuple[Approval, Effects]:
    """Apply one event; raise ApprovalError when it is refused (the state is then unchanged)."""
    if approval.state.final:
        raise ApprovalError(approval._final_reason())
    if isinstance(event, Expire):
        if not approval.is_due(now):
            raise ApprovalError(f"approval {approval.id} does not expire until {approval.expires_at.isoformat()}")
        return _expire(approval, now, "")
    if isinstance(event, Cancel):
        return _close(approval, ApprovalState.CANCELLED, now), [
            Withdrawn(
                approval_id=approval.id, run_id=approval.run_id, step=approval.step, by=event.by, reason=event.reason
            ),
            Announce(
                subject=approval.id,
                text=f"approval {approval.id} cancelled by {event.by}: {event.reason or 'no reason given'}",
            ),
            Audit(subject=approval.id, event="approval_cancelled", detail={"by": event.by, "reason": event.reason}),
        ]
    return _decide(approval, event, now)


def _expire(approval: Approval, now: datetime, late: str) -> tuple[Approval, Effects]:
    text = f"approval {approval.id} for step {approval.step!r} expired at {approval.expires_at.isoformat()}"
    text += f"; the decision by {late} came too late and was not counted" if late else "; nothing was run"
    return _close(approval, ApprovalState.EXPIRED, now), [
        Lapsed(approval_id=approval.id, run_id=approval.run_id, step=approval.step),
        Announce(subject=approval.id, text=text),
        Audit(subject=approval.id, event="approval_expired", detail={"late_decision_by": late or None}),
    ]


def _close(approval: Approval, state: ApprovalState, now: datetime, record: DecisionRecord | None = None) -> Approval:
    decisions = approval.decisions if record is None else (*approval.decisions, record)
    return approval.model_copy(update={"state": state, "closed_at": now, "decisions": decisions})


def _decide(approval: Approval, event: Decide, now: datetime) -> tuple[Approval, Effects]:
    if now >= approval.expires_at:
        return _expire(approval, now, event.who)
    allowed, reason = role_may_decide(event.role, approval.risk)
    if not allowed:
        raise ApprovalError(f"{event.who} may not decide approval {approval.id}: {reason}")
    record = DecisionRecord(
        who=event.who,
        role=event.role,
        channel=event.channel,
        at=now,
        decision=event.decision,
        confirm=event.confirm,
        note=event.note,
    )
    detail: dict[str, str | int | float | bool | None] = {
        "who": event.who,
        "role": event.role.value if event.role else None,
        "channel": event.channel,
        "action": approval.action.describe(),
    }
    if event.decision is Verdict.REJECT:
        return _close(approval, ApprovalState.REJECTED, now, record), [
            Denied(
                approval_id=approval.id, run_id=approval.run_id, step=approval.step, by=event.who, reason=event.note
            ),
            Announce(subject=approval.id, text=f"{event.who} rejected {approval.describe()}; nothing will run"),
            Audit(subject=approval.id, event="approval_rejected", detail=detail),
        ]
    if event.who == approval.requested_by:
        raise ApprovalError(
            f"{event.who} requested this action and cannot also approve it; approval {approval.id} needs"
            f" {approval.required} other approver(s)"
        )
    admin_confirmed = event.role is Role.ADMIN and event.confirm
    if event.who in approval.approvers and not admin_confirmed:
        raise ApprovalError(
            f"{event.who} already approved {approval.id}; the same person counts once, it needs"
            f" {approval.required - len(approval.approvers)} more distinct approver(s)"
        )
    updated = approval.model_copy(update={"decisions": (*approval.decisions, record)})
    approvers = updated.approvers
    if len(approvers) >= approval.required or admin_confirmed:
        how = "admin confirm" if admin_confirmed and len(approvers) < approval.required else "approvals"
        detail["satisfied_by"] = how
        return _close(updated, ApprovalState.APPROVED, now), [
            Granted(approval_id=approval.id, run_id=approval.run_id, step=approval.step, approvers=approvers),
            Announce(subject=approval.id, text=f"approved by {', '.join(approvers)}: {approval.describe()}"),
            Audit(subject=approval.id, event="approval_granted", detail=detail),
        ]
    hint = " (an admin may approve alone with confirm)" if approval.risk is Risk.HIGH else ""
    return updated, [
        Announce(
            subject=approval.id,
            text=f"{event.who} approved {approval.id}: {len(approvers)} of {approval.required}; waiting for"
            f" another approver{hint}",
        ),
        Audit(subject=approval.id, event="approval_recorded", detail=detail),
    ]


class ApprovalBook(BaseModel):
    """All approvals a coordinator holds, by id: the place an unknown id becomes ``NotFound``."""

    model_config = _FROZEN

    approvals: dict[str, Approval] = Field(default_factory=dict)

    def get(self, approval_id: str) -> Approval:
        key = approval_id.strip().lower()
        found = self.approvals.get(key)
        if found is None:
            raise NotFound(f"unknown approval id {approval_id!r}")
        return found

    def put(self, approval: Approval) -> ApprovalBook:
        if approval.id in self.approvals and self.approvals[approval.id] != approval:
            existing = self.approvals[approval.id]
            if existing.run_id != approval.run_id or existing.step != approval.step:
                raise ApprovalError(f"approval id {approval.id} is already used by run {existing.run_id}")
        return ApprovalBook(approvals={**self.approvals, approval.id: approval})

    def pending(self) -> tuple[Approval, ...]:
        return tuple(a for a in self.approvals.values() if a.state is ApprovalState.PENDING)

    def apply(
        self, approval_id: str, event: Decide | Expire | Cancel, now: datetime
    ) -> tuple[ApprovalBook, Approval, Effects]:
        """Look up and advance one approval; NotFound or ApprovalError leave the book unchanged."""
        updated, effects = advance(self.get(approval_id), event, now)
        return self.put(updated), updated, effects

    def expire_due(self, now: datetime) -> tuple[ApprovalBook, Effects]:
        book, effects = self, []
        for approval in self.pending():
            if approval.is_due(now):
                book, _, more = book.apply(approval.id, Expire(), now)
                effects.extend(more)
        return book, effects
