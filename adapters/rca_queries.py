"""Answers to the RCA evidence plan's typed queries, asked of a real cluster.

The evidence plan (``core.rca.evidence``) is sans-I/O: it yields read-only queries and
is sent their results. This module is the one place that turns those queries into
``KubeClient`` calls, so the vocabulary the plan can use against a cluster is exactly
the seven reads below and nothing that mutates (the RCA path never holds a write verb).

Every failure becomes ``Unavailable(reason)`` instead of an exception: a pod that is
already gone, a 403 from RBAC, an unsupported kind, a timeout. The plan records the
reason as evidence ("logs unavailable: forbidden") and goes on. Calls block (the
official client is synchronous); the RcaWorker runs them in a thread.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from adapters.kube import KubeClient, KubeForbidden, KubeNotFound
from core.errors import AiopsError, TemporaryError
from core.rca import (
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

log = logging.getLogger(__name__)

# Lists are bounded before they reach the plan (which keeps at most Budget.max_list_items).
MAX_LIST_ITEMS = 500
MAX_EVENTS = 200


def _owned_by(obj: Mapping[str, Any], kind: str, name: str) -> bool:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(isinstance(ref, Mapping) and ref.get("kind") == kind and ref.get("name") == name for ref in refs)


def _ask(kube: KubeClient, query: Query) -> Result:
    match query:
        case GetObject(kind=kind, namespace=namespace, name=name):
            return kube.get(kind, namespace, name)
        case GetNode(name=name):
            return kube.get("Node", None, name)
        case ListEvents(namespace=namespace, kind=kind, name=name):
            events, _ = kube.list("Event", namespace, field_selector=f"involvedObject.name={name}")
            # A server that ignores field selectors still gets the right answer.
            matching = [
                event
                for event in events
                if (event.get("involvedObject") or {}).get("name") == name
                and (event.get("involvedObject") or {}).get("kind") in (kind, None, "")
            ]
            return matching[-MAX_EVENTS:]
        case PodLogs(
            namespace=namespace,
            pod=pod,
            container=container,
            previous=previous,
            tail_lines=tail,
            limit_bytes=limit,
        ):
            return kube.read_pod_log(
                namespace, pod, container=container, previous=previous, tail_lines=tail, limit_bytes=limit
            )
        case ListObjects(kind=kind, namespace=namespace, label_selector=selector):
            found, _ = kube.list(kind, namespace, label_selector=selector or None)
            return {"items": found[:MAX_LIST_ITEMS]}
        case RolloutHistory(namespace=namespace, deployment=deployment):
            replica_sets, _ = kube.list("ReplicaSet", namespace)
            return [rs for rs in replica_sets if _owned_by(rs, "Deployment", deployment)]
        case Endpoints(namespace=namespace, service=service):
            return kube.get("Endpoints", namespace, service)
    return Unavailable(f"unsupported query {type(query).__name__}")  # pragma: no cover - exhaustive above


def answer(kube: KubeClient, query: Query) -> Result:
    """The cluster's answer to one evidence query; never raises (failures are ``Unavailable``)."""
    try:
        return _ask(kube, query)
    except KubeNotFound as e:
        return Unavailable(str(e))
    except KubeForbidden as e:
        return Unavailable(f"forbidden by RBAC: {e}")
    except TemporaryError as e:
        return Unavailable(f"temporarily unavailable: {e}")
    except AiopsError as e:
        return Unavailable(f"{type(e).__name__}: {e}")
    except Exception as e:  # a client bug or an odd payload must not end the analysis
        log.exception("RCA query %r failed unexpectedly", query)
        return Unavailable(f"query failed: {type(e).__name__}: {e}")


class KubeAnswerer:
    """A callable answerer bound to one client: ``KubeAnswerer(kube)(query) -> Result``."""

    def __init__(self, kube: KubeClient) -> None:
        self.kube = kube

    def __call__(self, query: Query) -> Result:
        return answer(self.kube, query)
