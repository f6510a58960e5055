"""The sandbox's HTTP face: a ``kmock.KubernetesEmulator`` that serves the object store.

kmock gives us the discovery documents (``/api``, ``/apis``, ``/api/v1`` from its bundled
resource list) and error rendering, but its own storage lacks what our platform depends on
when it talks to a real API server: resourceVersions, watch resumption, 410 Gone, selectors,
pagination, ``/api/v1/namespaces`` (its path parser fails there), ``/version/``, pod logs as
plain text, ``/status`` and ``/scale``. So resource paths are answered here, from
:class:`~adapters.sandbox.store.ObjectStore`, and everything else falls through to kmock.

Test hooks model real failure modes: :meth:`ApiServer.fail_watches` (compaction: every open
watch gets an ``ERROR`` event with code 410 and resuming needs a relist),
:meth:`ApiServer.drop_watches` (connections reset mid-stream) and ``forbidden`` (RBAC 403).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import importlib.resources
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp.web
import kmock

from adapters.sandbox.store import (
    RESOURCES,
    ApiError,
    Change,
    JsonObj,
    ObjectStore,
    ResourceType,
    field_matcher,
    json_patch,
    label_matcher,
    merge_patch,
    strategic_merge_patch,
)

log = logging.getLogger(__name__)

VERSION_INFO: JsonObj = {
    "major": "1",
    "minor": "30",
    "gitVersion": "v1.30.0-sandbox",
    "gitCommit": "sandbox",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.22",
    "compiler": "gc",
    "platform": "linux/amd64",
}


class LogBook:
    """Container logs per (namespace, pod, container): the current and the previous run."""

    def __init__(self) -> None:
        self._current: dict[tuple[str, str, str], list[tuple[float, str]]] = {}
        self._previous: dict[tuple[str, str, str], list[tuple[float, str]]] = {}

    def append(self, namespace: str, pod: str, container: str, line: str) -> None:
        self._current.setdefault((namespace, pod, container), []).append((time.time(), line))

    def rotate(self, namespace: str, pod: str, container: str) -> None:
        """The container restarted: its current log becomes the previous one."""
        key = (namespace, pod, container)
        self._previous[key] = self._current.pop(key, [])

    def forget(self, namespace: str, pod: str) -> None:
        for book in (self._current, self._previous):
            for key in [k for k in book if k[:2] == (namespace, pod)]:
                del book[key]

    def read(self, namespace: str, pod: str, container: str, previous: bool) -> list[tuple[float, str]] | None:
        book = self._previous if previous else self._current
        return book.get((namespace, pod, container), None if previous else [])


@dataclass(frozen=True)
class Route:
    rt: ResourceType
    namespace: str | None
    name: str | None
    sub: str | None


def parse_route(path: str) -> Route | None:
    """Map an API path onto a resource; None for discovery and non-API paths."""
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        group, version, rest = "", "v1", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    if not rest:
        return None
    namespace: str | None = None
    if rest[0] == "namespaces" and len(rest) >= 3 and not (len(rest) == 3 and rest[2] in ("status", "finalize")):
        namespace, rest = rest[1], rest[2:]
    plural = rest[0]
    rt = RESOURCES.get(plural)
    if rt is None or rt.group != group or rt.version != version or (namespace and not rt.namespaced):
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    return Route(rt, namespace, rest[1] if len(rest) > 1 else None, "/".join(rest[2:]) or None)


@dataclass(eq=False)
class _Watch:
    plural: str
    namespace: str | None
    matches: Callable[[JsonObj], bool]
    queue: asyncio.Queue[Change | ApiError | str] = field(default_factory=asyncio.Queue)


_DROP = "drop"
_CLOSE = "close"
_STALL = "stall"


class ApiServer:
    """Answers resource requests from the store; returns None for paths it does not own."""

    def __init__(
        self, store: ObjectStore, logs: LogBook, *, bookmark_interval: float = 5.0, max_watch_seconds: float = 1800.0
    ) -> None:
        self.store = store
        self.logs = logs
        self.bookmark_interval = bookmark_interval
        self.max_watch_seconds = max_watch_seconds
        self.forbidden = False
        self.forbidden_namespaces: set[str] = set()  # RBAC that denies only these namespaces
        self.expired_as_http = False  # answer an expired resume with HTTP 410 instead of an event
        self.watch_requests = 0
        self._watches: set[_Watch] = set()
        store.add_listener(self._fan_out)

    # -- hooks for tests -------------------------------------------------------------------
    @property
    def open_watches(self) -> int:
        return len(self._watches)

    def fail_watches(self, code: int = 410) -> None:
        """Compact the history and end every open watch with an ``ERROR`` event."""
        if code == 410:
            self.store.compact()
        reason = "Expired" if code == 410 else "InternalError"
        for w in list(self._watches):
            w.queue.put_nowait(ApiError(code, reason, f"watch closed by the sandbox (code {code})"))

    def drop_watches(self) -> None:
        """Reset every open watch connection without a goodbye."""
        for w in list(self._watches):
            w.queue.put_nowait(_DROP)

    def stall_watches(self) -> int:
        """Make every open watch go silent (a hung proxy or API server): the connection stays
        open, but no event, bookmark or end of stream arrives until the client gives up.
        Returns how many watches were stalled."""
        for w in list(self._watches):
            w.queue.put_nowait(_STALL)
        return len(self._watches)

    def close_watches(self) -> None:
        for w in list(self._watches):
            w.queue.put_nowait(_CLOSE)

    # -- dispatch --------------------------------------------------------------------------
    async def handle(self, request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse | None:
        if request.path.rstrip("/") == "/version":
            return aiohttp.web.json_response(VERSION_INFO)
        try:
            route = parse_route(request.path)
            if route is None:
                return None
            if self.forbidden or (route.namespace is not None and route.namespace in self.forbidden_namespaces):
                raise ApiError(
                    403,
                    "Forbidden",
                    f'{route.rt.plural} is forbidden: User "system:serviceaccount:'
                    f'aiops:aiops" cannot {request.method.lower()} resource "{route.rt.plural}" '
                    f'in API group "{route.rt.group}"',
                )
            return await self._dispatch(request, route)
        except ApiError as e:
            return aiohttp.web.json_response(e.status(), status=e.code)

    async def _dispatch(self, request: aiohttp.web.BaseRequest, route: Route) -> aiohttp.web.StreamResponse:
        q = request.query
        method = request.method
        if route.name is None:
            if method == "GET" and q.get("watch") in ("true", "1"):
                return await self._watch(request, route)
            if method == "GET":
                return self._json(self._list(route, q))
            if method == "POST":
                return self._json(self._create(route, await self._body(request)), status=201)
            raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on collections")
        if route.sub == "log" and route.rt.plural == "pods" and method == "GET":
            return self._pod_log(route, q)
        if route.sub not in (None, "status", "scale"):
            raise ApiError(404, "NotFound", f"subresource {route.sub!r} is not served by the sandbox")
        current = self.store.get(route.rt.plural, route.namespace, route.name)
        if current is None:
            raise ApiError(404, "NotFound", f'{route.rt.plural} "{route.name}" not found')
        if method == "GET":
            return self._json(self._scale(current) if route.sub == "scale" else current)
        if method == "DELETE":
            self.store.delete(route.rt.plural, route.namespace, route.name)
            return self._json(current)
        if method in ("PUT", "PATCH"):
            body = await self._body(request)
            if route.sub == "scale":
                current_scale = self._scale(current)
                scale = body if method == "PUT" else self._apply_patch(request, current_scale, body)
                replicas = int(scale.get("spec", {}).get("replicas", 0))
                updated = self.store.replace(route.rt.plural, merge_patch(current, {"spec": {"replicas": replicas}}))
                return self._json(self._scale(updated))
            candidate = body if method == "PUT" else self._apply_patch(request, current, body)
            if route.sub == "status":
                candidate = {**current, "status": candidate.get("status", {})}
            elif "status" in current:
                candidate = {**candidate, "status": current["status"]}  # main resource ignores status
            candidate.setdefault("metadata", {}).update(
                name=route.name, **({"namespace": route.namespace} if route.namespace else {})
            )
            return self._json(self.store.replace(route.rt.plural, candidate))
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported")

    # -- verbs -----------------------------------------------------------------------------
    def _list(self, route: Route, q: Any) -> JsonObj:
        lm, fm = label_matcher(q.get("labelSelector")), field_matcher(q.get("fieldSelector"))
        items = [o for o in self.store.list(route.rt.plural, route.namespace) if lm(o) and fm(o)]
        offset = 0
        if q.get("continue"):
            try:
                offset = int(json.loads(base64.b64decode(q["continue"]))["offset"])
            except (ValueError, KeyError) as e:
                raise ApiError(410, "Expired", "the provided continue parameter is too old") from e
        meta: JsonObj = {"resourceVersion": str(self.store.resource_version)}
        limit = int(q.get("limit") or 0)
        page = items[offset : offset + limit] if limit else items[offset:]
        if limit and offset + limit < len(items):
            token = json.dumps({"offset": offset + limit}).encode()
            meta["continue"] = base64.b64encode(token).decode()
            meta["remainingItemCount"] = len(items) - offset - limit
        return {
            "kind": f"{route.rt.kind}List",
            "apiVersion": route.rt.api_version,
            "metadata": meta,
            "items": [{k: v for k, v in o.items() if k not in ("kind", "apiVersion")} for o in page],
        }

    def _create(self, route: Route, body: JsonObj) -> JsonObj:
        meta = body.setdefault("metadata", {})
        if route.namespace:
            if meta.get("namespace") not in (None, route.namespace):
                raise ApiError(400, "BadRequest", "the namespace of the object does not match the request")
            meta["namespace"] = route.namespace
            if self.store.get("namespaces", None, route.namespace) is None:
                raise ApiError(404, "NotFound", f'namespaces "{route.namespace}" not found')
        return self.store.create(route.rt.plural, body)

    @staticmethod
    def _scale(obj: JsonObj) -> JsonObj:
        meta = obj["metadata"]
        selector = obj.get("spec", {}).get("selector", {}).get("matchLabels", {})
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion") if k in meta},
            "spec": {"replicas": obj.get("spec", {}).get("replicas", 0)},
            "status": {
                "replicas": obj.get("status", {}).get("replicas", 0),
                "selector": ",".join(f"{k}={v}" for k, v in selector.items()),
            },
        }

    @staticmethod
    def _apply_patch(request: aiohttp.web.BaseRequest, current: JsonObj, body: Any) -> JsonObj:
        ctype = request.content_type
        if ctype == "application/json-patch+json" or isinstance(body, list):
            return json_patch(current, body)
        if ctype == "application/merge-patch+json":
            merged: JsonObj = merge_patch(current, body)
            return merged
        if ctype in ("application/strategic-merge-patch+json", "application/apply-patch+yaml"):
            strategic: JsonObj = strategic_merge_patch(current, body)
            return strategic
        raise ApiError(415, "UnsupportedMediaType", f"the body of the request was in an unknown format: {ctype}")

    def _pod_log(self, route: Route, q: Any) -> aiohttp.web.Response:
        if route.name is None:
            raise ApiError(404, "NotFound", "a pod name is required")
        pod = self.store.get("pods", route.namespace, route.name)
        if pod is None:
            raise ApiError(404, "NotFound", f'pods "{route.name}" not found')
        names = [c["name"] for c in pod.get("spec", {}).get("containers", [])]
        container = q.get("container") or (names[0] if len(names) == 1 else None)
        if container is None:
            raise ApiError(
                400,
                "BadRequest",
                f"a container name must be specified for pod {route.name}, choose one of: [{' '.join(names)}]",
            )
        init_names = [c["name"] for c in pod.get("spec", {}).get("initContainers", [])]
        if container not in names and container not in init_names:  # init containers have logs too
            raise ApiError(400, "BadRequest", f"container {container} is not valid for pod {route.name}")
        previous = q.get("previous") in ("true", "1")
        lines = self.logs.read(route.namespace or "", route.name, container, previous)
        if lines is None:
            raise ApiError(
                400, "BadRequest", f'previous terminated container "{container}" in pod "{route.name}" not found'
            )
        if q.get("sinceSeconds"):
            cutoff = time.time() - float(q["sinceSeconds"])
            lines = [entry for entry in lines if entry[0] >= cutoff]
        if q.get("tailLines"):
            tail = int(q["tailLines"])
            lines = lines[-tail:] if tail > 0 else []
        stamps = q.get("timestamps") in ("true", "1")
        text = "".join(
            (datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ ") if stamps else "") + line + "\n"
            for ts, line in lines
        )
        return aiohttp.web.Response(text=text, content_type="text/plain")

    # -- watch -----------------------------------------------------------------------------
    def _fan_out(self, change: Change) -> None:
        for w in self._watches:
            if w.plural != change.plural:
                continue
            if w.namespace is not None and change.obj.get("metadata", {}).get("namespace") != w.namespace:
                continue
            if w.matches(change.obj):
                w.queue.put_nowait(change)

    async def _watch(self, request: aiohttp.web.BaseRequest, route: Route) -> aiohttp.web.StreamResponse:
        q = request.query
        self.watch_requests += 1
        rv_param = q.get("resourceVersion") or ""
        lm, fm = label_matcher(q.get("labelSelector")), field_matcher(q.get("fieldSelector"))
        if route.name:
            by_name = route.name
            w = _Watch(route.rt.plural, route.namespace, lambda o: o["metadata"]["name"] == by_name and lm(o) and fm(o))
        else:
            w = _Watch(route.rt.plural, route.namespace, lambda o: lm(o) and fm(o))
        if self.expired_as_http and rv_param not in ("", "0") and int(rv_param) < self.store.floor:
            raise ApiError(410, "Expired", f"too old resource version: {rv_param} ({self.store.floor})")
        duration = min(float(q.get("timeoutSeconds") or self.max_watch_seconds), self.max_watch_seconds)
        bookmarks = q.get("allowWatchBookmarks") in ("true", "1")
        resp = aiohttp.web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        # Subscribe and take the backlog with no await in between: no change can fall in the gap.
        self._watches.add(w)
        try:
            backlog: list[JsonObj] = []
            if rv_param in ("", "0"):
                for obj in self.store.list(route.rt.plural, route.namespace):
                    if w.matches(obj):
                        backlog.append({"type": "ADDED", "object": obj})
            else:
                try:
                    backlog = [
                        {"type": c.type, "object": c.obj}
                        for c in self.store.changes_since(int(rv_param))
                        if c.plural == route.rt.plural
                        and w.matches(c.obj)
                        and (route.namespace is None or c.obj["metadata"].get("namespace") == route.namespace)
                    ]
                except ApiError as e:
                    backlog = [{"type": "ERROR", "object": e.status()}]
            for event in backlog:
                await resp.write(json.dumps(event).encode() + b"\n")
            if backlog and backlog[-1]["type"] == "ERROR":
                await resp.write_eof()
                return resp
            await self._stream(request, resp, w, route, duration, bookmarks)
        except (ConnectionResetError, aiohttp.ClientConnectionResetError):
            log.debug("watch client went away")
        finally:
            self._watches.discard(w)
        return resp

    async def _stream(
        self,
        request: aiohttp.web.BaseRequest,
        resp: aiohttp.web.StreamResponse,
        w: _Watch,
        route: Route,
        duration: float,
        bookmarks: bool,
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + duration
        while (remaining := deadline - loop.time()) > 0:
            wait = min(remaining, self.bookmark_interval) if bookmarks else remaining
            try:
                item = await asyncio.wait_for(w.queue.get(), wait)
            except TimeoutError:
                if bookmarks and deadline - loop.time() > 0:
                    mark = {
                        "kind": route.rt.kind,
                        "apiVersion": route.rt.api_version,
                        "metadata": {"resourceVersion": str(self.store.resource_version)},
                    }
                    await resp.write(json.dumps({"type": "BOOKMARK", "object": mark}).encode() + b"\n")
                continue
            if item == _DROP:
                if request.transport is not None:
                    request.transport.abort()
                return
            if item == _CLOSE:
                break
            if item == _STALL:
                await self._stalled(request, w)
                return
            if isinstance(item, ApiError):
                await resp.write(json.dumps({"type": "ERROR", "object": item.status()}).encode() + b"\n")
                break
            if not isinstance(item, Change):
                continue
            await resp.write(json.dumps({"type": item.type, "object": item.obj}).encode() + b"\n")
        with contextlib.suppress(ConnectionResetError, aiohttp.ClientConnectionResetError):
            await resp.write_eof()

    @staticmethod
    async def _stalled(request: aiohttp.web.BaseRequest, w: _Watch) -> None:
        """Swallow every change until the client hangs up (or the watch is dropped or closed)."""
        while request.transport is not None and not request.transport.is_closing():
            try:
                item = await asyncio.wait_for(w.queue.get(), 0.5)
            except TimeoutError:
                continue
            if item == _DROP:
                request.transport.abort()
                return
            if item == _CLOSE:
                return

    # -- helpers ---------------------------------------------------------------------------
    @staticmethod
    async def _body(request: aiohttp.web.BaseRequest) -> Any:
        raw = await request.read()
        try:
            return json.loads(raw or b"{}")
        except ValueError as e:
            raise ApiError(400, "BadRequest", f"the request body is not JSON: {e}") from e

    @staticmethod
    def _json(obj: JsonObj, status: int = 200) -> aiohttp.web.Response:
        return aiohttp.web.json_response(obj, status=status)


class SandboxEmulator(kmock.KubernetesEmulator):
    """kmock's emulator with the resource paths answered by :class:`ApiServer`."""

    def __init__(self, api: ApiServer) -> None:
        super().__init__()
        self.api = api
        # kmock's load_bundled() uses a deprecated importlib call; read the same bundle directly.
        bundle = importlib.resources.files("kmock._internal").joinpath("resources.json.gz").read_bytes()
        self.resources.load_data(gzip.decompress(bundle))

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        response = await self.api.handle(raw_request)
        if response is not None:
            return response
        result: aiohttp.web.StreamResponse = await super().__call__(raw_request)
        return result
