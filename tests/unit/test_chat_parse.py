"""Chat command parsing: exact tokens, strict grammars, questions and garbage, roles, routing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.approvals import Verdict
from core.authz import Role
from core.chat import (
    HELP_TEXT,
    Ack,
    ChatEvent,
    Command,
    Decision,
    Help,
    Ignored,
    Invalid,
    ListApprovals,
    ListIncidents,
    Pause,
    Question,
    Resume,
    ShowIncident,
    SilenceRequest,
    Status,
    Unknown,
    authorize,
    command_name,
    parse,
    parse_button,
    parse_callback,
    required_role,
)
from core.chat_routing import Route, Routing, Target
from core.models import ApprovalId, IncidentId, Severity

A = ApprovalId("k3x9q2")
INC = IncidentId("inc-3f9a0c12de")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("/status", Status(), id="status"),
        pytest.param("  /STATUS  ", Status(), id="status-case-and-whitespace"),
        pytest.param("/status@aiops_bot", Status(), id="status-telegram-bot-suffix"),
        pytest.param("status", Status(), id="status-bare-word"),
        pytest.param("/incidents", ListIncidents(), id="incidents"),
        pytest.param("/incident inc-3f9a0c12de", ShowIncident(INC), id="incident-with-id"),
        pytest.param("/incident   INC-3F9A0C12DE", ShowIncident(INC), id="incident-id-case-folded"),
        pytest.param("/approvals", ListApprovals(), id="approvals"),
        pytest.param("/ack inc-3f9a0c12de", Ack(INC), id="ack"),
        pytest.param("/pause", Pause(), id="pause"),
        pytest.param("/resume", Resume(), id="resume"),
        pytest.param("/help", Help(), id="help"),
        pytest.param("/start", Help(), id="telegram-start-is-help"),
        pytest.param("/help silence", Help("silence"), id="help-topic"),
        pytest.param("approve k3x9q2", Decision(Verdict.APPROVE, A), id="approve-plain"),
        pytest.param("APPROVE K3X9Q2", Decision(Verdict.APPROVE, A), id="approve-upper-case"),
        pytest.param("/approve k3x9q2", Decision(Verdict.APPROVE, A), id="approve-slash"),
        pytest.param("/approve@aiops_bot k3x9q2", Decision(Verdict.APPROVE, A), id="approve-bot-suffix"),
        pytest.param("approve k3x9q2 confirm", Decision(Verdict.APPROVE, A, confirm=True), id="approve-confirm"),
        pytest.param("\tapprove\n k3x9q2 ", Decision(Verdict.APPROVE, A), id="approve-odd-whitespace"),
        pytest.param("reject k3x9q2", Decision(Verdict.REJECT, A), id="reject-plain"),
        pytest.param("reject k3x9q2  not now", Decision(Verdict.REJECT, A, note="not now"), id="reject-note"),
        pytest.param("report the status of api", Question("report the status of api"), id="report-is-a-question"),
        pytest.param("why is checkout crashing?", Question("why is checkout crashing?"), id="question"),
        pytest.param("status of the api?", Question("status of the api?"), id="bare-word-with-args-is-a-question"),
        pytest.param("help me understand the outage", Question("help me understand the outage"), id="help-me-question"),
        pytest.param("why?", Question("why?"), id="one-word-question"),
        pytest.param("please approve k3x9q2", Question("please approve k3x9q2"), id="approve-not-first-is-no-decision"),
        pytest.param("/status@other_bot", Ignored("addressed to @other_bot"), id="other-bots-command-ignored"),
    ],
)
def test_messages_parse_to_exact_commands(text: str, expected: Command) -> None:
    assert parse(text, bot_username="aiops_bot") == expected


@pytest.mark.parametrize(
    ("text", "command"),
    [
        pytest.param("approve", "approve", id="approve-without-id"),
        pytest.param("reject", "reject", id="reject-without-id"),
        pytest.param("/approve", "approve", id="slash-approve-without-id"),
        pytest.param("approve the rollback please", "approve", id="approve-prose"),
        pytest.param("approve k3x9q2 now", "approve", id="approve-extra-word"),
        pytest.param("approve k3x9-q2", "approve", id="approval-id-with-punctuation"),
        pytest.param("approve " + "a" * 17, "approve", id="approval-id-too-long"),
        pytest.param("/incident", "incident", id="incident-without-id"),
        pytest.param("/incident 42", "incident", id="incident-id-malformed"),
        pytest.param("/ack inc-1 inc-2", "ack", id="ack-two-ids"),
        pytest.param("/status now", "status", id="status-with-args"),
        pytest.param("/silence", "silence", id="silence-empty"),
        pytest.param('/silence namespace="prod"', "silence", id="silence-without-duration"),
        pytest.param('/silence namespace="prod" 90d', "silence", id="silence-too-long"),
        pytest.param("/silence 2h", "silence", id="silence-without-matchers"),
        pytest.param("/help frobnicate", "help", id="help-unknown-topic"),
    ],
)
def test_known_commands_used_wrongly_give_usage_errors(text: str, command: str) -> None:
    result = parse(text)
    assert isinstance(result, Invalid)
    assert result.command == command
    assert result.message


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("   \n\t ", id="whitespace"),
        pytest.param("approveX", id="approveX-is-not-an-approval"),
        pytest.param("approvek3x9q2", id="glued-id-is-not-an-approval"),
        pytest.param("hello", id="one-word"),
        pytest.param("🔥🔥🔥", id="emoji"),
        pytest.param("12345 !!!", id="no-words"),
        pytest.param("/frobnicate", id="unknown-slash-command"),
        pytest.param("/statusreport", id="slash-prefix-of-a-command"),
    ],
)
def test_garbage_is_unknown_with_the_help_text(text: str) -> None:
    result = parse(text)
    assert isinstance(result, Unknown)
    assert result.help == HELP_TEXT


def test_a_huge_message_is_refused_unread() -> None:
    result = parse("approve k3x9q2 " + "x" * 5000)
    assert isinstance(result, Invalid)
    assert "limit 4096" in result.message


def test_silence_keeps_its_spec_and_builds_the_silence_from_now_and_who() -> None:
    result = parse('/silence namespace="prod",reason="OOMKilled" 2h deploy in progress')
    assert isinstance(result, SilenceRequest)
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    silence = result.to_silence(now, "telegram:42")
    assert silence.ends_at == now + timedelta(hours=2)
    assert silence.created_by == "telegram:42"
    assert silence.comment == "deploy in progress"


@pytest.mark.parametrize(
    ("action", "value", "expected"),
    [
        pytest.param("approve", "k3x9q2", Decision(Verdict.APPROVE, A), id="slack-approve"),
        pytest.param("reject", "K3X9Q2", Decision(Verdict.REJECT, A), id="slack-reject-case"),
    ],
)
def test_buttons_parse_to_decisions(action: str, value: str, expected: Command) -> None:
    assert parse_button(action, value) == expected
    assert parse_callback(f"{action}:{value}") == expected


@pytest.mark.parametrize(
    "data",
    [
        pytest.param("approve", id="no-separator"),
        pytest.param("delete:k3x9q2", id="unknown-action"),
        pytest.param("approve:../../etc", id="bad-id"),
    ],
)
def test_unknown_or_malformed_buttons_never_decide(data: str) -> None:
    assert not isinstance(parse_callback(data), Decision)


@pytest.mark.parametrize(
    ("text", "role"),
    [
        pytest.param("/status", Role.VIEWER, id="status-viewer"),
        pytest.param("/incidents", Role.VIEWER, id="incidents-viewer"),
        pytest.param("/incident inc-3f9a0c12de", Role.VIEWER, id="incident-viewer"),
        pytest.param("/approvals", Role.VIEWER, id="approvals-viewer"),
        pytest.param("why is it down?", Role.VIEWER, id="question-viewer"),
        pytest.param("/help", Role.VIEWER, id="help-viewer"),
        pytest.param("/ack inc-3f9a0c12de", Role.OPERATOR, id="ack-operator"),
        pytest.param("approve k3x9q2", Role.OPERATOR, id="approve-operator"),
        pytest.param("reject k3x9q2", Role.OPERATOR, id="reject-operator"),
        pytest.param('/silence namespace="prod" 1h', Role.OPERATOR, id="silence-operator"),
        pytest.param("/pause", Role.ADMIN, id="pause-admin"),
        pytest.param("/resume", Role.ADMIN, id="resume-admin"),
    ],
)
def test_each_command_requires_its_role(text: str, role: Role) -> None:
    assert required_role(parse(text)) is role


def test_authorize_refuses_lower_roles_and_unknown_identities_with_a_reason() -> None:
    assert authorize(Pause(), Role.OPERATOR) == (False, "this command needs the admin role; you are operator")
    allowed, reason = authorize(Status(), None)
    assert not allowed and "not in the policy" in reason
    assert authorize(Decision(Verdict.APPROVE, A), Role.OPERATOR)[0]
    assert authorize(Ignored("x"), None)[0]


def test_command_names_are_stable_for_metrics() -> None:
    assert command_name(Decision(Verdict.REJECT, A)) == "reject"
    assert command_name(Status()) == "status"
    assert command_name(parse("approve")) == "invalid"


def test_event_identity_uses_the_policy_scheme() -> None:
    assert ChatEvent(channel="telegram", chat="-1", user_id="42", command=Status()).identity == "telegram:42"
    assert ChatEvent(channel="slack", chat="C1", user_id="U7", command=Status()).identity == "slack:U7"
    assert ChatEvent(channel="console", chat="c", user_id="demo", command=Status()).identity == "cli:demo"


# --- routing ------------------------------------------------------------------------------------

TG = Target("telegram", "-100")
SL = Target("slack", "C0PROD")
CON = Target("console")
ROUTING = Routing(
    routes=(
        Route("payments", (SL,), namespaces=("payments",)),
        Route("prod", (TG,), namespaces=("prod-*",), min_severity=Severity.WARNING, cont=True),
        Route("prod-slack", (SL,), namespaces=("prod-*",)),
        Route("cluster", (TG,), namespaces=("*",), min_severity=Severity.CRITICAL),
    ),
    default=(CON,),
)


@pytest.mark.parametrize(
    ("namespace", "severity", "named", "expected"),
    [
        pytest.param("prod-eu", Severity.CRITICAL, (), (TG, SL), id="continue-adds-later-routes"),
        pytest.param("prod-eu", Severity.INFO, (), (SL,), id="below-min-severity-skips-route"),
        pytest.param("payments", Severity.INFO, (), (SL,), id="first-match-wins"),
        pytest.param(None, Severity.CRITICAL, (), (TG,), id="cluster-scoped-only-star-routes"),
        pytest.param("dev", Severity.WARNING, (), (CON,), id="nothing-matches-default"),
        pytest.param("dev", Severity.INFO, ("payments",), (SL,), id="named-route-wins"),
        pytest.param("dev", Severity.INFO, ("nope",), (CON,), id="unknown-name-falls-back"),
    ],
)
def test_routing_picks_targets_by_name_namespace_and_severity(
    namespace: str | None, severity: Severity, named: tuple[str, ...], expected: tuple[Target, ...]
) -> None:
    assert ROUTING.targets_for(namespace, severity, named) == expected


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("telegram:abc", id="telegram-non-numeric"),
        pytest.param("slack:", id="slack-empty"),
        pytest.param("email:ops@example.com", id="unknown-kind"),
    ],
)
def test_malformed_targets_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="target|telegram"):
        Target.parse(text)
