"""The evidence plan: typed queries out, bounded redacted evidence back, no raise on bad answers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from core.errors import PermanentError, TemporaryError
from core.models import ObjectRef, Severity, Signal, SignalSource, fingerprint_of
from core.rca import (
    Budget,
    Endpoints,
    FakeCluster,
    GetNode,
    GetObject,
    ListEvents,
    ListObjects,
    PodLogs,
    Query,
    Result,
    RolloutHistory,
    Subject,
    Unavailable,
    diagnose,
    drive,
    plan,
)
from core.rca.answers import selector_matches
from tests.evals.k8s import NOW, container, event, pod, status, terminated
from tests.evals.scenarios import OWNERS, SCENARIOS, pod_subject

PY_LOG = "Traceback (most recent call last):\n  File \"x\"\nValueError: bad password=hunter2secret\n"


def crash_cluster(log: str | bytes = PY_LOG) -> FakeCluster:
    crashing = pod("api-1", statuses=[status(waiting="CrashLoopBackOff", last=terminated("Error", 1), restarts=4)],
                   containers=[container(env=[{"name": "DB_PASSWORD", "value": "plantedvalue99"}])])
    return FakeCluster.of([crashing], [event("Pod", "api-1", "BackOff", "Back-off restarting failed container")],
                          {("api-1", "api", True): log})


def test_a_pod_incident_asks_for_the_pod_events_logs_owners_node_and_services() -> None:
    cluster = crash_cluster()
    drive(plan(pod_subject("CrashLoopBackOff", "api-1"), NOW), cluster)
    kinds = {type(query) for query in cluster.asked}
    assert {GetObject, ListEvents, PodLogs, RolloutHistory, GetNode, ListObjects} <= kinds
    assert cluster.asked[0] == GetObject("Pod", "production", "api-1")
    assert PodLogs("production", "api-1", "api", True, 300, 512_000) in cluster.asked
    assert len(cluster.asked) == len(set(cluster.asked)), "no query is asked twice"


def test_the_plan_is_a_generator_of_frozen_queries_that_returns_evidence() -> None:
    steps = plan(Subject(reason="NodeNotReady", object=ObjectRef(kind="Node", name="n1")), NOW)
    assert next(steps) == GetNode("n1")
    assert steps.send({"kind": "Node", "metadata": {"name": "n1"}}) == ListEvents(None, "Node", "n1")
    with pytest.raises(StopIteration) as stop:
        steps.send([])
    evidence = stop.value.value
    assert evidence.collected_at == NOW and evidence.queries_used == 2
    with pytest.raises(AttributeError):
        GetNode("x").name = "y"  # type: ignore[misc]


def test_collected_evidence_is_redacted_and_slimmed() -> None:
    evidence = drive(plan(pod_subject("CrashLoopBackOff", "api-1"), NOW), crash_cluster())
    dumped = evidence.model_dump_json()
    assert "plantedvalue99" not in dumped and "hunter2secret" not in dumped
    assert "managedFields" not in dumped
    assert evidence.logs[0].summary.exception is not None


@pytest.mark.parametrize(
    ("budget", "max_queries"),
    [
        pytest.param(Budget(max_queries=0), 0, id="no-queries"),
        pytest.param(Budget(max_queries=1), 1, id="one-query"),
        pytest.param(Budget(max_queries=3), 3, id="three-queries"),
    ],
)
def test_the_query_budget_is_never_exceeded(budget: Budget, max_queries: int) -> None:
    for scenario in SCENARIOS:
        cluster = scenario.cluster()
        evidence = drive(plan(scenario.subject, NOW, budget), cluster)
        assert len(cluster.asked) <= max_queries
        assert evidence.queries_used <= max_queries
        diagnose(evidence)


def test_the_size_budget_bounds_kept_bytes_and_logs_are_cut_to_their_tail() -> None:
    huge = ("INFO noise line " + "x" * 100 + "\n") * 100_000 + "panic: boom at the end\n"
    budget = Budget(max_bytes=50_000, max_log_bytes=10_000)
    evidence = drive(plan(pod_subject("CrashLoopBackOff", "api-1"), NOW, budget), crash_cluster(huge))
    assert evidence.bytes_kept <= 50_000 + 10_000
    log = evidence.logs[0]
    assert log.truncated and len(log.text) <= 10_000 and log.text.endswith("panic: boom at the end")
    assert log.summary.exception == "panic: boom at the end"


def test_a_small_size_budget_drops_objects_but_notes_it() -> None:
    evidence = drive(plan(pod_subject("CrashLoopBackOff", "api-1"), NOW, Budget(max_bytes=100)), crash_cluster())
    assert any("size budget" in note for note in evidence.notes)
    diagnose(evidence)


def everything_unavailable(query: Query) -> Result:
    return Unavailable("forbidden")


def raises_temporary(query: Query) -> Result:
    raise TemporaryError("apiserver timeout", delay=2)


def raises_permanent(query: Query) -> Result:
    raise PermanentError("403")


def garbage(query: Query) -> Any:
    return {GetObject: 42, ListEvents: "not a list", PodLogs: {"not": "text"}}.get(type(query))


def nested_garbage(query: Query) -> Any:
    if isinstance(query, PodLogs):
        return b"\xff\xfe\x00binary"
    return {"kind": "Pod", "metadata": {"name": "api-1", "ownerReferences": "x"}, "spec": {"containers": [None, 3]},
            "status": {"containerStatuses": [{"name": None}], "conditions": "bad"}, "items": [1, None, {"a": 1}]}


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(everything_unavailable, id="all-unavailable"),
        pytest.param(raises_temporary, id="answer-raises-temporary"),
        pytest.param(raises_permanent, id="answer-raises-permanent"),
        pytest.param(garbage, id="wrong-result-types"),
        pytest.param(nested_garbage, id="wrong-field-types"),
    ],
)
@pytest.mark.parametrize(
    "subject",
    [
        pytest.param(pod_subject("CrashLoopBackOff", "api-1"), id="pod"),
        pytest.param(Subject(reason="DeploymentUnavailable", object=ObjectRef(kind="Deployment", name="api",
                                                                              namespace="production")), id="deploy"),
        pytest.param(Subject(reason="JobFailed", object=ObjectRef(kind="Job", name="j", namespace="p")), id="job"),
        pytest.param(Subject(reason="X", object=ObjectRef(kind="Service", name="s", namespace="p")), id="service"),
        pytest.param(Subject(reason="X", object=ObjectRef(kind="PersistentVolumeClaim", name="c", namespace="p")),
                     id="pvc"),
        pytest.param(Subject(reason="X", object=ObjectRef(kind="Widget", name="w", namespace="p")), id="odd-kind"),
        pytest.param(Subject(reason="X", object=ObjectRef(kind="Pod", name="p")), id="pod-without-namespace"),
        pytest.param(Subject(reason="HighLatency", source=SignalSource.ALERTMANAGER), id="alert-without-object"),
    ],
)
def test_bad_answers_never_raise_and_yield_an_unknown_or_weak_diagnosis(subject: Subject, answer: Any) -> None:
    evidence = drive(plan(subject, NOW), answer)
    diagnosis = diagnose(evidence)
    assert 0.0 <= diagnosis.confidence <= 1.0


def test_answer_errors_become_notes() -> None:
    evidence = drive(plan(pod_subject("CrashLoopBackOff", "api-1"), NOW), raises_temporary)
    assert any("TemporaryError: apiserver timeout" in note for note in evidence.notes)
    assert evidence.missing("Pod", "api-1") is not None


def test_a_vanished_pod_still_yields_its_events_and_its_owners_pods() -> None:
    sibling = pod("api-7d9f8c6b5-b", statuses=[status(waiting="CrashLoopBackOff", restarts=3,
                                                      last=terminated("OOMKilled", 137))],
                  containers=[container(limits={"memory": "128Mi"})])
    cluster = FakeCluster.of([sibling, {"kind": "Deployment", "metadata": {"name": "api", "namespace": "production"},
                                        "spec": {"selector": {"matchLabels": {"app": "api"}}}}],
                             [event("Pod", "api-gone", "OOMKilling", "Memory cgroup out of memory")])
    evidence = drive(plan(pod_subject("OOMKilled", "api-gone", owners=OWNERS), NOW), cluster)
    assert evidence.focus_pods == ("api-7d9f8c6b5-b",)
    assert evidence.events_of("Pod", "api-gone")
    assert diagnose(evidence).root_cause.startswith("OOM: memory limit 128Mi")


def test_subject_from_an_alertmanager_signal_reads_the_object_from_labels() -> None:
    signal = Signal(source=SignalSource.ALERTMANAGER, reason="KubePodCrashLooping", severity=Severity.WARNING,
                    labels={"namespace": "shop", "pod": "web-1", "container": "web", "alertname": "X"},
                    observed_at=datetime(2026, 1, 1, tzinfo=UTC), fingerprint=fingerprint_of("x"))
    subject = Subject.from_signal(signal)
    assert subject.object == ObjectRef(kind="Pod", name="web-1", namespace="shop")
    assert subject.container == "web"
    assert subject.title() == "KubePodCrashLooping on web-1 (shop)"


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        pytest.param({"namespace": "a", "deployment": "d"}, ObjectRef(kind="Deployment", name="d", namespace="a"),
                     id="deployment"),
        pytest.param({"node": "n1"}, ObjectRef(kind="Node", name="n1"), id="node-cluster-scoped"),
        pytest.param({"pod": "p"}, None, id="pod-without-namespace"),
        pytest.param({}, None, id="nothing"),
    ],
)
def test_alert_labels_name_the_object(labels: dict[str, str], expected: ObjectRef | None) -> None:
    from core.rca.records import object_from_labels

    assert object_from_labels(labels) == expected


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        pytest.param("app=api", {"app": "api", "x": "y"}, True, id="equal"),
        pytest.param("app=api,tier=web", {"app": "api"}, False, id="missing-label"),
        pytest.param("app!=api", {"app": "web"}, True, id="not-equal"),
        pytest.param("app", {"app": "x"}, True, id="exists"),
        pytest.param("!app", {"app": "x"}, False, id="not-exists"),
        pytest.param(None, {}, True, id="no-selector"),
    ],
)
def test_fake_cluster_label_selectors(selector: str | None, labels: dict[str, str], matches: bool) -> None:
    assert selector_matches(selector, labels) is matches


def test_service_endpoints_of_unreachable_dependencies_are_fetched() -> None:
    scenario = next(s for s in SCENARIOS if s.id == "dependency_connection_refused_no_endpoints")
    cluster = scenario.cluster()
    drive(plan(scenario.subject, NOW), cluster)
    assert Endpoints("production", "postgres") in cluster.asked
