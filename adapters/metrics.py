"""Prometheus metrics, declared once per component with an injectable registry.

Each Ray actor and Serve replica is its own process, so each keeps its own registry and
renders it as text; the ``ops`` app's ``/metrics`` concatenates its own registry with
every actor's rendering, which gives Prometheus one complete scrape target without a
push gateway. Metric names are unique per component, so the union never repeats a name.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest


class ComponentMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)

    def render(self) -> str:
        return generate_latest(self.registry).decode()


class RuleEngineMetrics(ComponentMetrics):
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        r = self.registry
        self.signals = Counter("aiops_signals_total", "Signals received by the rule engine.", ["source"], registry=r)
        self.rule_matches = Counter("aiops_rule_matches_total", "Rule matches by rule.", ["rule"], registry=r)
        self.incidents_opened = Counter(
            "aiops_incidents_opened_total", "Incidents opened, by severity.", ["severity"], registry=r
        )
        self.incidents_resolved = Counter(
            "aiops_incidents_resolved_total",
            "Incidents resolved, by reason (recovered, merged).",
            ["reason"],
            registry=r,
        )


class IngressMetrics(ComponentMetrics):
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        r = self.registry
        self.webhook_requests = Counter(
            "aiops_webhook_requests_total",
            "Inbound webhook requests by endpoint and status.",
            ["endpoint", "status"],
            registry=r,
        )
        self.webhook_seconds = Histogram(
            "aiops_webhook_duration_seconds",
            "Time to answer an inbound webhook.",
            ["endpoint"],
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
        )
