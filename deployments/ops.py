"""Serve app ``ops``: health, readiness, metrics and the incident API.

``/health`` reports each subsystem (Ray actors, PostgreSQL, Redis) with latency and the
error text, and never fails itself: a monitoring endpoint that 500s when Redis is down
tells the operator nothing. ``/ready`` is the gate for load balancers (503 until the
stores and the rule engine answer). ``/api/*`` needs ``OPS_API_TOKEN``.
"""

# No "from __future__ import annotations": FastAPI must see real types on route methods.

import asyncio
import importlib
import logging
import time
from typing import Any, Literal

import ray
from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from ray import serve

from actors import remote
from actors.stores import Stores
from adapters.metrics import IngressMetrics, merge
from adapters.rca_store import RcaStore
from config.settings import Settings
from core.errors import AiopsError, InputError, NotFound, TemporaryError
from deployments.http import cause_of, check_token, error_response, errors, inline_schema, read_body, request_body

api = FastAPI(title="ray-aiops ops", version="0.1.0")
log = logging.getLogger(__name__)

_ACTOR_TIMEOUT = 2.0
# Serve apps whose replicas may keep their own registry: (app, deployment, module, class).
_INGRESS_APPS = (
    ("alerts", "AlertsIngress", "deployments.alerts", "AlertsIngressImpl"),
    ("chat", "ChatIngress", "deployments.chat", "ChatIngressImpl"),
)


def _exporting_apps() -> list[tuple[str, str]]:
    """The ingress apps whose class defines ``metrics_text`` (asking the others would only fail)."""
    found = []
    for app_name, deployment, module_name, class_name in _INGRESS_APPS:
        cls = getattr(importlib.import_module(module_name), class_name, None)
        if cls is not None and callable(getattr(cls, "metrics_text", None)):
            found.append((app_name, deployment))
    return found


async def _ingress_metrics(app_name: str, deployment: str) -> Any:
    handle = serve.get_deployment_handle(deployment, app_name=app_name)
    return await handle.metrics_text.remote()


def _incident_json(incident: Any) -> dict[str, Any]:
    data: dict[str, Any] = incident.model_dump(mode="json")
    return data


class DecisionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["approve", "reject"]
    who: str = Field(default="ops", pattern=r"^[A-Za-z0-9_.@-]{1,64}$")
    confirm: bool = False
    note: str = Field(default="", max_length=500)


_WHO = {
    "name": "who",
    "in": "query",
    "required": False,
    "description": "who pauses or resumes (recorded in the audit)",
    "schema": {"type": "string", "default": "ops"},
}
_NOT_READY: dict[int | str, dict[str, Any]] = {
    503: {"description": "a store or the rule engine does not answer (the same report as /health)"}
}


def _who(request: Request) -> str:
    who = request.query_params.get("who", "ops")
    if not who or len(who) > 64 or not all(c.isalnum() or c in "_.@-" for c in who):
        raise InputError("invalid 'who': letters, digits and _.@- only, at most 64")
    return who


