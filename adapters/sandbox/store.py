"""The sandbox's object store: what etcd plus the watch cache are to a real API server.

kmock keeps objects as plain merged dicts without resource versions, so it cannot serve
"watch from resourceVersion N", compaction (410 Gone) or selectors. This store gives every
write a cluster-wide, monotonically increasing resourceVersion, keeps a bounded history of
changes for watch resumption, and fans changes out to open watches and to the simulator.

Everything runs on one asyncio loop (the sandbox's), so there are no locks: a write and its
fan-out happen without an ``await`` in between, which is what makes resumption gap-free.
"""

from __future__ import annotations

import builtins
import copy
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

JsonObj = dict[str, Any]


@dataclass(frozen=True)
class ResourceType:
    """One API resource the sandbox serves (a row of the discovery document)."""

    plural: str
    group: str
    version: str
    kind: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return self.version if not self.group else f"{self.group}/{self.version}"


RESOURCES: dict[str, ResourceType] = {
    r.plural: r
    for r in (
        ResourceType("pods", "", "v1", "Pod", True),
        ResourceType("services", "", "v1", "Service", True),
        ResourceType("endpoints", "", "v1", "Endpoints", True),
        ResourceType("events", "", "v1", "Event", True),
        ResourceType("persistentvolumeclaims", "", "v1", "PersistentVolumeClaim", True),
        ResourceType("configmaps", "", "v1", "ConfigMap", True),
        ResourceType("nodes", "", "v1", "Node", False),
        ResourceType("namespaces", "", "v1", "Namespace", False),
        ResourceType("deployments", "apps", "v1", "Deployment", True),
        ResourceType("replicasets", "apps", "v1", "ReplicaSet", True),
        ResourceType("statefulsets", "apps", "v1", "StatefulSet", True),
        ResourceType("daemonsets", "apps", "v1", "DaemonSet", True),
        ResourceType("jobs", "batch", "v1", "Job", True),
        ResourceType("cronjobs", "batch", "v1", "CronJob", True),
    )
}
KIND_TO_PLURAL: dict[str, str] = {r.kind: r.plural for r in RESOURCES.values()}


