"""The evidence plan: what an on-call engineer would look at, written sans-I/O.

``plan(subject, now, budget)`` is a generator that yields typed read-only queries
(``core.rca.queries``) and is sent their results, the way httpx's auth flows yield
requests and receive responses. It returns a frozen ``Evidence``. Actors drive it with
the Kubernetes adapter; tests and the offline demo with ``drive(plan, answer)`` and a
``FakeCluster``. The plan itself never does I/O and never reads a clock (``now`` is
given), so every branch is testable with a dict.

What is gathered, by the kind of the incident's object:

* Pod: the pod, its events, current and previous logs of its failing containers, its
  owner chain (ReplicaSet -> Deployment, with the rollout history and sibling pods of
  every revision, or StatefulSet/DaemonSet/Job), its node and the node's events, its
  PVCs when it is Pending, Services selecting it and their Endpoints, and Endpoints of
  dependencies its logs fail to reach. A pod that is already gone still yields its
  events and its owners' view, with the worst sibling pod examined instead;
* Deployment / ReplicaSet / StatefulSet / DaemonSet / Job / Service: the object, its
  events, its pods (worst ``max_pods`` examined like a Pod incident);
* Node: the node and its events; PersistentVolumeClaim: the claim, its events and
  its StorageClass.

Budgets (``Budget``) bound the number of queries and the bytes kept; the collector
enforces them and records what was skipped in ``Evidence.notes``.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from datetime import datetime
from typing import Any, cast

from core.detectors.objects import items, name_of, sub, text
from core.errors import AiopsError
from core.rca.collector import Collector, Step
from core.rca.facts import PodFacts, pod_facts, selector_text
from core.rca.queries import Query, Result, Unavailable
from core.rca.records import Budget, Evidence, Subject
from core.rca.rollout import rollout_change

DEFAULT_BUDGET = Budget()
Plan = Generator[Query, Result, Evidence]
_POD_WORKLOADS = ("StatefulSet", "DaemonSet", "Job", "ReplicaSet")


def plan(subject: Subject, now: datetime, budget: Budget = DEFAULT_BUDGET) -> Plan:
    """Yield queries for ``subject`` and return the gathered ``Evidence``."""
    collector = Collector(subject, budget)
    ref = subject.object
    if ref is None:
        collector.note("no Kubernetes object named by the incident; only its labels are evidence")
    else:
        namespace = ref.namespace or subject.namespace
        kind, name = ref.kind, ref.name
        if kind == "Pod" and namespace:
            yield from _pod_incident(collector, namespace, name)
        elif kind == "Deployment" and namespace:
            yield from _deployment(collector, namespace, name, need_focus=True)
        elif kind in _POD_WORKLOADS and namespace:
            yield from _workload(collector, kind, namespace, name)
        elif kind == "Service" and namespace:
            yield from _service_incident(collector, namespace, name)
        elif kind == "Node":
            yield from _node(collector, name)
        elif kind == "PersistentVolumeClaim" and namespace:
            yield from _claim(collector, namespace, name)
        else:
            yield from collector.get(kind, namespace, name)
            yield from collector.events_for(namespace, kind, name)
    if subject.node:
        yield from _node(collector, subject.node)
    return collector.build(now)


def drive(evidence_plan: Plan, answer: Callable[[Query], Result]) -> Evidence:
    """Run a plan synchronously; an ``AiopsError`` from ``answer`` becomes ``Unavailable``."""
    try:
        query = next(evidence_plan)
        while True:
            try:
                result = answer(query)
            except AiopsError as error:
                result = Unavailable(f"{type(error).__name__}: {error}")
            query = evidence_plan.send(result)
    except StopIteration as stop:
        return cast(Evidence, stop.value)


def _pod_incident(c: Collector, namespace: str, name: str) -> Step:
    body = yield from c.get("Pod", namespace, name)
    yield from c.events_for(namespace, "Pod", name)
    facts = pod_facts(body) if body is not None else None
    if facts is not None:
        c.focus.append(facts.name)
        yield from _container_logs(c, namespace, facts)
    elif body is None:
        c.note(f"pod {namespace}/{name} is gone or unreadable; examining its owners")
    owners = [(ref.kind, ref.name) for ref in c.subject.owners]
    if facts is not None:
        owners = list(dict.fromkeys([*facts.owners, *owners]))
    yield from _owners(c, namespace, owners, need_focus=facts is None)
    if facts is not None:
        yield from _surroundings(c, namespace, facts)


def _owners(c: Collector, namespace: str, owners: list[tuple[str, str]], need_focus: bool) -> Step:
    deployment = next((name for kind, name in owners if kind == "Deployment"), None)
    for kind, name in owners:
        if kind == "ReplicaSet" and deployment is None:
            replica_set = yield from c.get("ReplicaSet", namespace, name)
            deployment = next(
                (text(ref.get("name")) for ref in _owner_refs(replica_set) if ref.get("kind") == "Deployment"),
                None,
            )
            if deployment is None and need_focus:
                yield from _focus_pods(c, namespace, selector_text(sub(replica_set, "spec", "selector")))
        elif kind in ("StatefulSet", "DaemonSet", "Job"):
            yield from _workload(c, kind, namespace, name, need_focus=need_focus)
    if deployment:
        yield from _deployment(c, namespace, deployment, need_focus=need_focus)


def _owner_refs(obj: Mapping[str, Any] | None) -> tuple[Mapping[str, Any], ...]:
    return items(sub(obj, "metadata").get("ownerReferences"))


def _deployment(c: Collector, namespace: str, name: str, *, need_focus: bool) -> Step:
    c.deployment = name
    deployment = yield from c.get("Deployment", namespace, name)
    yield from c.events_for(namespace, "Deployment", name)
    replica_sets = yield from c.history(namespace, name)
    c.rollout = rollout_change(replica_sets)
    selector = selector_text(sub(deployment, "spec", "selector"))
    if selector is None and c.rollout is not None:
        c.note("deployment selector unknown; sibling pods not listed")
    pods = (yield from c.list_objects("Pod", namespace, selector)) if selector else []
    if need_focus:
        yield from _examine(c, namespace, pods)


def _workload(c: Collector, kind: str, namespace: str, name: str, *, need_focus: bool = True) -> Step:
    obj = yield from c.get(kind, namespace, name)
    yield from c.events_for(namespace, kind, name)
    if kind == "ReplicaSet":
        deployment = next((text(r.get("name")) for r in _owner_refs(obj) if r.get("kind") == "Deployment"), None)
        if deployment:
            yield from _deployment(c, namespace, deployment, need_focus=need_focus)
            return
    selector = selector_text(sub(obj, "spec", "selector"))
    if selector is None and kind == "Job":
        selector = f"job-name={name}"
    if need_focus:
        yield from _focus_pods(c, namespace, selector)


def _focus_pods(c: Collector, namespace: str, selector: str | None) -> Step:
    if selector is None:
        c.note("no label selector: pods not listed")
        return
    pods = yield from c.list_objects("Pod", namespace, selector)
    yield from _examine(c, namespace, pods)


def _examine(c: Collector, namespace: str, pods: list[Any]) -> Step:
    """Examine the worst ``max_pods`` pods of a list like a Pod incident (events, logs)."""
    ranked = sorted(
        (facts for pod in pods if (facts := pod_facts(pod)) is not None and facts.name not in c.focus),
        key=lambda facts: -facts.badness(),
    )
    chosen = [facts for facts in ranked if facts.badness() > 0][: c.budget.max_pods] or ranked[:1]
    for facts in chosen:
        body = next(pod for pod in pods if name_of(pod) == facts.name)
        c.keep("Pod", namespace, facts.name, body)
        c.focus.append(facts.name)
        yield from c.events_for(namespace, "Pod", facts.name)
        yield from _container_logs(c, namespace, facts)
    if chosen:
        yield from _surroundings(c, namespace, chosen[0])


def _container_logs(c: Collector, namespace: str, facts: PodFacts) -> Step:
    """Previous and current logs of the failing containers (the subject's container first)."""
    hinted = c.subject.container
    containers = sorted(
        (item for item in facts.containers if item.failing or item.name == hinted),
        key=lambda item: (item.name != hinted, item.init and item.restart_count == 0, -item.restart_count),
    )
    if not containers and facts.phase == "Running":
        containers = [item for item in facts.containers if not item.init][:1]
    for item in containers[: c.budget.max_containers]:
        if item.restart_count > 0 or item.last_terminated is not None:
            yield from c.pod_logs(namespace, facts.name, item.name, True)
        if item.has_run:
            yield from c.pod_logs(namespace, facts.name, item.name, False)


def _surroundings(c: Collector, namespace: str, facts: PodFacts) -> Step:
    """Node, unbound claims, Services selecting the pod and unreachable dependencies."""
    if facts.node:
        yield from _node(c, facts.node)
    if facts.phase == "Pending":
        for claim in facts.claims[:2]:
            yield from _claim(c, namespace, claim)
    services = yield from c.list_objects("Service", namespace, None)
    by_name = {name: svc for svc in services if (name := name_of(svc)) is not None}
    selecting = [
        name
        for name, svc in by_name.items()
        if (selector := sub(svc, "spec", "selector"))
        and all(facts.labels.get(str(key)) == value for key, value in selector.items())
    ]
    for name in selecting[:2]:
        yield from c.endpoints(namespace, name)
    for host in _dependency_hosts(c, facts.name)[:3]:
        service, _, other_namespace = host.partition(".")
        target_namespace = other_namespace.split(".")[0] if other_namespace else namespace
        if service in by_name or (other_namespace and target_namespace != namespace):
            yield from c.endpoints(target_namespace, service)


def _dependency_hosts(c: Collector, pod: str) -> list[str]:
    hosts: list[str] = []
    for record in c.logs:
        if record.pod == pod:
            for host in record.summary.hosts:
                bare = host.rsplit(":", 1)[0] if ":" in host else host
                if bare and not bare[0].isdigit() and bare not in hosts:
                    hosts.append(bare)
    return hosts


def _node(c: Collector, name: str) -> Step:
    if ("Node", None, name) in c.objects:
        return
    yield from c.get("Node", None, name)
    yield from c.events_for(None, "Node", name)


def _claim(c: Collector, namespace: str, name: str) -> Step:
    claim = yield from c.get("PersistentVolumeClaim", namespace, name)
    yield from c.events_for(namespace, "PersistentVolumeClaim", name)
    storage_class = text(sub(claim, "spec").get("storageClassName"))
    if storage_class and sub(claim, "status").get("phase") != "Bound":
        yield from c.get("StorageClass", None, storage_class)


def _service_incident(c: Collector, namespace: str, name: str) -> Step:
    service = yield from c.get("Service", namespace, name)
    yield from c.endpoints(namespace, name)
    yield from c.events_for(namespace, "Service", name)
    selector = selector_text(sub(service, "spec", "selector"))
    yield from _focus_pods(c, namespace, selector)
