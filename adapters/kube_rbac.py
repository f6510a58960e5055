"""The Kubernetes RBAC the platform needs, computed from what the code reads and what the tools write.

Least privilege, in two halves:

* **read** (``get``, ``list``, ``watch``) cluster-wide on the kinds the watchers watch
  (``core.detectors``), the raw-object and event tools serve (``adapters.kube_reads``) and
  ``pods/log`` and ``metrics.k8s.io`` for the log and usage tools. Never Secrets or
  ConfigMaps: their data is the point of them.
* **write**, only the (kind, verb) pairs the mutating tools of the catalogue
  (``core.tools.MUTATING``) perform in ``adapters.kube_actions``, listed per tool in
  ``TOOL_WRITES``. A mutating tool added to the catalogue without an entry here fails
  ``tests/unit/test_manifests.py``, and ``deploy/rbac.yaml`` must equal ``cluster_roles()``.

Namespace allow/deny lists are enforced by the tools themselves (``NamespacePolicy``); the
ClusterRole grants what the widest allowed set needs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

from adapters.kube import KINDS
from adapters.kube_reads import EVENT_KINDS, OBJECT_KINDS, ROLLOUT_KINDS
from core.detectors import CLUSTER_INPUT_KINDS, NAMESPACED_INPUT_KINDS

READ_VERBS = ("get", "list", "watch")

Write = tuple[str, str]  # (kind, verb)

TOOL_WRITES: Mapping[str, tuple[Write, ...]] = MappingProxyType(
    {
        "delete_pod": (("Pod", "delete"),),
        "rollout_restart": tuple((kind, "patch") for kind in ROLLOUT_KINDS),
        "scale_deployment": (("Deployment", "patch"),),
        "rollback_deployment": (("Deployment", "patch"),),
        "set_resources": tuple((kind, "patch") for kind in ROLLOUT_KINDS),
        "cordon_node": (("Node", "patch"),),
        "uncordon_node": (("Node", "patch"),),
        "drain_node": (("Node", "patch"), ("Pod", "delete")),
        "delete_failed_job": (("Job", "delete"), ("Job", "create")),
    }
)

# Reads that are not plain kinds: subresources and the metrics API (resource_usage).
_EXTRA_READS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("", "pods/log", ("get",)),
    ("metrics.k8s.io", "pods", ("get", "list")),
)


def resource_of(kind: str) -> tuple[str, str]:
    """(apiGroup, plural resource) of a kind the kube adapter knows."""
    info = KINDS[kind]
    group = info.api_version.rpartition("/")[0]
    plural = kind.lower() if kind.endswith("s") else kind.lower() + "s"
    return group, plural


def read_kinds() -> list[str]:
    kinds = {*NAMESPACED_INPUT_KINDS, *CLUSTER_INPUT_KINDS, *OBJECT_KINDS, *EVENT_KINDS, "Event", "Namespace"}
    return sorted(kinds)


def _rules(grants: Iterable[tuple[str, str, str]]) -> list[dict[str, Any]]:
    """RBAC rules from (group, resource, verb) triples: one rule per (group, verbs), sorted."""
    verbs_of: dict[tuple[str, str], set[str]] = {}
    for group, resource, verb in grants:
        verbs_of.setdefault((group, resource), set()).add(verb)
    by_verbs: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for (group, resource), verbs in verbs_of.items():
        by_verbs.setdefault((group, tuple(sorted(verbs))), []).append(resource)
    return [
        {"apiGroups": [group], "resources": sorted(resources), "verbs": list(verbs)}
        for (group, verbs), resources in sorted(by_verbs.items())
    ]


def read_grants() -> set[tuple[str, str, str]]:
    grants = {(*resource_of(kind), verb) for kind in read_kinds() for verb in READ_VERBS}
    grants |= {(group, resource, verb) for group, resource, verbs in _EXTRA_READS for verb in verbs}
    return grants


def write_grants(tools: Iterable[str]) -> set[tuple[str, str, str]]:
    """What the given mutating tools write; KeyError for a tool without a declaration."""
    return {(*resource_of(kind), verb) for tool in tools for kind, verb in TOOL_WRITES[tool]}


def cluster_roles(tools: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    """ClusterRole name -> rules: ``aiops-reader`` and ``aiops-remediator`` (for ``tools``)."""
    return {"aiops-reader": _rules(read_grants()), "aiops-remediator": _rules(write_grants(tools))}


def grants_of(rules: Iterable[Mapping[str, Any]]) -> set[tuple[str, str, str]]:
    """The (group, resource, verb) triples a list of RBAC rules allows (no wildcards expected)."""
    return {
        (str(group), str(resource), str(verb))
        for rule in rules
        for group in rule.get("apiGroups", [])
        for resource in rule.get("resources", [])
        for verb in rule.get("verbs", [])
    }