@serve.ingress(api)
class OpsIngressImpl:
    def __init__(self, settings: Settings | None = None) -> None:
        self._settings = settings or Settings.from_env()
        self._metrics = IngressMetrics()
        self._ingress_apps = _exporting_apps()
        self._stores: Stores | None = None
        self._lock = asyncio.Lock()
        self._engine: Any = remote.rule_engine(self._settings)
        if self._settings.watch_enabled and self._settings.cluster_configured:
            # The proactive side starts with the platform: `serve deploy` alone brings up the watchers.
            remote.watch_supervisor(self._settings)

    async def _open(self) -> Stores:
        if self._stores is None:
            async with self._lock:
                if self._stores is None:
                    self._stores = await Stores.open(self._settings)
        return self._stores

    def _authorize(self, request: Request) -> None:
        check_token(request.headers.get("authorization"), self._settings.secret("ops_api_token"), what="the ops API")

    async def _check_actor(self, name: str, call: Any) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            detail = await asyncio.wait_for(call, timeout=_ACTOR_TIMEOUT)
        except TimeoutError:
            return {"name": name, "status": "down", "error": f"no answer within {_ACTOR_TIMEOUT}s"}
        except (ray.exceptions.RayError, AiopsError) as e:
            return {"name": name, "status": "down", "error": f"{type(e).__name__}: {str(e)[:300]}"}
        degraded = isinstance(detail, dict) and detail.get("degraded")
        return {
            "name": name,
            "status": "degraded" if degraded else "ok",
            "latency_ms": round((time.perf_counter() - started) * 1000, 2),
            "detail": detail,
        }

    async def _check_store(self, name: str) -> dict[str, Any]:
        try:
            stores = await self._open()
            latency = await (stores.postgres.ping() if name == "postgres" else stores.redis.ping())
        except TemporaryError as e:
            return {"name": name, "status": "down", "error": str(e)[:300]}
        return {"name": name, "status": "ok", "latency_ms": round(latency * 1000, 2)}

    async def _health(self) -> dict[str, Any]:
        """Stores, the rule engine, and every other ``aiops-*`` actor alive in the cluster."""
        calls = [
            self._check_store("postgres"),
            self._check_store("redis"),
            self._check_actor(remote.RULE_ENGINE, self._engine.health.remote()),
        ]
        try:
            others = [n for n in remote.actor_names() if n != remote.RULE_ENGINE]
        except ray.exceptions.RayError:
            others = []
        for name in others:
            handle = remote.existing(name)
            if handle is not None:
                calls.append(self._check_actor(name, handle.health.remote()))
        checks = await asyncio.gather(*calls)
        subsystems = {c.pop("name"): c for c in checks}
        for check in list(subsystems.values()):
            # A watcher host reports each namespace it watches as a part: one subsystem each.
            parts = (check.get("detail") or {}).pop("parts", None) if isinstance(check.get("detail"), dict) else None
            for part_name, part in (parts or {}).items():
                status = "degraded" if part.get("degraded") else "ok"
                subsystems[part_name] = {"status": status, "latency_ms": check.get("latency_ms"), "detail": part}
        overall = "ok" if all(c["status"] == "ok" for c in subsystems.values()) else "degraded"
        core_ok = all(subsystems[n]["status"] == "ok" for n in ("postgres", "redis", remote.RULE_ENGINE))
        return {"status": overall, "ready": core_ok, "subsystems": subsystems}

    @api.get("/health")
    async def health(self) -> JSONResponse:
        return JSONResponse(await self._health())

    @api.get("/ready", responses=_NOT_READY)
    async def ready(self) -> JSONResponse:
        report = await self._health()
        return JSONResponse(report, status_code=200 if report["ready"] else 503)

    async def _metrics_of(self, component: str, call: Any) -> tuple[str, str | None, bool]:
        """(component, its rendering or None when it did not answer, whether it exports metrics)."""
        try:
            text = await asyncio.wait_for(call(), timeout=_ACTOR_TIMEOUT)
        except Exception as e:  # noqa: BLE001 - one silent component (or an app not deployed) must not break the scrape
            cause = cause_of(e)
            log.info("metrics of %s not collected: %s", component, type(cause).__name__)
            return component, None, not isinstance(cause, AttributeError)
        return component, text if isinstance(text, str) else None, True

    @api.get("/metrics", response_class=PlainTextResponse)
    async def metrics(self) -> PlainTextResponse:
        """Every aiops actor's and ingress app's registry, merged into one scrape (no token: a
        scrape target; nothing here is secret). ``aiops_component_up`` says who answered."""
        calls = [self._metrics_of(remote.RULE_ENGINE, lambda: self._engine.metrics_text.remote())]
        try:
            others = [n for n in remote.actor_names() if n != remote.RULE_ENGINE]
        except ray.exceptions.RayError:
            others = []
        for name in others:
            handle = remote.existing(name)
            if handle is not None:
                calls.append(self._metrics_of(name, lambda h=handle: h.metrics_text.remote()))
        for app_name, deployment in self._ingress_apps:
            calls.append(self._metrics_of(app_name, lambda a=app_name, d=deployment: _ingress_metrics(a, d)))
        answers = await asyncio.gather(*calls)
        parts = [("ops", self._metrics.render())] + [(c, t) for c, t, _ in answers if t is not None]
        up = {c: t is not None for c, t, exports in answers if exports}
        text = merge(parts, up=up)
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4; charset=utf-8")

    @api.get("/api/incidents", responses=errors(401, 503))
    async def incidents(
        self,
        request: Request,
        status: str | None = Query(default=None, pattern="^(open|acknowledged|resolved)$"),
        namespace: str | None = Query(default=None, max_length=253),
        severity: str | None = Query(default=None, pattern="^(critical|warning|info)$"),
        limit: int = Query(default=100, ge=1, le=1000),
    ) -> JSONResponse:
        try:
            self._authorize(request)
            stores = await self._open()
            found = await stores.postgres.list_incidents(
                status=status, namespace=namespace, severity=severity, limit=limit
            )
        except AiopsError as e:
            return error_response(e)
        return JSONResponse({"incidents": [_incident_json(i) for i in found], "count": len(found)})

    @api.get("/api/incidents/{incident_id}", responses=errors(401, 404, 503))
    async def incident(self, request: Request, incident_id: str) -> JSONResponse:
        try:
            self._authorize(request)
            stores = await self._open()
            found = await stores.postgres.get_incident(incident_id)
            if found is None:
                raise NotFound(f"no incident {incident_id!r}")
            timeline = await stores.postgres.timeline(incident_id)
            report = await RcaStore(stores.postgres).latest(incident_id)
        except AiopsError as e:
            return error_response(e)
        rca = None
        if report is not None:
            rca = {
                "mode": report.mode,
                "category": report.category,
                "confidence": report.confidence,
                "summary": report.summary,
                "report": report.body,
                "created_at": report.created_at.isoformat(),
            }
        return JSONResponse({**_incident_json(found), "timeline": timeline, "rca": rca})

    async def _coordinator_call(self, request: Request, call: Any) -> JSONResponse:
        """Authorize, await a coordinator call, map our errors (carried through Ray) to HTTP."""
        try:
            self._authorize(request)
            result = await call()
        except AiopsError as e:
            return error_response(e)
        except ray.exceptions.RayTaskError as e:
            cause = cause_of(e)
            if isinstance(cause, AiopsError):
                return error_response(cause)
            raise
        return JSONResponse(result)

    @api.get("/api/approvals", responses=errors(401, 503))
    async def approvals(
        self,
        request: Request,
        state: str = Query(default="pending", pattern="^(pending|approved|rejected|expired|cancelled|all)$"),
    ) -> JSONResponse:
        async def call() -> Any:
            found = await remote.approvals(self._settings).list_approvals.remote(None if state == "all" else state)
            return {"approvals": found, "count": len(found)}

        return await self._coordinator_call(request, call)

    @api.post(
        "/api/approvals/{approval_id}",
        responses=errors(400, 401, 404, 409, 413, 503),
        openapi_extra=request_body(inline_schema(DecisionBody)),
    )
    async def decide(self, request: Request, approval_id: str) -> JSONResponse:
        async def call() -> Any:
            body = await read_body(request, 64 * 1024)
            try:
                decision = DecisionBody.model_validate_json(body or b"{}")
            except ValidationError as e:
                raise InputError(f"invalid decision: {e.errors()[0]['loc']}: {e.errors()[0]['msg']}") from e
            return await remote.approvals(self._settings).decide.remote(
                approval_id.strip().lower(),
                who=f"api:{decision.who}",
                decision=decision.decision,
                channel="api",
                confirm=decision.confirm,
                note=decision.note,
            )

        return await self._coordinator_call(request, call)

    @api.post("/api/pause", responses=errors(400, 401, 409, 503), openapi_extra={"parameters": [_WHO]})
    async def pause(self, request: Request) -> JSONResponse:
        async def call() -> Any:
            return await remote.approvals(self._settings).pause.remote(f"api:{_who(request)}", channel="api")

        return await self._coordinator_call(request, call)

    @api.post("/api/resume", responses=errors(400, 401, 409, 503), openapi_extra={"parameters": [_WHO]})
    async def resume(self, request: Request) -> JSONResponse:
        async def call() -> Any:
            return await remote.approvals(self._settings).resume.remote(f"api:{_who(request)}", channel="api")

        return await self._coordinator_call(request, call)


# Applied as a call so type checkers keep seeing the plain class above.
OpsIngress: Any = serve.deployment(name="OpsIngress", ray_actor_options={"num_cpus": 0}, max_ongoing_requests=100)(
    OpsIngressImpl
)
app = OpsIngress.bind()


def build(settings: Settings | None = None) -> Any:
    return OpsIngress.bind(settings)
