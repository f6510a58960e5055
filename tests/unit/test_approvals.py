from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from core.approvals import (
    Approval,
    ApprovalBook,
    ApprovalState,
    Cancel,
    Decide,
    Denied,
    Expire,
    Granted,
    Lapsed,
    Verdict,
    Withdrawn,
    advance,
)
from core.authz import Role
from core.effects import Announce, Audit
from core.errors import ApprovalError, NotFound
from core.models import ApprovalId, RunId
from core.tools import Action, Risk

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
ACTION = Action(tool="delete_pod", params={"namespace": "shop", "name": "api-1"})
A = Verdict.APPROVE
R = Verdict.REJECT


def approval(risk: Risk = Risk.MEDIUM, requested_by: str | None = None, ttl: float = 900.0) -> Approval:
    return Approval.from_scratch(
        ApprovalId("Ab12cd"), RunId("run-1"), "restart-pod", risk, ACTION, NOW, ttl=ttl, requested_by=requested_by
    )


def decide(who: str, role: Role | None, verdict: Verdict = A, confirm: bool = False) -> Decide:
    return Decide(who=who, role=role, channel="slack", decision=verdict, confirm=confirm)


def apply_all(start: Approval, events: list[Decide], at: datetime = NOW) -> tuple[Approval, list[object]]:
    effects: list[object] = []
    for event in events:
        start, more = advance(start, event, at)
        effects.extend(more)
    return start, effects


@pytest.mark.parametrize(
    ("risk", "requested_by", "events", "state", "approvers"),
    [
        pytest.param(
            Risk.MEDIUM,
            None,
            [decide("slack:U1", Role.OPERATOR)],
            "approved",
            ("slack:U1",),
            id="medium-needs-one-operator",
        ),
        pytest.param(
            Risk.MEDIUM, None, [decide("slack:U1", Role.ADMIN)], "approved", ("slack:U1",), id="medium-admin-alone"
        ),
        pytest.param(
            Risk.HIGH,
            None,
            [decide("slack:U1", Role.OPERATOR)],
            "pending",
            ("slack:U1",),
            id="high-one-operator-is-not-enough",
        ),
        pytest.param(
            Risk.HIGH,
            None,
            [decide("slack:U1", Role.OPERATOR), decide("telegram:2", Role.OPERATOR)],
            "approved",
            ("slack:U1", "telegram:2"),
            id="high-two-distinct-operators",
        ),
        pytest.param(
            Risk.HIGH,
            None,
            [decide("slack:U9", Role.ADMIN, confirm=True)],
            "approved",
            ("slack:U9",),
            id="high-one-admin-with-confirm",
        ),
        pytest.param(
            Risk.HIGH,
            None,
            [decide("slack:U9", Role.ADMIN)],
            "pending",
            ("slack:U9",),
            id="high-admin-without-confirm-counts-as-one",
        ),
        pytest.param(
            Risk.HIGH,
            None,
            [decide("slack:U9", Role.ADMIN), decide("slack:U9", Role.ADMIN, confirm=True)],
            "approved",
            ("slack:U9",),
            id="high-admin-may-add-confirm-later",
        ),
        pytest.param(
            Risk.HIGH,
            "slack:U1",
            [decide("slack:U2", Role.OPERATOR), decide("slack:U3", Role.OPERATOR)],
            "approved",
            ("slack:U2", "slack:U3"),
            id="high-requested-needs-two-others",
        ),
        pytest.param(
            Risk.MEDIUM, None, [decide("slack:U1", Role.OPERATOR, R)], "rejected", (), id="one-rejection-is-final"
        ),
        pytest.param(
            Risk.HIGH,
            None,
            [decide("slack:U1", Role.OPERATOR), decide("slack:U2", Role.OPERATOR, R)],
            "rejected",
            ("slack:U1",),
            id="rejection-after-partial-approval",
        ),
        pytest.param(
            Risk.MEDIUM,
            "slack:U1",
            [decide("slack:U1", Role.OPERATOR, R)],
            "rejected",
            (),
            id="requester-may-withdraw-by-rejecting",
        ),
    ],
)
def test_counting_rules_decide_the_state(
    risk: Risk, requested_by: str | None, events: list[Decide], state: str, approvers: tuple[str, ...]
) -> None:
    final, _ = apply_all(approval(risk, requested_by), events)
    assert (final.state.value, final.approvers) == (state, approvers)


@pytest.mark.parametrize(
    ("risk", "requested_by", "events", "message"),
    [
        pytest.param(Risk.MEDIUM, None, [decide("slack:V", Role.VIEWER)], "viewers may not", id="a-viewer"),
        pytest.param(Risk.MEDIUM, None, [decide("slack:X", None)], "not in the policy", id="an-unauthorised-user"),
        pytest.param(Risk.MEDIUM, None, [decide("slack:X", None, R)], "not in the policy", id="unauthorised-reject"),
        pytest.param(
            Risk.HIGH,
            None,
            [decide("slack:U1", Role.OPERATOR), decide("slack:U1", Role.OPERATOR)],
            "counts once",
            id="the-same-person-approving-a-two-person-step-twice",
        ),
        pytest.param(
            Risk.HIGH,
            None,
            [decide("slack:U1", Role.OPERATOR), decide("slack:U1", Role.OPERATOR, confirm=True)],
            "counts once",
            id="an-operator-cannot-confirm-alone",
        ),
        pytest.param(
            Risk.MEDIUM,
            "slack:U1",
            [decide("slack:U1", Role.OPERATOR)],
            "cannot also approve",
            id="the-requester-alone-is-not-enough",
        ),
        pytest.param(
            Risk.HIGH,
            "slack:U1",
            [decide("slack:U1", Role.ADMIN, confirm=True)],
            "cannot also approve",
            id="an-admin-requester-cannot-confirm-their-own-request",
        ),
        pytest.param(
            Risk.MEDIUM,
            None,
            [decide("slack:U1", Role.OPERATOR), decide("slack:U2", Role.OPERATOR)],
            "already approved by slack:U1",
            id="approving-twice",
        ),
        pytest.param(
            Risk.MEDIUM,
            None,
            [decide("slack:U1", Role.OPERATOR, R), decide("slack:U2", Role.OPERATOR)],
            "already rejected by slack:U1",
            id="approve-after-reject",
        ),
        pytest.param(
            Risk.MEDIUM,
            None,
            [decide("slack:U1", Role.OPERATOR), decide("slack:U2", Role.OPERATOR, R)],
            "already approved",
            id="reject-after-approve",
        ),
    ],
)
def test_refused_decisions_raise_and_leave_the_approval_unchanged(
    risk: Risk, requested_by: str | None, events: list[Decide], message: str
) -> None:
    before, _ = apply_all(approval(risk, requested_by), events[:-1])
    with pytest.raises(ApprovalError, match=message):
        advance(before, events[-1], NOW)


