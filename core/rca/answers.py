"""A dict-backed answerer for evidence plans: a tiny read-only cluster in memory.

Tests, the evaluation suite and the offline demo need answers to the plan's queries
without a Kubernetes API. ``FakeCluster`` holds API-shaped objects (dicts exactly as
the API serves them), events and log texts, and answers each query the way the API
would: 404 becomes ``Unavailable``, lists honour equality label selectors, events are
matched on ``involvedObject``, ``RolloutHistory`` returns the ReplicaSets owned by
the Deployment. It is pure and deterministic; it is not a mock (nothing is asserted
on calls), only a fake.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from core.detectors.objects import items, kind_of, labels_of, name_of, namespace_of, sub, text
from core.rca.queries import (
    Endpoints,
    GetNode,
    GetObject,
    ListEvents,
    ListObjects,
    PodLogs,
    Query,
    Result,
    RolloutHistory,
    Unavailable,
)


def selector_matches(selector: str | None, labels: Mapping[str, Any]) -> bool:
    """Whether labels satisfy an equality selector: ``a=b``, ``a==b``, ``a!=b``, ``a``, ``!a``."""
    if not selector:
        return True
    for term in (part.strip() for part in selector.split(",")):
        if not term:
            continue
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


@dataclass
class FakeCluster:
    """Objects, events and logs; ``__call__`` answers one query."""

    objects: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    logs: dict[tuple[str, str, bool], str | bytes] = field(default_factory=dict)
    failing: dict[str, str] = field(default_factory=dict)
    asked: list[Query] = field(default_factory=list)

    @classmethod
    def of(
        cls,
        objects: Iterable[Mapping[str, Any]] = (),
        events: Iterable[Mapping[str, Any]] = (),
        logs: Mapping[tuple[str, str, bool], str | bytes] | None = None,
    ) -> FakeCluster:
        return cls(objects=[dict(o) for o in objects], events=[dict(e) for e in events], logs=dict(logs or {}))

    def _find(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        for obj in self.objects:
            if kind_of(obj) == kind and name_of(obj) == name and (namespace is None or namespace_of(obj) == namespace):
                return obj
        return None

    def _of_kind(self, kind: str, namespace: str | None) -> list[dict[str, Any]]:
        return [
            obj
            for obj in self.objects
            if kind_of(obj) == kind and (namespace is None or namespace_of(obj) == namespace)
        ]

    def __call__(self, query: Query) -> Result:
        self.asked.append(query)
        failure = self.failing.get(type(query).__name__)
        if failure is not None:
            return Unavailable(failure)
        match query:
            case GetObject(kind=kind, namespace=namespace, name=name):
                return self._find(kind, namespace, name) or Unavailable(f'{kind.lower()} "{name}" not found')
            case GetNode(name=name):
                return self._find("Node", None, name) or Unavailable(f'node "{name}" not found')
            case ListEvents(namespace=namespace, kind=kind, name=name):
                return [
                    event
                    for event in self.events
                    if text(sub(event, "involvedObject").get("name")) == name
                    and text(sub(event, "involvedObject").get("kind")) in (kind, None)
                    and (namespace is None or namespace_of(event) in (namespace, None))
                ]
            case PodLogs(pod=pod, container=container, previous=previous, tail_lines=tail):
                if self._find("Pod", query.namespace, pod) is None:
                    return Unavailable(f'pods "{pod}" not found')
                log = self.logs.get((pod, container, previous))
                if log is None:
                    return Unavailable("previous terminated container not found" if previous else "no log")
                if isinstance(log, str):
                    return "\n".join(log.splitlines()[-tail:]) if tail > 0 else log
                return log
            case ListObjects(kind=kind, namespace=namespace, label_selector=selector):
                return {
                    "items": [o for o in self._of_kind(kind, namespace) if selector_matches(selector, labels_of(o))]
                }
            case RolloutHistory(namespace=namespace, deployment=deployment):
                return [
                    rs
                    for rs in self._of_kind("ReplicaSet", namespace)
                    if any(
                        ref.get("kind") == "Deployment" and ref.get("name") == deployment
                        for ref in items(sub(rs, "metadata").get("ownerReferences"))
                    )
                ]
            case Endpoints(namespace=namespace, service=service):
                return self._find("Endpoints", namespace, service) or Unavailable(f'endpoints "{service}" not found')
        return Unavailable("unsupported query")  # pragma: no cover - exhaustive above
