"""Chat end to end without Ray: rule engine -> notifier -> Slack/Telegram loopback APIs -> signed
button presses and typed commands -> dispatcher -> coordinator -> edited messages.

Real PostgreSQL (a database of this module's own, because the notifier reads every incident
event) and Redis, the real python-telegram-bot and slack_sdk clients against the loopback
Bot API / Web API servers, inbound requests signed exactly as Telegram and Slack sign them
and parsed by the same adapter functions the Serve app calls. The playbook's one mutating
tool call goes to a recording tools object, so "nothing executed" is a fact about calls.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import pytest_asyncio

from actors.approvals import ApprovalCoordinator
from actors.chat_dispatch import ChatDispatcher, Direct
from actors.notifier import Notifier
from actors.rule_engine import RuleEngine
from adapters.chat_channel import Channel, RetryPolicy
from adapters.conversation_store import ConversationStore
from adapters.rca_store import RcaStore
from adapters.slack import SlackChannel, SlackVerifier, handle_events, handle_interactions
from adapters.telegram import TelegramChannel, handle_webhook
from config.chat import ChatConfig, chat_from_text
from config.policy import policy_from_text
from config.settings import Settings
from core.chat import ChatEvent
from core.errors import InputError
from core.models import Fingerprint, ObjectRef, Severity, Signal, SignalSource, SignalStatus
from core.plans import Playbook, Step
from core.tools import Risk
from tests.helpers import wait_for
from tests.servers.slack_server import SlackApiServer, block_actions, message_event, signed_headers
from tests.servers.telegram_server import TelegramApiServer, callback_update, text_update, webhook_headers

pytestmark = pytest.mark.integration

TG_TOKEN = "7000001:AAloopbackTOKENforTESTSonly0000000"
TG_SECRET = "tg-webhook-secret-5d1f"
SLACK_TOKEN = "xoxb-loopback-0000-token"
SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TG_CHAT = -100500
OPERATOR, VIEWER = 111, 222
POLICY = """
policy:
  roles:
    - {identity: "telegram:111", role: operator}
    - {identity: "telegram:222", role: viewer}
    - {identity: "slack:UOPS", role: operator}
    - {identity: "slack:UVIEW", role: viewer}
  approvals: {ttl: 10m}
"""
RULES = """
rules:
  - name: crashloop
    match:
      reason: [KubePodCrashLooping]
    playbook: crashloop
    group_by: [namespace, deployment, pod]
    group_wait: 0s
    cooldown: 5m
"""
RESTART = Playbook(
    name="crashloop",
    steps=(
        Step(
            name="restart-pod",
            tool="delete_pod",
            risk=Risk.MEDIUM,
            params={"namespace": "{{ incident.namespace }}", "name": "{{ incident.labels.pod }}"},
        ),
    ),
)


def chat_yaml(telegram: TelegramApiServer, slack: SlackApiServer) -> str:
    return f"""
chat:
  telegram: {{enabled: true, api_url: "{telegram.api_url}", allowed_chats: [{TG_CHAT}]}}
  slack: {{enabled: true, api_url: "{slack.api_url}", allowed_channels: [C0OPS]}}
  console: {{enabled: false}}
  routes:
    - {{name: prod, namespaces: ["production"], targets: ["telegram:{TG_CHAT}", "slack:C0OPS"]}}
  default_targets: ["slack:C0OPS"]
  rate_limits:
    user: {{per_second: 0.01, burst: 6}}
"""


class RecordingTools:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def call(self, tool: str, params: Mapping[str, Any]) -> dict[str, Any]:
        self.calls.append((tool, dict(params)))
        return {"ok": True, "tool": tool}


class Clock:
    """The coordinator's clock: real time plus a skew a test can add (to expire approvals)."""

    def __init__(self) -> None:
        self.skew = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.skew


class Starter:
    def __init__(self) -> None:
        self.coordinator: ApprovalCoordinator | None = None

    def submit(self, incident: dict[str, Any], playbook: str) -> None:
        import asyncio

        assert self.coordinator is not None
        asyncio.get_running_loop().create_task(self.coordinator.start_run(incident, playbook))


