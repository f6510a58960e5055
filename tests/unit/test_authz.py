from __future__ import annotations

from pathlib import Path

import pytest

from config.policy import check_policy_file, load_policy, policy_from_text
from core.authz import Role, parse_identity
from core.errors import ConfigError, InputError
from core.tools import Risk

POLICY = policy_from_text(
    """
policy:
  roles:
    - {identity: "telegram:100", role: viewer}
    - {identity: "slack:UOPS", role: operator}
    - {identity: "slack:UADM", role: admin}
    - {identity: "telegram:200", role: operator, namespaces: ["shop", "staging-*"]}
    - {identity: "cli:alice", role: viewer}
    - {identity: "cli:alice", role: admin, namespaces: ["lab"]}
""",
    "policy.yaml",
).authz


@pytest.mark.parametrize(
    ("identity", "risk", "namespace", "allowed", "reason"),
    [
        pytest.param("telegram:100", Risk.MEDIUM, "shop", False, "viewers may not", id="a-viewer-never"),
        pytest.param("telegram:100", Risk.LOW, "shop", False, "viewers may not", id="a-viewer-not-even-low"),
        pytest.param("slack:UOPS", Risk.MEDIUM, "shop", True, "operator may approve medium", id="operator-medium"),
        pytest.param("slack:UOPS", Risk.HIGH, "shop", True, "one of the two", id="operator-counts-one-of-two-on-high"),
        pytest.param("slack:UADM", Risk.HIGH, None, True, "alone with an explicit confirm", id="admin-high-node"),
        pytest.param("slack:NOBODY", Risk.MEDIUM, "shop", False, "not in the policy", id="an-unauthorised-user"),
        pytest.param("telegram:200", Risk.MEDIUM, "staging-eu", True, "operator", id="scoped-grant-matching-glob"),
        pytest.param("telegram:200", Risk.MEDIUM, "prod", False, "no role for namespace 'prod'", id="scoped-elsewhere"),
        pytest.param("telegram:200", Risk.MEDIUM, None, False, "no role for cluster-scoped", id="scoped-on-a-node"),
        pytest.param("cli:alice", Risk.HIGH, "lab", True, "admin", id="highest-applicable-grant-wins"),
        pytest.param("cli:alice", Risk.MEDIUM, "shop", False, "viewers may not", id="unscoped-viewer-elsewhere"),
    ],
)
def test_can_approve_follows_role_risk_and_namespace(
    identity: str, risk: Risk, namespace: str | None, allowed: bool, reason: str
) -> None:
    ok, why = POLICY.can_approve(identity, risk, namespace)
    assert ok is allowed and reason in why and why.startswith(identity)


@pytest.mark.parametrize(
    ("identity", "namespace", "role"),
    [
        pytest.param("slack:UOPS", "anything", Role.OPERATOR, id="unscoped"),
        pytest.param("cli:alice", "lab", Role.ADMIN, id="scoped-admin-beats-viewer"),
        pytest.param("slack:NOBODY", "shop", None, id="unknown-has-no-role"),
    ],
)
def test_role_for_picks_the_highest_applicable_grant(identity: str, namespace: str, role: Role | None) -> None:
    assert POLICY.role_for(identity, namespace) == role


def test_only_operators_may_start_remediation() -> None:
    assert POLICY.can_request("slack:UOPS", "shop")[0]
    assert not POLICY.can_request("telegram:100", "shop")[0]


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("U123", id="no-scheme"),
        pytest.param("teams:U1", id="unknown-scheme"),
        pytest.param("slack:", id="empty-id"),
        pytest.param("slack:U 1", id="space-in-id"),
    ],
)
def test_malformed_identities_are_input_errors(text: str) -> None:
    with pytest.raises(InputError, match="identity"):
        parse_identity(text)


def test_the_shipped_policy_loads() -> None:
    loaded = load_policy()
    assert loaded.approval_ttl == 900.0 and loaded.authz.role_for("cli:demo", "any") is Role.ADMIN


@pytest.mark.parametrize(
    ("text", "path", "quoted"),
    [
        pytest.param(
            "policy: {roles: [{identity: 'teams:1', role: admin}]}",
            "policy.roles[0].identity",
            "unknown scheme",
            id="unknown-identity-scheme",
        ),
        pytest.param(
            "policy: {roles: [{identity: 'cli:a', role: root}]}", "policy.roles[0].role", "'root'", id="unknown-role"
        ),
        pytest.param(
            "policy: {roles: [{identity: 'cli:a', role: admin, scope: x}]}",
            "policy.roles[0].scope",
            "'x'",
            id="unknown-key",
        ),
        pytest.param(
            "policy: {roles: [{identity: 'cli:a', role: admin}, {identity: 'cli:a', role: viewer}]}",
            "policy.roles[1]",
            "already granted",
            id="duplicate-grant",
        ),
        pytest.param("policy: {approvals: {ttl: forever}}", "policy.approvals.ttl", "'forever'", id="bad-ttl"),
        pytest.param(
            "policy: {guardrails: {budgets: [{name: r, tools: [get_pod], max: 1, per: 1h}]}}",
            "policy.guardrails.budgets[0].tools",
            "not mutating",
            id="budget-on-a-read-tool",
        ),
        pytest.param(
            "policy: {guardrails: {freeze: [{weekly: 'friday 18:00 - mon 08:00'}]}}",
            "policy.guardrails.freeze[0]",
            "must look like",
            id="bad-weekly-window",
        ),
        pytest.param(
            "policy: {guardrails: {freeze: [{start: 2026-12-24T00:00:00Z}]}}",
            "policy.guardrails.freeze[0]",
            "both start and end",
            id="half-a-window",
        ),
        pytest.param(
            "policy: {guardrails: {freeze: [{start: 2026-12-24T00:00:00, end: 2026-12-25T00:00:00}]}}",
            "policy.guardrails.freeze[0]",
            "timezone",
            id="naive-timestamps",
        ),
    ],
)
def test_policy_problems_name_the_dotted_path_and_the_bad_value(
    tmp_path: Path, text: str, path: str, quoted: str
) -> None:
    file = tmp_path / "policy.yaml"
    file.write_text(text)
    rendered = [str(p) for p in check_policy_file(file)]
    assert any(p.startswith(f"{file}: {path}") and quoted in p for p in rendered), rendered
    with pytest.raises(ConfigError):
        load_policy(file)
