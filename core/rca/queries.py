"""The typed questions an evidence plan asks, and the answers it accepts.

The evidence plan (``core.rca.evidence``) is written sans-I/O: it yields one of these
frozen queries and is sent back a ``Result``. An actor answers them with the
Kubernetes adapter, a test with ``core.rca.answers.FakeCluster``. Keeping the
vocabulary small and read-only is deliberate: nothing here can change the cluster.

Results are plain API JSON as the Kubernetes API serves it (a dict for one object; a
list of dicts, or a ``{"items": [...]}`` list object, for lists), log text (``str``
or ``bytes``) for ``PodLogs``, or ``Unavailable(reason)`` when the object is gone, the
query failed or was refused. A plan treats any other value as ``Unavailable``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class GetObject:
    """One namespaced (or, with ``namespace=None``, cluster-scoped) object by kind and name."""

    kind: str
    namespace: str | None
    name: str


@dataclass(frozen=True)
class ListEvents:
    """core/v1 Events whose involvedObject is ``kind``/``name``; ``namespace=None`` means all namespaces."""

    namespace: str | None
    kind: str
    name: str


@dataclass(frozen=True)
class PodLogs:
    """The last ``tail_lines`` lines of one container's log (``previous``: the terminated instance)."""

    namespace: str
    pod: str
    container: str
    previous: bool = False
    tail_lines: int = 200
    limit_bytes: int | None = None


@dataclass(frozen=True)
class ListObjects:
    """Objects of a kind in a namespace, optionally filtered by an equality label selector (``a=b,c=d``)."""

    kind: str
    namespace: str | None
    label_selector: str | None = None


@dataclass(frozen=True)
class RolloutHistory:
    """The ReplicaSets owned by a Deployment (each carries its ``deployment.kubernetes.io/revision``)."""

    namespace: str
    deployment: str


@dataclass(frozen=True)
class GetNode:
    name: str


@dataclass(frozen=True)
class Endpoints:
    """The Endpoints object of a Service (EndpointSlices may be answered as ``{"items": [...]}``)."""

    namespace: str
    service: str


Query = GetObject | ListEvents | PodLogs | ListObjects | RolloutHistory | GetNode | Endpoints


@dataclass(frozen=True)
class Unavailable:
    """The answer when an object is gone, a query failed or a budget refused it."""

    reason: str


Result = Mapping[str, Any] | Sequence[Any] | str | bytes | Unavailable


def describe(query: Query) -> str:
    """A short human form of a query, for notes and evidence references."""
    match query:
        case GetObject(kind=kind, namespace=namespace, name=name):
            return f"get {kind}/{namespace or ''}/{name}"
        case ListEvents(namespace=namespace, kind=kind, name=name):
            return f"events of {kind}/{namespace or '*'}/{name}"
        case PodLogs(namespace=namespace, pod=pod, container=container, previous=previous):
            return f"logs of {namespace}/{pod}/{container}{' (previous)' if previous else ''}"
        case ListObjects(kind=kind, namespace=namespace, label_selector=selector):
            return f"list {kind} in {namespace or '*'}{f' [{selector}]' if selector else ''}"
        case RolloutHistory(namespace=namespace, deployment=deployment):
            return f"rollout history of Deployment/{namespace}/{deployment}"
        case GetNode(name=name):
            return f"get Node/{name}"
        case Endpoints(namespace=namespace, service=service):
            return f"endpoints of Service/{namespace}/{service}"
    return repr(query)  # pragma: no cover - exhaustive above
