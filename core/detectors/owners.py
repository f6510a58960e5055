"""The owner chain of an object: pod -> ReplicaSet -> Deployment, pod -> Job -> CronJob.

Correlation groups signals by topology (a Deployment's pods are one incident, not
twenty), so every pod finding carries its owners, nearest first. A watcher usually
knows the ReplicaSets of its namespace and passes them in; when it does not, the
Deployment is inferred from the ReplicaSet name ``<deployment>-<pod-template-hash>``,
but only when the pod's ``pod-template-hash`` label proves that suffix is a hash, so
a hand-made ReplicaSet called ``web-frontend`` is never mistaken for Deployment ``web``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.detectors.objects import items, kind_of, labels_of, namespace_of, sub, text
from core.models import ObjectRef

OwnersIndex = Mapping[str, Mapping[str, Any]]
"""Known owner objects (ReplicaSets, Jobs) keyed by ``Kind/namespace/name``, ``namespace/name`` or name."""

_MAX_DEPTH = 4


def controller_ref(obj: Any) -> tuple[str, str] | None:
    """``(kind, name)`` of the controlling ownerReference, else of the first usable one."""
    usable = [
        (ref, kind, name)
        for ref in items(sub(obj, "metadata").get("ownerReferences"))
        if (kind := text(ref.get("kind"))) is not None and (name := text(ref.get("name"))) is not None
    ]
    for ref, kind, name in usable:
        if ref.get("controller") is True:
            return kind, name
    return (usable[0][1], usable[0][2]) if usable else None


def _lookup(index: OwnersIndex, kind: str, namespace: str | None, name: str) -> Mapping[str, Any] | None:
    for key in (f"{kind}/{namespace or ''}/{name}", f"{namespace or ''}/{name}", name):
        found = index.get(key)
        if isinstance(found, Mapping) and kind_of(found) in (None, kind):
            return found
    return None


def _deployment_from_hash(pod: Any, replicaset: str) -> str | None:
    template_hash = text(labels_of(pod).get("pod-template-hash"))
    if template_hash is None:
        return None
    suffix = "-" + template_hash
    if replicaset.endswith(suffix) and len(replicaset) > len(suffix):
        return replicaset[: -len(suffix)]
    return None


def owner_chain(obj: Mapping[str, Any], replicasets_by_name: OwnersIndex | None = None) -> tuple[ObjectRef, ...]:
    """The controllers of ``obj``, nearest first.

    ``replicasets_by_name`` maps known owner objects (ReplicaSets, and Jobs for the
    CronJob link) by ``Kind/namespace/name``, ``namespace/name`` or plain name; the
    first key form that matches wins. Unknown owners end the chain, except a
    ReplicaSet whose Deployment can be inferred from the pod-template-hash label.
    """
    index: OwnersIndex = replicasets_by_name or {}
    namespace = namespace_of(obj)
    chain: list[ObjectRef] = []
    current: Any = obj
    seen: set[str] = set()
    for _ in range(_MAX_DEPTH):
        ref = controller_ref(current)
        if ref is None:
            break
        kind, name = ref
        owner = ObjectRef(kind=kind, namespace=namespace, name=name)
        if owner.key() in seen:
            break
        seen.add(owner.key())
        chain.append(owner)
        known = _lookup(index, kind, namespace, name)
        if known is not None:
            current = known
            continue
        if kind == "ReplicaSet":
            deployment = _deployment_from_hash(current, name)
            if deployment is not None:
                chain.append(ObjectRef(kind="Deployment", namespace=namespace, name=deployment))
        break
    return tuple(chain)
