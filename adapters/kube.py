"""The Kubernetes edge: reads, watches and simple writes through the official client.

Two decisions shape this module:

* Objects travel as plain API-shaped JSON dicts (camelCase, exactly what the server sent),
  not as the client's generated models: detectors and storage want data, and dicts cross
  Ray boundaries cheaply. So every call uses ``_preload_content=False`` and parses JSON.
* The client is blocking. :class:`Informer` runs one thread per (kind, namespace) watch and
  hands events to asyncio with ``loop.call_soon_threadsafe``. It lists, then watches from
  the list's resourceVersion with bookmarks, resumes from the last seen resourceVersion
  after a dropped connection (no change is lost), relists on 410 Gone (diffing the cache so
  consumers still see every change), backs off with jitter on errors, never dies, and
  reports its health through :meth:`Informer.status` for ``/health``.

Library errors are wrapped into ``core.errors`` (403/404 -> PermanentError subclasses,
5xx/429/timeouts/refused connections -> TemporaryError) with ``raise ... from e``.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import json
import logging
import random
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from core.errors import PermanentError, TemporaryError

log = logging.getLogger(__name__)
JsonObj = dict[str, Any]


class KubeApiError(PermanentError):
    """The API server refused a request for good (4xx other than 410/429)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class KubeForbidden(KubeApiError):
    """403: the service account lacks RBAC permission."""


class KubeNotFound(KubeApiError):
    """404: no such object (or resource)."""


class WatchExpired(TemporaryError):
    """410 Gone: the resourceVersion is compacted away; list again."""


@dataclass(frozen=True)
class KindInfo:
    kind: str
    api_version: str
    api: type[Any]
    snake: str
    namespaced: bool


KINDS: dict[str, KindInfo] = {
    i.kind: i
    for i in (
        KindInfo("Pod", "v1", k8s.CoreV1Api, "pod", True),
        KindInfo("Service", "v1", k8s.CoreV1Api, "service", True),
        KindInfo("Endpoints", "v1", k8s.CoreV1Api, "endpoints", True),
        KindInfo("Event", "v1", k8s.CoreV1Api, "event", True),
        KindInfo("PersistentVolumeClaim", "v1", k8s.CoreV1Api, "persistent_volume_claim", True),
        KindInfo("ConfigMap", "v1", k8s.CoreV1Api, "config_map", True),
        KindInfo("Node", "v1", k8s.CoreV1Api, "node", False),
        KindInfo("Namespace", "v1", k8s.CoreV1Api, "namespace", False),
        KindInfo("Deployment", "apps/v1", k8s.AppsV1Api, "deployment", True),
        KindInfo("ReplicaSet", "apps/v1", k8s.AppsV1Api, "replica_set", True),
        KindInfo("StatefulSet", "apps/v1", k8s.AppsV1Api, "stateful_set", True),
        KindInfo("DaemonSet", "apps/v1", k8s.AppsV1Api, "daemon_set", True),
        KindInfo("Job", "batch/v1", k8s.BatchV1Api, "job", True),
        KindInfo("CronJob", "batch/v1", k8s.BatchV1Api, "cron_job", True),
    )
}


def _kind(kind: str) -> KindInfo:
    try:
        return KINDS[kind]
    except KeyError:
        raise KubeApiError(f"unsupported kind {kind!r}; known: {', '.join(sorted(KINDS))}", 400) from None


def wrap_error(e: BaseException, what: str) -> TemporaryError | PermanentError:
    """Translate a client/transport error into the platform's taxonomy."""
    if isinstance(e, k8s.ApiException):
        status = int(e.status or 0)
        detail = str(e.reason or "")
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            detail = json.loads(e.body or "").get("message") or detail
        text = f"{what}: {status} {detail}".strip()
        if status == 403:
            return KubeForbidden(text, status)
        if status == 404:
            return KubeNotFound(text, status)
        if status == 410:
            return WatchExpired(text)
        if status == 429 or status >= 500 or status == 0:
            delay = 1.0
            with contextlib.suppress(ValueError, TypeError, AttributeError):
                delay = float((e.headers or {}).get("Retry-After", delay))
            return TemporaryError(text, delay=delay)
        return KubeApiError(text, status)
    return TemporaryError(f"{what}: cannot reach the API server: {e}")


_TRANSPORT_ERRORS = (urllib3.exceptions.HTTPError, OSError, ValueError)


