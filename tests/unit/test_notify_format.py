"""Rendering chat messages: what they say, the buttons they carry, and the secrets they never show."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.approvals import Approval, Decide, Verdict, advance
from core.authz import Role
from core.chat import Message, MessageRef, parse_button, parse_callback
from core.correlation_events import Notify
from core.effects import Announce
from core.incident_groups import NotifyKind
from core.models import ApprovalId, IncidentId, ObjectRef, RunId, Severity
from core.notify_format import (
    render_announce,
    render_approval_closed,
    render_approval_request,
    render_expiry,
    render_notify,
    render_reply,
    render_step_outcome,
    slack_blocks,
    slack_payload,
    telegram_keyboard,
    telegram_payload,
)
from core.rca.categories import Category
from core.rca.report import RcaReport
from core.tools import Action, Risk

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
INC = IncidentId("inc-3f9a0c12de")
POD = ObjectRef(kind="Pod", namespace="shop", name="api-7d9")
SLACK_THREAD = MessageRef("slack", "C0OPS", "1800000000.000100")
TG_THREAD = MessageRef("telegram", "-100", "77")
PLANTED = (
    "password=hunter2-very-secret",
    "Authorization: Bearer sk-live-abcdefghijklmnop",
    "postgres://app:s3cr3tPassw0rd@db:5432/shop",
    "xoxb-123456789012-abcdefghijkl",
)
SECRET_VALUES = ("hunter2-very-secret", "sk-live-abcdefghijklmnop", "s3cr3tPassw0rd", "xoxb-123456789012-abcdefghijkl")


def notify(kind: NotifyKind = NotifyKind.NEW, summary: str = "3 pods crash-looping", title: str = "") -> Notify:
    return Notify(
        kind=kind,
        incident_id=INC,
        group_key="shop/api",
        severity=Severity.CRITICAL,
        title=title or "CrashLoopBackOff in shop/api",
        summary=summary,
        playbook="crashloop",
    )


def rca(evidence: tuple[str, ...] = ("OOMKilled exit 137", "limits memory 128Mi")) -> RcaReport:
    return RcaReport(
        summary="CrashLoopBackOff on api-7d9 (shop)",
        root_cause="the container exceeds its 128Mi memory limit",
        category=Category.MEMORY_LIMIT,
        evidence=evidence,
        confidence=0.87,
        recommended_playbook="oom",
    )


def approval(risk: Risk = Risk.MEDIUM, params: dict[str, Any] | None = None) -> Approval:
    action = Action(tool="delete_pod", params=params or {"namespace": "shop", "name": "api-7d9"})
    rollback = Action(tool="rollout_undo", params={"namespace": "shop", "name": "api"})
    return Approval.from_scratch(
        ApprovalId("k3x9q2"), RunId("run-1"), "restart-pod", risk, action, NOW, ttl=900, rollback=rollback
    )


def all_text(message: Message) -> str:
    """Everything a user could see on any channel."""
    return "\n".join([message.text, json.dumps(slack_payload(message)), json.dumps(telegram_payload(message))])


def test_new_incident_shows_severity_object_summary_root_cause_evidence_and_link() -> None:
    message = render_notify(notify(), obj=POD, rca=rca(), base_url="https://aiops.example.com/")
    text = message.text
    assert "New critical incident: CrashLoopBackOff in shop/api" in text
    assert "Object: Pod shop/api-7d9" in text
    assert "3 pods crash-looping" in text
    assert "Root cause: the container exceeds its 128Mi memory limit (confidence 87%)" in text
    assert "• OOMKilled exit 137" in text and "• limits memory 128Mi" in text
    assert "https://aiops.example.com/api/incidents/inc-3f9a0c12de" in text


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        pytest.param(NotifyKind.NEW, "New critical incident", id="new"),
        pytest.param(NotifyKind.REOPENED, "Reopened critical incident", id="reopened"),
        pytest.param(NotifyKind.ESCALATED, "Escalated (critical)", id="escalated"),
        pytest.param(NotifyKind.RESOLVED, "Resolved: CrashLoopBackOff", id="resolved"),
    ],
)
def test_every_notify_kind_has_its_headline_and_link(kind: NotifyKind, expected: str) -> None:
    message = render_notify(notify(kind))
    assert expected in message.headline
    assert message.link == "/api/incidents/inc-3f9a0c12de"


def test_approval_request_names_the_exact_action_risk_rollback_and_expiry() -> None:
    message = render_approval_request(approval(), now=NOW, incident_id=INC)
    text = message.text
    assert "Action: delete_pod(name=api-7d9, namespace=shop)" in text
    assert "Risk: medium: needs 1 approval" in text
    assert "Rollback: rollout_undo(name=api, namespace=shop)" in text
    assert "Expires: 2026-12-01 12:15 UTC (in 15 min)" in text
    assert "Approval id: k3x9q2" in text
    assert "approve k3x9q2" in text


def test_high_risk_request_explains_two_approvers_or_admin_confirm() -> None:
    assert "2 distinct approvers" in render_approval_request(approval(Risk.HIGH)).text


def test_slack_buttons_carry_the_approval_id_and_read_back_as_decisions() -> None:
    blocks = slack_blocks(render_approval_request(approval()))
    actions = [b for b in blocks if b["type"] == "actions"]
    assert len(actions) == 1
    buttons = actions[0]["elements"]
    assert [(b["action_id"], b["value"], b.get("style")) for b in buttons] == [
        ("approve", "k3x9q2", "primary"),
        ("reject", "k3x9q2", "danger"),
    ]
    decisions = [parse_button(b["action_id"], b["value"]) for b in buttons]
    assert [d.verdict for d in decisions] == [Verdict.APPROVE, Verdict.REJECT]  # type: ignore[union-attr]


def test_telegram_keyboard_carries_callback_data_with_the_approval_id() -> None:
    keyboard = telegram_keyboard(render_approval_request(approval()))
    approve = {"text": "Approve", "callback_data": "approve:k3x9q2"}
    reject = {"text": "Reject", "callback_data": "reject:k3x9q2"}
    assert keyboard == {"inline_keyboard": [[approve, reject]]}
    for button in keyboard["inline_keyboard"][0]:
        assert parse_callback(button["callback_data"]).approval_id == "k3x9q2"  # type: ignore[union-attr]


def test_messages_without_buttons_have_no_keyboard_and_no_actions_block() -> None:
    message = render_reply("3 open incidents")
    assert telegram_keyboard(message) is None
    assert "reply_markup" not in telegram_payload(message)
    assert all(b["type"] != "actions" for b in slack_blocks(message))


def test_threads_become_thread_ts_on_slack_and_reply_to_on_telegram() -> None:
    assert slack_payload(render_notify(notify(), thread=SLACK_THREAD))["thread_ts"] == "1800000000.000100"
    assert telegram_payload(render_notify(notify(), thread=TG_THREAD))["reply_to_message_id"] == 77
    assert "thread_ts" not in slack_payload(render_notify(notify(), thread=TG_THREAD))
    assert "reply_to_message_id" not in telegram_payload(render_notify(notify()))


@pytest.mark.parametrize("secret", [pytest.param(p, id=f"planted-{i}") for i, p in enumerate(PLANTED)])
def test_secrets_planted_in_summaries_and_evidence_never_appear(secret: str) -> None:
    message = render_notify(
        notify(summary=f"pods fail: {secret}", title=f"Crash {secret}"),
        obj=POD,
        rca=rca(evidence=(f"log: {secret}",)),
    )
    text = all_text(message)
    assert not any(value in text for value in SECRET_VALUES)


def test_secrets_in_action_parameters_and_known_values_are_masked() -> None:
    leaky = approval(params={"namespace": "shop", "name": "api", "env": "DB_PASSWORD=hunter2-very-secret"})
    text = all_text(render_approval_request(leaky, known=("api-7d9-internal-token-value",)))
    assert "hunter2-very-secret" not in text
    outcome = render_step_outcome(
        "restart",
        "failed",
        detail="token api-7d9-internal-token-value rejected",
        known=("api-7d9-internal-token-value",),
    )
    assert "api-7d9-internal-token-value" not in all_text(outcome)


def test_slack_markup_in_cluster_text_cannot_ping_a_channel() -> None:
    payload = json.dumps(slack_payload(render_notify(notify(summary="<!channel> <https://evil|click> & more"))))
    assert "<!channel>" not in payload
    assert "&lt;!channel&gt;" in payload


def test_a_decided_approval_is_edited_into_a_message_without_buttons() -> None:
    decided, _ = advance(
        approval(), Decide(who="slack:U1", role=Role.OPERATOR, channel="slack", decision=Verdict.APPROVE), NOW
    )
    message = render_approval_closed(decided)
    assert message.headline.startswith("✅ Approved")
    assert "slack:U1 (approve)" in message.text
    assert message.buttons == ()


def test_expiry_and_step_outcomes_and_announcements_read_plainly() -> None:
    expired = render_expiry(approval(), thread=SLACK_THREAD)
    assert "Approval k3x9q2 expired" in expired.headline and expired.thread == SLACK_THREAD
    verified = render_step_outcome("restart-pod", "verified", action=approval().action, run_id="run-1")
    assert verified.headline == "✅ Step restart-pod verified: the workload recovered"
    assert "Action: delete_pod(name=api-7d9, namespace=shop)" in verified.text
    assert render_announce(Announce(subject="run-1", text="run paused")).headline == "run paused"


def test_long_texts_fit_the_channel_limits() -> None:
    message = render_notify(notify(summary="x " * 5000), rca=rca(evidence=tuple("e" * 400 for _ in range(20))))
    assert len(telegram_payload(message)["text"]) <= 4096
    for block in slack_blocks(message):
        if "text" in block:
            assert len(block["text"]["text"]) <= 3000


def test_expiry_time_counts_down_from_now() -> None:
    text = render_approval_request(approval(), now=NOW + timedelta(minutes=10)).text
    assert "(in 5 min)" in text
