"""ApprovalCoordinator: playbook runs, approvals, guardrails, execution, verification, notices.

A plain class; ``actors/remote.py`` makes it the detached Ray actor ``aiops-approvals``. The
decisions are core's (``core.playbooks.advance``, ``core.playbooks.decide``,
``core.guardrails.check``); this class only performs their effects, in this order: persist
the new run state, then announce, audit, ask for approval, execute, verify. Every public
method is async and takes and returns JSON-able dicts so the Ray actor and HTTP layers can
call it directly.

Nothing twice: a tool call is claimed by its execution key (``exec:<run>:<step>``) in
PostgreSQL *before* it is made, so two approvals racing, a retried decision or a restarted
coordinator can never run a step a second time; a step whose call was claimed but never
finished is left to time out as "effect unknown, check by hand". Nothing lost: runs and
approvals live in PostgreSQL; a new instance resumes verifications and re-offers approvals
from there. Every decision and every refusal is an audit row naming who, the channel, the
exact tool call and the outcome.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from pydantic import ValidationError

from actors.run_engine import SYSTEM, RunEngine, approval_view
from core.approvals import ApprovalState, Decide, Verdict
from core.authz import identity_problem
from core.errors import AiopsError, ApprovalError, InputError, NotFound, TemporaryError
from core.models import Incident, RunId, fingerprint_of
from core.playbooks import (
    CancelRun,
    Run,
    RunStatus,
    Start,
    decide,
)
from core.templates import incident_context

log = logging.getLogger(__name__)

_FINAL = frozenset(s.value for s in RunStatus if s.final)


class ApprovalCoordinator(RunEngine):
    """The public API (JSON-able dicts in and out); see ``RunEngine`` for the constructor."""

    async def start_run(
        self,
        incident: dict[str, Any],
        playbook: str,
        *,
        requested_by: str | None = None,
        rca: dict[str, Any] | None = None,
        dry_run: bool | None = None,
    ) -> dict[str, Any]:
        """Plan and start ``playbook`` for ``incident`` (idempotent per incident and playbook)."""
        records, _ = await self._ready()
        try:
            inc = Incident.model_validate(incident)
        except ValidationError as e:
            raise InputError(f"not an incident: {e.error_count()} problem(s): {e.errors()[0]['msg']}") from e
        book = self._playbooks.get(playbook)
        if book is None:
            raise NotFound(f"unknown playbook {playbook!r}; known: {', '.join(sorted(self._playbooks))}")
        run_id = RunId("run-" + fingerprint_of(str(inc.id), playbook)[:12])
        actor = requested_by or SYSTEM
        async with self._lock:
            self._executed = []
            existing = await records.get_run(run_id)
            if existing is not None:
                return await self._run_view(existing[0], created=False)
            now = self._clock()
            if requested_by is not None:
                allowed, reason = self._policy.authz.can_request(requested_by, inc.namespace)
                if not allowed:
                    await self._refusal(actor, "playbook", f"start_run({playbook})", run_id, reason, now)
                    raise ApprovalError(reason)
            context = incident_context(inc, rca)
            dry = self._policy.guardrails.dry_run if dry_run is None else dry_run
            try:
                run = Run.from_scratch(
                    run_id,
                    book,
                    context,
                    inc.namespace,
                    now,
                    incident_id=inc.id,
                    requested_by=requested_by,
                    dry_run=dry,
                )
            except (AiopsError, ValueError) as e:
                text = f"playbook {playbook} refused for incident {inc.id}: {e}"
                await self._refusal(actor, "playbook", f"start_run({playbook})", run_id, str(e), now)
                await self._announce(run_id, text, now)
                raise
            stored = {"vars": context, "incident": inc.model_dump(mode="json")}
            if not await records.insert_run(run, stored):
                again = await records.get_run(run_id)
                if again is not None:
                    return await self._run_view(again[0], created=False)
            self._contexts[run.id] = stored
            run = await self._advance(run, Start(), actor=actor)
            return await self._run_view(run, created=True)

    async def get_run(self, run_id: str) -> dict[str, Any]:
        records, _ = await self._ready()
        found = await records.get_run(run_id)
        if found is None:
            raise NotFound(f"unknown run id {run_id!r}")
        return await self._run_view(found[0])

    async def cancel_run(self, run_id: str, *, who: str, reason: str = "", channel: str = "api") -> dict[str, Any]:
        records, _ = await self._ready()
        async with self._lock:
            found = await records.get_run(run_id)
            if found is None:
                raise NotFound(f"unknown run id {run_id!r}")
            run = await self._advance(found[0], CancelRun(by=who, reason=reason), actor=who, channel=channel)
            return await self._run_view(run)

    async def _run_view(self, run: Run, *, created: bool | None = None) -> dict[str, Any]:
        records, _ = await self._ready()
        approvals = await records.list_approvals(run_id=run.id)
        pending = next((a for a in approvals if a.state is ApprovalState.PENDING), None)
        view: dict[str, Any] = {
            "run": run.for_storage(),
            "status": run.status.value,
            "pending_approval": approval_view(pending) if pending else None,
            "approvals": [approval_view(a) for a in approvals],
        }
        if created is not None:
            view["created"] = created
        return view

    # -- the effect loop -------------------------------------------------------------------

    async def decide(
        self,
        approval_id: str,
        *,
        who: str,
        decision: str,
        channel: str,
        confirm: bool = False,
        note: str = "",
    ) -> dict[str, Any]:
        """Approve or reject; on approval the step runs here, exactly once. Raises NotFound/ApprovalError/InputError."""
        records, gates = await self._ready()
        key = approval_id.strip().lower()
        async with self._lock:
            self._executed = []
            now = self._clock()
            approval = await records.get_approval(key)
            what = approval.action.describe() if approval else f"decide({key})"
            problem = identity_problem(who)
            if problem:
                await self._refusal(who, channel, what, key, problem, now)
                raise InputError(problem)
            if approval is None:
                await self._refusal(who, channel, what, key, f"unknown approval id {approval_id!r}", now)
                raise NotFound(f"unknown approval id {approval_id!r}")
            try:
                verdict = Verdict(decision.strip().lower())
            except ValueError as e:
                await self._refusal(who, channel, what, key, f"unknown decision {decision!r}", now)
                raise InputError(f"decision must be approve or reject, got {decision!r}") from e
            found = await records.get_run(approval.run_id)
            if found is None:
                raise NotFound(f"approval {key} names run {approval.run_id}, which is not stored")
            run = found[0]
            if approval.state is ApprovalState.PENDING and not approval.is_due(now):
                allowed, reason = self._policy.authz.can_approve(who, approval.risk, approval.namespace)
                if not allowed:
                    await self._refusal(who, channel, what, key, reason, now)
                    raise ApprovalError(f"{who} may not decide approval {key}: {reason}")
            role = self._policy.authz.role_for(who, approval.namespace)
            event = Decide(who=who, role=role, channel=channel, decision=verdict, confirm=confirm, note=note)
            try:
                new_run, new_approval, effects = decide(run, approval, event, now)
            except ApprovalError as e:
                await self._refusal(who, channel, what, key, str(e), now)
                raise
            if not await records.save_decision(approval, new_approval, new_run if new_run != run else None):
                reason = f"approval {key} was decided concurrently elsewhere; look it up again"
                await self._refusal(who, channel, what, key, reason, now)
                raise ApprovalError(reason)
            self._metrics.approval_closed(new_approval, now)
            if new_approval.state.final:
                await gates.forget_pending(key)
            else:
                await gates.cache_pending(new_approval, (new_approval.expires_at - now).total_seconds())
            final = await self._perform(new_run, effects, now, actor=who, channel=channel)
            if new_approval.state is ApprovalState.EXPIRED:
                raise ApprovalError(
                    f"expired: approval {key} expired at {new_approval.expires_at.isoformat()}; the decision by"
                    f" {who} came too late and nothing was run"
                )
            view = await self._run_view(final)
            return {
                "approval": approval_view(new_approval),
                "outcome": new_approval.state.value if new_approval.state.final else "recorded",
                "executed": list(self._executed),
                **view,
            }

    async def list_approvals(self, state: str | None = "pending") -> list[dict[str, Any]]:
        records, _ = await self._ready()
        if state is not None and state not in {s.value for s in ApprovalState}:
            raise InputError(f"unknown approval state {state!r}; one of {', '.join(s.value for s in ApprovalState)}")
        return [approval_view(a) for a in await records.list_approvals(state)]

    # -- pause switch, notices, audit, health ----------------------------------------------
    async def pause(self, who: str, *, channel: str = "api") -> dict[str, Any]:
        return await self._switch(who, channel, pause=True)

    async def resume(self, who: str, *, channel: str = "api") -> dict[str, Any]:
        return await self._switch(who, channel, pause=False)

    async def _switch(self, who: str, channel: str, *, pause: bool) -> dict[str, Any]:
        _, gates = await self._ready()
        now = self._clock()
        action = "pause" if pause else "resume"
        allowed, reason = self._policy.authz.can_request(who, None)
        if not allowed:
            await self._refusal(who, channel, action, "guardrails", reason, now)
            raise ApprovalError(reason)
        if pause:
            await gates.set_paused(who, now)
        else:
            await gates.clear_paused()
        await self._audit(who, channel, action, "guardrails", "paused" if pause else "resumed", {}, now)
        state = "paused: no mutating action will run" if pause else "resumed: approved actions may run again"
        await self._announce("guardrails", f"remediation {state} (by {who})", now)
        return {"paused": pause, "by": who, "at": now.isoformat()}

    async def paused(self) -> bool:
        _, gates = await self._ready()
        return self._policy.guardrails.paused or await gates.paused_by() is not None

    async def notices(self, since: int = 0) -> list[dict[str, Any]]:
        """Announcements for chat, oldest first, from sequence number ``since``."""
        _, gates = await self._ready()
        return await gates.notices(since)

    async def audit_trail(self, run_id: str) -> list[dict[str, Any]]:
        """Audit rows of a run and its approvals, in order."""
        records, _ = await self._ready()
        approvals = await records.list_approvals(run_id=run_id)
        return await records.audit_rows([run_id, *(a.id for a in approvals)])

    async def executions(self, run_id: str | None = None) -> list[dict[str, Any]]:
        records, _ = await self._ready()
        return await records.executions(run_id)

    def metrics_text(self) -> str:
        return self._metrics.render()

    async def health(self) -> dict[str, Any]:
        records, gates = await self._ready()
        assert self._stores is not None  # noqa: S101 - set by _ready
        status: dict[str, Any] = {
            "playbooks": len(self._playbooks),
            "verifications_running": len(self._verifying),
            "uptime_s": round(time.time() - self._started_at),
            "tools_started": self._tools is not None,
        }
        try:
            status["postgres_latency_ms"] = round(await self._stores.postgres.ping() * 1000, 2)
            status["pending_approvals"] = len(await records.list_approvals("pending"))
            status["active_runs"] = len(await records.active_runs(_FINAL))
        except TemporaryError as e:
            status["postgres_error"] = str(e)
        try:
            status["redis_latency_ms"] = round(await self._stores.redis.ping() * 1000, 2)
            status["paused"] = await self.paused()
        except TemporaryError as e:
            status["redis_error"] = str(e)
        status["ok"] = "postgres_error" not in status and "redis_error" not in status
        return status
