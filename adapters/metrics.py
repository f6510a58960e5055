"""Prometheus metrics, declared once per component with an injectable registry.

Why per-process prometheus-client registries rather than Ray's metrics export: each Ray
actor and Serve replica is its own process, and Ray's export needs a metrics agent port
per node plus Prometheus service discovery of those ports. Instead each component keeps
its own registry and renders it as text; the ``ops`` app's ``/metrics`` asks every
``aiops-*`` actor and the ingress apps for their rendering and *merges* them with
``merge`` (one family per name, a ``component`` label per source), so Prometheus scrapes
one target and sees every actor.

Two kinds of declarations:

* component classes (``RuleEngineMetrics``, ``WatchMetrics``, ``RcaMetrics``,
  ``ApprovalMetrics``, ``IngressMetrics``) that their owner creates, each on its own
  registry unless one is passed;
* edge metrics shared by a whole process (``ChatMetrics``: the chat SDK adapters are
  called from free functions), reached with ``shared(ChatMetrics)``; ``render`` of any
  component appends that process registry, so they reach the scrape too.

Counters that an adapter already keeps as plain ints (informer counters, LLM token and
error counts, RCA worker counters) are exported by collectors that read them at scrape
time, so those adapters stay free of metric code. ``DECLARED`` lists every metric name
the platform can expose; the alert rules and the dashboard are tested against it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

M = TypeVar("M", bound="ComponentMetrics")
StatusList = Callable[[], Sequence[Mapping[str, Any]]]
Stats = Callable[[], Mapping[str, Any]]

_PROCESS = CollectorRegistry(auto_describe=True)
_SHARED: dict[type[Any], Any] = {}

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_RCA_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0)
_APPROVAL_BUCKETS = (5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0)


class ComponentMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)

    def render(self) -> str:
        """This component's registry plus the process-wide one (shared edge metrics)."""
        text = generate_latest(self.registry).decode()
        if self.registry is not _PROCESS:
            text += generate_latest(_PROCESS).decode()
        return text


def shared(cls: type[M]) -> M:
    """The process-wide instance of ``cls`` on the process registry (created on first use)."""
    found = _SHARED.get(cls)
    if found is None:
        found = _SHARED[cls] = cls(_PROCESS)
    return found


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
            "Incidents resolved, by reason (recovered, merged, ...) and severity.",
            ["reason", "severity"],
            registry=r,
        )
        self.stage_seconds = Histogram(
            "aiops_rule_engine_stage_seconds",
            "Time per commit group in each stage: correlate (in memory), redis (state + write-ahead),"
            " postgres (incidents, signals, timeline).",
            ["stage"],
            registry=r,
            buckets=_LATENCY_BUCKETS,
        )

    def resolved(self, reason: str, group: Any | None) -> None:
        """Count a resolution; the severity comes from the incident group (``unknown`` if gone)."""
        severity = getattr(getattr(group, "severity", None), "value", None) or "unknown"
        self.incidents_resolved.labels(reason=reason, severity=str(severity)).inc()


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
            buckets=_LATENCY_BUCKETS,
        )


# -- watchers -------------------------------------------------------------------------------

_INFORMER_COUNTERS = (
    ("events", "aiops_watch_events", "Watch events received, per namespace and kind."),
    ("reconnects", "aiops_watch_reconnects", "Watch streams re-opened after a failure, per namespace and kind."),
    ("relists", "aiops_watch_relists", "Relists after 410 Gone, per namespace and kind."),
    ("errors", "aiops_watch_errors", "List/watch errors, per namespace and kind."),
)


class _InformerCollector(Collector):
    """Informer counters (plain ints in ``adapters.kube.Informer``) as Prometheus families."""

    def __init__(self, scope: str, statuses: StatusList) -> None:
        self._scope = scope
        self._statuses = statuses

    def collect(self) -> Iterable[Metric]:
        statuses = list(self._statuses())
        labels = ["namespace", "kind"]
        families: list[CounterMetricFamily | GaugeMetricFamily] = []
        for key, name, doc in _INFORMER_COUNTERS:
            family = CounterMetricFamily(name, doc, labels=labels)
            for status in statuses:
                family.add_metric([self._scope, str(status.get("kind"))], float(status.get(key) or 0))
            families.append(family)
        up = GaugeMetricFamily("aiops_watch_stream_up", "1 while the watch stream is connected.", labels=labels)
        forbidden = GaugeMetricFamily(
            "aiops_watch_stream_forbidden", "1 while the API server refuses the list/watch (RBAC).", labels=labels
        )
        for status in statuses:
            values = [self._scope, str(status.get("kind"))]
            up.add_metric(values, 1.0 if status.get("connected") else 0.0)
            forbidden.add_metric(values, 1.0 if status.get("forbidden") else 0.0)
        return [*families, up, forbidden]

    def describe(self) -> Iterable[Metric]:
        return self.collect()


