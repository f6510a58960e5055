"""Privilege escalation and forged decisions, as properties of ``core.authz`` and ``core.approvals``.

The coordinator (``actors/approvals.py`` ``decide``) asks the policy for the decider's role,
then hands the decision to ``core.approvals.advance``; both are pure, so every sequence of
decisions anyone could send can be tried here. Properties:

* an identity gets a role only from a grant for exactly that identity string: case, spaces,
  another scheme or a prefix/suffix of a known identity give nothing;
* viewers and unknown identities may never decide, whatever the risk or namespace;
* a namespace-scoped grant covers only matching namespaces and never cluster-scoped objects;
* over any sequence of decisions (any people, roles, verdicts, confirms, times), an approval
  is granted at most once, only by enough distinct operators/admins (or an admin's confirm),
  never by its requester, never at or after its expiry, and a final approval never changes.

The coordinator's own refusals (unknown/forged ids, viewers, racing approvers) are proved
against real PostgreSQL in tests/integration/test_approvals_flow.py
(``test_unknown_expired_and_repeated_decisions_are_refused_and_audited``,
``test_unauthorised_users_viewers_and_double_counting_cannot_approve``,
``test_two_approvers_racing_execute_the_step_exactly_once``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from core.approvals import Approval, ApprovalState, Decide, Granted, Verdict, advance
from core.authz import Grant, Identity, Policy, Role, role_may_decide
from core.errors import ApprovalError
from core.models import ApprovalId, RunId
from core.tools import Action, Risk
from tests.abuse.tally import count

SETTINGS = settings(max_examples=200, deadline=None)
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
TTL = 900.0
PEOPLE = ("slack:U1", "slack:U2", "telegram:42", "cli:ops", "api:bot")
roles = st.sampled_from([None, *Role])
namespaces = st.sampled_from(["prod", "prod-eu", "shop", "kube-system", "", "PROD"])
ns_or_node = st.none() | namespaces


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    grants = draw(
        st.lists(
            st.builds(
                Grant,
                st.sampled_from(PEOPLE).map(Identity),
                st.sampled_from(list(Role)),
                st.lists(st.sampled_from(["prod*", "shop", "*", "kube-*"]), max_size=2).map(tuple),
            ),
            max_size=6,
        )
    )
    return Policy(tuple(grants))


def _variants(identity: str) -> list[str]:
    scheme, _, rest = identity.partition(":")
    return [
        identity.upper(),
        identity + " ",
        " " + identity,
        identity + "0",
        identity[:-1],
        f"{'slack' if scheme != 'slack' else 'telegram'}:{rest}",
        f"{scheme}:{rest}\x00",
        f"{scheme}:{rest}:{rest}",
    ]


@SETTINGS
@given(policies(), st.sampled_from(PEOPLE), ns_or_node)
def test_only_the_exact_identity_string_gets_a_role(policy: Policy, identity: str, namespace: str | None) -> None:
    count("authz: identity variants")
    for forged in _variants(identity):
        if forged in PEOPLE:
            continue
        assert policy.role_for(forged, namespace) is None, forged
        for risk in Risk:
            assert not policy.can_approve(forged, risk, namespace)[0], (forged, risk)
        assert not policy.can_request(forged, namespace)[0]


@SETTINGS
@given(policies(), st.sampled_from(PEOPLE), ns_or_node, st.sampled_from(list(Risk)))
def test_the_role_decides_and_viewers_never_approve_or_start_anything(
    policy: Policy, identity: str, namespace: str | None, risk: Risk
) -> None:
    count("authz: viewer escalation")
    role = policy.role_for(identity, namespace)
    allowed, _ = policy.can_approve(identity, risk, namespace)
    assert allowed == (role is not None and role.rank >= Role.OPERATOR.rank)
    requested, _ = policy.can_request(identity, namespace)
    assert requested == (role is not None and role.rank >= Role.OPERATOR.rank)
    applicable = [g for g in policy.grants if g.identity == identity and g.applies(namespace)]
    assert role == max((g.role for g in applicable), key=lambda r: r.rank, default=None)
    if namespace is None:  # cluster-scoped: only unscoped grants count
        assert all(not g.namespaces for g in applicable)


@st.composite
def decisions(draw: st.DrawFn) -> list[tuple[Decide, float]]:
    out = []
    for _ in range(draw(st.integers(1, 6))):
        event = Decide(
            who=draw(st.sampled_from(PEOPLE)),
            role=draw(roles),
            channel=draw(st.sampled_from(["slack", "telegram", "api"])),
            decision=draw(st.sampled_from(list(Verdict))),
            confirm=draw(st.booleans()),
        )
        out.append((event, draw(st.floats(0, TTL * 1.5))))
    return sorted(out, key=lambda pair: pair[1])


@SETTINGS
@given(st.sampled_from([Risk.MEDIUM, Risk.HIGH]), st.none() | st.sampled_from(PEOPLE), decisions())
def test_no_sequence_of_decisions_grants_twice_early_late_or_to_the_wrong_people(
    risk: Risk, requester: str | None, events: list[tuple[Decide, float]]
) -> None:
    count("approvals: decision sequences")
    action = Action(tool="delete_pod", params={"namespace": "shop", "name": "api-1"})
    approval = Approval.from_scratch(
        ApprovalId("k3x9q2"), RunId("run-1"), "restart", risk, action, NOW, ttl=TTL, requested_by=requester
    )
    grants = 0
    for event, offset in events:
        before = approval
        at = NOW + timedelta(seconds=offset)
        try:
            approval, effects = advance(approval, event, at)
        except ApprovalError:
            assert approval == before  # a refusal changes nothing
            continue
        assert not before.state.final, "a final approval changed"
        if not role_may_decide(event.role, risk)[0] and at < before.expires_at:
            raise AssertionError(f"{event.role} decided: {approval.state}")
        granted = [e for e in effects if isinstance(e, Granted)]
        grants += len(granted)
        if approval.state is ApprovalState.APPROVED:
            assert at < approval.expires_at
            approvers = approval.approvers
            assert requester not in approvers
            confirmed = event.role is Role.ADMIN and event.confirm
            assert len(set(approvers)) >= approval.required or confirmed
            assert all(r.role is not None and r.role.rank >= Role.OPERATOR.rank for r in approval.decisions)
    assert grants <= 1
    assert grants == (1 if approval.state is ApprovalState.APPROVED else 0)
