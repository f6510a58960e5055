"""Notifier: incidents, approvals and step outcomes into chat, threaded, edited in place, once.

A plain class; ``actors/remote.py`` makes it the detached Ray actor ``aiops-notifier``.

Why it reads two existing logs instead of being called: both are already durable and
ordered, written in the same transaction as the state they describe, so nothing has to
change in the writers and nothing can be announced that was not committed.

* **Incident notifications** are the rule engine's ``Notify`` effects, which
  ``adapters.incident_store`` stores as ``notify:<kind>`` rows of ``incident_events``
  (BIGSERIAL ids, written under the rule engine's lock, so ids grow in commit order; the
  cursor relies on that: a row committed later with a smaller id would be skipped).
* **Approval and run notices** are the coordinator's announcements, a Redis list with
  sequence numbers (``GateState.notices``). A notice names its subject (an approval id,
  a run id, or ``guardrails``); the notifier reads the subject's *current* state from
  PostgreSQL and renders that, so replaying a notice renders the same thing again.

Delivery is at-least-once with idempotent steps: one cursor per log in Redis, advanced
only after every target of an item is done; each (item, target) send leaves a marker, so
a restart between a send and the cursor write does not send twice. Per incident and
target the root message (``MessageRef``) is kept: later messages go under it (Slack
``thread_ts``, Telegram ``reply_to``). Per approval and target the request message is
kept and *edited* when the approval is decided or expires (the buttons disappear).

A new incident is announced at once; when its RCA report lands (within ``rca_wait``
seconds) the root message is edited to carry the root cause and evidence. Routing is the
chat file's (``core.chat_routing``); an item whose channel has no token is skipped with a
log line, and a permanent refusal by a chat API is logged and skipped so one bad chat id
cannot block the queue; a temporary error (429 beyond the retry budget, network) stops
the pass and the item is retried on the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from actors.chat_dispatch import build_channels
from actors.stores import Stores
from adapters.approval_store import GateState, RunRecords
from adapters.chat_channel import Channel
from adapters.metrics import ChatMetrics, shared
from adapters.notifier_state import NotifierState, announcements, nearest_detail
from adapters.rca_store import RcaStore
from config.chat import ChatConfig, load_chat
from config.settings import Settings
from core.approvals import Approval, ApprovalState
from core.chat import Message, MessageRef
from core.chat_routing import Target
from core.correlation_events import Notify
from core.effects import Announce
from core.errors import AiopsError, PermanentError
from core.incident_groups import NotifyKind
from core.models import Incident, IncidentId, Severity
from core.notify_format import (
    render_announce,
    render_approval_closed,
    render_approval_request,
    render_escalation,
    render_expiry,
    render_new_incident,
    render_resolution,
)
from core.rca.report import RcaReport

log = logging.getLogger(__name__)

BATCH = 100


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _autostart(start: Callable[[], Any]) -> asyncio.Task[Any] | None:
    """Schedule ``start`` when constructed inside a running loop (a Ray async actor, also after a
    restart by Ray), so notifications resume without anyone calling the actor."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None

    async def run() -> None:
        try:
            await start()
        except AiopsError as e:
            log.warning("notifier autostart failed (the next call retries): %s", e)

    return loop.create_task(run())