@dataclass
class FakeAssistant:
    """The assistant seam, answering from what it was given (the real one is adapters/assistant.py)."""

    seen: list[tuple[str, tuple[tuple[str, str], ...]]] = field(default_factory=list)

    async def answer(self, question: str, history: Sequence[tuple[str, str]] = ()) -> Any:
        self.seen.append((question, tuple(history)))

        @dataclass(frozen=True)
        class Answer:
            text: str
            tools_used: tuple[str, ...] = ("list_pods",)
            fallback_reason: str | None = None

        return Answer(text=f"answer #{len(self.seen)}")


@dataclass
class Rig:
    settings: Settings
    chat: ChatConfig
    engine: RuleEngine
    coordinator: ApprovalCoordinator
    dispatcher: ChatDispatcher
    notifier: Notifier
    tools: RecordingTools
    telegram: TelegramApiServer
    slack: SlackApiServer
    channels: dict[str, Channel]
    clock: Clock

    def telegram_event(self, body: bytes, secret: str | None = TG_SECRET) -> ChatEvent | None:
        return handle_webhook(body, webhook_headers(secret), secret=TG_SECRET, config=self.chat.telegram).event

    def slack_click(self, user: str, action: str, approval: str, ts: str) -> ChatEvent | None:
        body = block_actions("C0OPS", user, action, approval, message_ts=ts)
        headers = signed_headers(SLACK_SECRET, body, int(time.time()), "application/x-www-form-urlencoded")
        return handle_interactions(body, headers, verifier=SlackVerifier(SLACK_SECRET), config=self.chat.slack).event


@pytest.fixture
def database(server_database_url: str) -> Iterator[str]:
    import asyncio

    name = f"aiops_chat_{uuid.uuid4().hex[:10]}"

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(server_database_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    parts = urlsplit(server_database_url)
    yield urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))
    asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest_asyncio.fixture
async def rig(database: str, redis_url: str, redis_prefix: str, tmp_path: Path) -> AsyncIterator[Rig]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    settings = Settings(
        database_url=database,
        redis_url=redis_url,
        redis_prefix=redis_prefix,
        data_dir=tmp_path,
        telegram_bot_token=TG_TOKEN,
        telegram_webhook_secret=TG_SECRET,
        slack_bot_token=SLACK_TOKEN,
        slack_signing_secret=SLACK_SECRET,
        dev_mode=True,
    )
    policy = policy_from_text(POLICY)
    with TelegramApiServer(TG_TOKEN) as telegram, SlackApiServer(SLACK_TOKEN) as slack:
        chat = chat_from_text(chat_yaml(telegram, slack))
        fast = RetryPolicy(attempts=3, max_wait=5.0)
        channels: dict[str, Channel] = {
            "telegram": TelegramChannel(TG_TOKEN, api_url=telegram.api_url, retry=fast),
            "slack": SlackChannel(SLACK_TOKEN, api_url=slack.api_url, retry=fast),
        }
        tools = RecordingTools()
        clock = Clock()
        coordinator = ApprovalCoordinator(
            settings, tools=tools, policy=policy, playbooks={"crashloop": RESTART}, tick_interval=0.2, clock=clock
        )
        starter = Starter()
        starter.coordinator = coordinator
        engine = RuleEngine(settings, str(rules), remediation=starter)
        dispatcher = ChatDispatcher(
            settings,
            coordinator=Direct(coordinator),
            engine=Direct(engine),
            chat=chat,
            policy=policy,
            channels=channels,
            use_configured_assistant=False,
        )
        notifier = Notifier(settings, chat=chat, channels=channels, interval=0.1)
        try:
            yield Rig(
                settings, chat, engine, coordinator, dispatcher, notifier, tools, telegram, slack, channels, clock
            )
        finally:
            await notifier.close()
            await dispatcher.close()
            await engine.close()
            await coordinator.close()


def crashloop(pod: str, status: str = "firing") -> Signal:
    now = datetime.now(UTC)
    return Signal(
        source=SignalSource.ALERTMANAGER,
        reason="KubePodCrashLooping",
        severity=Severity.CRITICAL,
        status=SignalStatus(status),
        labels={"namespace": "production", "pod": pod, "deployment": "web", "alertname": "KubePodCrashLooping"},
        object=ObjectRef(kind="Pod", name=pod, namespace="production"),
        observed_at=now,
        starts_at=now,
        fingerprint=Fingerprint(f"fp-{pod}"),
    )


