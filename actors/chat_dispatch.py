"""ChatDispatcher: one verified, parsed chat event in; authorisation, the command, one reply out.

A plain class; ``actors/remote.py`` makes it the detached Ray actor ``aiops-chat``. The chat
ingress verifies and parses (``adapters.telegram``/``adapters.slack``), answers the webhook
at once and hands the ``ChatEvent`` here without waiting. Then, in this order:

1. **Once.** The event's delivery id is claimed in Redis; a redelivered webhook (Slack
   retries after 3 s, Telegram after a non-2xx) is dropped here.
2. **Not too often.** A per-person ``CommandLimiter``; the first refusal says "slow down".
3. **Allowed.** ``core.chat.authorize`` with the sender's highest role in the policy; a
   refused command (a viewer's Approve click) is answered visibly and nothing runs. The
   coordinator checks the approval's risk and namespace again before any step runs.
4. **Run.** Reads go to PostgreSQL; decisions, pause and resume to ``aiops-approvals``;
   ack and silence to ``aiops-rules``; questions to the assistant (read-only tools).

The actors are reached through ``Peer`` (``call(method, ...)``), so this class never
imports ray: ``actors.remote.ActorPeer`` wraps an actor handle, ``Direct`` an in-process
object (integration tests). The assistant is ``adapters.assistant.Assistant`` when that
module and an LLM key exist; without them questions get a clear "no LLM configured"
reply and the command list.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, TextIO

from actors.stores import Stores
from adapters.chat_channel import Channel, CommandLimiter, ConsoleChannel, RateLimiter
from adapters.conversation_store import ConversationStore
from adapters.llm import LlmClient
from adapters.mcp_client import KubeMcpClient, ToolSpec
from adapters.metrics import ChatMetrics, shared
from adapters.rca_store import RcaStore
from adapters.slack import SlackChannel
from adapters.telegram import TelegramChannel
from config.chat import ChatConfig, load_chat
from config.policy import LoadedPolicy, load_policy
from config.settings import Settings
from core.authz import Role
from core.chat import (
    HELP_TEXT,
    USAGE,
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
)
from core.errors import AiopsError, ApprovalError, InputError, NotFound, PermanentError, TemporaryError
from core.notify_format import incident_link, render_reply

log = logging.getLogger(__name__)

DELIVERY_TTL = 24 * 3600.0
HISTORY_TURNS = 10
NO_LLM = "No LLM is configured, so I cannot answer questions"


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Peer(Protocol):
    """An actor's methods, by name: ``await peer.call("decide", ...)``."""

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any: ...


class Direct:
    """A ``Peer`` over an in-process object with async methods."""

    def __init__(self, target: Any) -> None:
        self._target = target

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        function = getattr(self._target, method, None)
        if function is None:
            raise PermanentError(f"{type(self._target).__name__} has no method {method!r}")
        result = function(*args, **kwargs)
        return await result if asyncio.iscoroutine(result) else result


class Answerer(Protocol):
    """The assistant seam (``adapters.assistant.Assistant``)."""

    async def answer(self, question: str, history: Sequence[tuple[str, str]] = ()) -> Any: ...