def test_granting_emits_granted_announce_and_audit_once() -> None:
    final, effects = apply_all(
        approval(Risk.HIGH), [decide("slack:U1", Role.OPERATOR), decide("slack:U2", Role.OPERATOR)]
    )
    assert [type(e) for e in effects] == [Announce, Audit, Granted, Announce, Audit]
    granted = [e for e in effects if isinstance(e, Granted)]
    assert granted[0].approvers == ("slack:U1", "slack:U2") and final.closed_at == NOW


def test_a_decision_after_expires_at_expires_the_approval_instead() -> None:
    late = NOW + timedelta(minutes=15)
    expired, effects = advance(approval(), decide("slack:U1", Role.OPERATOR), late)
    assert expired.state is ApprovalState.EXPIRED
    assert [type(e) for e in effects] == [Lapsed, Announce, Audit]
    assert "came too late" in effects[1].text  # type: ignore[union-attr]
    with pytest.raises(ApprovalError, match="already expired"):
        advance(expired, decide("slack:U2", Role.OPERATOR), late)


def test_expire_is_refused_before_it_is_due_and_announced_when_it_is() -> None:
    pending = approval(ttl=60)
    with pytest.raises(ApprovalError, match="does not expire until"):
        advance(pending, Expire(), NOW + timedelta(seconds=59))
    expired, effects = advance(pending, Expire(), NOW + timedelta(seconds=60))
    assert expired.state is ApprovalState.EXPIRED
    assert any(isinstance(e, Announce) and "expired" in e.text for e in effects)


def test_cancel_withdraws_a_pending_approval_and_then_refuses_decisions() -> None:
    cancelled, effects = advance(approval(), Cancel(by="system", reason="run cancelled"), NOW)
    assert cancelled.state is ApprovalState.CANCELLED and isinstance(effects[0], Withdrawn)
    with pytest.raises(ApprovalError, match="already cancelled"):
        advance(cancelled, decide("slack:U1", Role.OPERATOR), NOW)


def test_rejection_reports_who_and_the_exact_action() -> None:
    _, effects = advance(approval(), Decide(who="slack:U1", role=Role.OPERATOR, decision=R, note="not now"), NOW)
    denied = effects[0]
    assert isinstance(denied, Denied) and (denied.by, denied.reason) == ("slack:U1", "not now")
    assert "delete_pod(name=api-1, namespace=shop)" in effects[1].text  # type: ignore[union-attr]


@pytest.mark.parametrize("risk", [pytest.param(Risk.READ, id="read"), pytest.param(Risk.LOW, id="low")])
def test_unattended_risks_never_get_an_approval(risk: Risk) -> None:
    with pytest.raises(ApprovalError, match="runs without approval"):
        approval(risk)


def test_approval_survives_storage_round_trip_as_json() -> None:
    partial, _ = advance(approval(Risk.HIGH, requested_by="slack:U0"), decide("slack:U1", Role.OPERATOR), NOW)
    stored = json.loads(json.dumps(partial.for_storage()))
    assert Approval.from_storage(stored) == partial


def test_the_book_refuses_an_unknown_approval_id() -> None:
    book = ApprovalBook().put(approval())
    with pytest.raises(NotFound, match="unknown approval id 'zz9999'"):
        book.apply("zz9999", decide("slack:U1", Role.OPERATOR), NOW)


def test_the_book_finds_ids_regardless_of_case_and_spaces() -> None:
    book = ApprovalBook().put(approval())
    book, updated, _ = book.apply(" AB12CD ", decide("slack:U1", Role.OPERATOR), NOW)
    assert updated.state is ApprovalState.APPROVED and book.get("ab12cd") == updated


def test_the_book_refuses_an_expired_id_with_a_clear_reason() -> None:
    book, effects = ApprovalBook().put(approval(ttl=60)).expire_due(NOW + timedelta(minutes=2))
    assert [type(e) for e in effects] == [Lapsed, Announce, Audit] and not book.pending()
    with pytest.raises(ApprovalError, match="already expired"):
        book.apply("ab12cd", decide("slack:U1", Role.OPERATOR), NOW + timedelta(minutes=2))


def test_the_book_refuses_reusing_an_id_for_another_run() -> None:
    other = approval().model_copy(update={"run_id": RunId("run-2")})
    with pytest.raises(ApprovalError, match="already used by run run-1"):
        ApprovalBook().put(approval()).put(other)