class Notifier:
    def __init__(
        self,
        settings: Settings,
        *,
        chat: ChatConfig | None = None,
        channels: Mapping[str, Channel] | None = None,
        clock: Callable[[], datetime] = _utcnow,
        interval: float = 0.5,
        rca_wait: float = 300.0,
        max_age: float = 3600.0,
        autostart: bool = False,
    ) -> None:
        self._settings = settings
        self._chat = chat or load_chat(settings.chat_file)
        self._channels: dict[str, Channel] = dict(channels) if channels is not None else {}
        self._build_channels = channels is None
        self._clock = clock
        self._interval = interval
        self._rca_wait = rca_wait
        self._max_age = timedelta(seconds=max_age)
        self._known = settings.secret_values()
        self._stores: Stores | None = None
        self._records: RunRecords | None = None
        self._gates: GateState | None = None
        self._state: NotifierState | None = None
        self._start_lock = asyncio.Lock()
        self._lock = asyncio.Lock()
        self._loop: asyncio.Task[None] | None = None
        self._closing = False
        self._counts = {"sent": 0, "edited": 0, "skipped": 0, "failed": 0, "passes": 0}
        self._last_error: str | None = None
        self._started_at = time.time()
        self._boot = _autostart(self.start) if autostart else None

    async def _ready(self) -> Stores:
        if self._stores is None:
            async with self._start_lock:
                if self._stores is None:
                    stores = await Stores.open(self._settings)
                    if self._build_channels:
                        self._channels = build_channels(self._settings, self._chat)
                    self._records, self._gates = RunRecords(stores.postgres), GateState(stores.redis)
                    self._state = NotifierState(stores.redis)
                    self._stores = stores
        return self._stores

    async def start(self) -> dict[str, Any]:
        """Start the background loop (idempotent); returns the health view."""
        await self._ready()
        if (self._loop is None or self._loop.done()) and not self._closing:
            self._loop = asyncio.get_running_loop().create_task(self._run())
        return await self.health()

    async def _run(self) -> None:
        while not self._closing:
            try:
                await self.pump()
                self._last_error = None
            except AiopsError as e:
                self._last_error = str(e)[:300]
                log.warning("notifier pass failed, retrying: %s", e)
            await asyncio.sleep(self._interval)

    async def pump(self) -> dict[str, int]:
        """One pass over both logs and the RCA waiting list; returns the counters."""
        await self._ready()
        async with self._lock:
            await self._pump_events()
            await self._pump_notices()
            await self._pump_rca()
            self._counts["passes"] += 1
        return dict(self._counts)

    @property
    def _book(self) -> NotifierState:
        assert self._state is not None  # noqa: S101 - set by _ready
        return self._state

    # -- sending -----------------------------------------------------------------------------

    def _channel(self, target: Target) -> Channel | None:
        channel = self._channels.get(target.channel)
        if channel is None:
            self._counts["skipped"] += 1
            log.info("notifier: no %s channel configured; %s skipped", target.channel, target)
        return channel

    async def _send(self, target: Target, message: Message) -> MessageRef | None:
        """Send; None when skipped (no channel) or refused for good. TemporaryError propagates."""
        channel = self._channel(target)
        if channel is None:
            return None
        try:
            ref = await channel.send(target.chat, message)
        except PermanentError as e:
            self._counts["failed"] += 1
            log.warning("notifier: %s refused a message: %s", target, e)
            return None
        self._counts["sent"] += 1
        return ref

    async def _edit(self, ref: MessageRef, message: Message) -> None:
        channel = self._channels.get(ref.channel)
        if channel is None:
            return
        try:
            await channel.edit(ref, message)
        except PermanentError as e:
            self._counts["failed"] += 1
            log.warning("notifier: editing %s refused: %s", ref, e)
            return
        self._counts["edited"] += 1

    # -- incidents ---------------------------------------------------------------------------

    async def _rca(self, incident_id: str) -> RcaReport | None:
        assert self._stores is not None  # noqa: S101
        stored = await RcaStore(self._stores.postgres).latest(incident_id)
        if stored is None:
            return None
        body = stored.body.get("report", stored.body)
        try:
            return RcaReport.model_validate(body)
        except ValueError:
            return None

    def _new_message(self, notify: Notify, incident: Incident, rca: RcaReport | None) -> Message:
        return render_new_incident(
            notify,
            obj=incident.object,
            namespace=incident.namespace,
            rca=rca,
            base_url=self._chat.link_base_url,
            known=self._known,
        )

    @staticmethod
    def _notify_of(incident: Incident, kind: NotifyKind, detail: Mapping[str, Any]) -> Notify:
        severity = detail.get("severity") or incident.severity.value
        return Notify(
            kind=kind,
            incident_id=IncidentId(incident.id),
            group_key=incident.group_key,
            severity=Severity(severity),
            title=incident.title,
            summary=str(detail.get("summary") or ""),
            playbook=incident.playbook,
            routes=tuple(detail.get("routes") or ()),
        )

    async def _pump_events(self) -> None:
        assert self._stores is not None  # noqa: S101
        rows = await announcements(self._stores.postgres, await self._book.cursor("events"), BATCH)
        for row in rows:
            if row.at >= self._clock() - self._max_age:
                await self._incident_event(row.id, row.incident_id, row.kind, row.detail)
            await self._book.set_cursor("events", row.id)

    async def _event_detail(self, incident_id: str, kind: str, near: int) -> dict[str, Any]:
        assert self._stores is not None  # noqa: S101
        return await nearest_detail(self._stores.postgres, incident_id, kind, near)

    async def _incident_event(self, event_id: int, incident_id: str, kind: str, detail: dict[str, Any]) -> None:
        """One ``notify:<kind>`` row, or a plain ``resolved`` row (see ``_resolution``)."""
        assert self._stores is not None  # noqa: S101
        incident = await self._stores.postgres.get_incident(incident_id)
        if incident is None:
            return
        if kind == "resolved":
            await self._resolution(event_id, incident, detail, announced_only=True)
            return
        try:
            notify_kind = NotifyKind(kind.removeprefix("notify:"))
        except ValueError:
            log.warning("notifier: unknown notification kind %r of %s", kind, incident_id)
            return
        if notify_kind is NotifyKind.RESOLVED:
            resolved = await self._event_detail(incident_id, "resolved", event_id)
            await self._resolution(event_id, incident, {**resolved, **detail}, announced_only=False)
            return
        notify = self._notify_of(incident, notify_kind, detail)
        targets = self._chat.routing.targets_for(incident.namespace, notify.severity, notify.routes)
        threads = await self._book.threads(incident_id)
        for target in targets:
            mark = f"event:{event_id}:{target}"
            if await self._book.marked(mark):
                continue
            root = threads.get(str(target))
            if notify_kind is NotifyKind.ESCALATED:
                change = await self._event_detail(incident_id, "escalated", event_id)
                origin = change.get("from")
                await self._send(
                    target,
                    render_escalation(
                        notify,
                        from_severity=Severity(origin) if origin in {s.value for s in Severity} else None,
                        base_url=self._chat.link_base_url,
                        thread=root,
                        known=self._known,
                    ),
                )
            else:
                rca = await self._rca(incident_id)
                message = self._new_message(notify, incident, rca)
                if root is not None and notify_kind is NotifyKind.NEW:
                    await self._edit(root, message)  # an approval opened the thread first
                else:
                    ref = await self._send(target, message)
                    if ref is not None:
                        await self._book.save_thread(incident_id, str(target), ref)
                if rca is None:
                    await self._wait_for_rca(incident_id, notify)
            await self._book.mark(mark)

    async def _resolution(
        self, event_id: int, incident: Incident, detail: Mapping[str, Any], *, announced_only: bool
    ) -> None:
        """Post "resolved" once per resolution and target.

        The correlator notifies a resolution only of incidents it announced (after
        ``group_wait``); an incident whose thread an approval request opened earlier was
        announced too, so its plain ``resolved`` row is posted in that thread
        (``announced_only``). Both rows share one marker, so it is never posted twice.
        """
        threads = await self._book.threads(incident.id)
        if announced_only:
            targets = tuple(Target.parse(t) for t in threads)
        else:
            notify = self._notify_of(incident, NotifyKind.RESOLVED, detail)
            targets = self._chat.routing.targets_for(incident.namespace, notify.severity, notify.routes)
        when = incident.resolved_at.isoformat() if incident.resolved_at else str(event_id)
        for target in targets:
            mark = f"resolved:{incident.id}:{when}:{target}"
            if await self._book.marked(mark):
                continue
            message = render_resolution(
                self._notify_of(incident, NotifyKind.RESOLVED, detail),
                reason=str(detail.get("reason") or ""),
                base_url=self._chat.link_base_url,
                thread=threads.get(str(target)),
                known=self._known,
            )
            await self._send(target, message)
            await self._book.mark(mark)

    async def _ensure_thread(self, incident: Incident, target: Target) -> MessageRef | None:
        """The incident's root message on ``target``, posting it first when nothing opened the thread yet."""
        root = (await self._book.threads(incident.id)).get(str(target))
        if root is not None:
            return root
        notify = self._notify_of(incident, NotifyKind.NEW, {})
        rca = await self._rca(incident.id)
        ref = await self._send(target, self._new_message(notify, incident, rca))
        if ref is not None:
            await self._book.save_thread(incident.id, str(target), ref)
            if rca is None:
                await self._wait_for_rca(incident.id, notify)
        return ref

    async def _wait_for_rca(self, incident_id: str, notify: Notify) -> None:
        waiting = await self._book.rca_waiting()
        deadline = self._clock() + timedelta(seconds=self._rca_wait)
        waiting[incident_id] = {"deadline": deadline.isoformat(), "detail": {"summary": notify.summary}}
        await self._book.set_rca_waiting(waiting)

    async def _pump_rca(self) -> None:
        """Edit root messages whose incident's RCA report has landed since they were sent."""
        assert self._stores is not None  # noqa: S101
        waiting = await self._book.rca_waiting()
        if not waiting:
            return
        now = self._clock()
        changed = False
        for incident_id, entry in list(waiting.items()):
            rca = await self._rca(incident_id)
            incident = await self._stores.postgres.get_incident(incident_id)
            if rca is not None and incident is not None:
                notify = self._notify_of(incident, NotifyKind.NEW, entry.get("detail") or {})
                for ref in (await self._book.threads(incident_id)).values():
                    await self._edit(ref, self._new_message(notify, incident, rca))
            if rca is not None or incident is None or datetime.fromisoformat(entry["deadline"]) < now:
                del waiting[incident_id]
                changed = True
        if changed:
            await self._book.set_rca_waiting(waiting)

    # -- approvals and runs ------------------------------------------------------------------

    async def _pump_notices(self) -> None:
        assert self._gates is not None  # noqa: S101
        cursor = await self._book.cursor("notices")
        notices = await self._gates.notices(cursor)
        for offset, notice in enumerate(notices[:BATCH]):
            seq = cursor + offset
            try:
                at = datetime.fromisoformat(str(notice.get("at")))
            except ValueError:
                at = self._clock()
            if at >= self._clock() - self._max_age:
                await self._notice(seq, str(notice.get("subject", "")), str(notice.get("text", "")))
            await self._book.set_cursor("notices", seq + 1)

    async def _targets_of(self, incident: Incident) -> tuple[Target, ...]:
        """Where an incident's follow-ups go: where it was announced, else its routes."""
        threads = await self._book.threads(incident.id)
        if threads:
            return tuple(Target.parse(t) for t in threads)
        return self._chat.routing.targets_for(incident.namespace, incident.severity)

    async def _notice(self, seq: int, subject: str, text: str) -> None:
        assert self._records is not None  # noqa: S101
        assert self._stores is not None  # noqa: S101
        approval = await self._records.get_approval(subject) if subject else None
        if approval is not None:
            await self._approval(approval)
            return
        found = await self._records.get_run(subject) if subject.startswith("run-") else None
        incident = None
        if found is not None and found[0].incident_id:
            incident = await self._stores.postgres.get_incident(found[0].incident_id)
        if incident is not None:
            targets = await self._targets_of(incident)
        else:
            targets = self._chat.routing.targets_for(None, Severity.CRITICAL)
        for target in targets:
            mark = f"notice:{seq}:{target}"
            if await self._book.marked(mark):
                continue
            root = await self._ensure_thread(incident, target) if incident is not None else None
            message = render_announce(Announce(subject=subject, text=text), thread=root, known=self._known)
            await self._send(target, message)
            await self._book.mark(mark)

    async def _approval(self, approval: Approval) -> None:
        assert self._records is not None  # noqa: S101
        assert self._stores is not None  # noqa: S101
        found = await self._records.get_run(approval.run_id)
        incident_id = found[0].incident_id if found is not None else None
        incident = await self._stores.postgres.get_incident(incident_id) if incident_id else None
        if incident is not None:
            targets = await self._targets_of(incident)
        else:
            targets = self._chat.routing.targets_for(approval.namespace, Severity.WARNING)
        refs = await self._book.approval_refs(approval.id)
        for target in targets:
            root = await self._ensure_thread(incident, target) if incident is not None else None
            ref = refs.get(str(target))
            if ref is None:
                if approval.state is ApprovalState.PENDING:
                    message = render_approval_request(
                        approval, now=self._clock(), incident_id=incident_id, thread=root, known=self._known
                    )
                else:
                    message = render_approval_closed(approval, thread=root, known=self._known)
                sent = await self._send(target, message)
                if sent is not None:
                    await self._book.save_approval_ref(approval.id, str(target), sent)
            elif approval.state is not ApprovalState.PENDING or approval.decisions:
                await self._edit(ref, render_approval_closed(approval, thread=root, known=self._known))
            if approval.state is ApprovalState.EXPIRED:
                mark = f"expiry:{approval.id}:{target}"
                if not await self._book.marked(mark):
                    await self._send(target, render_expiry(approval, thread=root, known=self._known))
                    await self._book.mark(mark)

    # -- lifecycle ---------------------------------------------------------------------------

    async def health(self) -> dict[str, Any]:
        """In-memory state only: answers at once, also while the stores are still opening."""
        return {
            "ok": self._last_error is None,
            "channels": sorted(self._channels),
            "running": self._loop is not None and not self._loop.done(),
            "counts": dict(self._counts),
            "last_error": self._last_error,
            "uptime_s": round(time.time() - self._started_at),
        }

    def metrics_text(self) -> str:
        """This process's chat API metrics (sends, retries, rate limits), for the one scrape."""
        return shared(ChatMetrics).render()

    async def close(self) -> None:
        self._closing = True
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
        for channel in self._channels.values():
            close = getattr(channel, "close", None)
            if close is not None:
                await close()
        if self._stores is not None:
            await self._stores.close()
            self._stores = None