def slack_with_buttons(slack: SlackApiServer, approval: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        (ts, m)
        for (_, ts), m in list(slack.messages.items())
        if any(b.get("block_id") == f"decide:{approval}" for b in m.get("blocks", []))
    ]


def telegram_with(telegram: TelegramApiServer, needle: str) -> list[tuple[int, dict[str, Any]]]:
    return [(mid, m) for (_, mid), m in list(telegram.messages.items()) if needle in str(m.get("text"))]


async def pending_approval(rig: Rig) -> dict[str, Any]:
    async def one() -> dict[str, Any] | None:
        await rig.notifier.pump()
        found = await rig.coordinator.list_approvals("pending")
        return found[0] if found else None

    return await wait_for(one, timeout=20, interval=0.05, message="the approval request")


async def test_slack_incident_buttons_refuse_a_viewer_execute_for_an_operator_edit_in_place_and_resolve_in_thread(
    rig: Rig,
) -> None:
    await rig.engine.ingest([crashloop("web-1")])
    approval = (await pending_approval(rig))["id"]

    async def posted() -> list[tuple[str, dict[str, Any]]]:
        await rig.notifier.pump()
        return slack_with_buttons(rig.slack, approval)

    ((ts, message),) = await wait_for(posted, timeout=20, message="the Slack approval request with buttons")
    actions = next(b for b in message["blocks"] if b["type"] == "actions")
    assert [e["action_id"] for e in actions["elements"]] == ["approve", "reject"]
    root_ts = message["thread_ts"]
    root = rig.slack.messages[("C0OPS", root_ts)]
    assert "incident" in root["text"].lower() and "web-1" in root["text"]

    refused = await rig.dispatcher.handle(rig.slack_click("UVIEW", "approve", approval, ts) or _no_event())
    assert refused["outcome"] == "refused"
    assert rig.tools.calls == []
    assert any(e["user"] == "UVIEW" and "not allowed" in e["text"] for e in rig.slack.ephemeral)
    assert (await rig.coordinator.list_approvals("pending"))[0]["id"] == approval

    done = await rig.dispatcher.handle(rig.slack_click("UOPS", "approve", approval, ts) or _no_event())
    assert done["outcome"] == "done", done
    assert [name for name, _ in rig.tools.calls] == ["delete_pod"]

    async def edited() -> dict[str, Any] | None:
        await rig.notifier.pump()
        now = rig.slack.messages[("C0OPS", ts)]
        has_buttons = any(b["type"] == "actions" for b in now.get("blocks", []))
        return now if "Approved" in str(now.get("text")) and not has_buttons else None

    after = await wait_for(edited, timeout=20, message="the approval message edited to show the result")
    assert "slack:UOPS" in after["text"]
    requests = [m for m in rig.slack.messages.values() if f"Approval id: {approval}" in str(m.get("text"))]
    assert len(requests) == 1  # edited, not re-sent

    # Telegram got the same request with an inline keyboard, edited the same way.
    ((_, tg_message),) = telegram_with(rig.telegram, f"Approval id: {approval}")
    assert "reply_markup" not in tg_message and "Approved" in tg_message["text"]

    stores = await rig.engine._ready()
    incident_id = (await stores.postgres.list_incidents(status="open"))[0].id
    report = {
        "summary": "CrashLoopBackOff on web-1 (production)",
        "root_cause": "the app panics on a nil map at start-up",
        "category": "app_crash",
        "evidence": ["panic: assignment to entry in nil map"],
        "confidence": 0.8,
    }
    await RcaStore(stores.postgres).save(
        incident_id,
        mode="deterministic",
        category="app_crash",
        confidence=0.8,
        summary=report["summary"],
        body={"report": report},
        now=datetime.now(UTC),
    )

    async def root_has_rca() -> bool:
        await rig.notifier.pump()
        return "Root cause: the app panics" in str(rig.slack.messages[("C0OPS", root_ts)]["text"])

    await wait_for(root_has_rca, timeout=20, message="the root message edited to carry the RCA")
    assert "nil map" in str(rig.slack.messages[("C0OPS", root_ts)]["blocks"])

    await rig.engine.ingest([crashloop("web-1", status="resolved")])

    async def resolution() -> list[dict[str, Any]]:
        await rig.notifier.pump()
        return [m for m in rig.slack.messages.values() if "Resolved" in str(m.get("text"))]

    (resolved,) = await wait_for(resolution, timeout=20, message="the resolution in the incident's thread")
    assert resolved["thread_ts"] == root_ts
    (tg_resolved,) = telegram_with(rig.telegram, "Resolved")
    sends = [c.params for c in rig.telegram.method_calls("sendMessage") if "Resolved" in str(c.params.get("text"))]
    assert sends and "reply_parameters" in sends[0], sends


