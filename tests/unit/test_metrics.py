"""Metric declarations (names, types, labels) and the merge behind the one ``/metrics`` scrape."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from adapters import metrics
from adapters.chat_channel import RetryPolicy, call_with_retry
from core.errors import TemporaryError

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def _components() -> list[metrics.ComponentMetrics]:
    return [
        metrics.RuleEngineMetrics(),
        metrics.IngressMetrics(),
        metrics.WatchMetrics("prod", lambda: [{"kind": "Pod"}]),
        metrics.RcaMetrics(dict, lambda: {"errors": {"timeout": 1}}),
        metrics.ApprovalMetrics(),
        metrics.ChatMetrics(CollectorRegistry()),
    ]


@pytest.mark.parametrize(
    ("name", "labels"),
    [
        pytest.param("aiops_signals_total", {"source"}, id="signals-in-by-source"),
        pytest.param("aiops_rule_matches_total", {"rule"}, id="rule-matches"),
        pytest.param("aiops_incidents_opened_total", {"severity"}, id="incidents-opened-by-severity"),
        pytest.param("aiops_incidents_resolved_total", {"reason", "severity"}, id="incidents-resolved-by-severity"),
        pytest.param("aiops_webhook_requests_total", {"endpoint", "status"}, id="webhook-requests-by-status"),
        pytest.param("aiops_watch_events_total", {"namespace", "kind"}, id="watch-events-per-namespace"),
        pytest.param("aiops_watch_reconnects_total", {"namespace", "kind"}, id="watch-reconnects-per-namespace"),
        pytest.param("aiops_watch_stream_up", {"namespace", "kind"}, id="watch-stream-up"),
        pytest.param("aiops_detections_total", {"namespace", "reason", "status"}, id="detections-by-reason"),
        pytest.param("aiops_rca_analyses_total", {"outcome"}, id="rca-outcome"),
        pytest.param("aiops_rca_duration_seconds_bucket", {"outcome", "le"}, id="rca-duration-histogram"),
        pytest.param("aiops_llm_tokens_total", {"direction"}, id="llm-tokens"),
        pytest.param("aiops_llm_errors_total", {"kind"}, id="llm-errors"),
        pytest.param("aiops_playbook_steps_total", {"tool", "phase", "result"}, id="playbook-steps"),
        pytest.param("aiops_approvals_requested_total", {"risk"}, id="approvals-requested"),
        pytest.param("aiops_approvals_closed_total", {"outcome", "risk"}, id="approvals-closed"),
        pytest.param("aiops_approval_latency_seconds_bucket", {"outcome", "le"}, id="approval-latency"),
        pytest.param("aiops_guardrail_blocks_total", {"rule"}, id="guardrail-blocks"),
        pytest.param("aiops_chat_sends_total", {"channel"}, id="chat-sends"),
        pytest.param("aiops_chat_retries_total", {"channel"}, id="chat-retries"),
    ],
)
def test_each_metric_the_issue_asks_for_is_declared_with_its_labels(name: str, labels: set[str]) -> None:
    assert name in metrics.DECLARED
    owners = [c for c in _components() if name in metrics.exposed_names(c.registry)]
    assert len(owners) == 1, f"{name} is declared by {len(owners)} components"
    family = name.removesuffix("_bucket")
    assert _label_names(owners[0], family) == labels - {"le"}


def _label_names(component: metrics.ComponentMetrics, name: str) -> set[str]:
    """Declared label names: from the prometheus-client object, else from a collector's samples."""
    base = name.removesuffix("_total")
    for value in vars(component).values():
        if getattr(value, "_name", None) in (name, base):
            return set(value._labelnames)
    for family in component.registry.collect():
        if family.name in (name, base):
            return {k for s in family.samples for k in s.labels} - {"le"}
    raise AssertionError(name)


def test_names_follow_prometheus_conventions() -> None:
    for name in metrics.DECLARED:
        assert name.startswith("aiops_"), name
        assert name == name.lower(), name
    for component in _components():
        for family in component.registry.collect():
            if family.type == "counter":
                assert f"{family.name}_total" in metrics.DECLARED
            if family.type == "histogram":
                assert family.name.endswith("_seconds"), f"{family.name}: durations in base units"
            for sample in family.samples:
                assert "component" not in sample.labels, "component is the label merge adds"