class KubeClient:
    """Blocking, dict-returning access to one cluster. Thread-safe (urllib3 pools are)."""

    def __init__(self, api_client: k8s.ApiClient, *, request_timeout: float = 30.0) -> None:
        self.api_client = api_client
        self.request_timeout = request_timeout
        self._apis: dict[type[Any], Any] = {}

    @classmethod
    def from_kubeconfig(cls, path: str | Path | None = None, context: str | None = None, **options: Any) -> KubeClient:
        """From a kubeconfig file (None: ``$KUBECONFIG`` or ``~/.kube/config``, as kubectl)."""
        try:
            api_client = k8s_config.new_client_from_config(  # type: ignore[no-untyped-call]
                config_file=str(path) if path is not None else None, context=context
            )
        except (k8s_config.ConfigException, OSError) as e:
            raise PermanentError(f"cannot load kubeconfig {path or '(default)'}: {e}") from e
        return cls(api_client, **options)

    @classmethod
    def in_cluster(cls, **options: Any) -> KubeClient:
        """From the pod's service account token."""
        configuration = k8s.Configuration()
        try:
            k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except k8s_config.ConfigException as e:
            raise PermanentError(f"not running in a cluster: {e}") from e
        return cls(k8s.ApiClient(configuration), **options)

    @classmethod
    def from_settings(
        cls, kubeconfig: str | Path | None = None, context: str | None = None, in_cluster: bool = False, **options: Any
    ) -> KubeClient:
        return cls.in_cluster(**options) if in_cluster else cls.from_kubeconfig(kubeconfig, context, **options)

    def close(self) -> None:
        self.api_client.close()  # type: ignore[no-untyped-call]

    # -- plumbing --------------------------------------------------------------------------
    def _api(self, api_class: type[Any]) -> Any:
        api = self._apis.get(api_class)
        if api is None:
            api = self._apis[api_class] = api_class(self.api_client)
        return api

    def _fn(self, kind: str, verb: str, namespace: str | None) -> Callable[..., Any]:
        info = _kind(kind)
        api = self._api(info.api)
        if not info.namespaced:
            name = f"{verb}_{info.snake}"
        elif namespace is None and verb == "list":
            name = f"list_{info.snake}_for_all_namespaces"
        else:
            name = f"{verb}_namespaced_{info.snake}"
        fn: Callable[..., Any] = getattr(api, name)
        return fn

    @staticmethod
    def _args(info: KindInfo, namespace: str | None) -> tuple[str, ...]:
        if info.namespaced and namespace is not None:
            return (namespace,)
        return ()

    def _call_json(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        resp = None
        try:
            resp = fn(*args, _preload_content=False, _request_timeout=self.request_timeout, **kwargs)
            data = resp.data
        except k8s.ApiException as e:
            raise wrap_error(e, what) from e
        except _TRANSPORT_ERRORS as e:
            raise wrap_error(e, what) from e
        finally:
            if resp is not None:
                resp.release_conn()
        try:
            return json.loads(data) if data else {}
        except ValueError as e:
            raise TemporaryError(f"{what}: the API server answered non-JSON: {data[:200]!r}") from e

    # -- reads -----------------------------------------------------------------------------
    def list(
        self,
        kind: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        page_size: int = 500,
    ) -> tuple[builtins.list[JsonObj], str]:
        """All objects of ``kind`` (in ``namespace``, or everywhere), paginated; plus the list's
        resourceVersion to watch from. Items get ``kind``/``apiVersion`` (lists omit them)."""
        info = _kind(kind)
        fn = self._fn(kind, "list", namespace)
        items: builtins.list[JsonObj] = []
        token: str | None = None
        rv = ""
        while True:
            kwargs: dict[str, Any] = {"limit": page_size}
            if token:
                kwargs["_continue"] = token
            if label_selector:
                kwargs["label_selector"] = label_selector
            if field_selector:
                kwargs["field_selector"] = field_selector
            page = self._call_json(
                f"list {kind} in {namespace or 'all namespaces'}", fn, *self._args(info, namespace), **kwargs
            )
            for item in page.get("items") or []:
                item.setdefault("kind", info.kind)
                item.setdefault("apiVersion", info.api_version)
                items.append(item)
            meta = page.get("metadata") or {}
            rv = meta.get("resourceVersion") or rv
            token = meta.get("continue")
            if not token:
                return items, rv

    def get(self, kind: str, namespace: str | None, name: str) -> JsonObj:
        info = _kind(kind)
        obj: JsonObj = self._call_json(
            f"get {kind} {namespace or ''}/{name}",
            self._fn(kind, "read", namespace),
            name,
            *self._args(info, namespace),
        )
        obj.setdefault("kind", info.kind)
        obj.setdefault("apiVersion", info.api_version)
        return obj

    def read_pod_log(
        self,
        namespace: str,
        name: str,
        container: str | None = None,
        previous: bool = False,
        tail_lines: int | None = None,
        since_seconds: int | None = None,
        limit_bytes: int | None = None,
    ) -> str:
        kwargs: dict[str, Any] = {"previous": previous}
        for key, value in (
            ("container", container),
            ("tail_lines", tail_lines),
            ("since_seconds", since_seconds),
            ("limit_bytes", limit_bytes),
        ):
            if value is not None:
                kwargs[key] = value
        api = self._api(k8s.CoreV1Api)
        what = f"read log of pod {namespace}/{name}" + (" (previous)" if previous else "")
        resp = None
        try:
            resp = api.read_namespaced_pod_log(
                name, namespace, _preload_content=False, _request_timeout=self.request_timeout, **kwargs
            )
            text: str = resp.data.decode("utf-8", errors="replace")
            return text
        except k8s.ApiException as e:
            raise wrap_error(e, what) from e
        except _TRANSPORT_ERRORS as e:
            raise wrap_error(e, what) from e
        finally:
            if resp is not None:
                resp.release_conn()

    # -- writes ----------------------------------------------------------------------------
    def delete(self, kind: str, namespace: str | None, name: str) -> JsonObj:
        info = _kind(kind)
        result: JsonObj = self._call_json(
            f"delete {kind} {namespace or ''}/{name}",
            self._fn(kind, "delete", namespace),
            name,
            *self._args(info, namespace),
        )
        return result

    def patch(self, kind: str, namespace: str | None, name: str, body: JsonObj | builtins.list[JsonObj]) -> JsonObj:
        """Strategic merge patch for a dict body, JSON patch for a list of operations."""
        info = _kind(kind)
        result: JsonObj = self._call_json(
            f"patch {kind} {namespace or ''}/{name}",
            self._fn(kind, "patch", namespace),
            name,
            *self._args(info, namespace),
            body,
        )
        return result

    # -- watch -----------------------------------------------------------------------------
    def watch(
        self,
        kind: str,
        namespace: str | None,
        resource_version: str,
        *,
        timeout_seconds: int = 60,
        label_selector: str | None = None,
        field_selector: str | None = None,
        on_response: Callable[[Any], None] | None = None,
    ) -> Iterator[JsonObj]:
        """Raw watch events (``{"type", "object"}``) from ``resource_version`` until the server
        ends the stream. Raises :class:`WatchExpired` on 410 (HTTP or ERROR event)."""
        info = _kind(kind)
        what = f"watch {kind} in {namespace or 'all namespaces'}"
        kwargs: dict[str, Any] = {
            "watch": True,
            "allow_watch_bookmarks": True,
            "timeout_seconds": timeout_seconds,
            "resource_version": resource_version,
        }
        if label_selector:
            kwargs["label_selector"] = label_selector
        if field_selector:
            kwargs["field_selector"] = field_selector
        resp = None
        try:
            # The read timeout backs up the server-side timeout (a stuck proxy must not hang us).
            resp = self._fn(kind, "list", namespace)(
                *self._args(info, namespace),
                _preload_content=False,
                _request_timeout=(min(self.request_timeout, 10.0), timeout_seconds + 15),
                **kwargs,
            )
            if on_response is not None:
                on_response(resp)
            buffer = b""
            for chunk in resp.stream(amt=None, decode_content=True):
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if not line.strip():
                        continue
                    event: JsonObj = json.loads(line)
                    if event.get("type") == "ERROR":
                        status = event.get("object") or {}
                        code = int(status.get("code") or 0)
                        text = f"{what}: {code} {status.get('reason', '')}: {status.get('message', '')}"
                        if code == 410:
                            raise WatchExpired(text)
                        if code in (403, 404):
                            raise KubeForbidden(text, code) if code == 403 else KubeNotFound(text, code)
                        raise TemporaryError(text)
                    obj = event.get("object") or {}
                    if isinstance(obj, dict) and event.get("type") != "BOOKMARK":
                        obj.setdefault("kind", info.kind)
                        obj.setdefault("apiVersion", info.api_version)
                    yield event
        except k8s.ApiException as e:
            raise wrap_error(e, what) from e
        except _TRANSPORT_ERRORS as e:
            raise wrap_error(e, what) from e
        finally:
            if resp is not None:
                with contextlib.suppress(*_TRANSPORT_ERRORS):
                    resp.release_conn()


# -- informer ------------------------------------------------------------------------------
class EventType(StrEnum):
    ADDED = "ADDED"
    MODIFIED = "MODIFIED"
    DELETED = "DELETED"
    RESYNC = "RESYNC"  # periodic re-emission of a cached object
    RELISTED = "RELISTED"  # a relist finished; obj = {"metadata": {"resourceVersion"}, "count"}


@dataclass(frozen=True)
class WatchEvent:
    type: EventType
    kind: str
    obj: JsonObj


@dataclass
class Backoff:
    """Exponential backoff with jitter, bounded; ``reset`` after a success."""

    initial: float = 0.2
    maximum: float = 30.0
    factor: float = 2.0
    jitter: float = 0.2
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def next(self) -> float:
        base = min(self.maximum, self.initial * self.factor**self.attempt)
        self.attempt += 1
        spread = self.rng.uniform(-self.jitter, self.jitter)  # noqa: S311 - jitter, not a secret
        return float(max(0.0, min(self.maximum, base * (1 + spread))))

    def reset(self) -> None:
        self.attempt = 0


Sink = asyncio.Queue[WatchEvent] | Callable[[WatchEvent], Awaitable[None]]


def _key(obj: JsonObj) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return (meta.get("namespace") or "", meta.get("name") or "")


class Informer:
    """List+watch one kind in one namespace (None: all / cluster-scoped) into an asyncio sink."""

    def __init__(
        self,
        client: KubeClient,
        kind: str,
        namespace: str | None = None,
        *,
        sink: Sink,
        label_selector: str | None = None,
        field_selector: str | None = None,
        resync_seconds: float | None = None,
        watch_timeout_seconds: int = 60,
        backoff: Backoff | None = None,
    ) -> None:
        _kind(kind)
        self.client, self.kind, self.namespace = client, kind, namespace
        self.label_selector, self.field_selector = label_selector, field_selector
        self.resync_seconds = resync_seconds
        self.watch_timeout_seconds = watch_timeout_seconds
        self.backoff = backoff or Backoff()
        self._sink = sink
        self._cache: dict[tuple[str, str], JsonObj] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._synced = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[WatchEvent] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._resp: Any = None
        self.resource_version = ""
        self.counters = {"events": 0, "watches": 0, "reconnects": 0, "relists": 0, "resyncs": 0, "errors": 0}
        self.connected = False
        self.forbidden = False
        self.last_error: str | None = None

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if isinstance(self._sink, asyncio.Queue):
            self._queue = self._sink
        else:
            self._queue = asyncio.Queue()
            self._tasks.append(self._loop.create_task(self._deliver(self._sink), name=f"informer-{self.kind}"))
        if self.resync_seconds:
            self._tasks.append(self._loop.create_task(self._resync_loop(self.resync_seconds)))
        self._thread = threading.Thread(
            target=self._run, daemon=True, name=f"informer-{self.kind}-{self.namespace or 'all'}"
        )
        self._thread.start()

    async def stop(self, grace: float = 5.0) -> None:
        """Stop the watch thread (its blocked read is shut down) and the delivery tasks."""
        self._stopping.set()
        resp = self._resp
        if resp is not None:
            with contextlib.suppress(*_TRANSPORT_ERRORS, AttributeError):
                resp.shutdown()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, grace)
            if self._thread.is_alive():
                log.warning("informer %s/%s did not stop within %.1fs", self.kind, self.namespace, grace)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    @property
    def synced(self) -> bool:
        return self._synced.is_set()

    def snapshot(self) -> list[JsonObj]:
        with self._lock:
            return list(self._cache.values())

    def status(self) -> JsonObj:
        return {
            "kind": self.kind,
            "namespace": self.namespace,
            "connected": self.connected,
            "synced": self.synced,
            "forbidden": self.forbidden,
            "last_error": self.last_error,
            "resource_version": self.resource_version,
            "cached": len(self._cache),
            "alive": bool(self._thread and self._thread.is_alive()),
            **self.counters,
        }

    # -- asyncio side ----------------------------------------------------------------------
    async def _deliver(self, callback: Callable[[WatchEvent], Awaitable[None]]) -> None:
        if self._queue is None:
            return
        while True:
            event = await self._queue.get()
            try:
                await callback(event)
            except Exception:
                log.exception("informer %s callback failed on %s", self.kind, event.type)

    async def _resync_loop(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            if self.synced:
                self.counters["resyncs"] += 1
                for obj in self.snapshot():
                    self._emit(EventType.RESYNC, obj)

    def _emit(self, kind: EventType, obj: JsonObj) -> None:
        if self._loop is None or self._queue is None:
            return
        event = WatchEvent(kind, self.kind, obj)
        if self._loop.is_closed():
            self._stopping.set()
            return
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, event)
        except RuntimeError:  # the loop closed under us: we are shutting down
            self._stopping.set()

    # -- thread side -----------------------------------------------------------------------
    def _run(self) -> None:
        need_list = True
        failed = False
        while not self._stopping.is_set():
            try:
                if need_list:
                    items, rv = self.client.list(
                        self.kind,
                        self.namespace,
                        label_selector=self.label_selector,
                        field_selector=self.field_selector,
                    )
                    self._apply_list(items, rv)
                    need_list = False
                    self._ok()
                if failed:
                    self.counters["reconnects"] += 1
                self._watch_once()
                failed = False
            except WatchExpired as e:
                log.info("informer %s/%s: %s; relisting", self.kind, self.namespace, e)
                self.counters["relists"] += 1
                need_list = True
            except (TemporaryError, PermanentError) as e:
                failed = self._failed(e)
            except Exception as e:  # never let the thread die: report it and retry
                log.exception("informer %s/%s: unexpected error", self.kind, self.namespace)
                failed = self._failed(e)
        self.connected = False

    def _failed(self, e: BaseException) -> bool:
        if self._stopping.is_set():
            return True
        self.connected = False
        self.forbidden = isinstance(e, KubeForbidden)
        self.last_error = str(e) or type(e).__name__
        self.counters["errors"] += 1
        delay = self.backoff.next()
        if isinstance(e, TemporaryError):
            delay = max(delay, min(e.delay, self.backoff.maximum)) if e.delay > 1.0 else delay
        log.warning("informer %s/%s: %s; retrying in %.2fs", self.kind, self.namespace, self.last_error, delay)
        self._stopping.wait(delay)
        return True

    def _ok(self) -> None:
        self.connected = True
        self.forbidden = False
        self.last_error = None
        self.backoff.reset()

    def _on_response(self, resp: Any) -> None:
        self._resp = resp
        self._ok()

    def _watch_once(self) -> None:
        self.counters["watches"] += 1
        try:
            for event in self.client.watch(
                self.kind,
                self.namespace,
                self.resource_version,
                timeout_seconds=self.watch_timeout_seconds,
                label_selector=self.label_selector,
                field_selector=self.field_selector,
                on_response=self._on_response,
            ):
                if self._stopping.is_set():
                    return
                kind, obj = event.get("type"), event.get("object") or {}
                rv = (obj.get("metadata") or {}).get("resourceVersion")
                if rv:
                    self.resource_version = rv
                if kind == "BOOKMARK":
                    continue
                try:
                    etype = EventType(str(kind))
                except ValueError:
                    log.warning("informer %s: unknown watch event type %r", self.kind, kind)
                    continue
                with self._lock:
                    if etype == EventType.DELETED:
                        self._cache.pop(_key(obj), None)
                    else:
                        self._cache[_key(obj)] = obj
                self.counters["events"] += 1
                self._emit(etype, obj)
        finally:
            self._resp = None

    def _apply_list(self, items: list[JsonObj], rv: str) -> None:
        """Replace the cache with a fresh list, emitting the difference (all ADDED at first)."""
        fresh = {_key(o): o for o in items}
        relist = self._synced.is_set()
        with self._lock:
            old, self._cache = self._cache, fresh
        for key, obj in fresh.items():
            before = old.get(key)
            if before is None:
                self._emit(EventType.ADDED, obj)
            elif (before.get("metadata") or {}).get("resourceVersion") != (obj.get("metadata") or {}).get(
                "resourceVersion"
            ):
                self._emit(EventType.MODIFIED, obj)
        for key, obj in old.items():
            if key not in fresh:
                self._emit(EventType.DELETED, obj)
        self.resource_version = rv
        self._synced.set()
        if relist:
            self._emit(EventType.RELISTED, {"metadata": {"resourceVersion": rv}, "count": len(fresh)})
