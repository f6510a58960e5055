"""Serve app ``alerts``: Alertmanager's webhook at ``POST /api/alert/webhook``.

Verify (bearer or basic, as Alertmanager's ``http_config`` sends it) -> parse the v4
payload (pure) -> hand the signals to ``aiops-rules`` -> answer. Alertmanager retries
failed deliveries, and the rule engine is idempotent, so a 5xx here is safe: the alert
comes again. Rules travel in ``user_config``; ``serve deploy`` with a changed path or
text reloads them in place.
"""

# No "from __future__ import annotations": FastAPI must see real types on route methods.

import logging
import time
from datetime import UTC, datetime
from typing import Any

import ray
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from ray import serve

from actors import remote
from adapters.alertmanager import AmWebhook, parse_webhook, to_signals
from adapters.metrics import IngressMetrics
from config.settings import Settings
from core.errors import AiopsError
from deployments.http import (
    cause_of,
    check_token,
    error_response,
    errors,
    inline_schema,
    read_body,
    replica_metrics,
    request_body,
)

log = logging.getLogger(__name__)
api = FastAPI(title="ray-aiops alerts", version="0.1.0")


@serve.ingress(api)
class AlertsIngressImpl:
    def __init__(self, settings: Settings | None = None) -> None:
        self._settings = settings or Settings.from_env()
        self._metrics = IngressMetrics()
        self._engine: Any = remote.rule_engine(self._settings)
        self._rules_version: str | None = None

    async def reconfigure(self, config: dict[str, Any]) -> None:
        """Serve calls this with ``user_config``: reload rules when they changed."""
        rules_path = config.get("rules_file")
        rules_text = config.get("rules_text")
        version = f"{rules_path}|{hash(rules_text)}|{config.get('version', '')}"
        if version == self._rules_version or (rules_path is None and rules_text is None):
            return
        try:
            await self._engine.reload_rules.remote(rules_path, rules_text)
        except ray.exceptions.RayTaskError as e:
            # Refused: the rule engine keeps its old rules and reports why in /health.
            log.error("rules in user_config refused: %s", e)
            return
        self._rules_version = version

    @api.post(
        "/webhook",
        status_code=200,
        responses=errors(400, 401, 413, 503),
        openapi_extra=request_body(inline_schema(AmWebhook)),
    )
    async def webhook(self, request: Request) -> JSONResponse:
        started = time.perf_counter()
        status = 500
        try:
            check_token(
                request.headers.get("authorization"),
                self._settings.secret("alertmanager_token"),
                basic_user=self._settings.alertmanager_basic_user,
                what="the Alertmanager webhook",
            )
            body = await read_body(request, self._settings.max_body_bytes)
            payload = parse_webhook(body)
            signals = to_signals(payload, datetime.now(UTC))
            summary = await self._engine.ingest.remote([s.model_dump(mode="json") for s in signals])
            status = 200
            return JSONResponse(
                {"accepted": len(signals), "truncated_alerts": payload.truncatedAlerts, **summary}, status_code=200
            )
        except AiopsError as e:
            response = error_response(e)
            status = response.status_code
            return response
        except ray.exceptions.RayTaskError as e:
            cause = cause_of(e)
            if not isinstance(cause, AiopsError):
                raise
            response = error_response(cause)
            status = response.status_code
            return response
        finally:
            self._metrics.webhook_requests.labels(endpoint="alertmanager", status=str(status)).inc()
            self._metrics.webhook_seconds.labels(endpoint="alertmanager").observe(time.perf_counter() - started)

    def metrics_text(self) -> str:
        return replica_metrics(self._metrics.render())


# Applied as a call so type checkers keep seeing the plain class above.
AlertsIngress: Any = serve.deployment(
    name="AlertsIngress", ray_actor_options={"num_cpus": 0}, max_ongoing_requests=100
)(AlertsIngressImpl)
app = AlertsIngress.bind()


def build(settings: Settings | None = None) -> Any:
    return AlertsIngress.bind(settings)