def _no_event() -> ChatEvent:
    raise AssertionError("the adapter produced no event")


async def test_telegram_typed_approve_and_inline_button_refusal(rig: Rig) -> None:
    await rig.engine.ingest([crashloop("web-2")])
    approval = (await pending_approval(rig))["id"]

    async def keyboard() -> list[tuple[int, dict[str, Any]]]:
        await rig.notifier.pump()
        return [(i, m) for i, m in telegram_with(rig.telegram, f"Approval id: {approval}") if "reply_markup" in m]

    ((message_id, message),) = await wait_for(keyboard, timeout=20, message="the inline keyboard")
    rows = message["reply_markup"]["inline_keyboard"]
    assert [b["callback_data"] for b in rows[0]] == [f"approve:{approval}", f"reject:{approval}"]

    click = rig.telegram_event(callback_update(9001, TG_CHAT, VIEWER, f"approve:{approval}", message_id))
    assert (await rig.dispatcher.handle(click or _no_event()))["outcome"] == "refused"
    assert rig.tools.calls == []
    answered = rig.telegram.method_calls("answerCallbackQuery")
    assert answered and "Not allowed" in str(answered[-1].params.get("text"))

    typed = rig.telegram_event(text_update(9002, TG_CHAT, OPERATOR, f"approve {approval}", message_id=77))
    result = await rig.dispatcher.handle(typed or _no_event())
    assert result["outcome"] == "done" and "approved" in result["reply"], result
    assert [name for name, _ in rig.tools.calls] == ["delete_pod"]
    replies = [c.params for c in rig.telegram.method_calls("sendMessage") if "Executed" in str(c.params.get("text"))]
    assert replies and replies[0]["chat_id"] == TG_CHAT

    async def edited() -> bool:
        await rig.notifier.pump()
        now = rig.telegram.messages[(TG_CHAT, message_id)]
        return "Approved" in now["text"] and "reply_markup" not in now

    await wait_for(edited, timeout=20, message="the Telegram message edited, keyboard removed")

    again = rig.telegram_event(callback_update(9003, TG_CHAT, OPERATOR, f"approve:{approval}", message_id))
    late = await rig.dispatcher.handle(again or _no_event())
    assert late["outcome"] == "error" and "Refused" in late["reply"]
    assert len(rig.tools.calls) == 1


async def test_bad_chat_input_gets_a_clear_reply_and_executes_nothing(rig: Rig) -> None:
    def tg(update_id: int, text: str, user: int = OPERATOR) -> ChatEvent:
        return rig.telegram_event(text_update(update_id, TG_CHAT, user, text)) or _no_event()

    forged = await rig.dispatcher.handle(tg(1, "approve zz9zz9"))
    assert forged["outcome"] == "error" and "Not found" in forged["reply"]
    unknown = await rig.dispatcher.handle(
        rig.telegram_event(callback_update(2, TG_CHAT, OPERATOR, "rm-rf:everything")) or _no_event()
    )
    assert unknown["outcome"] == "done" and "did not understand" in unknown["reply"]
    viewer_pause = await rig.dispatcher.handle(tg(3, "/pause", user=VIEWER))
    assert viewer_pause["outcome"] == "refused" and "admin" in viewer_pause["reply"]
    stranger = await rig.dispatcher.handle(tg(4, "approve abc123", user=999))
    assert stranger["outcome"] == "refused"
    huge = await rig.dispatcher.handle(tg(5, "x" * 5000))
    assert "refused" in huge["reply"]
    question = await rig.dispatcher.handle(tg(6, "which pods are failing in production?"))
    assert "No LLM is configured" in question["reply"] and "/status" in question["reply"]
    duplicate = await rig.dispatcher.handle(tg(6, "which pods are failing in production?"))
    assert duplicate["outcome"] == "duplicate"
    assert rig.tools.calls == []
    assert not await rig.coordinator.paused()

    with pytest.raises(InputError):  # a chat not in the config is refused by the adapter (200, no event)
        rig.telegram_event(b"not json")
    assert rig.telegram_event(text_update(7, -999, OPERATOR, "/status")) is None
    body = message_event("C0OTHER", "UOPS", "approve abc123")
    headers = signed_headers(SLACK_SECRET, body, int(time.time()))
    assert handle_events(body, headers, verifier=SlackVerifier(SLACK_SECRET), config=rig.chat.slack).event is None


