"""Debian's real Prometheus scrapes the running platform; what actors count shows up in its API.

The session platform (real Ray + Serve) is scraped at ``/metrics`` (no token: a scrape
target) by a ``prometheus`` process on a free port that also loads the agent's own rules
(``config/prometheus/aiops-rules.yml``). A signal goes in through the Alertmanager webhook;
the test then reads back, through Prometheus' HTTP query API, a counter incremented inside
the ``aiops-rules`` actor, the ingress counters of the ``alerts`` app, a watcher actor's
informer counters, and the core actors' ``aiops_component_up``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import ray

from actors import remote
from tests.e2e.conftest import Platform
from tests.helpers import wait_until
from tests.payloads import am_alert, am_payload
from tests.servers.prometheus import PrometheusProcess, prometheus_binary

pytestmark = pytest.mark.e2e

PROBE_NAMESPACE = "metrics-probe"
PROBE_HOST = 900  # a watcher host index no supervisor uses in these tests
RULES = Path(__file__).resolve().parents[2] / "config" / "prometheus" / "aiops-rules.yml"


@pytest.fixture
def prometheus(platform: Platform, tmp_path: Path) -> Iterator[PrometheusProcess]:
    if prometheus_binary() is None:
        pytest.skip("prometheus is not installed (apt-get install prometheus; .ci/run does)")
    # The ops app asks each actor with a 2 s limit, so a scrape may take a few seconds on a busy box.
    prom = PrometheusProcess(
        tmp_path / "prometheus", platform.base_url + "/metrics", interval="3s", rule_files=(RULES,)
    )
    prom.start()
    try:
        yield prom
    finally:
        prom.stop()


def _post(platform: Platform, body: object, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(
        platform.base_url + "/api/alert/webhook",
        content=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **headers},
        timeout=30.0,
    )


def _value(prom: PrometheusProcess, expr: str) -> float | None:
    result = prom.query(expr)
    return float(result[0]["value"][1]) if result else None


def test_prometheus_scrapes_the_platform_and_sees_metrics_counted_inside_actors(
    platform: Platform, prometheus: PrometheusProcess
) -> None:
    # A watcher actor of its own (namespace nobody else uses): its informer counters must reach the scrape.
    probe = remote.watcher_host_name(PROBE_HOST)
    host = remote.watcher_host(platform.settings, PROBE_HOST)
    ray.get(host.add.remote(PROBE_NAMESPACE), timeout=60)
    try:
        _scrape_and_check(platform, prometheus, probe)
    finally:
        ray.get(host.stop.remote(), timeout=30)
        remote.kill(probe, restart=False)


def _scrape_and_check(platform: Platform, prometheus: PrometheusProcess, probe: str) -> None:
    tag = uuid.uuid4().hex[:8]
    alert = am_alert("KubePodCrashLooping", f"scrape-{tag}", namespace="scrape", pod=f"api-{tag}", test=tag)
    accepted = _post(platform, am_payload(alert), platform.am_headers())
    assert accepted.status_code == 200, accepted.text
    refused = _post(platform, am_payload(alert), {"Authorization": "Bearer wrong-token"})
    assert refused.status_code == 401
    # The chat app counts its webhooks too (refused here: no Telegram secret token).
    chat = httpx.post(platform.base_url + "/api/webhook/telegram", json={"update_id": 1}, timeout=30.0)
    assert chat.status_code >= 400

    def target_up() -> bool:
        targets = prometheus.targets()
        return bool(targets) and targets[0]["health"] == "up"

    wait_until(target_up, timeout=60, interval=0.5, message=f"target up ({prometheus.targets()})")
    assert _value(prometheus, 'up{job="aiops"}') == 1.0

    # Counted inside the aiops-rules actor process, merged by the ops app, scraped by Prometheus.
    signals = 'aiops_signals_total{job="aiops",component="aiops-rules",source="alertmanager"}'
    wait_until(lambda: (_value(prometheus, signals) or 0) >= 1, timeout=60, interval=0.5, message=signals)
    opened = prometheus.query('aiops_incidents_opened_total{component="aiops-rules"}')
    assert opened and all(r["metric"]["severity"] in {"critical", "warning", "info"} for r in opened)

    # Counted in the alerts Serve replica: one 200 and one 401 at least (other tests share the platform).
    ok = 'aiops_webhook_requests_total{component="alerts",endpoint="alertmanager",status="200"}'
    unauthorized = 'aiops_webhook_requests_total{component="alerts",endpoint="alertmanager",status="401"}'
    wait_until(lambda: (_value(prometheus, unauthorized) or 0) >= 1, timeout=60, interval=0.5, message=unauthorized)
    assert (_value(prometheus, ok) or 0) >= 1
    assert prometheus.query('aiops_webhook_duration_seconds_count{component="alerts",endpoint="alertmanager"}')
    telegram = f'aiops_webhook_requests_total{{component="chat",endpoint="telegram",status="{chat.status_code}"}}'
    wait_until(lambda: (_value(prometheus, telegram) or 0) >= 1, timeout=60, interval=0.5, message=telegram)

    # The core actors answered the scrape: rule engine, RCA pool, approvals; the alerts app too.
    # (Not "every": other tests of the session stop and restart watcher actors.)
    components = {r["metric"]["component"]: float(r["value"][1]) for r in prometheus.query("aiops_component_up")}
    assert components.get("aiops-rules") == 1.0
    assert components.get("aiops-approvals") == 1.0
    assert components.get("alerts") == 1.0
    assert components.get("chat") == 1.0
    assert any(name.startswith("aiops-rca-") and up == 1.0 for name, up in components.items()), components

    # Counted by the informers inside the watcher actor, per namespace and kind.
    events = f'aiops_watch_events_total{{component="{probe}",namespace="{PROBE_NAMESPACE}",kind="Pod"}}'
    wait_until(lambda: prometheus.query(events), timeout=60, interval=0.5, message=events)
    assert prometheus.query(f'aiops_watch_stream_up{{component="{probe}",kind="Pod"}}')

    # The agent's own rules load in a real Prometheus and evaluate without errors.
    def rules_evaluated() -> list[dict[str, object]]:
        groups = prometheus.api("rules")["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        return rules if rules and all(rule["health"] == "ok" for rule in rules) else []

    rules = wait_until(rules_evaluated, timeout=60, interval=0.5, message="aiops rules evaluated")
    names = {str(rule["name"]) for rule in rules}
    assert {"AiopsRuleEngineDown", "AiopsWatchStreamDown", "AiopsApprovalsExpiring"} <= names
    firing = {str(a["labels"]["alertname"]) for a in prometheus.api("alerts")["alerts"] if a["state"] == "firing"}
    assert "AiopsRuleEngineDown" not in firing and "AiopsScrapeDown" not in firing