class WatchMetrics(ComponentMetrics):
    """One watcher's metrics; ``namespace`` is its scope (``cluster`` for cluster-wide kinds)."""

    def __init__(self, scope: str, statuses: StatusList, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        r = self.registry
        self.scope = scope
        r.register(_InformerCollector(scope, statuses))
        self.detections = Counter(
            "aiops_detections_total",
            "Findings sent by the watchers, per namespace, reason and status (firing, resolved).",
            ["namespace", "reason", "status"],
            registry=r,
        )
        self.send_errors = Counter(
            "aiops_watch_send_errors_total",
            "Detection passes whose signals could not be sent.",
            ["namespace"],
            registry=r,
        )

    def sent(self, signals: Iterable[Any]) -> None:
        for signal in signals:
            status = getattr(getattr(signal, "status", None), "value", "firing")
            self.detections.labels(namespace=self.scope, reason=str(signal.reason), status=str(status)).inc()


# -- RCA and the LLM ------------------------------------------------------------------------

RCA_OUTCOMES = ("deterministic", "llm", "fallback")


class _RcaCollector(Collector):
    """RCA worker counters and ``LlmClient.stats()`` (plain ints there) as Prometheus families."""

    def __init__(self, counters: Stats, llm_stats: Stats) -> None:
        self._counters = counters
        self._llm = llm_stats

    def collect(self) -> Iterable[Metric]:
        counters, llm = self._counters(), self._llm()
        out: list[Metric] = []
        for key, name, doc in (
            ("timeouts", "aiops_rca_timeouts", "Analyses whose evidence gathering hit the time budget."),
            ("storage_errors", "aiops_rca_storage_errors", "RCA reports that could not be stored."),
            ("failures", "aiops_rca_failures", "Analyses where diagnosis or the LLM client failed unexpectedly."),
        ):
            out.append(CounterMetricFamily(name, doc, value=float(counters.get(key) or 0)))
        out.append(
            CounterMetricFamily(
                "aiops_llm_requests", "Requests sent to the LLM API.", value=float(llm.get("requests") or 0)
            )
        )
        tokens = CounterMetricFamily(
            "aiops_llm_tokens", "LLM tokens, by direction (input, output).", labels=["direction"]
        )
        tokens.add_metric(["input"], float(llm.get("tokens_in") or 0))
        tokens.add_metric(["output"], float(llm.get("tokens_out") or 0))
        out.append(tokens)
        errors = CounterMetricFamily("aiops_llm_errors", "LLM call problems, by kind.", labels=["kind"])
        for kind, count in sorted(dict(llm.get("errors") or {}).items()):
            errors.add_metric([str(kind)], float(count))
        out.append(errors)
        in_flight = GaugeMetricFamily(
            "aiops_llm_in_flight", "LLM calls running now.", value=float(llm.get("in_flight") or 0)
        )
        out.append(in_flight)
        return out

    def describe(self) -> Iterable[Metric]:
        return self.collect()


class RcaMetrics(ComponentMetrics):
    def __init__(
        self,
        counters: Stats | None = None,
        llm_stats: Stats | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        super().__init__(registry)
        r = self.registry
        r.register(_RcaCollector(counters or dict, llm_stats or dict))
        self.analyses = Counter(
            "aiops_rca_analyses_total",
            "Root-cause analyses, by outcome (deterministic, llm, fallback).",
            ["outcome"],
            registry=r,
        )
        self.duration = Histogram(
            "aiops_rca_duration_seconds",
            "Time for one analysis, by outcome.",
            ["outcome"],
            registry=r,
            buckets=_RCA_BUCKETS,
        )

    def analysed(self, mode: str, seconds: float) -> None:
        outcome = mode if mode in RCA_OUTCOMES else "fallback"
        self.analyses.labels(outcome=outcome).inc()
        self.duration.labels(outcome=outcome).observe(seconds)


# -- approvals and playbooks ----------------------------------------------------------------

APPROVAL_OUTCOMES = ("approved", "rejected", "expired", "cancelled")


class ApprovalMetrics(ComponentMetrics):
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        r = self.registry
        self.requested = Counter(
            "aiops_approvals_requested_total", "Approvals requested, by risk.", ["risk"], registry=r
        )
        self.closed = Counter(
            "aiops_approvals_closed_total",
            "Approvals closed, by outcome (approved, rejected, expired, cancelled) and risk.",
            ["outcome", "risk"],
            registry=r,
        )
        self.latency = Histogram(
            "aiops_approval_latency_seconds",
            "Time from an approval request to its close, by outcome.",
            ["outcome"],
            registry=r,
            buckets=_APPROVAL_BUCKETS,
        )
        self.guardrail_blocks = Counter(
            "aiops_guardrail_blocks_total", "Mutating steps a guardrail refused, by rule.", ["rule"], registry=r
        )
        self.steps = Counter(
            "aiops_playbook_steps_total",
            "Playbook tool calls, by tool, phase (step, rollback) and result (ok, failed).",
            ["tool", "phase", "result"],
            registry=r,
        )

    def approval_closed(self, approval: Any, now: datetime) -> None:
        """Count an approval that reached a final state (others are ignored) and its latency."""
        state = str(getattr(getattr(approval, "state", None), "value", ""))
        if state not in APPROVAL_OUTCOMES:
            return
        risk = str(getattr(getattr(approval, "risk", None), "value", "unknown"))
        self.closed.labels(outcome=state, risk=risk).inc()
        requested_at = getattr(approval, "requested_at", None)
        if isinstance(requested_at, datetime):
            self.latency.labels(outcome=state).observe(max((now - requested_at).total_seconds(), 0.0))

    def step(self, tool: str, phase: str, ok: bool) -> None:
        self.steps.labels(tool=tool, phase=phase, result="ok" if ok else "failed").inc()


# -- chat (process-wide: reached through ``shared(ChatMetrics)``) ---------------------------


class ChatMetrics(ComponentMetrics):
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        r = self.registry
        self.sends = Counter("aiops_chat_sends_total", "Chat API calls attempted, by channel.", ["channel"], registry=r)
        self.retries = Counter(
            "aiops_chat_retries_total",
            "Chat API calls retried after a rate limit, by channel.",
            ["channel"],
            registry=r,
        )
        self.gave_up = Counter(
            "aiops_chat_rate_limited_total",
            "Chat API calls given up on a long or repeated rate limit (queued for later), by channel.",
            ["channel"],
            registry=r,
        )

    @staticmethod
    def channel(what: str) -> str:
        """``"telegram sendMessage"`` -> ``telegram``: the channel, never a chat id."""
        return (what.split(" ", 1)[0] or "unknown")[:32]


# -- the one scrape -------------------------------------------------------------------------


class _Families(Collector):
    def __init__(self, families: Sequence[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


def merge(parts: Iterable[tuple[str, str]], up: Mapping[str, bool] | None = None) -> str:
    """One exposition from several: ``parts`` are (component, rendered text).

    Every sample gets a ``component`` label (two processes may expose the same series, e.g.
    the chat counters), families of the same name become one, ``_created`` series are
    dropped. ``up`` adds ``aiops_component_up{component}`` (1 answered, 0 did not).
    """
    merged: dict[str, Metric] = {}
    for component, text in parts:
        _fold(merged, text, {"component": component})
    if up is not None:
        gauge = GaugeMetricFamily(
            "aiops_component_up", "1 when the component answered the metrics scrape.", labels=["component"]
        )
        for component, ok in sorted(up.items()):
            gauge.add_metric([component], 1.0 if ok else 0.0)
        merged[gauge.name] = gauge
    return _render(merged)


def combine(texts: Iterable[str]) -> str:
    """One exposition from several of the same process (families of the same name become one)."""
    merged: dict[str, Metric] = {}
    for text in texts:
        _fold(merged, text, {})
    return _render(merged)


def relabel(text: str, labels: Mapping[str, str]) -> str:
    """``text`` with ``labels`` added to every sample (a label the sample has already wins)."""
    merged: dict[str, Metric] = {}
    _fold(merged, text, labels)
    return _render(merged)


def _fold(merged: dict[str, Metric], text: str, labels: Mapping[str, str]) -> None:
    for family in text_string_to_metric_families(text):
        if family.name.endswith("_created") and family.type == "gauge":
            continue
        target = merged.get(family.name)
        if target is None:
            target = merged[family.name] = Metric(family.name, family.documentation, family.type, family.unit)
        for sample in family.samples:
            target.samples.append(sample._replace(labels={**labels, **sample.labels}))


def _render(families: Mapping[str, Metric]) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(list(families.values())))
    return generate_latest(registry).decode()


def exposed_names(registry: CollectorRegistry) -> set[str]:
    """Every sample name a registry can expose (``_total``, ``_bucket``/``_sum``/``_count``)."""
    names: set[str] = set()
    for family in registry.collect():
        if family.name.endswith("_created"):
            continue
        if family.type == "counter":
            names.add(family.name + "_total")
        elif family.type == "histogram":
            names.update(family.name + suffix for suffix in ("_bucket", "_sum", "_count"))
        else:
            names.add(family.name)
    return names


def _declared() -> frozenset[str]:
    samples = [
        RuleEngineMetrics(),
        IngressMetrics(),
        WatchMetrics("x", lambda: [{"kind": "Pod"}]),
        RcaMetrics(),
        ApprovalMetrics(),
        ChatMetrics(CollectorRegistry()),
    ]
    names: set[str] = {"aiops_component_up"}
    for component in samples:
        names |= exposed_names(component.registry)
    return frozenset(names)


DECLARED: frozenset[str] = _declared()
"""Every metric name the platform exposes (sample names, as PromQL sees them)."""
