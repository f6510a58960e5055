"""The console of ``aiops demo``: what the platform does, as it happens, and commands from stdin.

It polls the platform the way any client would: incidents and their RCA reports through
the ops API, pending approvals and the coordinator's notices (step outcomes,
verifications) from ``aiops-approvals``. Everything it prints goes through
``ConsoleChannel`` as ``core.chat.Message`` values (approval requests rendered by
``core.notify_format``), and every line typed is parsed by ``core.chat.parse``, the same
parser Telegram and Slack use. The console user is ``cli:demo``; the coordinator checks
the policy for each decision, exactly as for any other approver.

It stops on ``timeout``, or once input has ended (unless ``keep``) and nothing is left to
do: every incident with a playbook has a run that is finished or waiting for a decision
nobody can give any more, no step is running, and nothing changed for ``settle`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from datetime import UTC, datetime
from typing import Any, TextIO

import httpx
import ray

from actors import remote
from adapters.chat_channel import ConsoleChannel
from config.settings import Settings
from core.approvals import Approval
from core.chat import (
    HELP_TEXT,
    USAGE,
    Ack,
    ChatEvent,
    Decision,
    Help,
    Ignored,
    Invalid,
    ListApprovals,
    ListIncidents,
    Message,
    Pause,
    Question,
    Resume,
    ShowIncident,
    SilenceRequest,
    Status,
    Unknown,
)
from core.errors import AiopsError
from core.models import fingerprint_of
from core.notify_format import render_approval_closed, render_approval_request
from deployments.http import cause_of

WHO = "demo"  # the console channel makes this the policy identity cli:demo
_WAITING = frozenset({"awaiting_approval"})
_FINAL = frozenset({"succeeded", "failed", "rolled_back", "rejected", "expired", "blocked", "cancelled"})
_NOTICE_CHARS = 200
_MARK = {"critical": "🔴", "warning": "🟠", "info": "🔵"}


def run_id_for(incident_id: str, playbook: str) -> str:
    """The coordinator's run id for an incident and playbook (it is derived, not stored on the incident)."""
    return "run-" + fingerprint_of(incident_id, playbook)[:12]


def _approval(view: dict[str, Any]) -> Approval:
    return Approval.from_storage({k: v for k, v in view.items() if k not in ("text", "required", "approvers")})


def _report_of(rca: dict[str, Any]) -> dict[str, Any]:
    """The report fields (root cause, evidence, ...) inside a stored RCA body."""
    body = rca.get("report")
    if not isinstance(body, dict):
        return {}
    inner = body.get("report", body)
    return inner if isinstance(inner, dict) else {}


