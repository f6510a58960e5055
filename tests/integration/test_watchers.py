"""Watchers against the sandbox cluster, feeding the real RuleEngine (in-process, no Ray).

The official kubernetes client talks HTTP to the kmock emulator; the simulator plays
kubelet. Incidents land in the real PostgreSQL of this test session.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any

import pytest

from actors.rule_engine import RuleEngine
from actors.watchers import CLUSTER_SCOPE, Watcher, WatcherHost, WatcherSupervisor, diff_findings, place, wanted
from adapters.sandbox import BackgroundSandbox
from config.settings import Settings
from tests.helpers import wait_for


class InProcessHandle:
    """Gives a plain object the ``method.remote(...)`` calling shape of a Ray actor handle."""

    def __init__(self, target: Any) -> None:
        self._target = target

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._target, name)

        class _Remote:
            @staticmethod
            def remote(*args: Any, **kwargs: Any) -> Awaitable[Any]:
                async def call() -> Any:
                    result = method(*args, **kwargs)
                    return await result if asyncio.iscoroutine(result) else result

                return call()

        return _Remote()


@pytest.fixture
async def engine(database_url: str, redis_url: str, redis_prefix: str, tmp_path: Path) -> AsyncIterator[RuleEngine]:
    settings = Settings.from_env(
        database_url=database_url, redis_url=redis_url, data_dir=tmp_path, redis_prefix=redis_prefix
    )
    rule_engine = RuleEngine(settings)
    await rule_engine._ready()
    async with rule_engine._stores.postgres.pool.acquire() as conn:  # type: ignore[union-attr]
        await conn.execute("TRUNCATE incidents, signals, incident_events CASCADE")
    yield rule_engine
    await rule_engine.close()


def watcher_settings(sandbox: BackgroundSandbox, database_url: str, redis_url: str, tmp_path: Path) -> Settings:
    return Settings.from_env(
        database_url=database_url,
        redis_url=redis_url,
        kubeconfig=str(sandbox.kubeconfig_path),
        data_dir=tmp_path,
        redis_prefix=f"watch-test-{time.time_ns()}:",
    )


async def open_incidents(engine: RuleEngine, namespace: str | None = None) -> list[Any]:
    stores = await engine._ready()
    return await stores.postgres.list_incidents(status="open", namespace=namespace)


async def test_namespace_watcher_turns_a_crash_loop_into_an_incident_and_its_recovery_resolves_it(
    sandbox: BackgroundSandbox, engine: RuleEngine, database_url: str, redis_url: str, tmp_path: Path
) -> None:
    settings = watcher_settings(sandbox, database_url, redis_url, tmp_path)
    watcher = Watcher(settings, "production", InProcessHandle(engine))
    await watcher.start()
    try:

        async def has_incident() -> bool:
            return any(i.namespace == "production" for i in await open_incidents(engine, "production"))

        await wait_for(has_incident, message="an incident for the OOM crash loop in production")
        (incident, *_) = await open_incidents(engine, "production")
        assert "checkout" in incident.title
        sent_before = watcher.status()["signals_sent"]

        async def restarts_updated() -> bool:
            return watcher.status()["signals_sent"] > sent_before

        await wait_for(restarts_updated, message="a rising restart count to be re-sent")

        stores = await engine._ready()
        async with stores.postgres.pool.acquire() as conn:
            before = await conn.fetchval("SELECT count(*) FROM incidents")
        # Fix it the way the OOM playbook would: raise the memory limit of the deployment.
        from kubernetes import client as k8s
        from kubernetes import config as k8s_config

        api = k8s_config.new_client_from_config(config_file=str(sandbox.kubeconfig_path))
        patch = {
            "spec": {
                "template": {"spec": {"containers": [{"name": "checkout", "resources": {"limits": {"memory": "1Gi"}}}]}}
            }
        }
        await asyncio.to_thread(k8s.AppsV1Api(api).patch_namespaced_deployment, "checkout", "production", patch)
        api.close()

        async def resolved() -> bool:
            found = await stores.postgres.get_incident(incident.id)
            return found is not None and found.status.value == "resolved"

        await wait_for(resolved, timeout=30, message="the incident to resolve after the fix")
        async with stores.postgres.pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM incidents") == before
    finally:
        await watcher.stop()


async def test_watcher_survives_a_dropped_watch_and_a_410_and_still_sees_changes(
    sandbox: BackgroundSandbox, engine: RuleEngine, database_url: str, redis_url: str, tmp_path: Path
) -> None:
    settings = watcher_settings(sandbox, database_url, redis_url, tmp_path)
    watcher = Watcher(settings, "staging", InProcessHandle(engine))
    await watcher.start()
    try:

        async def staging_incident() -> bool:
            return bool(await open_incidents(engine, "staging"))

        await wait_for(staging_incident, message="the image pull incident in staging")
        pod_informer = watcher._informers[0]
        watches_before = pod_informer.status()["watches"]
        sandbox.drop_watches()

        async def rewatched() -> bool:
            status = pod_informer.status()
            return status["watches"] > watches_before and status["connected"]

        await wait_for(rewatched, timeout=60, message="a new watch after the dropped one")
        # The new watch is open now, so the 410 ERROR event reaches it (no race with the reconnect).
        sandbox.fail_watches(410)

        async def relisted() -> bool:
            status = pod_informer.status()
            return status["relists"] >= 1 and status["connected"]

        await wait_for(relisted, timeout=60, message="a relist after 410")
        sandbox.inject("staging", "frontend", "crashloop")

        async def second_incident() -> bool:
            return any("frontend" in i.title for i in await open_incidents(engine, "staging"))

        await wait_for(second_incident, timeout=60, message="the crash loop injected after the 410")
    finally:
        await watcher.stop()


async def test_cluster_watcher_reports_a_node_going_not_ready(
    sandbox: BackgroundSandbox, engine: RuleEngine, database_url: str, redis_url: str, tmp_path: Path
) -> None:
    watcher = Watcher(
        watcher_settings(sandbox, database_url, redis_url, tmp_path), CLUSTER_SCOPE, InProcessHandle(engine)
    )
    await watcher.start()
    try:

        async def node_incident() -> bool:
            return any("node-3" in i.title and i.severity.value == "critical" for i in await open_incidents(engine))

        await wait_for(node_incident, message="a critical NodeNotReady incident for node-3")
    finally:
        await watcher.stop()


class RecordingSpawner:
    """Placement without processes: records which host each scope was put on."""

    def __init__(self) -> None:
        self.placement: dict[int, list[str]] = {}
        self.retired: list[int] = []

    @property
    def running(self) -> set[str]:
        return {scope for scopes in self.placement.values() for scope in scopes}

    async def hosts(self) -> dict[int, list[str]]:
        return {index: list(scopes) for index, scopes in self.placement.items()}

    async def add(self, host: int, scope: str) -> None:
        scopes = self.placement.setdefault(host, [])
        if scope not in scopes:
            scopes.append(scope)

    async def remove(self, host: int, scope: str) -> None:
        if scope in self.placement.get(host, []):
            self.placement[host].remove(scope)

    async def retire(self, host: int) -> None:
        self.placement.pop(host, None)
        self.retired.append(host)


class HostSpawner(RecordingSpawner):
    """Real ``WatcherHost``s in this process (what ``actors.remote.RaySpawner`` does with actors)."""

    def __init__(self, settings: Settings, rules: Any) -> None:
        super().__init__()
        self._settings = settings
        self._rules = rules
        self.live: dict[int, WatcherHost] = {}

    async def hosts(self) -> dict[int, list[str]]:
        return {index: await host.scopes() for index, host in self.live.items()}

    async def add(self, host: int, scope: str) -> None:
        if host not in self.live:
            self.live[host] = WatcherHost(self._settings, self._rules, index=host)
        await self.live[host].add(scope)
        await super().add(host, scope)

    async def remove(self, host: int, scope: str) -> None:
        await self.live[host].remove(scope)
        await super().remove(host, scope)

    async def retire(self, host: int) -> None:
        await self.live.pop(host).stop()
        await super().retire(host)

    async def close(self) -> None:
        for host in list(self.live):
            await self.retire(host)


async def test_supervisor_starts_a_watcher_per_wanted_namespace_and_picks_up_new_ones(
    sandbox: BackgroundSandbox, database_url: str, redis_url: str, tmp_path: Path
) -> None:
    settings = watcher_settings(sandbox, database_url, redis_url, tmp_path).model_copy(
        update={"exclude_namespaces": ["batch", "kube-*"]}
    )
    spawner = RecordingSpawner()
    supervisor = WatcherSupervisor(settings, spawner, interval=0.1)
    await supervisor.start()
    try:

        async def initial() -> bool:
            return {"production", "staging", CLUSTER_SCOPE} <= spawner.running

        await wait_for(initial, message="watchers for production, staging and the cluster")
        assert "batch" not in spawner.running
        from kubernetes import client as k8s
        from kubernetes import config as k8s_config

        api = k8s_config.new_client_from_config(config_file=str(sandbox.kubeconfig_path))
        body = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "newcomer"},
            "status": {"phase": "Active"},
        }
        await asyncio.to_thread(k8s.CoreV1Api(api).create_namespace, body)

        async def picked_up() -> bool:
            return "newcomer" in spawner.running

        await wait_for(picked_up, message="a watcher for the namespace created at run time")
        await asyncio.to_thread(k8s.CoreV1Api(api).delete_namespace, "newcomer")

        async def dropped() -> bool:
            return "newcomer" not in spawner.running

        await wait_for(dropped, message="the watcher of the deleted namespace to stop")
        api.close()
    finally:
        await supervisor.stop()


@pytest.mark.parametrize(
    ("namespace", "include", "exclude", "expected"),
    [
        pytest.param("prod", ["*"], [], True, id="everything-by-default"),
        pytest.param("kube-public", ["*"], ["kube-public"], False, id="excluded-by-name"),
        pytest.param("team-a", ["team-*"], [], True, id="included-by-glob"),
        pytest.param("other", ["team-*"], [], False, id="not-included"),
        pytest.param("team-x", ["team-*"], ["team-x"], False, id="exclude-wins"),
    ],
)
def test_namespace_selection_globs(namespace: str, include: list[str], exclude: list[str], expected: bool) -> None:
    assert wanted(namespace, include, exclude) is expected


def test_diff_sends_only_changes_and_a_recovery_for_what_vanished() -> None:
    from datetime import UTC, datetime

    from core.detectors import Finding
    from core.models import Reason, Severity

    now = datetime(2026, 12, 1, tzinfo=UTC)
    crash = Finding(
        kind="Pod",
        namespace="a",
        name="p",
        reason=Reason.CRASH_LOOP_BACK_OFF,
        severity=Severity.WARNING,
        message="m",
        details={"restart_count": 3},
    )
    first, sent = diff_findings([crash], {}, now)
    assert len(first) == 1
    again, sent = diff_findings([crash], sent, now)
    assert again == []
    worse = crash.model_copy(update={"details": {"restart_count": 4}})
    changed, sent = diff_findings([worse], sent, now)
    assert len(changed) == 1 and changed[0].firing
    gone, sent = diff_findings([], sent, now)
    assert len(gone) == 1 and not gone[0].firing and gone[0].labels == changed[0].labels and sent == {}


@pytest.mark.parametrize(
    ("hosts", "per_host", "expected"),
    [
        pytest.param({}, 10, 0, id="first-host"),
        pytest.param({0: ["a", "b"]}, 10, 0, id="joins-the-host-with-room"),
        pytest.param({0: ["a", "b"]}, 2, 1, id="full-host-opens-a-new-one"),
        pytest.param({0: ["a"], 1: ["b", "c"]}, 3, 1, id="fullest-host-with-room-first"),
        pytest.param({0: ["a", "b"], 2: ["c"]}, 2, 2, id="fills-a-gap-left-by-a-retired-host"),
        pytest.param({0: ["a"], 2: ["c"]}, 1, 1, id="lowest-free-index"),
    ],
)
def test_place_packs_scopes_onto_the_fullest_host_with_room(
    hosts: dict[int, list[str]], per_host: int, expected: int
) -> None:
    assert place("new", hosts, per_host) == expected


async def test_supervisor_packs_namespaces_onto_hosts_and_a_restarted_supervisor_keeps_the_placement(
    sandbox: BackgroundSandbox, database_url: str, redis_url: str, tmp_path: Path
) -> None:
    settings = watcher_settings(sandbox, database_url, redis_url, tmp_path).model_copy(
        update={"watch_namespaces": ["production", "staging", "batch"], "watch_namespaces_per_actor": 2}
    )
    spawner = RecordingSpawner()
    supervisor = WatcherSupervisor(settings, spawner, interval=0.1)
    await supervisor.start()
    try:

        async def placed() -> bool:
            return {"production", "staging", "batch", CLUSTER_SCOPE} <= spawner.running

        await wait_for(placed, message="every namespace and the cluster placed")
        assert sorted(len(scopes) for scopes in spawner.placement.values()) == [2, 2]
        assert supervisor.status()["hosts"] == {str(i): sorted(s) for i, s in spawner.placement.items()}
    finally:
        await supervisor.stop()
    before = {index: sorted(scopes) for index, scopes in spawner.placement.items()}
    # A new supervisor (Ray restarted it) starts from what the hosts say: nothing moves, nothing doubles.
    again = WatcherSupervisor(settings, spawner, interval=0.1)
    await again.start()
    try:
        await wait_for(lambda: again.status()["hosts"] != {}, message="the new supervisor reconciled")
        await again.reconcile()
        assert {index: sorted(scopes) for index, scopes in spawner.placement.items()} == before
        assert spawner.retired == []
    finally:
        await again.stop()


async def test_supervisor_drops_a_scope_found_on_two_hosts_and_retires_empty_hosts(
    sandbox: BackgroundSandbox, database_url: str, redis_url: str, tmp_path: Path
) -> None:
    settings = watcher_settings(sandbox, database_url, redis_url, tmp_path).model_copy(
        update={"watch_namespaces": ["production", "staging"], "watch_namespaces_per_actor": 5}
    )
    spawner = RecordingSpawner()
    # As a supervisor that died mid-placement may leave it: staging twice, and a host with only a gone namespace.
    spawner.placement = {0: ["production", "staging"], 1: ["staging"], 3: ["deleted-long-ago"]}
    supervisor = WatcherSupervisor(settings, spawner, interval=0.1)
    await supervisor.start()
    try:

        async def settled() -> bool:
            return spawner.placement == {0: ["production", "staging", CLUSTER_SCOPE]}

        await wait_for(settled, message="staging once, the gone namespace dropped, empty hosts retired")
        assert sorted(spawner.retired) == [1, 3]
    finally:
        await supervisor.stop()


async def test_a_watcher_host_watches_several_namespaces_and_a_new_instance_resumes_them_from_redis(
    sandbox: BackgroundSandbox, engine: RuleEngine, database_url: str, redis_url: str, tmp_path: Path
) -> None:
    settings = watcher_settings(sandbox, database_url, redis_url, tmp_path)
    host = WatcherHost(settings, InProcessHandle(engine), index=4)
    await host.add("production")
    await host.add("staging")
    await host.add("staging")  # idempotent
    try:
        assert await host.scopes() == ["production", "staging"]

        async def both_incidents() -> bool:
            found = {i.namespace for i in await open_incidents(engine)}
            return {"production", "staging"} <= found

        await wait_for(both_incidents, message="incidents from both hosted namespaces")
        health = await host.health()
        assert set(health["parts"]) == {"aiops-watch-production", "aiops-watch-staging"}
        assert health["degraded"] is False
        text = host.metrics_text()
        assert 'namespace="production"' in text and 'namespace="staging"' in text
        with pytest.raises(KeyError, match="not watched"):
            await host.status("nowhere")
        # The process dies (no stop): a new instance with the same index resumes both from Redis.
        twin = WatcherHost(settings, InProcessHandle(engine), index=4)
        try:
            assert sorted(await twin.restore()) == ["production", "staging"]
            for scope in ("production", "staging"):
                assert (await twin.status(scope))["started"], scope
        finally:
            await twin.stop()
        assert await host.remove("staging") is True
        assert await host.remove("staging") is False
        assert await host.scopes() == ["production"]
    finally:
        await host.stop()
    # A stopped host forgets its scopes: the next instance starts empty.
    fresh = WatcherHost(settings, InProcessHandle(engine), index=4)
    assert await fresh.restore() == []
    await fresh.stop()