class ApiError(Exception):
    """An error the API server answers with a ``Status`` object."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message

    def status(self) -> JsonObj:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }


def now_iso() -> str:
    return datetime.now(tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Change:
    """One write, as a watch event: ``type`` is ADDED, MODIFIED or DELETED."""

    rv: int
    type: str
    plural: str
    obj: JsonObj


Key = tuple[str, str]  # (namespace or "", name)
Listener = Callable[[Change], None]


@dataclass
class ObjectStore:
    """Objects per resource plural, a change history and synchronous change listeners."""

    history_limit: int = 20_000
    _rv: int = 1000
    _objects: dict[str, dict[Key, JsonObj]] = field(default_factory=dict)
    _history: deque[Change] = field(default_factory=deque)
    _floor: int = 1000  # watches from a resourceVersion below this are answered 410 Gone
    _listeners: list[Listener] = field(default_factory=list)

    @property
    def resource_version(self) -> int:
        return self._rv

    @property
    def floor(self) -> int:
        return self._floor

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    # -- reads ---------------------------------------------------------------------------
    def get(self, plural: str, namespace: str | None, name: str) -> JsonObj | None:
        return self._objects.get(plural, {}).get((namespace or "", name))

    def list(self, plural: str, namespace: str | None = None) -> list[JsonObj]:
        objs = self._objects.get(plural, {})
        keys = sorted(k for k in objs if namespace is None or k[0] == namespace)
        return [objs[k] for k in keys]

    def iter_all(self, plural: str) -> Iterator[JsonObj]:
        yield from self._objects.get(plural, {}).values()

    def changes_since(self, rv: int) -> builtins.list[Change]:
        """Changes after ``rv``; raises 410 when that part of the history is compacted."""
        if rv < self._floor:
            raise ApiError(410, "Expired", f"too old resource version: {rv} ({self._floor})")
        return [c for c in self._history if c.rv > rv]

    # -- writes --------------------------------------------------------------------------
    def create(self, plural: str, obj: JsonObj) -> JsonObj:
        rt = RESOURCES[plural]
        new = copy.deepcopy(obj)
        meta = new.setdefault("metadata", {})
        name = meta.get("name")
        if not name and meta.get("generateName"):
            name = meta["generateName"] + uuid.uuid4().hex[:5]
            meta["name"] = name
        if not name:
            raise ApiError(422, "Invalid", f"{rt.kind} is invalid: metadata.name: Required value")
        namespace = meta.get("namespace") if rt.namespaced else None
        if rt.namespaced and not namespace:
            raise ApiError(422, "Invalid", f"{rt.kind} {name!r} is invalid: metadata.namespace: Required")
        key = (namespace or "", name)
        if key in self._objects.get(plural, {}):
            raise ApiError(409, "AlreadyExists", f'{plural} "{name}" already exists')
        if not rt.namespaced:
            meta.pop("namespace", None)
        meta["uid"] = str(uuid.uuid4())
        meta.setdefault("creationTimestamp", now_iso())
        if "spec" in new:
            meta["generation"] = 1
        new["kind"] = rt.kind
        new["apiVersion"] = rt.api_version
        return self._commit("ADDED", plural, key, new)

    def replace(self, plural: str, obj: JsonObj, *, bump_generation: bool = True) -> JsonObj:
        """Store ``obj`` over the existing object with the same key (a PUT)."""
        rt = RESOURCES[plural]
        meta = obj.get("metadata", {})
        key = ((meta.get("namespace") or "") if rt.namespaced else "", meta.get("name", ""))
        old = self._objects.get(plural, {}).get(key)
        if old is None:
            raise ApiError(404, "NotFound", f'{plural} "{key[1]}" not found')
        expected = meta.get("resourceVersion")
        if expected and expected != old["metadata"]["resourceVersion"]:
            raise ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {plural} "{key[1]}": '
                "the object has been modified; please apply your changes to the latest version",
            )
        new = copy.deepcopy(obj)
        new_meta = new.setdefault("metadata", {})
        for fixed in ("uid", "creationTimestamp"):
            new_meta[fixed] = old["metadata"][fixed]
        generation = old["metadata"].get("generation")
        if generation is not None:
            changed = bump_generation and new.get("spec") != old.get("spec")
            new_meta["generation"] = generation + 1 if changed else generation
        new["kind"] = rt.kind
        new["apiVersion"] = rt.api_version
        if _without_rv(new) == _without_rv(old):
            return old  # a no-op write does not bump the resourceVersion (as a real server)
        return self._commit("MODIFIED", plural, key, new)

    def delete(self, plural: str, namespace: str | None, name: str) -> JsonObj:
        key = (namespace or "", name)
        objs = self._objects.get(plural, {})
        if key not in objs:
            raise ApiError(404, "NotFound", f'{plural} "{name}" not found')
        old = objs[key]
        gone = copy.deepcopy(old)
        gone["metadata"]["deletionTimestamp"] = now_iso()
        return self._commit("DELETED", plural, key, gone)

    def compact(self) -> None:
        """Forget the history: every watch resumed from an older resourceVersion gets 410."""
        self._history.clear()
        self._floor = self._rv

    # -- internals -----------------------------------------------------------------------
    def _commit(self, kind: str, plural: str, key: Key, obj: JsonObj) -> JsonObj:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        bucket = self._objects.setdefault(plural, {})
        if kind == "DELETED":
            bucket.pop(key, None)
        else:
            bucket[key] = obj
        change = Change(self._rv, kind, plural, obj)
        self._history.append(change)
        while len(self._history) > self.history_limit:
            dropped = self._history.popleft()
            self._floor = dropped.rv
        for listener in list(self._listeners):
            listener(change)
        return obj


def _without_rv(obj: JsonObj) -> JsonObj:
    meta = {k: v for k, v in obj.get("metadata", {}).items() if k != "resourceVersion"}
    return {**obj, "metadata": meta}


# -- selectors -----------------------------------------------------------------------------
def _lookup(obj: JsonObj, path: str) -> str | None:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return None if cur is None else str(cur)


def _split_top(text: str) -> list[str]:
    """Split on commas that are not inside ``(...)`` (set-based requirements)."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p.strip() for p in parts if p.strip()]


LabelTest = Callable[[dict[str, str]], bool]


def _label_test(op: str, key: str, values: frozenset[str]) -> LabelTest:
    def test(labels: dict[str, str]) -> bool:
        if op == "in":
            return labels.get(key) in values
        if op == "notin":
            return labels.get(key) not in values
        if op == "exists":
            return key in labels
        return key not in labels  # "!exists"

    return test