async def test_a_user_spamming_commands_is_told_once_to_slow_down(rig: Rig) -> None:
    outcomes = [
        (
            await rig.dispatcher.handle(
                rig.telegram_event(text_update(100 + i, TG_CHAT, VIEWER, "/help")) or _no_event()
            )
        )["outcome"]
        for i in range(9)
    ]
    assert outcomes[:6] == ["done"] * 6 and outcomes[6:] == ["rate_limited"] * 3
    slow = [c for c in rig.telegram.method_calls("sendMessage") if "Too many commands" in str(c.params.get("text"))]
    assert len(slow) == 1


async def test_status_incidents_and_ack_read_and_change_the_real_stores(rig: Rig) -> None:
    await rig.engine.ingest([crashloop("web-3")])
    await pending_approval(rig)

    def tg(update_id: int, text: str) -> ChatEvent:
        return rig.telegram_event(text_update(update_id, TG_CHAT, OPERATOR, text)) or _no_event()

    status = await rig.dispatcher.handle(tg(201, "/status"))
    assert "Open incidents: 1" in status["reply"] and "Pending approvals: 1" in status["reply"], status
    listed = await rig.dispatcher.handle(tg(202, "/incidents"))
    incident_id = listed["reply"].split("• ", 1)[1].split(" ", 1)[0]
    shown = await rig.dispatcher.handle(tg(203, f"/incident {incident_id}"))
    assert "web-3" in shown["reply"] and "crashloop" in shown["reply"]
    approvals = await rig.dispatcher.handle(tg(204, "/approvals"))
    assert "delete_pod" in approvals["reply"]
    acked = await rig.dispatcher.handle(tg(205, f"/ack {incident_id}"))
    assert acked["outcome"] == "done", acked
    stores = await rig.engine._ready()
    found = await stores.postgres.get_incident(incident_id)
    assert found is not None and found.status.value == "acknowledged"
    missing = await rig.dispatcher.handle(tg(206, "/ack inc-0000000000"))
    assert "Not found" in missing["reply"]


async def test_silence_from_chat_mutes_matching_signals_and_a_viewer_may_not_set_one(rig: Rig) -> None:
    def tg(update_id: int, user: Any, text: str) -> ChatEvent:
        return rig.telegram_event(text_update(update_id, TG_CHAT, user, text)) or _no_event()

    refused = await rig.dispatcher.handle(tg(301, VIEWER, '/silence pod="web-9" 1h'))
    assert refused["outcome"] != "done" and await rig.engine.silences() == []
    done = await rig.dispatcher.handle(tg(302, OPERATOR, '/silence pod="web-9" 1h'))
    assert done["outcome"] == "done" and "Silenced" in done["reply"], done
    (silence,) = await rig.engine.silences()
    assert silence["matchers"] == ['pod="web-9"'] and silence["created_by"].startswith("telegram:")
    muted = await rig.engine.ingest([crashloop("web-9")])
    assert muted["opened"] == 0 and muted["suppressed"] == 1


async def test_a_restarted_notifier_sends_nothing_twice(rig: Rig) -> None:
    await rig.engine.ingest([crashloop("web-4")])
    await pending_approval(rig)
    await rig.notifier.pump()
    before = (len(rig.slack.messages), len(rig.telegram.messages))
    again = Notifier(rig.settings, chat=rig.chat, channels=rig.channels)
    try:
        await again.pump()
        await again.pump()
    finally:
        await again.close()
    assert (len(rig.slack.messages), len(rig.telegram.messages)) == before
    assert before[0] >= 2 and before[1] >= 2  # root + approval request on each
    assert 'aiops_chat_sends_total{channel="slack"}' in rig.notifier.metrics_text()


