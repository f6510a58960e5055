"""The one place that turns plain classes into Ray actors.

It decides names, the Ray namespace, lifetime, restarts and concurrency, so the rest of
the code base never imports ray and unit tests can run without it. Every actor is named
``aiops-*`` in namespace ``aiops``, detached (it outlives the process that created it),
and restarted forever by Ray; idempotent methods are retried across restarts.
"""

from __future__ import annotations

from typing import Any

import ray

from actors.rule_engine import RuleEngine
from config.settings import Settings

NAMESPACE = "aiops"
RULE_ENGINE = "aiops-rules"

_COMMON: dict[str, Any] = {
    "namespace": NAMESPACE,
    "lifetime": "detached",
    "max_restarts": -1,
    "max_task_retries": -1,
    "get_if_exists": True,
    "num_cpus": 0,
}


def _placement(settings: Settings, index: int) -> dict[str, Any]:
    """Ray options placing actor ``index`` of a group (watcher hosts, RCA workers).

    These actors ask for no CPU, and for such actors Ray's default policy, its SPREAD strategy
    and a soft node affinity all left placement to chance on a two-node cluster (measured:
    docs/scale-out.md). With ``AIOPS_ACTOR_PLACEMENT=spread`` (the default) actor ``index``
    asks for the ``index``-th alive node (by node id) through its ``ray.io/node-id`` label,
    with an empty selector as the fallback: when that node is gone, Ray restarts the actor on
    any other node.
    """
    if settings.actor_placement != "spread":
        return {}
    nodes = sorted(str(node["NodeID"]) for node in ray.nodes() if node.get("Alive"))  # type: ignore[no-untyped-call]
    if len(nodes) < 2:
        return {}
    return {
        "label_selector": {"ray.io/node-id": nodes[index % len(nodes)]},
        "fallback_strategy": [{"label_selector": {}}],
    }


def rule_engine(settings: Settings, rules_path: str | None = None) -> Any:
    """Handle to ``aiops-rules``, created on first use, feeding the RCA pool."""
    existing_handle = existing(RULE_ENGINE)
    if existing_handle is not None:
        return existing_handle
    cls = ray.remote(RuleEngine)
    return cls.options(name=RULE_ENGINE, max_concurrency=64, **_COMMON).remote(
        settings, rules_path, rca=rca_pool(settings), remediation=RunStarter(approvals(settings))
    )


APPROVALS = "aiops-approvals"


def approvals(settings: Settings) -> Any:
    """Handle to ``aiops-approvals``: playbook runs, approvals, guarded execution."""
    from actors.approvals import ApprovalCoordinator

    cls = ray.remote(ApprovalCoordinator)
    return cls.options(name=APPROVALS, max_concurrency=32, **_COMMON).remote(settings)