def _elapsed(start: str | None, end: str | None) -> str:
    if not start or not end:
        return ""
    seconds = (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
    return f" after {seconds:.0f}s"


class DemoConsole:
    def __init__(
        self,
        settings: Settings,
        *,
        api: str,
        poll: float = 1.0,
        settle: float = 5.0,
        out: TextIO | None = None,
    ) -> None:
        self._settings = settings
        self._api = api.rstrip("/")
        self._poll = poll
        self._settle = settle
        self._out = out or sys.stdout
        self._channel = ConsoleChannel(self._out, None, user=WHO)
        self._coordinator = remote.approvals(settings)
        self._engine = remote.rule_engine(settings)
        token = settings.secret("ops_api_token") or ""
        self._http = httpx.AsyncClient(base_url=self._api, headers={"Authorization": f"Bearer {token}"}, timeout=15.0)
        self._incidents: dict[str, dict[str, Any]] = {}
        self._diagnosed: set[str] = set()
        self._runs: dict[str, str] = {}
        self._offered: set[str] = set()
        self._pending: dict[str, dict[str, Any]] = {}
        self._notice_seq = 0
        self._changed_at = time.monotonic()
        self._eof = False

    # -- output ----------------------------------------------------------------------------
    async def say(self, headline: str, *, fields: tuple[tuple[str, str], ...] = (), body: tuple[str, ...] = ()) -> None:
        kept = tuple((key, value) for key, value in fields if value)
        await self._channel.send("console", Message(headline=headline, fields=kept, body=body))

    # -- the loop --------------------------------------------------------------------------
    async def run(self, inp: TextIO | None, *, keep: bool = False, stop_after: float | None = None) -> str:
        """Show what happens and obey commands until told to stop; returns why it stopped."""
        reader = asyncio.get_running_loop().create_task(self._read(inp))
        deadline = None if stop_after is None else time.monotonic() + stop_after
        try:
            while True:
                try:
                    await self.refresh()
                except (httpx.HTTPError, ray.exceptions.RayError, AiopsError) as e:
                    print(
                        f"  (platform did not answer: {type(e).__name__}: {str(e)[:200]})", file=self._out, flush=True
                    )
                if deadline is not None and time.monotonic() >= deadline:
                    return f"stopping: --timeout of {stop_after:g}s reached"
                if self._eof and not keep and self.settled():
                    left = f"; {len(self._pending)} approval(s) left undecided" if self._pending else ""
                    return f"stopping: input ended and nothing is left to do{left}"
                await asyncio.sleep(self._poll)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            await self._http.aclose()

    def settled(self) -> bool:
        if not self._incidents or time.monotonic() - self._changed_at < self._settle:
            return False
        for incident in self._incidents.values():
            playbook = incident.get("playbook")
            if incident["status"] == "resolved" or not playbook:
                continue
            # No run after the quiet period means the playbook was refused for it (announced).
            status = self._runs.get(run_id_for(incident["id"], playbook))
            if status is not None and status not in _FINAL | _WAITING:
                return False
        return True

    async def _read(self, inp: TextIO | None) -> None:
        if inp is not None:
            reader = ConsoleChannel(self._out, inp, user=WHO)
            async for event in reader.commands():
                try:
                    await self.handle(event)
                except (httpx.HTTPError, ray.exceptions.RayError, AiopsError) as e:
                    await self.say(f"✖ {type(e).__name__}: {str(cause_of(e))[:300]}")
        self._eof = True
        await self.say("(input ended: no more decisions can be typed; stopping once nothing is left to do)")

    def _changed(self) -> None:
        self._changed_at = time.monotonic()

    # -- polling ---------------------------------------------------------------------------
    async def refresh(self) -> None:
        await self._refresh_incidents()
        await self._refresh_notices()
        await self._refresh_approvals()
        await self._refresh_runs()

    async def _refresh_incidents(self) -> None:
        answer = await self._http.get("/api/incidents", params={"limit": 1000})
        answer.raise_for_status()
        for incident in reversed(answer.json()["incidents"]):
            known = self._incidents.get(incident["id"])
            self._incidents[incident["id"]] = incident
            if known is None:
                self._changed()
                await self._show_new(incident)
            elif known["status"] != incident["status"]:
                self._changed()
                await self._show_status(incident)
            if incident["id"] not in self._diagnosed:
                await self._show_rca(incident["id"])

    async def _show_new(self, incident: dict[str, Any]) -> None:
        obj = incident.get("object") or {}
        namespace = str(obj.get("namespace") or "")
        where = f"{obj.get('kind', '')} {namespace + '/' if namespace else ''}{obj.get('name', '')}"
        await self.say(
            f"{_MARK.get(incident['severity'], '•')} New {incident['severity']} incident: {incident['title']}",
            fields=(
                ("Incident", incident["id"]),
                ("Object", where.strip()),
                ("Playbook", incident.get("playbook") or "none (no automatic action)"),
            ),
        )

    async def _show_status(self, incident: dict[str, Any]) -> None:
        if incident["status"] == "resolved":
            took = _elapsed(incident.get("opened_at"), incident.get("resolved_at"))
            await self.say(f"✅ Resolved{took}: {incident['title']}", fields=(("Incident", incident["id"]),))
        else:
            await self.say(f"• Incident {incident['id']} is now {incident['status']}: {incident['title']}")

    async def _show_rca(self, incident_id: str) -> None:
        answer = await self._http.get(f"/api/incidents/{incident_id}")
        if answer.status_code != 200:
            return
        rca = answer.json().get("rca")
        if not rca:
            return
        self._diagnosed.add(incident_id)
        self._changed()
        inner = _report_of(rca)
        cause = str(inner.get("root_cause") or rca.get("summary") or "unknown")
        await self.say(
            f"🔎 Root cause of {incident_id}: {cause}",
            fields=(
                ("Category", str(rca.get("category"))),
                ("Confidence", f"{round(float(rca.get('confidence') or 0) * 100)}%"),
                (
                    "Diagnosis",
                    f"{rca.get('mode')} (offline)" if rca.get("mode") == "deterministic" else str(rca.get("mode")),
                ),
                ("Suggested playbook", str(inner.get("recommended_playbook") or "")),
            ),
            body=tuple(f"• {line}"[:240] for line in list(inner.get("evidence") or [])[:3]),
        )

    async def _refresh_notices(self) -> None:
        notices = await self._coordinator.notices.remote(self._notice_seq)
        for notice in notices:
            self._notice_seq = max(self._notice_seq, int(notice["seq"]) + 1)
            self._changed()
            text = str(notice["text"]).splitlines()[0] if notice.get("text") else ""
            await self.say(f"▸ {text if len(text) <= _NOTICE_CHARS else text[: _NOTICE_CHARS - 1] + '…'}")

    async def _refresh_approvals(self) -> None:
        pending = {a["id"]: a for a in await self._coordinator.list_approvals.remote("pending")}
        for approval_id, view in pending.items():
            if approval_id not in self._offered:
                self._offered.add(approval_id)
                self._changed()
                incident = self._incident_of_run(view["run_id"])
                message = render_approval_request(
                    _approval(view), now=datetime.now(UTC), incident_id=incident, known=self._settings.secret_values()
                )
                await self._channel.send("console", message)
                print(f"approve> waiting for your decision on {approval_id}", file=self._out, flush=True)
        self._pending = pending

    def _incident_of_run(self, run_id: str) -> str | None:
        for incident in self._incidents.values():
            if incident.get("playbook") and run_id_for(incident["id"], incident["playbook"]) == run_id:
                return str(incident["id"])
        return None

    async def _refresh_runs(self) -> None:
        for incident in list(self._incidents.values()):
            playbook = incident.get("playbook")
            if not playbook:
                continue
            run_id = run_id_for(incident["id"], playbook)
            if self._runs.get(run_id) in _FINAL:
                continue
            try:
                view = await self._coordinator.get_run.remote(run_id)
            except ray.exceptions.RayTaskError:
                continue  # not started yet
            status = str(view["status"])
            if self._runs.get(run_id) != status:
                self._runs[run_id] = status
                self._changed()
                if status in _FINAL:
                    await self.say(f"■ Run {run_id} ({playbook}) for {incident['id']} finished: {status}")

    # -- commands --------------------------------------------------------------------------
    async def handle(self, event: ChatEvent) -> None:
        command = event.command
        if isinstance(command, Decision):
            await self._decide(command, event.identity)
        elif isinstance(command, ListIncidents):
            await self._list_incidents()
        elif isinstance(command, ShowIncident):
            await self._show_incident(command.incident_id)
        elif isinstance(command, ListApprovals):
            await self._list_approvals()
        elif isinstance(command, Status):
            await self._status()
        elif isinstance(command, Ack):
            result = await self._engine.acknowledge.remote(command.incident_id, event.identity)
            await self.say(f"acknowledged {command.incident_id}: {result}")
        elif isinstance(command, Pause | Resume):
            call = self._coordinator.pause if isinstance(command, Pause) else self._coordinator.resume
            result = await call.remote(event.identity, channel="console")
            await self.say("remediation paused" if result["paused"] else "remediation resumed")
        elif isinstance(command, Help):
            await self.say(USAGE[command.topic] if command.topic else HELP_TEXT)
        elif isinstance(command, Question):
            await self.say("The demo runs offline, without the assistant. /incident <id> shows the diagnosis.")
        elif isinstance(command, SilenceRequest):
            await self.say("Silences are not offered in the console demo.")
        elif isinstance(command, Invalid):
            await self.say(f"✖ {command.message}")
        elif isinstance(command, Unknown):
            await self.say(f"✖ {command.reason}", body=(command.help,))
        elif isinstance(command, Ignored):
            return

    async def _decide(self, command: Decision, who: str) -> None:
        try:
            result = await self._coordinator.decide.remote(
                command.approval_id,
                who=who,
                decision=command.verdict.value,
                channel="console",
                confirm=command.confirm,
                note=command.note,
            )
        except ray.exceptions.RayTaskError as e:
            await self.say(f"✖ {command.verdict.value} {command.approval_id} refused: {cause_of(e)}")
            return
        self._changed()
        await self._channel.send("console", render_approval_closed(_approval(result["approval"])))
        executed = ", ".join(result.get("executed") or []) or "nothing yet"
        await self.say(f"outcome: {result['outcome']}; executed: {executed}; run is {result['status']}")

    async def _list_incidents(self) -> None:
        open_ones = [i for i in self._incidents.values() if i["status"] != "resolved"]
        lines = tuple(f"{i['id']} [{i['severity']}] {i['status']}: {i['title']}" for i in open_ones)
        await self.say(f"{len(open_ones)} open incident(s)", body=lines)

    async def _show_incident(self, incident_id: str) -> None:
        answer = await self._http.get(f"/api/incidents/{incident_id}")
        if answer.status_code != 200:
            await self.say(f"✖ {answer.json().get('error', answer.text)[:300]}")
            return
        data = answer.json()
        rca = data.get("rca") or {}
        inner = _report_of(rca)
        lines = [f"Root cause: {inner.get('root_cause') or 'no diagnosis yet'}"]
        lines += [f"• {line}" for line in inner.get("evidence") or []]
        lines += [f"Note: {note}" for note in inner.get("risk_notes") or []]
        await self.say(
            f"{data['id']} [{data['severity']}] {data['status']}: {data['title']}",
            fields=(("Playbook", data.get("playbook") or "none"), ("Signals", str(data.get("signal_count")))),
            body=tuple(line[:300] for line in lines[:20]),
        )

    async def _list_approvals(self) -> None:
        pending = await self._coordinator.list_approvals.remote("pending")
        lines = tuple(f"{a['id']}: {a['text']}" for a in pending)
        await self.say(f"{len(pending)} pending approval(s)", body=lines)

    async def _status(self) -> None:
        health = (await self._http.get("/health")).json()
        parts = tuple(f"{name}: {item['status']}" for name, item in health["subsystems"].items())
        open_count = sum(1 for i in self._incidents.values() if i["status"] != "resolved")
        await self.say(
            f"platform {health['status']}; {open_count} open incident(s); {len(self._pending)} pending approval(s)",
            body=parts,
        )
