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
from actors.watchers import CLUSTER_SCOPE, Watcher, WatcherSupervisor, diff_findings, wanted
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
    def __init__(self) -> None:
        self.running: set[str] = set()

    async def start(self, scope: str) -> None:
        self.running.add(scope)

    async def stop(self, scope: str) -> None:
        self.running.discard(scope)


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
