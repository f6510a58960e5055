"""Chat through the real Serve app: Slack and Telegram webhooks, buttons, typed approvals, threads.

An Alertmanager alert about a crash-looping pod opens an incident with the crashloop
playbook; ``aiops-notifier`` posts it to the loopback Slack and Telegram servers with
Approve/Reject buttons; clicks and messages are POSTed to ``/api/webhook/...`` signed
exactly as Slack and Telegram sign them; ``aiops-chat`` refuses the viewer, lets the
operator's decision through to ``aiops-approvals``, which deletes the pod in the sandbox;
the request message is edited in place and the resolution lands in the incident's thread.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import SLACK_CHANNEL, SLACK_SECRET, TELEGRAM_CHAT, TELEGRAM_SECRET, Platform
from tests.helpers import wait_until
from tests.payloads import am_alert, am_payload
from tests.servers.slack_server import block_actions, message_event, signed_headers, url_verification
from tests.servers.telegram_server import (
    callback_update,
    document_update,
    edited_update,
    sticker_update,
    text_update,
    webhook_headers,
)

pytestmark = pytest.mark.e2e
OPERATOR, VIEWER = 111, 222


def frontend_pod(platform: Platform, index: int) -> str:
    pods = sorted(
        p["metadata"]["name"]
        for p in platform.sandbox.objects("Pod", "production")
        if p["metadata"]["name"].startswith("frontend-")
    )
    return str(pods[index])


def pod_exists(platform: Platform, pod: str) -> bool:
    return any(p["metadata"]["name"] == pod for p in platform.sandbox.objects("Pod", "production"))


def alert(platform: Platform, pod: str, tag: str, status: str = "firing") -> None:
    body = am_alert(
        "KubePodCrashLooping",
        f"chat-{tag}-{pod}",
        status=status,
        namespace="production",
        pod=pod,
        deployment="frontend",
        container="nginx",
        test=tag,
    )
    answer = httpx.post(
        platform.base_url + "/api/alert/webhook",
        json=am_payload(body, status=status),
        headers=platform.am_headers(),
        timeout=60,
    )
    assert answer.status_code == 200, answer.text


def pending_approval(platform: Platform, pod: str) -> dict[str, Any]:
    def found() -> list[dict[str, Any]]:
        answer = httpx.get(platform.base_url + "/api/approvals", headers=platform.ops_headers(), timeout=30)
        assert answer.status_code == 200, answer.text
        return [a for a in answer.json()["approvals"] if a["action"]["params"].get("name") == pod]

    (approval,) = wait_until(found, timeout=120, interval=0.5, message=f"an approval to restart {pod}")
    return approval


def decided_count(platform: Platform) -> int:
    answer = httpx.get(platform.base_url + "/api/approvals?state=all", headers=platform.ops_headers(), timeout=30)
    return sum(1 for a in answer.json()["approvals"] if a["state"] != "pending")


def slack_post(
    platform: Platform, path: str, body: bytes, *, timestamp: int | None = None, override: dict[str, str] | None = None
) -> httpx.Response:
    content_type = "application/x-www-form-urlencoded" if path.endswith("interactions") else "application/json"
    headers = signed_headers(SLACK_SECRET, body, int(time.time()) if timestamp is None else timestamp, content_type)
    headers.update(override or {})
    return httpx.post(f"{platform.base_url}/api/webhook/slack/{path}", content=body, headers=headers, timeout=30)


def telegram_post(platform: Platform, body: bytes, secret: str | None = TELEGRAM_SECRET) -> httpx.Response:
    return httpx.post(
        f"{platform.base_url}/api/webhook/telegram", content=body, headers=webhook_headers(secret), timeout=30
    )


def slack_request_for(platform: Platform, approval: str) -> tuple[str, dict[str, Any]] | None:
    for (_, ts), message in list(platform.slack.messages.items()):
        if f"Approval id: {approval}" in str(message.get("text")):
            return ts, message
    return None


def telegram_request_for(platform: Platform, approval: str) -> tuple[int, dict[str, Any]] | None:
    for (_, message_id), message in list(platform.telegram.messages.items()):
        if f"Approval id: {approval}" in str(message.get("text")):
            return message_id, message
    return None


def test_slack_buttons_refuse_a_viewer_execute_for_an_operator_edit_the_request_and_resolve_in_the_thread(
    platform: Platform,
) -> None:
    tag = f"slack-{uuid.uuid4().hex[:6]}"
    pod = frontend_pod(platform, 0)
    alert(platform, pod, tag)
    approval = pending_approval(platform, pod)["id"]

    found = wait_until(
        lambda: slack_request_for(platform, approval), timeout=60, interval=0.2, message="the Slack approval request"
    )
    assert found is not None
    ts, request = found
    actions = [b for b in request["blocks"] if b["type"] == "actions"]
    assert [e["action_id"] for e in actions[0]["elements"]] == ["approve", "reject"]
    root_ts = request["thread_ts"]
    assert pod in platform.slack.messages[(SLACK_CHANNEL, root_ts)]["text"]

    answer = slack_post(platform, "interactions", block_actions(SLACK_CHANNEL, "UVIEW", "approve", approval, ts))
    assert answer.status_code == 200, answer.text
    wait_until(
        lambda: any(e["user"] == "UVIEW" and "not allowed" in e["text"] for e in platform.slack.ephemeral),
        timeout=30,
        message="the viewer told, only they see it, that they may not approve",
    )
    assert pod_exists(platform, pod)
    assert pending_approval(platform, pod)["id"] == approval

    answer = slack_post(platform, "interactions", block_actions(SLACK_CHANNEL, "UOPS", "approve", approval, ts))
    assert answer.status_code == 200, answer.text
    wait_until(lambda: not pod_exists(platform, pod), timeout=60, message="the approved pod deletion")

    def edited() -> dict[str, Any] | None:
        message = platform.slack.messages[(SLACK_CHANNEL, ts)]
        buttons = any(b["type"] == "actions" for b in message.get("blocks", []))
        return message if "Approved" in str(message["text"]) and not buttons else None

    after = wait_until(edited, timeout=30, interval=0.2, message="the request edited to show the decision")
    assert after is not None and "slack:UOPS" in after["text"]
    requests = [m for m in platform.slack.messages.values() if f"Approval id: {approval}" in str(m.get("text"))]
    assert len(requests) == 1

    alert(platform, pod, tag, status="resolved")

    def resolution() -> list[dict[str, Any]]:
        return [
            m
            for m in platform.slack.messages.values()
            if m.get("thread_ts") == root_ts and "Resolved" in str(m.get("text"))
        ]

    wait_until(resolution, timeout=60, interval=0.2, message="the resolution posted in the incident's thread")
    wait_until(
        lambda: "Root cause:" in str(platform.slack.messages[(SLACK_CHANNEL, root_ts)]["text"]),
        timeout=90,
        interval=0.5,
        message="the root message edited to carry the RCA root cause",
    )


def test_telegram_inline_keyboard_refuses_a_viewer_and_a_typed_approve_executes(platform: Platform) -> None:
    tag = f"tg-{uuid.uuid4().hex[:6]}"
    pod = frontend_pod(platform, 1)
    alert(platform, pod, tag)
    approval = pending_approval(platform, pod)["id"]

    posted = wait_until(
        lambda: telegram_request_for(platform, approval), timeout=60, interval=0.2, message="the Telegram request"
    )
    assert posted is not None
    message_id, request = posted
    keyboard = request["reply_markup"]["inline_keyboard"][0]
    assert [b["callback_data"] for b in keyboard] == [f"approve:{approval}", f"reject:{approval}"]

    update = 800_000 + int(uuid.uuid4().int % 100_000)
    answer = telegram_post(platform, callback_update(update, TELEGRAM_CHAT, VIEWER, f"approve:{approval}", message_id))
    assert answer.status_code == 200 and answer.json()["ok"], answer.text
    wait_until(
        lambda: any(
            "Not allowed" in str(c.params.get("text")) for c in platform.telegram.method_calls("answerCallbackQuery")
        ),
        timeout=30,
        message="the viewer's button press refused visibly",
    )
    assert pod_exists(platform, pod)

    typed = text_update(update + 1, TELEGRAM_CHAT, OPERATOR, f"approve {approval}", message_id=message_id + 1000)
    assert telegram_post(platform, typed).status_code == 200
    wait_until(lambda: not pod_exists(platform, pod), timeout=60, message="the approved pod deletion")

    def edited() -> bool:
        message = platform.telegram.messages[(TELEGRAM_CHAT, message_id)]
        return "Approved" in message["text"] and "reply_markup" not in message

    wait_until(edited, timeout=30, interval=0.2, message="the request edited, keyboard removed")
    wait_until(
        lambda: any(
            "Executed" in str(c.params.get("text")) and c.params.get("chat_id") == TELEGRAM_CHAT
            for c in platform.telegram.method_calls("sendMessage")
        ),
        timeout=30,
        message="the operator's reply naming what was executed",
    )

    def replied_to(call: Any) -> int | None:
        parameters = call.params.get("reply_parameters") or {}
        return parameters.get("message_id") if isinstance(parameters, dict) else None

    sends = platform.telegram.method_calls("sendMessage")
    (root,) = {replied_to(c) for c in sends if f"Approval id: {approval}" in str(c.params.get("text"))}
    assert root is not None, "the approval request is a reply in the incident's thread"
    alert(platform, pod, tag, status="resolved")
    wait_until(
        lambda: any(
            "Resolved" in str(c.params.get("text")) and replied_to(c) == root
            for c in platform.telegram.method_calls("sendMessage")
        ),
        timeout=60,
        interval=0.2,
        message="the resolution posted as a reply in the incident's thread",
    )


def test_bad_webhook_input_is_refused_or_ignored_and_executes_nothing(platform: Platform) -> None:
    before = decided_count(platform)
    base = 900_000 + int(uuid.uuid4().int % 50_000)
    status = text_update(base, TELEGRAM_CHAT, OPERATOR, "/status")

    assert telegram_post(platform, status, secret=None).status_code == 401
    assert telegram_post(platform, status, secret="wrong-secret").status_code == 401
    assert telegram_post(platform, b"{not json").status_code == 400
    huge = httpx.post(
        f"{platform.base_url}/api/webhook/telegram",
        content=b"x" * (2 * 1024 * 1024),
        headers=webhook_headers(TELEGRAM_SECRET),
        timeout=30,
    )
    assert huge.status_code == 413
    for ignored in (
        sticker_update(base + 1, TELEGRAM_CHAT, OPERATOR),
        document_update(base + 2, TELEGRAM_CHAT, OPERATOR),
        edited_update(base + 3, TELEGRAM_CHAT, OPERATOR, "approve abc123"),
    ):
        answer = telegram_post(platform, ignored)
        assert answer.status_code == 200 and "ignored" in answer.json(), answer.text
    stranger_chat = telegram_post(platform, text_update(base + 4, -42, OPERATOR, "approve abc123"))
    assert stranger_chat.status_code == 200 and "refused" in stranger_chat.json()

    forged = telegram_post(platform, text_update(base + 5, TELEGRAM_CHAT, OPERATOR, "approve zz9zz9", message_id=5))
    unknown = telegram_post(platform, callback_update(base + 6, TELEGRAM_CHAT, OPERATOR, "drop:tables", message_id=6))
    assert forged.status_code == 200 and unknown.status_code == 200
    wait_until(
        lambda: (
            {"Not found", "did not understand"}
            <= {
                word
                for c in platform.telegram.method_calls("sendMessage")
                for word in ("Not found", "did not understand")
                if word in str(c.params.get("text")) and c.params.get("chat_id") == TELEGRAM_CHAT
            }
        ),
        timeout=30,
        message="clear replies to a forged approval id and unknown button data",
    )

    event = message_event(SLACK_CHANNEL, "UOPS", "approve abc123", ts=f"1800000{base}.000100")
    assert slack_post(platform, "events", event, timestamp=int(time.time()) - 3600).status_code == 401
    bad_signature = slack_post(platform, "events", event, override={"X-Slack-Signature": "v0=" + "0" * 64})
    assert bad_signature.status_code == 401
    unsigned = httpx.post(f"{platform.base_url}/api/webhook/slack/events", content=event, timeout=30)
    assert unsigned.status_code == 401
    challenge = slack_post(platform, "events", url_verification("chal-" + str(base)))
    assert challenge.status_code == 200 and challenge.json() == {"challenge": "chal-" + str(base)}
    click = block_actions("C0ELSEWHERE", "UOPS", "approve", "abc123")
    elsewhere = slack_post(platform, "interactions", click)
    assert elsewhere.status_code == 200 and "refused" in elsewhere.json()
    stale_click = slack_post(
        platform, "interactions", block_actions(SLACK_CHANNEL, "UOPS", "approve", "abc123"), timestamp=1
    )
    assert stale_click.status_code == 401
    edit = message_event(SLACK_CHANNEL, "UOPS", "approve abc123", subtype="message_changed")
    edited = slack_post(platform, "events", edit)
    assert edited.status_code == 200 and "ignored" in edited.json()

    assert decided_count(platform) == before