def test_merge_labels_every_sample_by_component_and_keeps_one_family_per_name() -> None:
    # Ingress metrics, not chat ones: every render also carries the process-wide chat counters,
    # which other tests in this process may have counted already.
    a, b = metrics.IngressMetrics(CollectorRegistry()), metrics.IngressMetrics(CollectorRegistry())
    a.webhook_requests.labels(endpoint="telegram", status="200").inc()
    b.webhook_requests.labels(endpoint="telegram", status="200").inc(2)
    engine = metrics.RuleEngineMetrics()
    engine.signals.labels(source="k8s").inc()
    text = metrics.merge(
        [("aiops-rules", engine.render()), ("aiops-approvals", a.render()), ("aiops-rca-0", b.render())],
        up={"aiops-rules": True, "aiops-rca-1": False},
    )
    assert text.count("# TYPE aiops_webhook_requests_total counter") == 1
    families = {f.name: f for f in text_string_to_metric_families(text)}
    requests = {
        s.labels["component"]: s.value for s in families["aiops_webhook_requests"].samples if s.name.endswith("_total")
    }
    assert requests == {"aiops-approvals": 1.0, "aiops-rca-0": 2.0}
    assert [(s.labels, s.value) for s in families["aiops_signals"].samples] == [
        ({"source": "k8s", "component": "aiops-rules"}, 1.0)
    ]
    up = {s.labels["component"]: s.value for s in families["aiops_component_up"].samples}
    assert up == {"aiops-rules": 1.0, "aiops-rca-1": 0.0}
    assert not any(name.endswith("_created") for name in families)


def test_merge_refuses_nothing_and_adds_nothing_for_empty_parts() -> None:
    assert metrics.merge([]) == ""
    assert metrics.merge([("x", "")], up={}).splitlines() == [
        "# HELP aiops_component_up 1 when the component answered the metrics scrape.",
        "# TYPE aiops_component_up gauge",
    ]


def test_watch_metrics_read_the_informer_counters_at_scrape_time() -> None:
    statuses = [{"kind": "Pod", "events": 0, "reconnects": 0, "connected": False}]
    watch = metrics.WatchMetrics("production", lambda: statuses)
    statuses[0] = {"kind": "Pod", "events": 7, "reconnects": 2, "relists": 1, "connected": True, "forbidden": False}
    watch.sent([SimpleNamespace(reason="CrashLoopBackOff", status=SimpleNamespace(value="firing"))])
    families = {f.name: f for f in text_string_to_metric_families(watch.render())}
    value = {(f, s.name): s.value for f, fam in families.items() for s in fam.samples if s.labels.get("kind") == "Pod"}
    assert value[("aiops_watch_events", "aiops_watch_events_total")] == 7.0
    assert value[("aiops_watch_reconnects", "aiops_watch_reconnects_total")] == 2.0
    assert value[("aiops_watch_stream_up", "aiops_watch_stream_up")] == 1.0
    detection = families["aiops_detections"].samples[0]
    assert detection.labels == {"namespace": "production", "reason": "CrashLoopBackOff", "status": "firing"}


def test_rca_metrics_export_llm_tokens_and_errors_and_map_unknown_modes_to_fallback() -> None:
    llm = {"requests": 3, "tokens_in": 1200, "tokens_out": 300, "errors": {"timeout": 1, "rate_limited": 2}}
    rca = metrics.RcaMetrics(lambda: {"timeouts": 1}, lambda: llm)
    rca.analysed("llm", 2.5)
    rca.analysed("something-new", 0.2)
    families = {f.name: f for f in text_string_to_metric_families(rca.render())}
    tokens = {s.labels["direction"]: s.value for s in families["aiops_llm_tokens"].samples}
    assert tokens == {"input": 1200.0, "output": 300.0}
    errors = {s.labels["kind"]: s.value for s in families["aiops_llm_errors"].samples}
    assert errors == {"timeout": 1.0, "rate_limited": 2.0}
    outcomes = {
        s.labels["outcome"]: s.value for s in families["aiops_rca_analyses"].samples if s.name.endswith("_total")
    }
    assert outcomes == {"llm": 1.0, "fallback": 1.0}
    count = [s for s in families["aiops_rca_duration_seconds"].samples if s.name.endswith("_count")]
    assert {s.labels["outcome"]: s.value for s in count} == {"llm": 1.0, "fallback": 1.0}