class LazyReadTools:
    """The assistant's read-only MCP client, started on the first question (and again after it died)."""

    read_only = True

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: KubeMcpClient | None = None
        self._lock = asyncio.Lock()

    async def _get(self) -> KubeMcpClient:
        async with self._lock:
            if self._client is None or not self._client.alive:
                client = KubeMcpClient(
                    kubeconfig=self._settings.kubeconfig, read_only=True, call_timeout=10.0, start_timeout=60.0
                )
                await client.start()
                self._client = client
            return self._client

    async def list_tools(self) -> list[ToolSpec]:
        return await (await self._get()).list_tools()

    async def call(self, tool: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return await (await self._get()).call(tool, params)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None


def load_assistant(settings: Settings, tools: LazyReadTools | None = None) -> tuple[Answerer | None, str]:
    """The assistant (LLM + read-only MCP ``tools``), or None and why not (no key, no module)."""
    if not settings.secret("anthropic_api_key"):
        return None, f"{NO_LLM} (ANTHROPIC_API_KEY is not set)."
    try:
        module = importlib.import_module("adapters.assistant")
    except ImportError:
        return None, f"{NO_LLM} (the assistant is not installed in this version)."
    try:
        assistant: Answerer = module.Assistant(
            LlmClient(settings),
            tools or LazyReadTools(settings),
            budget_s=max(20.0, settings.llm_timeout_seconds * 2),
            known_secrets=settings.secret_values(),
        )
    except (TypeError, ValueError, AttributeError, AiopsError) as e:
        log.warning("assistant could not be built: %s", e)
        return None, f"{NO_LLM} (the assistant could not start: {type(e).__name__})."
    return assistant, ""


def build_channels(settings: Settings, chat: ChatConfig, *, out: TextIO | None = None) -> dict[str, Channel]:
    """Outbound channels that are enabled in the chat file and have a token."""
    channels: dict[str, Channel] = {}
    rate = chat.channel_rate
    telegram_token = settings.secret("telegram_bot_token")
    if chat.telegram.enabled and telegram_token:
        channels["telegram"] = TelegramChannel(
            telegram_token, api_url=chat.telegram.api_url, limiter=RateLimiter(rate.per_second, rate.burst)
        )
    slack_token = settings.secret("slack_bot_token")
    if chat.slack.enabled and slack_token:
        channels["slack"] = SlackChannel(
            slack_token, api_url=chat.slack.api_url, limiter=RateLimiter(rate.per_second, rate.burst)
        )
    if chat.console:
        channels["console"] = ConsoleChannel(out or sys.stdout)
    return channels


def _error_text(error: AiopsError) -> str:
    if isinstance(error, NotFound):
        return f"Not found: {error}"
    if isinstance(error, ApprovalError):
        return f"⛔ Refused: {error}"
    if isinstance(error, InputError):
        return f"Invalid: {error}"
    if isinstance(error, TemporaryError):
        return f"Temporarily unavailable, try again shortly: {error}"
    return f"Failed: {error}"


class ChatDispatcher:
    def __init__(
        self,
        settings: Settings,
        *,
        coordinator: Peer,
        engine: Peer,
        chat: ChatConfig | None = None,
        policy: LoadedPolicy | None = None,
        channels: Mapping[str, Channel] | None = None,
        assistant: Answerer | None = None,
        use_configured_assistant: bool = True,
        clock: Callable[[], datetime] = _utcnow,
        monotonic: Callable[[], float] = time.monotonic,
        answer_timeout: float = 60.0,
    ) -> None:
        self._settings = settings
        self._coordinator = coordinator
        self._engine = engine
        self._chat = chat or load_chat(settings.chat_file)
        self._policy = policy or load_policy(settings.policy_file)
        self._channels: dict[str, Channel] = dict(channels) if channels is not None else {}
        self._build_channels = channels is None
        self._no_assistant = f"{NO_LLM}."
        self._read_tools = LazyReadTools(settings)
        if assistant is None and use_configured_assistant:
            assistant, self._no_assistant = load_assistant(settings, self._read_tools)
        self._assistant = assistant
        self._clock = clock
        rate = self._chat.user_rate
        self._limiter = CommandLimiter(RateLimiter(rate.per_second, rate.burst, clock=monotonic))
        self._answer_timeout = answer_timeout
        self._known = settings.secret_values()
        self._stores: Stores | None = None
        self._conversations: ConversationStore | None = None
        self._lock = asyncio.Lock()
        self._counts: dict[str, int] = {}
        self._started_at = time.time()

    async def _ready(self) -> Stores:
        if self._stores is None:
            async with self._lock:
                if self._stores is None:
                    stores = await Stores.open(self._settings)
                    if self._build_channels:
                        self._channels = build_channels(self._settings, self._chat)
                    self._conversations = ConversationStore(
                        stores.postgres,
                        stores.redis,
                        session_ttl=self._settings.chat_session_ttl_seconds,
                        known=self._known,
                    )
                    self._stores = stores
        return self._stores

    def role_of(self, identity: str) -> Role | None:
        """The highest role any grant gives ``identity`` (namespaces are checked by the coordinator)."""
        roles = [g.role for g in self._policy.authz.grants if str(g.identity) == identity]
        return max(roles, key=lambda r: r.rank) if roles else None

    def _count(self, outcome: str) -> None:
        self._counts[outcome] = self._counts.get(outcome, 0) + 1

    async def handle(self, event: ChatEvent) -> dict[str, Any]:
        """Authorise and run one event, reply in its chat; returns what happened (for tests and logs)."""
        result = await self._handle(event)
        self._count(result["outcome"])
        log.info(
            "chat %s from %s: %s -> %s", event.channel, event.identity, command_name(event.command), result["outcome"]
        )
        return result

    async def _handle(self, event: ChatEvent) -> dict[str, Any]:
        stores = await self._ready()
        if event.delivery_id:
            key = f"chat:delivery:{event.channel}:{event.delivery_id}"
            if not await stores.redis.set_if_absent(key, "1", DELIVERY_TTL):
                return {"outcome": "duplicate"}
        command = event.command
        if isinstance(command, Ignored):
            return {"outcome": "ignored", "reason": command.reason}
        allowed, slow_down = self._limiter.check(event.identity)
        if not allowed:
            if slow_down:
                await self._reply(event, slow_down)
            return {"outcome": "rate_limited", "reply": slow_down}
        ok, reason = authorize(command, self.role_of(event.identity))
        if not ok:
            await self._refuse(event, reason)
            return {"outcome": "refused", "reply": reason}
        try:
            text = await self._run(event, command)
            outcome = "done"
        except AiopsError as e:
            text, outcome = _error_text(e), "error"
        await self._reply(event, text)
        return {"outcome": outcome, "reply": text}

    # -- replies ---------------------------------------------------------------------------

    async def _reply(self, event: ChatEvent, text: str) -> None:
        channel = self._channels.get(event.channel)
        if channel is None:
            log.warning("no %s channel configured to answer %s", event.channel, event.identity)
            return
        try:
            await channel.reply(event, render_reply(text, known=self._known))
        except AiopsError as e:
            log.warning("could not reply on %s: %s", event.channel, e)

    async def _refuse(self, event: ChatEvent, reason: str) -> None:
        """Tell the sender, visibly, that this was not done (Slack: only they see it)."""
        channel = self._channels.get(event.channel)
        if isinstance(channel, SlackChannel):
            try:
                await channel.refuse(event, reason)
            except AiopsError as e:
                log.warning("could not refuse on slack: %s", e)
            return
        await self._reply(event, f"⛔ Not allowed: {reason}. Nothing was done.")

    # -- commands --------------------------------------------------------------------------

    async def _run(self, event: ChatEvent, command: Command) -> str:
        who = event.identity
        if isinstance(command, Help):
            return USAGE[command.topic] if command.topic else HELP_TEXT
        if isinstance(command, Invalid):
            return command.message
        if isinstance(command, Unknown):
            return f"I did not understand that ({command.reason}).\n{command.help}"
        if isinstance(command, Status):
            return await self._status()
        if isinstance(command, ListIncidents):
            return await self._incidents()
        if isinstance(command, ShowIncident):
            return await self._incident(command.incident_id)
        if isinstance(command, ListApprovals):
            return await self._approvals()
        if isinstance(command, Ack):
            stores = await self._ready()
            if await stores.postgres.get_incident(command.incident_id) is None:
                raise NotFound(f"no incident {command.incident_id!r}")
            await self._engine.call("acknowledge", command.incident_id, who)
            return f"Incident {command.incident_id} acknowledged by {who}."
        if isinstance(command, SilenceRequest):
            silence = command.to_silence(self._clock(), who)
            try:
                await self._engine.call("add_silence", silence.model_dump(mode="json"))
            except PermanentError:
                return "Silences cannot be set from chat in this version (the rule engine does not take them yet)."
            return f"Silenced {', '.join(silence.matchers)} until {silence.ends_at.isoformat()} (id {silence.id})."
        if isinstance(command, Pause | Resume):
            verb = "pause" if isinstance(command, Pause) else "resume"
            await self._coordinator.call(verb, who, channel=event.channel)
            return "Remediation paused: no mutating action will run." if verb == "pause" else "Remediation resumed."
        if isinstance(command, Decision):
            return await self._decide(event, command)
        if isinstance(command, Question):
            return await self._question(event, command)
        raise AssertionError(f"no handler for {command!r}")  # pragma: no cover - Command is closed

    async def _status(self) -> str:
        stores = await self._ready()
        open_ = await stores.postgres.list_incidents(status="open", limit=1000)
        acked = await stores.postgres.list_incidents(status="acknowledged", limit=1000)
        health = await self._coordinator.call("health")
        by_severity: dict[str, int] = {}
        for incident in open_:
            by_severity[incident.severity.value] = by_severity.get(incident.severity.value, 0) + 1
        counts = ", ".join(f"{n} {s}" for s, n in sorted(by_severity.items())) or "none"
        paused = "paused" if health.get("paused") else "active"
        return "\n".join(
            [
                f"Platform: {'ok' if health.get('ok') else 'degraded'}",
                f"Open incidents: {len(open_)} ({counts}); acknowledged: {len(acked)}",
                f"Pending approvals: {health.get('pending_approvals', '?')};"
                f" active runs: {health.get('active_runs', '?')}",
                f"Remediation: {paused}",
            ]
        )

    async def _incidents(self) -> str:
        stores = await self._ready()
        found = await stores.postgres.list_incidents(status="open", limit=20)
        found += await stores.postgres.list_incidents(status="acknowledged", limit=20)
        if not found:
            return "No open incidents."
        lines = [f"{len(found)} open incident(s):"]
        for i in found[:20]:
            where = f" ({i.namespace})" if i.namespace else ""
            lines.append(f"• {i.id} [{i.severity.value}, {i.status.value}] {i.title}{where}")
        return "\n".join(lines)

    async def _incident(self, incident_id: str) -> str:
        stores = await self._ready()
        incident = await stores.postgres.get_incident(incident_id)
        if incident is None:
            raise NotFound(f"no incident {incident_id!r}")
        lines = [
            f"{incident.id}: {incident.title}",
            f"Status: {incident.status.value}; severity: {incident.severity.value}; signals: {incident.signal_count}",
        ]
        if incident.object is not None:
            lines.append(f"Object: {incident.object.kind} {incident.namespace or ''}/{incident.object.name}")
        if incident.playbook:
            lines.append(f"Playbook: {incident.playbook}")
        report = await RcaStore(stores.postgres).latest(incident_id)
        if report is not None:
            body = report.body.get("report", report.body) if isinstance(report.body, dict) else {}
            lines.append(f"Root cause: {body.get('root_cause') or report.summary} ({round(report.confidence * 100)}%)")
            lines.extend(f"• {e}" for e in list(body.get("evidence") or [])[:6])
        else:
            lines.append("Root cause: analysis not ready yet")
        lines.append(incident_link(incident.id, self._chat.link_base_url))
        return "\n".join(lines)

    async def _approvals(self) -> str:
        pending = await self._coordinator.call("list_approvals", "pending")
        if not pending:
            return "No pending approvals."
        lines = [f"{len(pending)} pending approval(s):"]
        lines.extend(f"• {a['id']}: {a.get('text', '')}" for a in pending[:20])
        lines.append("Reply 'approve <id>' or 'reject <id> <reason>'.")
        return "\n".join(lines)

    async def _decide(self, event: ChatEvent, command: Decision) -> str:
        result = await self._coordinator.call(
            "decide",
            command.approval_id,
            who=event.identity,
            decision=command.verdict.value,
            channel=event.channel,
            confirm=command.confirm,
            note=command.note,
        )
        outcome = result.get("outcome", "recorded")
        executed = result.get("executed") or []
        if outcome == "recorded":
            return f"Your {command.verdict.value} of {command.approval_id} is recorded; another approver is needed."
        text = f"Approval {command.approval_id}: {outcome} by {event.identity}."
        if executed:
            text += " Executed: " + "; ".join(executed)
        return text

    async def _question(self, event: ChatEvent, command: Question) -> str:
        if self._assistant is None:
            return f"{self._no_assistant}\n{HELP_TEXT}"
        await self._ready()
        store = self._conversations
        assert store is not None  # noqa: S101 - set by _ready
        now = self._clock()
        conversation = await store.session(event.channel, event.chat, event.user_id, now)
        history = await store.history(conversation, HISTORY_TURNS)
        await store.add(conversation, "user", command.text, now, external_id=event.delivery_id)
        try:
            answer = await asyncio.wait_for(
                self._assistant.answer(command.text, history=history), timeout=self._answer_timeout
            )
        except TimeoutError:
            return f"The assistant did not answer within {self._answer_timeout:g}s; try a narrower question."
        text = str(getattr(answer, "text", answer))
        tools = tuple(getattr(answer, "tools_used", ()) or ())
        fallback = getattr(answer, "fallback_reason", None)
        await store.add(conversation, "assistant", text, self._clock())
        if tools:
            text += f"\n(from: {', '.join(tools)})"
        if fallback:
            text += f"\n(note: {fallback})"
        return text

    # -- lifecycle -------------------------------------------------------------------------

    async def health(self) -> dict[str, Any]:
        """In-memory state only: answers at once, also while the stores are still opening."""
        return {
            "ok": True,
            "stores_open": self._stores is not None,
            "channels": sorted(self._channels),
            "assistant": self._assistant is not None,
            "handled": dict(self._counts),
            "uptime_s": round(time.time() - self._started_at),
        }

    def metrics_text(self) -> str:
        """This process's chat API metrics (sends, retries, rate limits), for the one scrape."""
        return shared(ChatMetrics).render()

    async def close(self) -> None:
        await self._read_tools.close()
        for channel in self._channels.values():
            close = getattr(channel, "close", None)
            if close is not None:
                await close()
        if self._stores is not None:
            await self._stores.close()
            self._stores = None