class RunStarter:
    """Hands incidents that carry a playbook to the coordinator (fire and forget; idempotent there)."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle

    def submit(self, incident: dict[str, Any], playbook: str) -> None:
        self._handle.start_run.remote(incident, playbook)


def rca_worker_name(index: int) -> str:
    return f"aiops-rca-{index}"


def rca_worker(settings: Settings, index: int) -> Any:
    """Handle to ``aiops-rca-<index>``, one worker of the RCA pool."""
    from actors.rca import RcaWorker

    cls = ray.remote(RcaWorker)
    return cls.options(name=rca_worker_name(index), max_concurrency=8, **_COMMON, **_placement(settings, index)).remote(
        settings
    )


class RcaPool:
    """Round-robin hand-off of new incidents to the RCA workers (fire and forget)."""

    def __init__(self, handles: list[Any]) -> None:
        self._handles = handles
        self._next = 0

    def submit(self, incident: dict[str, Any]) -> None:
        if not self._handles:
            return
        handle = self._handles[self._next % len(self._handles)]
        self._next += 1
        handle.analyze.remote(incident)

    def __len__(self) -> int:
        return len(self._handles)


def rca_pool(settings: Settings) -> RcaPool:
    return RcaPool([rca_worker(settings, i) for i in range(settings.rca_workers)])


def existing(name: str) -> Any | None:
    try:
        return ray.get_actor(name, namespace=NAMESPACE)
    except ValueError:
        return None


def actor_names() -> list[str]:
    """Named aiops actors alive in the cluster."""
    return sorted(
        entry["name"]
        for entry in ray.util.list_named_actors(all_namespaces=True)
        if entry.get("namespace") == NAMESPACE
    )


def kill(name: str, *, restart: bool = True) -> bool:
    handle = existing(name)
    if handle is None:
        return False
    ray.kill(handle, no_restart=not restart)
    return True


WATCH_SUPERVISOR = "aiops-watchers"


WATCHER_HOST_PREFIX = "aiops-watchers-"


def watcher_host_name(index: int) -> str:
    return f"{WATCHER_HOST_PREFIX}{index}"


def watcher_host(settings: Settings, index: int) -> Any:
    """Handle to ``aiops-watchers-<index>``, a watcher process hosting several scopes (namespaces,
    or ``cluster`` for nodes); call ``add(scope)`` on it."""
    from actors.watchers import WatcherHost

    cls = ray.remote(WatcherHost)
    return cls.options(
        name=watcher_host_name(index), max_concurrency=64, **_COMMON, **_placement(settings, index)
    ).remote(settings, rule_engine(settings), index=index, autostart=True)


def watcher_hosts() -> dict[int, Any]:
    """The watcher hosts alive now, by index."""
    hosts = {}
    for name in actor_names():
        suffix = name.removeprefix(WATCHER_HOST_PREFIX)
        if name.startswith(WATCHER_HOST_PREFIX) and suffix.isdigit():
            handle = existing(name)
            if handle is not None:
                hosts[int(suffix)] = handle
    return hosts


def host_of(scope: str, timeout: float = 10.0) -> Any | None:
    """The watcher host that watches ``scope``, or None."""
    for handle in watcher_hosts().values():
        try:
            if scope in ray.get(handle.scopes.remote(), timeout=timeout):
                return handle
        except ray.exceptions.RayError:
            continue
    return None


class RaySpawner:
    """The supervisor's way to place scopes on watcher host actors."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    async def hosts(self) -> dict[int, list[str]]:
        found: dict[int, list[str]] = {}
        for index, handle in watcher_hosts().items():
            # A host Ray is restarting answers once it is back; its restored scopes count.
            found[index] = list(await handle.scopes.remote())
        return found

    async def add(self, host: int, scope: str) -> Any:
        return await watcher_host(self._settings, host).add.remote(scope)

    async def remove(self, host: int, scope: str) -> Any:
        handle = existing(watcher_host_name(host))
        return None if handle is None else await handle.remove.remote(scope)

    async def retire(self, host: int) -> None:
        handle = existing(watcher_host_name(host))
        if handle is None:
            return
        try:
            await handle.stop.remote()
        finally:
            ray.kill(handle, no_restart=True)


def watch_supervisor(settings: Settings) -> Any:
    """Handle to ``aiops-watchers``, started; it starts the per-namespace watchers."""
    from actors.watchers import WatcherSupervisor

    cls = ray.remote(WatcherSupervisor)
    return cls.options(name=WATCH_SUPERVISOR, max_concurrency=16, **_COMMON).remote(
        settings, RaySpawner(settings), autostart=True
    )


CHAT = "aiops-chat"
NOTIFIER = "aiops-notifier"


class ActorPeer:
    """``actors.chat_dispatch.Peer`` over an actor handle; our errors come back unwrapped from Ray."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        from core.errors import AiopsError, PermanentError

        try:
            function = getattr(self._handle, method)
        except AttributeError:
            raise PermanentError(f"the actor has no method {method!r}") from None
        try:
            return await function.remote(*args, **kwargs)
        except ray.exceptions.RayTaskError as e:
            cause = getattr(e, "cause", None)
            if isinstance(cause, AiopsError):
                raise cause from None
            raise


def chat_dispatcher(settings: Settings) -> Any:
    """Handle to ``aiops-chat``: authorises and runs chat commands, replies in chat."""
    from actors.chat_dispatch import ChatDispatcher

    existing_handle = existing(CHAT)
    if existing_handle is not None:
        return existing_handle
    cls = ray.remote(ChatDispatcher)
    return cls.options(name=CHAT, max_concurrency=32, **_COMMON).remote(
        settings, coordinator=ActorPeer(approvals(settings)), engine=ActorPeer(rule_engine(settings))
    )


def notifier(settings: Settings) -> Any:
    """Handle to ``aiops-notifier``: incidents, approvals and step outcomes into chat (call ``start``)."""
    from actors.notifier import Notifier

    cls = ray.remote(Notifier)
    return cls.options(name=NOTIFIER, max_concurrency=8, **_COMMON).remote(settings, autostart=True)
