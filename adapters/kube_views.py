"""Compact views of Kubernetes objects and resource quantities, for tools and people.

A full Pod is 5-15 KB of JSON; an LLM or an on-call engineer reading a namespace of fifty
pods wants one line each: phase, readiness, restarts, why it is unhappy. The list tools
of :mod:`adapters.kube_actions` answer with these views, the get/describe tools with the
(trimmed) objects. Quantities (``256Mi``, ``500m``) are parsed exactly (``Decimal``) so a
``memory_factor`` of 1.5 on ``128Mi`` gives ``192Mi``, not a float rounding artefact.

Pure functions over API-shaped dicts; nothing here talks to a cluster.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from typing import Any

from core.errors import InputError

JsonObj = dict[str, Any]

_QUANTITY = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?|\.[0-9]+)\s*([A-Za-z]*)\s*$")
_MEMORY_UNITS: dict[str, Decimal] = {
    "": Decimal(1),
    "m": Decimal("0.001"),
    "k": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "P": Decimal(10**15),
    "E": Decimal(10**18),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}
_MI = 2**20


def _split_quantity(quantity: str, what: str) -> tuple[Decimal, str]:
    m = _QUANTITY.match(str(quantity))
    if not m:
        raise InputError(f"not a {what} quantity: {quantity!r}")
    try:
        return Decimal(m.group(1)), m.group(2)
    except InvalidOperation as e:
        raise InputError(f"not a {what} quantity: {quantity!r}") from e


def memory_bytes(quantity: str) -> int:
    """``256Mi`` -> 268435456; ``1G`` -> 10**9. Raises InputError on anything else."""
    number, unit = _split_quantity(quantity, "memory")
    if unit not in _MEMORY_UNITS:
        raise InputError(f"not a memory quantity: {quantity!r} (units: Ki, Mi, Gi, Ti, k, M, G, T)")
    return math.ceil(number * _MEMORY_UNITS[unit])


def format_memory(value: int) -> str:
    """Bytes as the largest binary unit that divides them; otherwise rounded up to ``Mi``."""
    for unit, size in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20)):
        if value >= size and value % size == 0:
            return f"{value // size}{unit}"
    return f"{math.ceil(value / _MI)}Mi"


def cpu_millis(quantity: str) -> int:
    """``500m`` -> 500; ``1.5`` -> 1500; ``2`` -> 2000."""
    number, unit = _split_quantity(quantity, "CPU")
    if unit == "m":
        return math.ceil(number)
    if unit == "":
        return math.ceil(number * 1000)
    raise InputError(f"not a CPU quantity: {quantity!r} (use cores like 1.5 or millicores like 500m)")


def format_cpu(millis: int) -> str:
    return f"{millis // 1000}" if millis % 1000 == 0 else f"{millis}m"


# -- trimming ------------------------------------------------------------------------------
def trimmed(obj: JsonObj) -> JsonObj:
    """The object without ``managedFields`` and the last-applied annotation (noise, and large)."""
    meta = dict(obj.get("metadata") or {})
    meta.pop("managedFields", None)
    annotations = dict(meta.get("annotations") or {})
    annotations.pop("kubectl.kubernetes.io/last-applied-configuration", None)
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    return {**obj, "metadata": meta}


def controller_of(obj: JsonObj) -> JsonObj | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return {"kind": ref.get("kind"), "name": ref.get("name"), "uid": ref.get("uid")}
    return None


def _images(template_spec: JsonObj) -> list[str]:
    return [str(c.get("image", "")) for c in template_spec.get("containers") or []]


def _conditions(status: JsonObj, healthy: Iterable[tuple[str, str]] = ()) -> list[str]:
    """``Type=Status (Reason)`` for each condition; ``healthy`` pairs are left out."""
    skip = set(healthy)
    rows = []
    for c in status.get("conditions") or []:
        if (c.get("type"), c.get("status")) in skip:
            continue
        reason = f" ({c['reason']})" if c.get("reason") else ""
        rows.append(f"{c.get('type')}={c.get('status')}{reason}")
    return rows


# -- views ---------------------------------------------------------------------------------
def container_states(pod: JsonObj) -> list[JsonObj]:
    """Per container: ready, restarts, current state and the last termination (OOMKilled...)."""
    rows = []
    status = pod.get("status") or {}
    for cs in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
        state: JsonObj = cs.get("state") or {}
        name, detail = next(iter(state.items()), ("unknown", {}))
        detail = detail if isinstance(detail, dict) else {}
        row: JsonObj = {
            "name": cs.get("name"),
            "ready": bool(cs.get("ready")),
            "restarts": int(cs.get("restartCount") or 0),
            "state": name,
        }
        if detail.get("reason"):
            row["reason"] = detail["reason"]
        if detail.get("exitCode") is not None:
            row["exit_code"] = detail["exitCode"]
        last = (cs.get("lastState") or {}).get("terminated")
        if last:
            row["last_terminated"] = {k: last[k] for k in ("reason", "exitCode", "finishedAt") if k in last}
        rows.append(row)
    return rows


def pod_view(pod: JsonObj) -> JsonObj:
    meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    states = [s for s in container_states(pod) if s["name"] in {c.get("name") for c in spec.get("containers") or []}]
    reasons = sorted(
        {s["reason"] for s in states if s.get("reason") and s["reason"] != "Completed"}
        | {s["last_terminated"]["reason"] for s in states if (s.get("last_terminated") or {}).get("reason")}
        | ({status["reason"]} if status.get("reason") else set())
    )
    owner = controller_of(pod)
    return {
        "name": meta.get("name"),
        "phase": status.get("phase", "Unknown"),
        "ready": f"{sum(1 for s in states if s['ready'])}/{len(spec.get('containers') or [])}",
        "restarts": sum(s["restarts"] for s in states),
        "reasons": reasons,
        "node": spec.get("nodeName"),
        "owner": f"{owner['kind']}/{owner['name']}" if owner else None,
        "created": meta.get("creationTimestamp"),
    }


def deployment_view(dep: JsonObj) -> JsonObj:
    spec, status = dep.get("spec") or {}, dep.get("status") or {}
    return {
        "name": (dep.get("metadata") or {}).get("name"),
        "replicas": spec.get("replicas", 1),
        "ready": status.get("readyReplicas", 0),
        "updated": status.get("updatedReplicas", 0),
        "available": status.get("availableReplicas", 0),
        "images": _images((spec.get("template") or {}).get("spec") or {}),
        "conditions": _conditions(status, healthy=[("Available", "True"), ("Progressing", "True")]),
    }


def statefulset_view(sts: JsonObj) -> JsonObj:
    spec, status = sts.get("spec") or {}, sts.get("status") or {}
    return {
        "name": (sts.get("metadata") or {}).get("name"),
        "replicas": spec.get("replicas", 1),
        "ready": status.get("readyReplicas", 0),
        "current_revision": status.get("currentRevision"),
        "update_revision": status.get("updateRevision"),
        "images": _images((spec.get("template") or {}).get("spec") or {}),
    }


def daemonset_view(ds: JsonObj) -> JsonObj:
    spec, status = ds.get("spec") or {}, ds.get("status") or {}
    return {
        "name": (ds.get("metadata") or {}).get("name"),
        "desired": status.get("desiredNumberScheduled", 0),
        "ready": status.get("numberReady", 0),
        "unavailable": status.get("numberUnavailable", 0),
        "images": _images((spec.get("template") or {}).get("spec") or {}),
    }


def job_state(job: JsonObj) -> str:
    for c in (job.get("status") or {}).get("conditions") or []:
        if c.get("status") == "True" and c.get("type") in ("Complete", "Failed", "Suspended"):
            return str(c["type"])
    return "Running"


def job_view(job: JsonObj) -> JsonObj:
    spec, status = job.get("spec") or {}, job.get("status") or {}
    owner = controller_of(job)
    return {
        "name": (job.get("metadata") or {}).get("name"),
        "state": job_state(job),
        "succeeded": status.get("succeeded", 0),
        "failed": status.get("failed", 0),
        "active": status.get("active", 0),
        "backoff_limit": spec.get("backoffLimit", 6),
        "owner": f"{owner['kind']}/{owner['name']}" if owner else None,
        "conditions": _conditions(status),
    }


def node_view(node: JsonObj) -> JsonObj:
    spec, status = node.get("spec") or {}, node.get("status") or {}
    ready = next((c.get("status") for c in status.get("conditions") or [] if c.get("type") == "Ready"), "Unknown")
    allocatable = status.get("allocatable") or {}
    return {
        "name": (node.get("metadata") or {}).get("name"),
        "ready": ready,
        "unschedulable": bool(spec.get("unschedulable")),
        "taints": [f"{t.get('key')}:{t.get('effect')}" for t in spec.get("taints") or []],
        "problems": _conditions(
            status,
            healthy=[
                ("Ready", "True"),
                ("MemoryPressure", "False"),
                ("DiskPressure", "False"),
                ("PIDPressure", "False"),
                ("NetworkUnavailable", "False"),
            ],
        ),
        "allocatable": {k: allocatable[k] for k in ("cpu", "memory", "pods") if k in allocatable},
    }


def event_view(event: JsonObj) -> JsonObj:
    obj = event.get("involvedObject") or event.get("regarding") or {}
    return {
        "type": event.get("type"),
        "reason": event.get("reason"),
        "object": f"{obj.get('kind')}/{obj.get('name')}",
        "message": event.get("message") or event.get("note"),
        "count": event.get("count") or (event.get("series") or {}).get("count") or 1,
        "first": event.get("firstTimestamp") or event.get("eventTime"),
        "last": event.get("lastTimestamp") or event.get("eventTime") or event.get("firstTimestamp"),
    }


def event_sort_key(event: JsonObj) -> str:
    return str(event.get("lastTimestamp") or event.get("eventTime") or event.get("firstTimestamp") or "")