async def test_follow_up_questions_get_the_conversation_so_far_and_sessions_expire(rig: Rig, tmp_path: Path) -> None:
    assistant = FakeAssistant()
    dispatcher = ChatDispatcher(
        rig.settings,
        coordinator=Direct(rig.coordinator),
        engine=Direct(rig.engine),
        chat=rig.chat,
        policy=policy_from_text(POLICY),
        channels=rig.channels,
        assistant=assistant,
    )
    try:
        first = rig.telegram_event(text_update(301, TG_CHAT, VIEWER, "why is web restarting?"))
        second = rig.telegram_event(text_update(302, TG_CHAT, VIEWER, "and in staging?"))
        assert (await dispatcher.handle(first or _no_event()))["reply"].startswith("answer #1")
        await dispatcher.handle(second or _no_event())
        assert assistant.seen[0][1] == ()
        assert assistant.seen[1][1] == (("user", "why is web restarting?"), ("assistant", "answer #1"))
    finally:
        await dispatcher.close()

    stores = await rig.engine._ready()
    store = ConversationStore(stores.postgres, stores.redis, session_ttl=0.2, known=(SLACK_TOKEN,))
    now = datetime.now(UTC)
    conversation = await store.session("slack", "C0OPS", "UOPS", now)
    assert await store.add(conversation, "user", f"my token is {SLACK_TOKEN}", now, external_id="m1")
    assert not await store.add(conversation, "user", "again", now, external_id="m1")
    ((role, text),) = await store.history(conversation)
    assert role == "user" and SLACK_TOKEN not in text

    async def expired() -> bool:
        return await stores.redis.get_json("chat:session:slack:C0OPS:UOPS") is None

    await wait_for(expired, timeout=5, message="the session TTL to pass")
    assert await store.session("slack", "C0OPS", "UOPS", datetime.now(UTC)) != conversation
    with pytest.raises(InputError):
        await store.add(conversation, "system", "x", now)


def test_setup_telegram_registers_the_webhook_with_the_secret_token(monkeypatch: pytest.MonkeyPatch) -> None:
    from core.errors import ConfigError
    from deployments.cli import build_parser

    with TelegramApiServer(TG_TOKEN) as telegram:
        monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TG_TOKEN)
        monkeypatch.setenv("TELEGRAM_WEBHOOK_SECRET", TG_SECRET)
        parser = build_parser()
        args = parser.parse_args(
            ["chat", "setup-telegram", "--url", "https://aiops.example.com", "--api-url", telegram.api_url]
        )
        assert args.func(args) == 0
        assert telegram.webhook["url"] == "https://aiops.example.com/api/webhook/telegram"
        assert telegram.webhook["secret_token"] == TG_SECRET
        assert telegram.webhook["allowed_updates"] == ["message", "callback_query"]

        plain = parser.parse_args(["chat", "setup-telegram", "--url", "http://insecure", "--api-url", telegram.api_url])
        with pytest.raises(ConfigError, match="HTTPS"):
            plain.func(plain)
        monkeypatch.delenv("TELEGRAM_WEBHOOK_SECRET")
        with pytest.raises(ConfigError, match="TELEGRAM_WEBHOOK_SECRET"):
            args.func(args)
        assert len(telegram.method_calls("setWebhook")) == 1


async def test_an_expired_approval_is_edited_and_announced_in_the_thread(rig: Rig) -> None:
    await rig.engine.ingest([crashloop("web-5")])
    approval = (await pending_approval(rig))["id"]

    async def posted() -> list[tuple[str, dict[str, Any]]]:
        await rig.notifier.pump()
        return slack_with_buttons(rig.slack, approval)

    ((ts, message),) = await wait_for(posted, timeout=20, message="the approval request")
    rig.clock.skew = timedelta(minutes=11)
    expired = await rig.coordinator.expire_due()
    assert [a["id"] for a in expired] == [approval]

    async def closed() -> bool:
        await rig.notifier.pump()
        now = rig.slack.messages[("C0OPS", ts)]
        return "Expired" in str(now["text"]) and not any(b["type"] == "actions" for b in now["blocks"])

    await wait_for(closed, timeout=20, message="the request edited to expired, buttons gone")
    notices = [m for m in rig.slack.messages.values() if f"Approval {approval} expired" in str(m.get("text"))]
    assert len(notices) == 1 and notices[0]["thread_ts"] == message["thread_ts"]
    assert rig.tools.calls == []
