"""What the platform says in chat: incidents, approvals, step outcomes, expiries.

Renderers build a channel-neutral ``core.chat.Message``; ``slack_payload`` and
``telegram_payload`` turn it into the plain dicts the two APIs take (Block Kit blocks;
text plus an ``inline_keyboard``). The console channel prints ``Message.text``.

Three rules hold for every message:

* **No secrets.** Every piece of text (titles, summaries, RCA lines, action parameters)
  goes through ``core.rca.redact.redact`` with the platform's known secret values, because
  summaries and evidence quote logs and alert annotations.
* **No markup injection.** Telegram text is sent without a parse mode; Slack ``mrkdwn``
  has ``& < >`` escaped, so "<!channel>" in a pod message cannot ping a whole channel.
* **Threads.** Every renderer takes ``thread`` (the incident's root message) so follow-ups
  land under it: Slack ``thread_ts``, Telegram ``reply_to_message_id``.

Buttons carry the approval id: Slack ``action_id`` ``approve``/``reject`` with ``value`` the
id; Telegram ``callback_data`` ``approve:<id>``/``reject:<id>`` (``core.chat.parse_button``
reads both back).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from core.approvals import Approval, ApprovalState
from core.chat import Button, Message, MessageRef
from core.correlation_events import Notify
from core.effects import Announce
from core.incident_groups import NotifyKind
from core.models import ObjectRef, Severity
from core.rca.redact import redact
from core.rca.report import RcaReport
from core.tools import Action, Risk

MAX_TELEGRAM_TEXT = 4096
MAX_SLACK_SECTION = 3000
MAX_SLACK_HEADER = 150
MAX_EVIDENCE_LINES = 6

_SEVERITY_MARK = {Severity.CRITICAL: "🔴", Severity.WARNING: "🟠", Severity.INFO: "🔵"}
_RISK_NOTE = {
    Risk.MEDIUM: "needs 1 approval from an operator or admin",
    Risk.HIGH: "needs 2 distinct approvers, or one admin replying 'approve <id> confirm'",
}
_RISK_MARK = {Risk.HIGH: "🔴", Risk.MEDIUM: "🟠"}
_OUTCOMES = {
    "succeeded": ("✅", "succeeded"),
    "failed": ("❌", "failed"),
    "verified": ("✅", "verified: the workload recovered"),
    "verify_failed": ("⚠️", "verification failed"),
    "rolled_back": ("↩️", "rolled back"),
    "rollback_failed": ("❌", "rollback failed"),
    "skipped": ("⏭️", "skipped"),
    "blocked": ("⛔", "blocked by a guardrail"),
}


def _clean(text: str, known: Iterable[str] = (), limit: int = 1500) -> str:
    """Redacted, one paragraph at most ``limit`` characters."""
    value = redact(str(text), tuple(known)).strip()
    return value if len(value) <= limit else value[: limit - 1] + "…"


def incident_link(incident_id: str, base_url: str = "") -> str:
    return f"{base_url.rstrip('/')}/api/incidents/{incident_id}"


def _where(obj: ObjectRef | None, namespace: str | None) -> str:
    if obj is not None:
        return f"{obj.kind} {obj.namespace + '/' if obj.namespace else ''}{obj.name}"
    return f"namespace {namespace}" if namespace else ""


def _fields(pairs: Iterable[tuple[str, str | None]], known: Iterable[str]) -> tuple[tuple[str, str], ...]:
    secrets = tuple(known)
    return tuple((key, _clean(value, secrets, 500)) for key, value in pairs if value)


def _rca_body(rca: RcaReport | None, known: Iterable[str]) -> tuple[str, ...]:
    if rca is None:
        return ()
    secrets = tuple(known)
    lines = [f"Root cause: {_clean(rca.root_cause, secrets)} (confidence {round(rca.confidence * 100)}%)"]
    if rca.evidence:
        lines.append("Evidence:")
        lines.extend(f"• {_clean(line, secrets, 300)}" for line in rca.evidence[:MAX_EVIDENCE_LINES])
    if rca.recommended_playbook:
        lines.append(f"Suggested playbook: {rca.recommended_playbook}")
    if rca.mode == "fallback":
        lines.append("(LLM analysis unavailable; deterministic diagnosis shown.)")
    lines.extend(f"Note: {_clean(note, secrets, 300)}" for note in rca.risk_notes[:3])
    return tuple(lines)


# --- incidents --------------------------------------------------------------------------


def render_new_incident(
    notify: Notify,
    *,
    obj: ObjectRef | None = None,
    namespace: str | None = None,
    rca: RcaReport | None = None,
    base_url: str = "",
    thread: MessageRef | None = None,
    known: Iterable[str] = (),
) -> Message:
    secrets = tuple(known)
    verb = "Reopened" if notify.kind is NotifyKind.REOPENED else "New"
    mark = _SEVERITY_MARK[notify.severity]
    return Message(
        headline=_clean(f"{mark} {verb} {notify.severity.value} incident: {notify.title}", secrets, 300),
        fields=_fields(
            [
                ("Incident", notify.incident_id),
                ("Severity", notify.severity.value),
                ("Object", _where(obj, namespace)),
                ("Playbook", notify.playbook),
            ],
            secrets,
        ),
        body=tuple(x for x in (_clean(notify.summary, secrets),) if x) + _rca_body(rca, secrets),
        link=incident_link(notify.incident_id, base_url),
        thread=thread,
        context=f"/incident {notify.incident_id} · /ack {notify.incident_id}",
    )


def render_escalation(
    notify: Notify,
    *,
    from_severity: Severity | None = None,
    base_url: str = "",
    thread: MessageRef | None = None,
    known: Iterable[str] = (),
) -> Message:
    secrets = tuple(known)
    change = f"{from_severity.value} → {notify.severity.value}" if from_severity else notify.severity.value
    return Message(
        headline=_clean(f"{_SEVERITY_MARK[notify.severity]} Escalated ({change}): {notify.title}", secrets, 300),
        fields=_fields([("Incident", notify.incident_id)], secrets),
        body=tuple(x for x in (_clean(notify.summary, secrets),) if x),
        link=incident_link(notify.incident_id, base_url),
        thread=thread,
    )


def render_resolution(
    notify: Notify,
    *,
    reason: str = "",
    base_url: str = "",
    thread: MessageRef | None = None,
    known: Iterable[str] = (),
) -> Message:
    secrets = tuple(known)
    return Message(
        headline=_clean(f"✅ Resolved: {notify.title}", secrets, 300),
        fields=_fields([("Incident", notify.incident_id), ("Reason", reason)], secrets),
        body=tuple(x for x in (_clean(notify.summary, secrets),) if x),
        link=incident_link(notify.incident_id, base_url),
        thread=thread,
    )


def render_notify(
    notify: Notify,
    *,
    obj: ObjectRef | None = None,
    namespace: str | None = None,
    rca: RcaReport | None = None,
    base_url: str = "",
    thread: MessageRef | None = None,
    known: Iterable[str] = (),
) -> Message:
    """The message for one correlator ``Notify`` effect, whatever its kind."""
    if notify.kind is NotifyKind.ESCALATED:
        return render_escalation(notify, base_url=base_url, thread=thread, known=known)
    if notify.kind is NotifyKind.RESOLVED:
        return render_resolution(notify, base_url=base_url, thread=thread, known=known)
    return render_new_incident(
        notify, obj=obj, namespace=namespace, rca=rca, base_url=base_url, thread=thread, known=known
    )


# --- approvals and steps ------------------------------------------------------------------


def _expiry(expires_at: datetime, now: datetime | None) -> str:
    at = expires_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    if now is None:
        return at
    minutes = max(0, round((expires_at - now).total_seconds() / 60))
    return f"{at} (in {minutes} min)"


def approval_buttons(approval_id: str) -> tuple[Button, ...]:
    return (
        Button(label="Approve", action="approve", value=approval_id, style="primary"),
        Button(label="Reject", action="reject", value=approval_id, style="danger"),
    )


def render_approval_request(
    approval: Approval,
    *,
    now: datetime | None = None,
    incident_id: str | None = None,
    thread: MessageRef | None = None,
    known: Iterable[str] = (),
) -> Message:
    """The exact action, its risk and rollback, who may approve, when it expires, and two buttons."""
    secrets = tuple(known)
    return Message(
        headline=_clean(
            f"{_RISK_MARK.get(approval.risk, '🟠')} Approval needed ({approval.risk.value} risk): step {approval.step}",
            secrets,
            300,
        ),
        fields=_fields(
            [
                ("Action", approval.action.describe()),
                ("Risk", f"{approval.risk.value}: {_RISK_NOTE.get(approval.risk, 'needs approval')}"),
                ("Rollback", approval.rollback.describe() if approval.rollback else None),
                ("Run", approval.run_id),
                ("Incident", incident_id),
                ("Requested by", approval.requested_by),
                ("Expires", _expiry(approval.expires_at, now)),
                ("Approval id", approval.id),
            ],
            secrets,
        ),
        body=(f"Reply 'approve {approval.id}' or 'reject {approval.id} <reason>', or use the buttons.",),
        buttons=approval_buttons(approval.id),
        thread=thread,
    )


_CLOSED = {
    ApprovalState.APPROVED: "✅ Approved",
    ApprovalState.REJECTED: "❌ Rejected",
    ApprovalState.EXPIRED: "⌛ Expired",
    ApprovalState.CANCELLED: "🚫 Cancelled",
    ApprovalState.PENDING: "🟠 Waiting for more approvals",
}


def render_approval_closed(
    approval: Approval, *, thread: MessageRef | None = None, known: Iterable[str] = ()
) -> Message:
    """What the approval request is edited into once decided (no buttons left to click)."""
    secrets = tuple(known)
    deciders = ", ".join(f"{d.who} ({d.decision.value})" for d in approval.decisions)
    pending = approval.state is ApprovalState.PENDING
    note = next((d.note for d in reversed(approval.decisions) if d.note), "")
    return Message(
        headline=_clean(f"{_CLOSED[approval.state]}: step {approval.step} ({approval.risk.value} risk)", secrets, 300),
        fields=_fields(
            [
                ("Action", approval.action.describe()),
                ("Decided by", deciders),
                ("Note", note),
                ("Approval id", approval.id),
            ],
            secrets,
        ),
        buttons=approval_buttons(approval.id) if pending else (),
        thread=thread,
    )


def render_expiry(approval: Approval, *, thread: MessageRef | None = None, known: Iterable[str] = ()) -> Message:
    secrets = tuple(known)
    return Message(
        headline=_clean(f"⌛ Approval {approval.id} expired: step {approval.step} was not run", secrets, 300),
        fields=_fields(
            [("Action", approval.action.describe()), ("Expired at", _expiry(approval.expires_at, None))], secrets
        ),
        body=("Nobody decided in time. Start the playbook again if the step is still needed.",),
        thread=thread,
    )


def render_step_outcome(
    step: str,
    outcome: str,
    *,
    action: Action | None = None,
    run_id: str | None = None,
    detail: str = "",
    thread: MessageRef | None = None,
    known: Iterable[str] = (),
) -> Message:
    """``outcome`` is one of succeeded, failed, verified, verify_failed, rolled_back, rollback_failed,
    skipped, blocked (anything else is shown as written)."""
    secrets = tuple(known)
    mark, words = _OUTCOMES.get(outcome, ("•", outcome))
    return Message(
        headline=_clean(f"{mark} Step {step} {words}", secrets, 300),
        fields=_fields([("Action", action.describe() if action else None), ("Run", run_id)], secrets),
        body=tuple(x for x in (_clean(detail, secrets),) if x),
        thread=thread,
    )


def render_announce(announce: Announce, *, thread: MessageRef | None = None, known: Iterable[str] = ()) -> Message:
    """A state machine's ``Announce`` effect, as a thread reply."""
    return Message(headline=_clean(announce.text, known), thread=thread)