def label_matcher(selector: str | None) -> Callable[[JsonObj], bool]:
    """Compile a label selector: ``a=b``, ``a==b``, ``a!=b``, ``a in (x,y)``, ``a notin (x)``,
    ``a``, ``!a``, joined with commas (AND)."""
    tests: builtins.list[LabelTest] = []
    for req in _split_top(selector or ""):
        if " notin " in req or " in " in req:
            op = "notin" if " notin " in req else "in"
            k, _, vals = req.partition(f" {op} ")
            values = frozenset(v.strip() for v in vals.strip().strip("()").split(",") if v.strip())
            tests.append(_label_test(op, k.strip(), values))
        elif "!=" in req:
            k, _, v = req.partition("!=")
            tests.append(_label_test("notin", k.strip(), frozenset([v.strip()])))
        elif "=" in req:
            k, _, v = req.replace("==", "=").partition("=")
            tests.append(_label_test("in", k.strip(), frozenset([v.strip()])))
        elif req.startswith("!"):
            tests.append(_label_test("!exists", req[1:].strip(), frozenset()))
        else:
            tests.append(_label_test("exists", req, frozenset()))

    def match(obj: JsonObj) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        return all(t(labels) for t in tests)

    return match


def _field_test(path: str, value: str, equal: bool) -> Callable[[JsonObj], bool]:
    def test(obj: JsonObj) -> bool:
        return ((_lookup(obj, path) or "") == value) is equal

    return test


def field_matcher(selector: str | None) -> Callable[[JsonObj], bool]:
    """Compile a field selector (``metadata.name=x``, ``involvedObject.name=x``, ``a!=b``)."""
    tests: builtins.list[Callable[[JsonObj], bool]] = []
    for req in _split_top(selector or ""):
        if "!=" in req:
            path, _, value = req.partition("!=")
            tests.append(_field_test(path.strip(), value.strip(), equal=False))
        else:
            path, _, value = req.replace("==", "=").partition("=")
            tests.append(_field_test(path.strip(), value.strip(), equal=True))

    def match(obj: JsonObj) -> bool:
        return all(t(obj) for t in tests)

    return match


# -- patches -------------------------------------------------------------------------------
def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: dicts merge, ``None`` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """An approximation of Kubernetes' strategic merge: like a merge patch, but lists of dicts
    that all carry ``name`` (containers, env, ports, volumes) are merged item by item."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue  # directives such as $setElementOrder are not needed here
        old = result.get(key)
        if value is None:
            result.pop(key, None)
        elif _named_list(value) and (old is None or _named_list(old)):
            merged = {item["name"]: item for item in (old or [])}
            order = [item["name"] for item in (old or [])]
            for item in value:
                if item.get("$patch") == "delete":
                    merged.pop(item["name"], None)
                    continue
                if item["name"] not in merged:
                    order.append(item["name"])
                merged[item["name"]] = strategic_merge_patch(merged.get(item["name"]), item)
            result[key] = [merged[n] for n in order if n in merged]
        else:
            result[key] = strategic_merge_patch(old, value)
    return result


def _named_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(i, dict) and "name" in i for i in value)


def json_patch(target: JsonObj, ops: list[JsonObj]) -> JsonObj:
    """RFC 6902 JSON patch with add, replace, remove and test."""
    doc: Any = copy.deepcopy(target)
    for op in ops:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        parent: Any = doc
        for part in parts[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent.setdefault(part, {})
        last = parts[-1] if parts else ""
        kind = op["op"]
        if kind == "test":
            current = parent[int(last)] if isinstance(parent, list) else parent.get(last)
            if current != op.get("value"):
                raise ApiError(422, "Invalid", f"test operation failed at {op['path']}")
        elif kind == "remove":
            if isinstance(parent, list):
                parent.pop(int(last))
            else:
                parent.pop(last, None)
        elif kind in ("add", "replace"):
            if isinstance(parent, list):
                if last == "-":
                    parent.append(op["value"])
                elif kind == "add":
                    parent.insert(int(last), op["value"])
                else:
                    parent[int(last)] = op["value"]
            else:
                parent[last] = op["value"]
        else:
            raise ApiError(422, "Invalid", f"unsupported json patch operation {kind!r}")
    result: JsonObj = doc
    return result
