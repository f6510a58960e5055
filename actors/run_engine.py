"""The effect loop under the ApprovalCoordinator: run state in, tool calls and notices out.

``core.playbooks.advance`` decides; this class performs what it asks for, in order: save the
new run state first, then announce, audit, request approvals, execute steps, start
verifications. Each ``ExecuteStep``/``ExecuteRollback`` is claimed by its execution key in
PostgreSQL *before* the tool is called, so a step is never run twice (two approvals racing,
a retried decision, a restarted coordinator, a second instance); a claimed call that never
reported back is left to core's time-out ("effect unknown, check by hand"), never retried.
Guardrails (``core.guardrails.check``) are asked right before every mutating call, with the
pause switch, budget history and breaker count read from Redis.

Split from ``actors/approvals.py`` (the public API) only to keep both modules short.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from actors.stores import Stores
from actors.verify import verify
from adapters.approval_store import AuditRow, GateState, RunRecords
from adapters.mcp_client import KubeMcpClient
from adapters.metrics import ApprovalMetrics
from config.loader import default_playbooks_dir, load_playbooks
from config.policy import LoadedPolicy, load_policy
from config.schema import PlaybookSpec
from config.settings import Settings
from core.approvals import Approval, ApprovalState, Cancel, Expire, required_approvals
from core.approvals import advance as advance_approval
from core.effects import Announce, Audit, Refused
from core.errors import AiopsError, TemporaryError
from core.guardrails import GuardrailContext, GuardrailVerdict, check, workload_of
from core.models import ApprovalId, fingerprint_of
from core.plans import Playbook
from core.playbooks import (
    CancelApproval,
    CheckPrecondition,
    ExecuteRollback,
    ExecuteStep,
    PreconditionResult,
    RequestApproval,
    RollbackResult,
    Run,
    RunEvent,
    RunStatus,
    StartVerify,
    StepBlocked,
    StepResult,
    Tick,
    VerifyResult,
    advance,
    event_from_approval,
)
from core.tools import TOOLS, Action

log = logging.getLogger(__name__)

SYSTEM = "aiops"
_FINAL = frozenset(s.value for s in RunStatus if s.final)
_TICKED = (RunStatus.CHECKING, RunStatus.EXECUTING, RunStatus.ROLLING_BACK, RunStatus.VERIFYING)
_POD_OWNER_LABELS = ("deployment", "statefulset", "daemonset")


class Tools(Protocol):
    async def call(self, tool: str, params: Mapping[str, Any]) -> dict[str, Any]: ...


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _summary(result: Mapping[str, Any], limit: int = 300) -> str:
    text = json.dumps(result, separators=(",", ":"), default=str, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def approval_view(approval: Approval) -> dict[str, Any]:
    return {
        **approval.for_storage(),
        "text": approval.describe(),
        "required": approval.required,
        "approvers": list(approval.approvers),
    }


class RunEngine:
    def __init__(
        self,
        settings: Settings,
        *,
        tools: Tools | None = None,
        clock: Callable[[], datetime] = _utcnow,
        policy: LoadedPolicy | None = None,
        playbooks: Mapping[str, PlaybookSpec | Playbook] | None = None,
        verify_interval: float = 1.0,
        tick_interval: float = 1.0,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._policy = policy or load_policy(settings.policy_file)
        specs = (
            playbooks if playbooks is not None else load_playbooks([settings.playbooks_dir or default_playbooks_dir()])
        )
        self._playbooks: dict[str, Playbook] = {
            name: spec.to_core() if isinstance(spec, PlaybookSpec) else spec for name, spec in specs.items()
        }
        self._tools: Tools | None = tools
        self._own_tools: KubeMcpClient | None = None
        self._verify_interval = verify_interval
        self._tick_interval = tick_interval
        self._stores: Stores | None = None
        self._records: RunRecords | None = None
        self._gates: GateState | None = None
        self._start_lock = asyncio.Lock()
        self._tools_lock = asyncio.Lock()
        self._lock = asyncio.Lock()
        self._contexts: dict[str, dict[str, Any]] = {}
        self._verifying: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._orphans: set[str] = set()  # runs found executing/rolling back at start (see _unclaimed)
        self._loop_task: asyncio.Task[None] | None = None
        self._executed: list[str] = []
        self._closing = False
        self._started_at = time.time()
        self._metrics = ApprovalMetrics()

    # -- lifecycle -------------------------------------------------------------------------
    async def _ready(self) -> tuple[RunRecords, GateState]:
        if self._records is None or self._gates is None:
            async with self._start_lock:
                if self._records is None or self._gates is None:
                    stores = await Stores.open(self._settings)
                    self._stores = stores
                    records, gates = RunRecords(stores.postgres), GateState(stores.redis)
                    self._records, self._gates = records, gates
                    await self._resume()
                    self._loop_task = asyncio.get_running_loop().create_task(self._background())
        return self._records, self._gates

    async def _get_tools(self) -> Tools:
        if self._tools is None:
            async with self._tools_lock:
                if self._tools is None:
                    client = KubeMcpClient(kubeconfig=self._settings.kubeconfig, read_only=False)
                    await client.start()
                    self._own_tools = client
                    self._tools = client
        return self._tools

    async def close(self) -> None:
        self._closing = True
        tasks = [t for t in (self._loop_task, *self._verifying.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._verifying.clear()
        if self._own_tools is not None:
            await self._own_tools.close()
            self._own_tools = self._tools = None
        if self._stores is not None:
            await self._stores.close()
            self._stores = self._records = self._gates = None

    async def _resume(self) -> None:
        """After a restart: re-offer approvals, restart verifications of unfinished runs, and note
        the runs left executing or rolling back (the tick makes their call if none was claimed)."""
        records, gates = self._records, self._gates
        assert records is not None  # noqa: S101 - called from _ready
        assert gates is not None  # noqa: S101
        for run in await records.active_runs(_FINAL):
            step = run.current
            if step is None:
                continue
            if run.status in (RunStatus.EXECUTING, RunStatus.ROLLING_BACK):
                self._orphans.add(run.id)
            if run.status is RunStatus.AWAITING_APPROVAL:
                request = RequestApproval(
                    run_id=run.id,
                    step=step.name,
                    risk=step.risk,
                    action=step.action,
                    rollback=step.rollback,
                    required_approvals=required_approvals(step.risk),
                    requested_by=run.requested_by,
                )
                await self._request_approval(run, request, self._clock(), quiet=True)
            elif run.status is RunStatus.VERIFYING and step.verify is not None:
                verify_plan = step.verify
                self._start_verify(
                    StartVerify(
                        run_id=run.id,
                        step=step.name,
                        check=verify_plan.check,
                        params=verify_plan.params,
                        timeout=verify_plan.timeout,
                        stable_for=verify_plan.stable_for,
                    )
                )

    async def _background(self) -> None:
        while not self._closing:
            try:
                await self.expire_due()
                await self._tick_runs()
            except TemporaryError as e:
                log.warning("approval coordinator tick failed, retrying: %s", e)
            except AiopsError:
                log.exception("approval coordinator tick failed; the loop keeps running")
            await asyncio.sleep(self._tick_interval)

    async def _tick_runs(self) -> None:
        records, _ = await self._ready()
        async with self._lock:
            for run in await records.active_runs(_FINAL):
                step = run.current
                if run.status not in _TICKED or step is None:
                    continue
                if run.status is RunStatus.VERIFYING and (run.id, step.name) in self._verifying:
                    continue  # the verification task keeps its own deadline
                effect = await self._unclaimed(run)
                if effect is not None:
                    # A coordinator died between saving the run's move and claiming its call: make
                    # the call now, within the step's time-out; the claim keeps it to one call.
                    event = await self._resolve(run, effect, SYSTEM, "resume")
                    if event is not None:
                        await self._advance(run, event)
                    continue
                await self._advance(run, Tick())

    async def _unclaimed(self, run: Run) -> ExecuteStep | ExecuteRollback | None:
        """The call ``run`` waits for if it was never claimed and is still in time, else None.

        Only for runs this instance found executing or rolling back when it started: a run that
        another live instance is deciding right now is briefly in that state too, and must be
        left to that instance's guardrail check."""
        step, started = run.current, run.phase_started_at
        if run.id not in self._orphans:
            return None
        if step is None or started is None:
            return None
        effect: ExecuteStep | ExecuteRollback
        if run.status is RunStatus.EXECUTING:
            phase = "step"
            effect = ExecuteStep(
                run_id=run.id, step=step.name, action=step.action, risk=step.risk, timeout=step.timeout
            )
        elif run.status is RunStatus.ROLLING_BACK and step.rollback is not None:
            phase = "rollback"
            effect = ExecuteRollback(run_id=run.id, step=step.name, action=step.rollback, timeout=step.timeout)
        else:
            return None
        if (self._clock() - started).total_seconds() >= step.timeout:
            return None  # too late: the tick fails it as "effect unknown, check by hand"
        records, _ = await self._ready()
        key = execution_key(run.id, step.name, phase)
        claimed = any(e["key"] == key for e in await records.executions(run.id))
        self._orphans.discard(run.id)  # looked at once; from now on the tick's time-out applies
        return None if claimed else effect

    async def _advance(self, run: Run, event: RunEvent, *, actor: str = SYSTEM, channel: str = "playbook") -> Run:
        """Apply one event to a run (caller holds the lock): persist, then perform its effects."""
        records, _ = await self._ready()
        now = self._clock()
        new, effects = advance(run, event, now)
        if new != run:
            await records.save_run(new)
        return await self._perform(new, effects, now, actor=actor, channel=channel)

    async def _perform(self, run: Run, effects: list[Any], now: datetime, *, actor: str, channel: str) -> Run:
        follow: list[ExecuteStep | ExecuteRollback | CheckPrecondition] = []
        for effect in effects:
            if isinstance(effect, Announce):
                await self._announce(effect.subject, effect.text, now)
            elif isinstance(effect, Audit):
                await self._audit_effect(effect, now, actor, channel)
            elif isinstance(effect, Refused):
                await self._refusal(actor, channel, "event", effect.subject, effect.reason, now)
            elif isinstance(effect, RequestApproval):
                await self._request_approval(run, effect, now)
            elif isinstance(effect, CancelApproval):
                await self._cancel_approval(effect, now, actor)
            elif isinstance(effect, StartVerify):
                self._start_verify(effect)
            elif isinstance(effect, ExecuteStep | ExecuteRollback | CheckPrecondition):
                follow.append(effect)  # resolved into events below, after the announcements
        for effect in follow:
            event = await self._resolve(run, effect, actor, channel)
            if event is not None:
                run = await self._advance(run, event, actor=actor, channel=channel)
        return run

    async def _resolve(
        self, run: Run, effect: ExecuteStep | ExecuteRollback | CheckPrecondition, actor: str, channel: str
    ) -> RunEvent | None:
        if isinstance(effect, CheckPrecondition):
            return await self._precondition(run, effect)
        if isinstance(effect, ExecuteStep):
            if TOOLS[effect.action.tool].mutating:
                verdict = await self._guard(run, effect.action)
                if not verdict.allowed:
                    await self._audit(
                        actor,
                        channel,
                        effect.action.describe(),
                        run.id,
                        f"blocked: {verdict.rule}",
                        {"step": effect.step, "reason": verdict.reason},
                        self._clock(),
                    )
                    self._metrics.guardrail_blocks.labels(rule=verdict.rule or "guardrail").inc()
                    return StepBlocked(step=effect.step, rule=verdict.rule or "guardrail", reason=verdict.reason)
            result = await self._execute(run, effect.step, "step", effect.action, effect.timeout, actor, channel)
            if result is None:
                return None
            return StepResult(step=effect.step, ok=result[0], detail=result[1], missing=_absent(result))
        result = await self._execute(run, effect.step, "rollback", effect.action, effect.timeout, actor, channel)
        return None if result is None else RollbackResult(step=effect.step, ok=result[0], detail=result[1])

    async def _execute(
        self, run: Run, step: str, phase: str, action: Action, limit: float, actor: str, channel: str
    ) -> tuple[bool, str] | None:
        """Claim, call, record. None when the call was already claimed (it is never made twice)."""
        records, gates = await self._ready()
        key = execution_key(run.id, step, phase)
        now = self._clock()
        what = action.describe()
        if not await records.claim_execution(key, run.id, step, phase, action.tool, dict(action.params), now):
            await self._refusal(actor, channel, what, run.id, f"{key} was already executed; not running it again", now)
            return None
        if TOOLS[action.tool].mutating:
            workload = self._workload(run, action)
            keep = max((b.per for b in self._policy.guardrails.budgets), default=3600.0)
            await gates.record_action(workload, action.tool, now, key, keep)
        self._executed.append(what)
        tools = await self._get_tools()
        try:
            result = await asyncio.wait_for(tools.call(action.tool, dict(action.params)), timeout=limit)
            ok, detail = True, _summary(result)
        except TimeoutError:
            ok, detail = False, f"timed out after {limit:g}s; its effect is unknown, check by hand"
            result = {"error": detail}
        except AiopsError as e:
            ok, detail = False, str(e)
            result = {"error": detail}
        done = self._clock()
        await records.finish_execution(key, ok, result, done)
        self._metrics.step(action.tool, phase, ok)
        outcome = "succeeded" if ok else f"failed: {detail}"
        await self._audit(actor, channel, what, run.id, outcome, {"step": step, "phase": phase, "key": key}, done)
        return ok, detail

    async def _precondition(self, run: Run, effect: CheckPrecondition) -> RunEvent:
        records, _ = await self._ready()
        if effect.condition != "incident_open":
            return PreconditionResult(step=effect.step, holds=False, detail=f"unknown condition {effect.condition}")
        status = await records.incident_status(run.incident_id) if run.incident_id else None
        if status is None:
            stored = await self._context(run)
            status = str((stored.get("incident") or {}).get("status") or "open")
        holds = status in ("open", "acknowledged")
        return PreconditionResult(step=effect.step, holds=holds, detail=f"(incident {run.incident_id} is {status})")

    async def _context(self, run: Run) -> dict[str, Any]:
        if run.id not in self._contexts:
            records, _ = await self._ready()
            found = await records.get_run(run.id)
            self._contexts[run.id] = found[1] if found else {}
        return self._contexts[run.id]

    def _workload(self, run: Run, action: Action) -> str:
        """The workload a budget counts: a pod's owner (from the incident's labels), else the target."""
        if action.tool == "delete_pod":
            labels = ((self._contexts.get(run.id) or {}).get("vars") or {}).get("incident", {}).get("labels") or {}
            for key in _POD_OWNER_LABELS:
                if labels.get(key):
                    return f"{action.params.get('namespace', '')}/{labels[key]}"
        return workload_of(action)

    async def _guard(self, run: Run, action: Action) -> GuardrailVerdict:
        _, gates = await self._ready()
        await self._context(run)
        now = self._clock()
        config = self._policy.guardrails
        if await gates.paused_by() is not None:
            config = config.model_copy(update={"paused": True})
        workload = self._workload(run, action)
        window = max((b.per for b in config.budgets), default=3600.0)
        context = GuardrailContext(
            config=config,
            workload=workload,
            history=await gates.history(workload, now - timedelta(seconds=window)),
            consecutive_failed_verifications=await gates.failed_verifications(run.playbook),
            dry_run=run.dry_run,
            playbook=run.playbook,
        )
        return check(action, context, now)

    # -- verification ----------------------------------------------------------------------
    def _start_verify(self, effect: StartVerify) -> None:
        key = (str(effect.run_id), effect.step)
        if key in self._verifying or self._closing:
            return
        self._verifying[key] = asyncio.get_running_loop().create_task(self._verify(effect))

    async def _verify(self, effect: StartVerify) -> None:
        key = (str(effect.run_id), effect.step)
        try:
            tools = await self._get_tools()
            outcome = await verify(
                tools,
                effect.check,
                effect.params,
                timeout=effect.timeout,
                stable_for=effect.stable_for,
                interval=self._verify_interval,
            )
            records, gates = await self._ready()
            async with self._lock:
                found = await records.get_run(effect.run_id)
                if found is None:
                    return
                run = found[0]
                if outcome.passed:
                    await gates.verification_passed(run.playbook)
                else:
                    await gates.verification_failed(run.playbook)
                what = f"{effect.check}({', '.join(f'{k}={v}' for k, v in sorted(effect.params.items()))})"
                status = "passed" if outcome.passed else "failed"
                await self._audit(
                    SYSTEM, "verify", what, run.id, status, {"step": effect.step, "detail": outcome.detail}
                )
                self._verifying.pop(key, None)
                await self._advance(run, VerifyResult(step=effect.step, passed=outcome.passed, detail=outcome.detail))
        except AiopsError:
            log.exception("verification of %s step %s could not finish; the run's deadline will fail it", *key)
        finally:
            self._verifying.pop(key, None)

    # -- approvals -------------------------------------------------------------------------
    async def _request_approval(self, run: Run, effect: RequestApproval, now: datetime, *, quiet: bool = False) -> None:
        records, gates = await self._ready()
        approval = await records.approval_for(run.id, effect.step)
        if approval is None:
            candidate = fingerprint_of("approval", str(run.id), effect.step)[:6]
            for _ in range(5):
                approval = Approval.from_scratch(
                    ApprovalId(candidate),
                    run.id,
                    effect.step,
                    effect.risk,
                    effect.action,
                    now,
                    ttl=self._policy.approval_ttl,
                    requested_by=effect.requested_by,
                    rollback=effect.rollback,
                    namespace=run.namespace,
                )
                if await records.insert_approval(approval):
                    break
                candidate = secrets.token_hex(3)
            else:
                raise TemporaryError("could not allocate an approval id; try again")
            self._metrics.requested.labels(risk=approval.risk.value).inc()
            quiet = False
        if approval.state is not ApprovalState.PENDING:
            return
        await gates.cache_pending(approval, (approval.expires_at - now).total_seconds())
        if quiet:
            return
        need = "two approvers (or an admin with confirm)" if approval.required > 1 else "one approver"
        text = (
            f"approval {approval.id} needs {need}: {approval.describe()}; expires {approval.expires_at.isoformat()}."
            f" Reply `approve {approval.id}` or `reject {approval.id}`"
        )
        await self._announce(approval.id, text, now)
        await self._audit(
            run.requested_by or SYSTEM,
            "playbook",
            approval.action.describe(),
            approval.id,
            "approval_requested",
            {"run": run.id, "step": approval.step, "risk": approval.risk.value},
            now,
        )

    async def _cancel_approval(self, effect: CancelApproval, now: datetime, actor: str) -> None:
        records, gates = await self._ready()
        approval = await records.approval_for(effect.run_id, effect.step)
        if approval is None or approval.state.final:
            return
        closed, effects = advance_approval(approval, Cancel(by=actor, reason="run cancelled"), now)
        await records.save_decision(approval, closed, None)
        await gates.forget_pending(approval.id)
        self._metrics.approval_closed(closed, now)
        for item in effects:
            if isinstance(item, Audit):
                await self._audit_effect(item, now, actor, "playbook")

    async def expire_due(self) -> list[dict[str, Any]]:
        """Expire every pending approval past its deadline (and its run); each one is announced."""
        records, gates = await self._ready()
        expired = []
        async with self._lock:
            now = self._clock()
            for approval in await records.due_approvals(now):
                found = await records.get_run(approval.run_id)
                if found is None:
                    continue
                closed, effects = advance_approval(approval, Expire(), now)
                run = found[0]
                new_run = run
                out: list[Any] = list(effects)
                for effect in effects:
                    if not isinstance(effect, Announce | Audit):
                        new_run, more = advance(new_run, event_from_approval(effect), now)
                        out.extend(more)
                if not await records.save_decision(approval, closed, new_run if new_run != run else None):
                    continue
                await gates.forget_pending(approval.id)
                self._metrics.approval_closed(closed, now)
                await self._perform(new_run, out, now, actor=SYSTEM, channel="timer")
                expired.append(approval_view(closed))
        return expired

    async def _announce(self, subject: str, text: str, now: datetime) -> None:
        _, gates = await self._ready()
        await gates.push_notice({"at": now.isoformat(), "subject": subject, "text": text})

    async def _audit(
        self,
        actor: str,
        channel: str,
        action: str,
        target: str,
        outcome: str,
        detail: dict[str, Any],
        now: datetime | None = None,
    ) -> None:
        records, _ = await self._ready()
        row = AuditRow(now or self._clock(), actor, channel or "-", action, target, outcome, detail)
        await records.audit(row)

    async def _refusal(self, actor: str, channel: str, action: str, target: str, reason: str, now: datetime) -> None:
        await self._audit(actor, channel, action, target, f"refused: {reason}", {"reason": reason}, now)

    async def _audit_effect(self, effect: Audit, now: datetime, actor: str, channel: str) -> None:
        detail = dict(effect.detail)
        who = detail.get("who") or detail.get("by") or actor
        await self._audit(
            str(who),
            str(detail.get("channel") or channel),
            str(detail.get("action") or effect.event),
            effect.subject,
            effect.event,
            detail,
            now,
        )


def execution_key(run_id: str, step: str, phase: str) -> str:
    """The claim key of one tool call: ``exec:<run>:<step>`` (``:rollback`` for a rollback)."""
    return f"exec:{run_id}:{step}" + (":rollback" if phase == "rollback" else "")


def _absent(result: tuple[bool, str]) -> bool:
    """A failed read whose answer was "not found": the MCP server words 404s (and the API's
    "previous terminated container ... not found" 400) that way; refusals and time-outs are not."""
    ok, detail = result
    text = detail.lower()
    return not ok and "not found" in text and "refused" not in text and "timed out" not in text