def test_approval_metrics_count_only_final_states_and_observe_latency() -> None:
    approvals = metrics.ApprovalMetrics()
    requested = NOW - timedelta(seconds=90)
    risk = SimpleNamespace(value="medium")
    approvals.approval_closed(
        SimpleNamespace(state=SimpleNamespace(value="pending"), risk=risk, requested_at=requested), NOW
    )
    approvals.approval_closed(
        SimpleNamespace(state=SimpleNamespace(value="approved"), risk=risk, requested_at=requested), NOW
    )
    approvals.step("delete_pod", "step", ok=False)
    families = {f.name: f for f in text_string_to_metric_families(approvals.render())}
    closed = [(s.labels, s.value) for s in families["aiops_approvals_closed"].samples if s.name.endswith("_total")]
    assert closed == [({"outcome": "approved", "risk": "medium"}, 1.0)]
    latency = {s.name: s.value for s in families["aiops_approval_latency_seconds"].samples if "le" not in s.labels}
    assert latency["aiops_approval_latency_seconds_sum"] == 90.0
    steps = [s.labels for s in families["aiops_playbook_steps"].samples if s.name.endswith("_total")]
    assert steps == [{"tool": "delete_pod", "phase": "step", "result": "failed"}]


class _RateLimited(Exception):
    def __init__(self, wait: float) -> None:
        super().__init__(f"retry after {wait}")
        self.wait = wait


def test_chat_sends_and_retries_are_counted_by_channel_never_by_chat_id() -> None:
    chat = metrics.shared(metrics.ChatMetrics)
    before = {
        n: chat.registry.get_sample_value(n, {"channel": "telegram"}) or 0.0
        for n in ("aiops_chat_sends_total", "aiops_chat_retries_total", "aiops_chat_rate_limited_total")
    }
    outcomes: list[object] = [_RateLimited(0.0), "ok"]

    async def call() -> str:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return str(outcome)

    async def no_sleep(_: float) -> None:
        return None

    def retry_after(error: BaseException) -> float | None:
        return error.wait if isinstance(error, _RateLimited) else None

    policy = RetryPolicy(attempts=2, max_wait=5, sleep=no_sleep)
    assert asyncio.run(call_with_retry(call, retry_after, policy, "telegram sendMessage")) == "ok"
    outcomes[:] = [_RateLimited(60.0)]
    with pytest.raises(TemporaryError):
        asyncio.run(call_with_retry(call, retry_after, policy, "telegram sendMessage"))
    after = {n: chat.registry.get_sample_value(n, {"channel": "telegram"}) or 0.0 for n in before}
    assert {n: after[n] - before[n] for n in before} == {
        "aiops_chat_sends_total": 3.0,
        "aiops_chat_retries_total": 1.0,
        "aiops_chat_rate_limited_total": 1.0,
    }
    assert metrics.ChatMetrics.channel("slack chat.postMessage C0123") == "slack"


def test_every_component_render_includes_the_process_registry() -> None:
    metrics.shared(metrics.ChatMetrics).sends.labels(channel="slack").inc()
    assert 'aiops_chat_sends_total{channel="slack"}' in metrics.RuleEngineMetrics().render()


def test_resolved_incidents_carry_the_group_severity_or_unknown() -> None:
    engine = metrics.RuleEngineMetrics()
    engine.resolved("recovered", SimpleNamespace(severity=SimpleNamespace(value="critical")))
    engine.resolved("merged", None)
    r = engine.registry
    assert r.get_sample_value("aiops_incidents_resolved_total", {"reason": "recovered", "severity": "critical"}) == 1
    assert r.get_sample_value("aiops_incidents_resolved_total", {"reason": "merged", "severity": "unknown"}) == 1


def test_relabel_adds_labels_to_every_sample_without_overriding_its_own() -> None:
    ingress = metrics.IngressMetrics()
    ingress.webhook_requests.labels(endpoint="alertmanager", status="200").inc()
    text = metrics.relabel(ingress.render(), {"replica": "r1", "status": "ignored"})
    families = {f.name: f for f in text_string_to_metric_families(text)}
    (sample,) = families["aiops_webhook_requests"].samples
    assert sample.labels == {"endpoint": "alertmanager", "status": "200", "replica": "r1"}
    assert all(s.labels["replica"] == "r1" for s in families["aiops_webhook_duration_seconds"].samples)
