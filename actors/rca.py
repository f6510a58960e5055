"""RcaWorker: one incident in, one root-cause report out (and stored).

A plain class; ``actors/remote.py`` makes a pool of them (``aiops-rca-<i>``). For each
incident it builds a ``Subject``, drives the pure evidence plan (``core.rca.plan``)
with read-only Kubernetes queries answered by the MCP server's read tools
(``adapters.rca_queries`` over a read-only ``KubeMcpClient``: the server subprocess is
started with ``--read-only`` and the client refuses any other tool), names the cause
with the deterministic signature library and, when an LLM key is configured, asks the
LLM for the report (which falls back to the deterministic one on any LLM failure).
The report is stored in ``rca_reports``, one row per (incident, mode), so a retried
call replaces rather than doubles it.

Two promises matter to callers:

* ``analyze`` never raises for bad input or a broken outside world: a vanished pod, an
  unreachable cluster, odd logs, an LLM outage or PostgreSQL being down each end up in
  the returned report (its notes, ``fallback_reason`` or ``storage_error``);
* evidence gathering is bounded by a per-incident time budget; when it runs out, the
  remaining queries are answered ``Unavailable`` (the plan finishes at once, no I/O)
  and the diagnosis uses what was gathered so far.

The worker has no write path to the cluster at all: the LLM analyses, never acts. The
MCP server subprocess is started on first use and started again if it has died.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from adapters.embedded import start_postgres
from adapters.llm import LlmClient
from adapters.mcp_client import KubeMcpClient, ToolFailed
from adapters.metrics import RcaMetrics
from adapters.postgres import PostgresStore
from adapters.rca_queries import answer
from adapters.rca_store import RcaStore
from config.settings import Settings
from core.errors import AiopsError
from core.models import ObjectRef, SignalSource
from core.rca import (
    DEFAULT_BUDGET,
    Budget,
    Category,
    Diagnosis,
    Evidence,
    RcaReport,
    Result,
    Subject,
    Unavailable,
    diagnose,
    fallback_report,
    plan,
    redact_obj,
    render_text,
    report_from_diagnosis,
)
from core.rca.records import object_from_labels

log = logging.getLogger(__name__)

DEFAULT_TIME_BUDGET_SECONDS = 10.0
TOOLS_RETRY_SECONDS = 15.0  # after a failed MCP server start, incidents go on without tools this long
ToolsFactory = Callable[[], KubeMcpClient]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _strings(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): str(v) for k, v in value.items() if v is not None}


def _ref(value: Any) -> ObjectRef | None:
    if isinstance(value, ObjectRef):
        return value
    if isinstance(value, Mapping):
        return ObjectRef.model_validate(dict(value))
    return None


def subject_of(incident: Mapping[str, Any]) -> tuple[Subject, list[str]]:
    """A ``Subject`` from an incident dict, field by field; bad fields are dropped with a note."""
    problems: list[str] = []
    labels = _strings(incident.get("labels"))
    obj: ObjectRef | None = None
    try:
        obj = _ref(incident.get("object"))
    except ValidationError as e:
        problems.append(f"incident object is malformed ({e.error_count()} error(s)); ignored")
    obj = obj or object_from_labels(labels)
    owners: list[ObjectRef] = []
    raw_owners = incident.get("owners")
    for item in raw_owners if isinstance(raw_owners, list | tuple) else ():
        try:
            ref = _ref(item)
        except ValidationError:
            ref = None
        if ref is None:
            problems.append("an owner reference is malformed; ignored")
        else:
            owners.append(ref)
    try:
        source = SignalSource(str(incident.get("source") or SignalSource.K8S.value))
    except ValueError:
        problems.append(f"unknown incident source {str(incident.get('source'))[:40]!r}; taken as k8s")
        source = SignalSource.K8S
    reason = incident.get("reason") or labels.get("reason") or labels.get("alertname") or "Unknown"
    node = incident.get("node") or labels.get("node")
    container = incident.get("container") or labels.get("container")
    subject = Subject(
        reason=str(reason)[:200],
        object=obj,
        owners=tuple(owners),
        node=str(node) if node else None,
        labels=labels,
        annotations=_strings(incident.get("annotations")),
        source=source,
        container=str(container) if container else None,
        message=str(incident.get("message") or "")[:2000],
    )
    return subject, problems


class RcaWorker:
    """Root-cause analysis of one incident at a time (several may run concurrently)."""

    def __init__(
        self,
        settings: Settings,
        *,
        tools_factory: ToolsFactory | None = None,
        llm: LlmClient | None = None,
        clock: Callable[[], datetime] = _utcnow,
        postgres: PostgresStore | None = None,
        budget: Budget = DEFAULT_BUDGET,
        time_budget_seconds: float = DEFAULT_TIME_BUDGET_SECONDS,
    ) -> None:
        self._settings = settings
        self._own_factory = tools_factory is None
        self._tools_failed_at: float | None = None
        self._tools_factory: ToolsFactory = tools_factory or (
            lambda: KubeMcpClient(
                kubeconfig=settings.kubeconfig,
                allow_namespaces="*",
                deny_namespaces="",  # reading kube-system helps a diagnosis; nothing here can write
                read_only=True,
                call_timeout=10.0,
                start_timeout=60.0,
            )
        )
        self._llm = llm if llm is not None else LlmClient(settings)
        self._clock = clock
        self._budget = budget
        self._time_budget = time_budget_seconds
        self._postgres = postgres
        self._own_postgres = postgres is None
        self._postgres_lock = asyncio.Lock()
        self._tools: KubeMcpClient | None = None
        self._tools_error: str | None = None
        self._tools_lock = asyncio.Lock()
        self._known = settings.secret_values()
        self._started_at = time.time()
        self._counters: dict[str, Any] = {
            "analyses": 0,
            "timeouts": 0,
            "stored": 0,
            "storage_errors": 0,
            "failures": 0,
            "last_duration_ms": None,
        }
        self._metrics = RcaMetrics(lambda: self._counters, self._llm.stats)

    # -- the analysis ----------------------------------------------------------------------
    async def analyze(self, incident: Mapping[str, Any] | Any) -> dict[str, Any]:
        """Analyse one incident; returns ``{"incident_id", "report", "text", ...}`` (see the module doc)."""
        started = time.monotonic()
        self._counters["analyses"] += 1
        problems: list[str] = []
        if not isinstance(incident, Mapping):
            problems.append(f"incident is a {type(incident).__name__}, not an object")
            incident = {}
        raw_id = incident.get("id")
        incident_id = str(raw_id) if raw_id else None
        try:
            subject, bad_fields = subject_of(incident)
        except (ValidationError, TypeError, ValueError) as e:
            subject, bad_fields = Subject(reason="Unknown"), [f"incident could not be read: {type(e).__name__}"]
        problems.extend(bad_fields)
        now = self._clock()
        evidence, timed_out = await self._gather(subject, now, problems)
        diagnosis = self._diagnose(evidence, now)
        report = await self._report(evidence, diagnosis)
        result: dict[str, Any] = {
            "incident_id": incident_id,
            "report": report.model_dump(mode="json"),
            "text": render_text(report),
            "diagnosis": {
                "category": diagnosis.category.value,
                "signature": diagnosis.signature,
                "confidence": diagnosis.confidence,
                "playbook": diagnosis.playbook,
            },
            "evidence": {
                "subject": subject.title(),
                "collected_at": evidence.collected_at.isoformat(),
                "queries_used": evidence.queries_used,
                "bytes_kept": evidence.bytes_kept,
                "focus_pods": list(evidence.focus_pods),
                "timed_out": timed_out,
                "notes": list(evidence.notes[:30]),
                "problems": problems,
            },
            "llm": {"used": report.mode == "llm", "configured": self._llm.configured},
        }
        result = redact_obj(result, self._known)
        self._metrics.analysed(report.mode, time.monotonic() - started)
        duration = round((time.monotonic() - started) * 1000, 1)
        result["duration_ms"] = duration
        self._counters["last_duration_ms"] = duration
        result["stored"], result["storage_error"] = await self._store(incident_id, report, result, now)
        return result

    async def _gather(self, subject: Subject, now: datetime, problems: list[str]) -> tuple[Evidence, bool]:
        """Drive the evidence plan against the cluster within the time budget."""
        loop = asyncio.get_running_loop()
        tools = await self._tools_client()  # starting the MCP server (once) is not the incident's time
        deadline = loop.time() + self._time_budget
        timed_out = False
        evidence_plan = plan(subject, now, self._budget)
        try:
            query = next(evidence_plan)
            while True:
                result: Result
                remaining = deadline - loop.time()
                if tools is None:
                    result = Unavailable(f"no Kubernetes client (MCP read tools): {self._tools_error}")
                elif timed_out or remaining <= 0:
                    timed_out = True
                    result = Unavailable(f"RCA time budget of {self._time_budget:g}s exhausted")
                else:
                    try:
                        result = await asyncio.wait_for(answer(tools, query), remaining)
                    except TimeoutError:
                        timed_out = True
                        result = Unavailable(f"RCA time budget of {self._time_budget:g}s exhausted")
                query = evidence_plan.send(result)
        except StopIteration as stop:
            evidence: Evidence = stop.value
        except Exception as e:  # a plan bug must not lose the incident's report
            log.exception("RCA evidence plan failed for %s", subject.title())
            problems.append(f"evidence plan failed: {type(e).__name__}")
            evidence = Evidence(subject=subject, collected_at=now, notes=(f"evidence plan failed: {e}"[:300],))
        if timed_out:
            self._counters["timeouts"] += 1
            problems.append(f"evidence gathering hit the {self._time_budget:g}s time budget; diagnosis is partial")
        return evidence, timed_out

    def _diagnose(self, evidence: Evidence, now: datetime) -> Diagnosis:
        try:
            return diagnose(evidence, now)
        except Exception as e:  # diagnose promises not to raise; keep the promise here too
            log.exception("RCA diagnosis failed for %s", evidence.subject.title())
            self._counters["failures"] += 1
            return Diagnosis(
                category=Category.UNKNOWN,
                root_cause=f"Unknown: the diagnosis failed ({type(e).__name__})",
                evidence=("diagnosis failed",),
                confidence=0.0,
                subject=evidence.subject.title(),
            )

    async def _report(self, evidence: Evidence, diagnosis: Diagnosis) -> RcaReport:
        if not self._llm.configured:
            return report_from_diagnosis(diagnosis, evidence)
        try:
            return await self._llm.report(evidence, diagnosis, self._known)
        except Exception as e:  # LlmClient.report does not raise by contract; a bug there must not either
            log.exception("LLM report failed unexpectedly")
            self._counters["failures"] += 1
            return fallback_report(diagnosis, f"LLM client failed: {type(e).__name__}", evidence)

    # -- outside systems -------------------------------------------------------------------
    async def _tools_client(self) -> KubeMcpClient | None:
        """The read-only MCP client, started on first use (and again when its server died)."""
        if self._tools is not None and self._tools.alive:
            return self._tools
        async with self._tools_lock:
            if self._tools is not None and not self._tools.alive:
                log.warning("the RCA worker's MCP server has gone away; starting it again")
                await self._tools.close()
                self._tools = None
            if self._tools is None:
                if self._own_factory and not self._settings.cluster_configured:
                    self._tools_error = "no cluster configured (KUBECONFIG, or a service account in a pod)"
                    return None
                failed_at = self._tools_failed_at
                if failed_at is not None and time.monotonic() - failed_at < TOOLS_RETRY_SECONDS:
                    return None  # a start failed moments ago: do not pay a failing start per incident
                try:
                    client = self._tools_factory()
                    if not client.read_only:
                        self._tools_error = "refused: the RCA worker only takes a read-only MCP client"
                        return None
                    await client.start()
                except (AiopsError, OSError, ValueError) as e:
                    self._tools_error = f"{type(e).__name__}: {e}"[:500]
                    self._tools_failed_at = time.monotonic()
                    log.warning("RCA worker has no Kubernetes tools: %s", self._tools_error)
                    return None
                self._tools, self._tools_error, self._tools_failed_at = client, None, None
        return self._tools

    async def _store_ready(self) -> RcaStore:
        async with self._postgres_lock:
            if self._postgres is None:
                url = self._settings.secret("database_url")
                if not url:
                    url = await asyncio.to_thread(start_postgres, self._settings.data_dir)
                store = PostgresStore(url, pool_max=min(self._settings.db_pool_max, 3))
                await store.open()
                await store.migrate()
                self._postgres = store
        return RcaStore(self._postgres)

    async def _store(
        self, incident_id: str | None, report: RcaReport, body: dict[str, Any], now: datetime
    ) -> tuple[bool, str | None]:
        if incident_id is None:
            return False, "the incident has no id; report not stored"
        try:
            store = await self._store_ready()
            await store.save(
                incident_id,
                mode=report.mode,
                category=report.category.value,
                confidence=report.confidence,
                summary=str(body["report"]["summary"]),
                body=body,
                now=now,
            )
        except AiopsError as e:
            self._counters["storage_errors"] += 1
            log.warning("RCA report of %s not stored: %s", incident_id, e)
            return False, str(e)[:300]
        self._counters["stored"] += 1
        return True, None

    async def reports(self, incident_id: str) -> list[dict[str, Any]]:
        """The stored reports of an incident (newest first), as their stored bodies."""
        store = await self._store_ready()
        return [
            {**row.body, "mode": row.mode, "created_at": row.created_at.isoformat()}
            for row in await store.for_incident(incident_id)
        ]

    def metrics_text(self) -> str:
        return self._metrics.render()

    async def health(self) -> dict[str, Any]:
        """The worker's view of the cluster, PostgreSQL and the LLM, plus its counters."""
        status: dict[str, Any] = {
            **self._counters,
            "uptime_s": round(time.time() - self._started_at),
            "llm": self._llm.stats(),
        }
        tools = await self._tools_client()
        if tools is None:
            status["kube_error"] = self._tools_error
        else:
            started = time.monotonic()
            try:
                await tools.call("get_object", {"kind": "Namespace", "name": "default"})
                status["kube_latency_ms"] = round((time.monotonic() - started) * 1000, 2)
            except ToolFailed as e:  # 403/404: the API server answered, which is what health asks
                status["kube_latency_ms"] = round((time.monotonic() - started) * 1000, 2)
                status["kube_note"] = e.message[:200]
            except (AiopsError, TimeoutError) as e:
                status["kube_error"] = f"{type(e).__name__}: {e}"[:300]
        try:
            await self._store_ready()
            if self._postgres is not None:
                status["postgres_latency_ms"] = round(await self._postgres.ping() * 1000, 2)
        except AiopsError as e:
            status["postgres_error"] = str(e)[:300]
        return status

    async def close(self) -> None:
        await self._llm.close()
        if self._postgres is not None and self._own_postgres:
            await self._postgres.close()
            self._postgres = None
        if self._tools is not None:
            await self._tools.close()
            self._tools = None


__all__ = ["DEFAULT_TIME_BUDGET_SECONDS", "RcaWorker", "subject_of"]
