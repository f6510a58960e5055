"""Storage of the ApprovalCoordinator: runs, approvals, executions and audit in PostgreSQL;
pending approvals, the pause switch, budgets, the breaker and chat notices in Redis.

PostgreSQL is the record: a run or approval that is not there did not happen. Every write
is safe to repeat: runs and approvals are inserted by id with ``ON CONFLICT DO NOTHING``,
a decision updates an approval only if it still holds the body the decider read (so two
coordinators cannot both count a decision), a tool call is *claimed* by its execution key
before it is made (``step_executions`` primary key), and audit rows carry an idempotency key.

Redis holds what is fast and may expire: a copy of each pending approval with its TTL
(chat looks ids up there), the global pause switch, per-workload action history for the
budget guardrail (a sorted set by time), the consecutive failed-verification count per
playbook, and the ``notices`` list that chat channels read from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from redis.exceptions import RedisError

from adapters.postgres import PostgresStore
from adapters.redis import RedisStore
from core.approvals import Approval
from core.errors import TemporaryError
from core.guardrails import PastAction
from core.playbooks import Run

_PG_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)
_REDIS_ERRORS = (RedisError, OSError)


def _js(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str, sort_keys=True)


def _obj(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


@dataclass(frozen=True)
class AuditRow:
    at: datetime
    actor: str
    channel: str
    action: str
    target: str
    outcome: str
    detail: dict[str, Any]
    key: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "actor": self.actor,
            "channel": self.channel,
            "action": self.action,
            "target": self.target,
            "outcome": self.outcome,
            "detail": self.detail,
        }


class RunRecords:
    """PostgreSQL rows of runs, approvals, step executions and the audit log."""

    def __init__(self, postgres: PostgresStore) -> None:
        self._pg = postgres

    async def _call(self, what: str, coro: Any) -> Any:
        try:
            return await coro
        except _PG_ERRORS as e:
            raise TemporaryError(f"PostgreSQL: {what}: {type(e).__name__}: {e}") from e

    # -- runs ------------------------------------------------------------------------------
    async def insert_run(self, run: Run, context: dict[str, Any]) -> bool:
        """Insert a new run; False when a run with this id exists already (nothing changed)."""
        status = await self._call(
            "insert run",
            self._pg.pool.execute(
                "INSERT INTO playbook_runs (id, incident_id, playbook, state, body, context, created_at, updated_at)"
                " VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb, $7, $8) ON CONFLICT (id) DO NOTHING",
                run.id,
                run.incident_id,
                run.playbook,
                run.status.value,
                _js(run.for_storage()),
                _js(context),
                run.created_at,
                run.updated_at,
            ),
        )
        return str(status).endswith(" 1")

    async def save_run(self, run: Run) -> None:
        await self._call(
            "save run",
            self._pg.pool.execute(
                "UPDATE playbook_runs SET state = $2, body = $3::jsonb, updated_at = $4 WHERE id = $1",
                run.id,
                run.status.value,
                _js(run.for_storage()),
                run.updated_at,
            ),
        )

    async def get_run(self, run_id: str) -> tuple[Run, dict[str, Any]] | None:
        row = await self._call(
            "get run", self._pg.pool.fetchrow("SELECT body, context FROM playbook_runs WHERE id = $1", run_id)
        )
        if row is None:
            return None
        return Run.from_storage(_obj(row["body"])), _obj(row["context"])

    async def active_runs(self, final_states: frozenset[str]) -> list[Run]:
        rows = await self._call(
            "active runs",
            self._pg.pool.fetch(
                "SELECT body FROM playbook_runs WHERE NOT (state = ANY($1::text[])) ORDER BY created_at",
                sorted(final_states),
            ),
        )
        return [Run.from_storage(_obj(r["body"])) for r in rows]

    async def incident_status(self, incident_id: str) -> str | None:
        value = await self._call(
            "incident status", self._pg.pool.fetchval("SELECT status FROM incidents WHERE id = $1", incident_id)
        )
        return None if value is None else str(value)

    # -- approvals -------------------------------------------------------------------------
    async def insert_approval(self, approval: Approval) -> bool:
        status = await self._call(
            "insert approval",
            self._pg.pool.execute(
                "INSERT INTO approvals (id, run_id, step, risk, state, body, created_at, expires_at)"
                " VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8) ON CONFLICT (id) DO NOTHING",
                approval.id,
                approval.run_id,
                approval.step,
                approval.risk.value,
                approval.state.value,
                _js(approval.for_storage()),
                approval.requested_at,
                approval.expires_at,
            ),
        )
        return str(status).endswith(" 1")

    async def get_approval(self, approval_id: str) -> Approval | None:
        row = await self._call(
            "get approval", self._pg.pool.fetchrow("SELECT body FROM approvals WHERE id = $1", approval_id)
        )
        return None if row is None else Approval.from_storage(_obj(row["body"]))

    async def approval_for(self, run_id: str, step: str) -> Approval | None:
        row = await self._call(
            "approval of step",
            self._pg.pool.fetchrow(
                "SELECT body FROM approvals WHERE run_id = $1 AND step = $2 ORDER BY created_at DESC LIMIT 1",
                run_id,
                step,
            ),
        )
        return None if row is None else Approval.from_storage(_obj(row["body"]))

    async def list_approvals(self, state: str | None = None, *, run_id: str | None = None) -> list[Approval]:
        rows = await self._call(
            "list approvals",
            self._pg.pool.fetch(
                "SELECT body FROM approvals WHERE ($1::text IS NULL OR state = $1)"
                " AND ($2::text IS NULL OR run_id = $2) ORDER BY created_at, id",
                state,
                run_id,
            ),
        )
        return [Approval.from_storage(_obj(r["body"])) for r in rows]

    async def due_approvals(self, now: datetime) -> list[Approval]:
        rows = await self._call(
            "due approvals",
            self._pg.pool.fetch(
                "SELECT body FROM approvals WHERE state = 'pending' AND expires_at <= $1 ORDER BY expires_at", now
            ),
        )
        return [Approval.from_storage(_obj(r["body"])) for r in rows]

    async def save_decision(self, before: Approval, after: Approval, run: Run | None) -> bool:
        """Write a decided approval (and its run) in one transaction, only if nobody changed it meanwhile."""

        async def write() -> bool:
            async with self._pg.pool.acquire() as conn, conn.transaction():
                status = await conn.execute(
                    "UPDATE approvals SET state = $2, body = $3::jsonb, decided_at = $4"
                    " WHERE id = $1 AND body = $5::jsonb",
                    after.id,
                    after.state.value,
                    _js(after.for_storage()),
                    after.closed_at or (after.decisions[-1].at if after.decisions else None),
                    _js(before.for_storage()),
                )
                if not str(status).endswith(" 1"):
                    return False
                if run is not None:
                    await conn.execute(
                        "UPDATE playbook_runs SET state = $2, body = $3::jsonb, updated_at = $4 WHERE id = $1",
                        run.id,
                        run.status.value,
                        _js(run.for_storage()),
                        run.updated_at,
                    )
                return True

        result: bool = await self._call("save decision", write())
        return result

    # -- executions ------------------------------------------------------------------------
    async def claim_execution(
        self, key: str, run_id: str, step: str, phase: str, tool: str, params: dict[str, Any], now: datetime
    ) -> bool:
        """Claim the right to make one tool call; True only for the first claimant of ``key``, ever."""
        status = await self._call(
            "claim execution",
            self._pg.pool.execute(
                "INSERT INTO step_executions (key, run_id, step, phase, tool, params, state, started_at)"
                " VALUES ($1, $2, $3, $4, $5, $6::jsonb, 'started', $7) ON CONFLICT (key) DO NOTHING",
                key,
                run_id,
                step,
                phase,
                tool,
                _js(params),
                now,
            ),
        )
        return str(status).endswith(" 1")

    async def finish_execution(self, key: str, ok: bool, result: dict[str, Any], now: datetime) -> None:
        await self._call(
            "finish execution",
            self._pg.pool.execute(
                "UPDATE step_executions SET state = $2, result = $3::jsonb, finished_at = $4 WHERE key = $1",
                key,
                "succeeded" if ok else "failed",
                _js(result),
                now,
            ),
        )

    async def executions(self, run_id: str | None = None) -> list[dict[str, Any]]:
        rows = await self._call(
            "executions",
            self._pg.pool.fetch(
                "SELECT * FROM step_executions WHERE ($1::text IS NULL OR run_id = $1) ORDER BY started_at, key",
                run_id,
            ),
        )
        return [
            {
                "key": r["key"],
                "run_id": r["run_id"],
                "step": r["step"],
                "phase": r["phase"],
                "tool": r["tool"],
                "params": _obj(r["params"]),
                "state": r["state"],
                "result": _obj(r["result"]) if r["result"] is not None else None,
                "started_at": r["started_at"].isoformat(),
                "finished_at": r["finished_at"].isoformat() if r["finished_at"] else None,
            }
            for r in rows
        ]

    # -- audit -----------------------------------------------------------------------------
    async def audit(self, row: AuditRow) -> None:
        await self._call(
            "audit",
            self._pg.pool.execute(
                "INSERT INTO audit_log (at, actor, channel, action, target, outcome, detail, idempotency_key)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8) ON CONFLICT (idempotency_key) DO NOTHING",
                row.at,
                row.actor,
                row.channel,
                row.action,
                row.target,
                row.outcome,
                _js(row.detail),
                row.key,
            ),
        )

    async def audit_rows(self, targets: list[str] | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        rows = await self._call(
            "audit rows",
            self._pg.pool.fetch(
                "SELECT * FROM audit_log WHERE ($1::text[] IS NULL OR target = ANY($1::text[]))"
                " ORDER BY at, id LIMIT $2",
                targets,
                limit,
            ),
        )
        return [
            AuditRow(
                at=r["at"],
                actor=r["actor"],
                channel=r["channel"],
                action=r["action"],
                target=r["target"],
                outcome=r["outcome"],
                detail=_obj(r["detail"]),
            ).as_dict()
            for r in rows
        ]


class GateState:
    """Redis: pending approval copies with TTL, the pause switch, budgets, breaker, notices."""

    PAUSE = "guardrails:paused"
    NOTICES = "notices"

    def __init__(self, redis: RedisStore) -> None:
        self._redis = redis

    async def _call(self, what: str, coro: Any) -> Any:
        try:
            return await coro
        except _REDIS_ERRORS as e:
            raise TemporaryError(f"Redis: {what}: {type(e).__name__}: {e}") from e

    @property
    def _r(self) -> Any:
        return self._redis.client

    # -- pending approvals -----------------------------------------------------------------
    async def cache_pending(self, approval: Approval, ttl_seconds: float) -> None:
        await self._redis.set_json(f"approval:{approval.id}", approval.for_storage(), ttl_seconds=max(ttl_seconds, 1))

    async def forget_pending(self, approval_id: str) -> None:
        await self._redis.delete(f"approval:{approval_id}")

    async def cached(self, approval_id: str) -> dict[str, Any] | None:
        value = await self._redis.get_json(f"approval:{approval_id}")
        return value if isinstance(value, dict) else None

    # -- pause switch ----------------------------------------------------------------------
    async def set_paused(self, who: str, at: datetime) -> None:
        await self._redis.set_json(self.PAUSE, {"by": who, "at": at.isoformat()})

    async def clear_paused(self) -> None:
        await self._redis.delete(self.PAUSE)

    async def paused_by(self) -> dict[str, Any] | None:
        value = await self._redis.get_json(self.PAUSE)
        return value if isinstance(value, dict) else None

    # -- budgets ---------------------------------------------------------------------------
    async def record_action(self, workload: str, tool: str, at: datetime, ref: str, keep_seconds: float) -> None:
        """Remember one mutating action on ``workload`` (member ``ref`` is unique, so a replay adds nothing)."""
        key = self._redis.key("budget", workload)
        member = _js({"tool": tool, "at": at.isoformat(), "ref": ref})
        pipe = self._r.pipeline(transaction=True)
        pipe.zadd(key, {member: at.timestamp()})
        pipe.zremrangebyscore(key, "-inf", at.timestamp() - keep_seconds)
        pipe.expire(key, int(keep_seconds) + 60)
        await self._call("record action", pipe.execute())

    async def history(self, workload: str, since: datetime) -> tuple[PastAction, ...]:
        members = await self._call(
            "action history", self._r.zrangebyscore(self._redis.key("budget", workload), since.timestamp(), "+inf")
        )
        out = []
        for raw in members:
            item = json.loads(raw)
            out.append(PastAction(tool=item["tool"], workload=workload, at=datetime.fromisoformat(item["at"])))
        return tuple(out)

    # -- circuit breaker -------------------------------------------------------------------
    async def verification_failed(self, playbook: str) -> int:
        return await self._redis.incr(f"breaker:{playbook}")

    async def verification_passed(self, playbook: str) -> None:
        await self._redis.delete(f"breaker:{playbook}")

    async def failed_verifications(self, playbook: str) -> int:
        value = await self._call("breaker", self._r.get(self._redis.key(f"breaker:{playbook}")))
        return int(value or 0)

    # -- notices ---------------------------------------------------------------------------
    async def push_notice(self, notice: dict[str, Any]) -> int:
        """Append a notice for chat; returns its sequence number (0-based)."""
        length = await self._call("push notice", self._r.rpush(self._redis.key(self.NOTICES), _js(notice)))
        return int(length) - 1

    async def notices(self, since: int = 0) -> list[dict[str, Any]]:
        raw = await self._call("notices", self._r.lrange(self._redis.key(self.NOTICES), max(since, 0), -1))
        return [{"seq": since + i, **json.loads(item)} for i, item in enumerate(raw)]