def render_reply(text: str, *, thread: MessageRef | None = None, known: Iterable[str] = ()) -> Message:
    """The answer to a command (lists, errors, refusals)."""
    return Message(headline=_clean(text, known, MAX_TELEGRAM_TEXT - 100), thread=thread)


# --- channel payloads ---------------------------------------------------------------------


def mrkdwn_escape(text: str) -> str:
    """Slack's three control characters; with them escaped, no mention or link can be forged."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def slack_blocks(message: Message) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": _cut(f"*{mrkdwn_escape(message.headline)}*", 3000)}}
    ]
    if message.fields:
        blocks.append(
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": _cut(f"*{mrkdwn_escape(key)}*\n{mrkdwn_escape(value)}", 2000)}
                    for key, value in message.fields[:10]
                ],
            }
        )
    if message.body:
        body = mrkdwn_escape("\n".join(message.body))
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _cut(body, MAX_SLACK_SECTION)}})
    if message.buttons:
        elements: list[dict[str, Any]] = []
        for button in message.buttons:
            element: dict[str, Any] = {
                "type": "button",
                "text": {"type": "plain_text", "text": _cut(button.label, 75)},
                "action_id": button.action,
                "value": button.value,
            }
            if button.style:
                element["style"] = button.style
            elements.append(element)
        blocks.append({"type": "actions", "block_id": f"decide:{message.buttons[0].value}", "elements": elements})
    context = [c for c in (message.link or "", message.context) if c]
    if context:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": mrkdwn_escape(c)} for c in context]})
    return blocks


def slack_payload(message: Message) -> dict[str, Any]:
    """Keyword arguments for ``chat.postMessage``/``chat.update`` (minus channel and ts)."""
    payload: dict[str, Any] = {
        "text": _cut(mrkdwn_escape(message.text), 3900),
        "blocks": slack_blocks(message),
    }
    if message.thread is not None and message.thread.channel == "slack":
        payload["thread_ts"] = message.thread.id
    return payload


def telegram_keyboard(message: Message) -> dict[str, Any] | None:
    if not message.buttons:
        return None
    row = [{"text": b.label, "callback_data": f"{b.action}:{b.value}"[:64]} for b in message.buttons]
    return {"inline_keyboard": [row]}


def telegram_payload(message: Message) -> dict[str, Any]:
    """``text`` (plain, no parse mode), optional ``reply_markup`` and ``reply_to_message_id``."""
    payload: dict[str, Any] = {"text": _cut(message.text, MAX_TELEGRAM_TEXT)}
    keyboard = telegram_keyboard(message)
    if keyboard is not None:
        payload["reply_markup"] = keyboard
    if message.thread is not None and message.thread.channel == "telegram" and message.thread.id.isdigit():
        payload["reply_to_message_id"] = int(message.thread.id)
    return payload
