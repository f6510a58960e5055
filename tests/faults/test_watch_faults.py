"""The kube watch stream failing under a NamespaceWatcher (plain class, no Ray) while pods break.

For each fault the sandbox API server is made to misbehave and, *while it does*, a healthy
pod is broken (crash loop). The watch must come back by itself and the broken pod must
still reach PostgreSQL as a signal: a change made during the outage is not lost. Faults:
the connection reset without a goodbye, a 410 Gone ERROR event (history compacted, so a
relist), a 500 ERROR event, and 403 (RBAC taken
away, then given back), which the informer must report as ``forbidden`` meanwhile.

Already proved elsewhere and not repeated: a dropped watch and a 410 with a change made
after the recovery (tests/integration/test_watchers.py), the informer alone relisting on
410 (as an event and as an HTTP answer to a stale resume) and backing off on 403
(tests/integration/test_kube_adapter.py), and a namespace's
403 shown in /health of the Ray deployment (tests/e2e/test_watchers_in_ray.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from actors.rule_engine import RuleEngine
from actors.watchers import Watcher
from adapters.kube import Informer, KubeClient
from adapters.sandbox import BackgroundSandbox, load_scenario
from config.settings import Settings
from core.detectors import detect_all
from tests.faults.outcomes import record
from tests.helpers import wait_for
from tests.integration.test_watchers import InProcessHandle

pytestmark = pytest.mark.integration
NAMESPACE = "production"


@pytest.fixture
def sandbox() -> AsyncIterator[BackgroundSandbox]:
    scenario = load_scenario("demo").model_copy(update={"restart_interval_seconds": 0.2, "node_events": []})
    sb = BackgroundSandbox(scenario, bookmark_interval=0.5).start()
    yield sb
    sb.stop()


@pytest.fixture
async def engine(database_url: str, redis_url: str, redis_prefix: str, tmp_path: Path) -> AsyncIterator[RuleEngine]:
    settings = Settings.from_env(
        database_url=database_url, redis_url=redis_url, data_dir=tmp_path, redis_prefix=redis_prefix
    )
    rule_engine = RuleEngine(settings)
    stores = await rule_engine._ready()
    async with stores.postgres.pool.acquire() as conn:
        await conn.execute("TRUNCATE incidents, signals, incident_events CASCADE")
    yield rule_engine
    await rule_engine.close()


def _healthy_pods(sandbox: BackgroundSandbox) -> list[str]:
    pods = sandbox.objects("Pod", NAMESPACE)
    return sorted(
        p["metadata"]["name"]
        for p in pods
        if p.get("status", {}).get("phase") == "Running"
        and not p["metadata"]["name"].startswith("checkout")
        and all(c.get("ready") for c in p.get("status", {}).get("containerStatuses", []))
    )


async def test_watch_faults_recover_and_a_pod_broken_during_each_is_not_lost(
    sandbox: BackgroundSandbox, engine: RuleEngine, database_url: str, redis_url: str, tmp_path: Path
) -> None:
    settings = Settings.from_env(
        database_url=database_url,
        redis_url=redis_url,
        kubeconfig=str(sandbox.kubeconfig_path),
        data_dir=tmp_path,
        redis_prefix=f"watch-faults-{time.time_ns()}:",
    )
    async with asyncio.timeout(240):  # a hang becomes a failure showing where it hung, not a stuck suite
        await _run_faults(sandbox, engine, settings)


async def _run_faults(sandbox: BackgroundSandbox, engine: RuleEngine, settings: Settings) -> None:
    watcher = Watcher(settings, NAMESPACE, InProcessHandle(engine))
    await watcher.start()
    stores = await engine._ready()

    async def signals_for(pod: str) -> int:
        sql = "SELECT count(*) FROM signals WHERE namespace = $1 AND body->'object'->>'name' = $2"
        return int(await stores.postgres.pool.fetchval(sql, NAMESPACE, pod))

    def pods_informer() -> Any:
        return next(i for i in watcher._informers if i.kind in ("Pod", "pods"))

    try:
        await wait_for(lambda: pods_informer().status()["synced"], timeout=60, message="the pod informer synced")
        healthy = await asyncio.to_thread(_healthy_pods, sandbox)

        async def forbid() -> None:
            await asyncio.to_thread(sandbox.set_forbidden, True)  # the whole API; this watcher only reads its namespace
            await asyncio.to_thread(sandbox.drop_watches)  # reconnects now meet the 403

        async def allow() -> None:
            await wait_for(lambda: pods_informer().status()["forbidden"], timeout=60, message="403 seen as forbidden")
            await asyncio.to_thread(sandbox.set_forbidden, False)

        async def nothing() -> None:
            return None

        faults: list[tuple[str, Callable[[], Any], Callable[[], Any], str]] = [
            ("watch connection reset", lambda: asyncio.to_thread(sandbox.drop_watches), nothing, "errors"),
            (
                "watch ERROR 410 Gone (compacted)",
                lambda: asyncio.to_thread(sandbox.fail_watches, 410),
                nothing,
                "relists",
            ),
            ("watch ERROR 500", lambda: asyncio.to_thread(sandbox.fail_watches, 500), nothing, "errors"),
            ("403 (RBAC taken away), then allowed", forbid, allow, "errors"),
        ]
        assert len(healthy) >= len(faults), healthy
        for (name, inject_fault, end_fault, counter), pod in zip(faults, healthy, strict=False):
            status = pods_informer().status()
            before = {k: status.get(k, 0) for k in ("watches", "relists", "errors")}
            assert await signals_for(pod) == 0, f"{pod} was already signalled"
            await inject_fault()
            await asyncio.to_thread(sandbox.inject, NAMESPACE, pod, "crashloop")  # during the outage
            started = time.monotonic()
            await end_fault()
            await wait_for(lambda p=pod: signals_for(p), timeout=90, message=f"a signal for {pod} after: {name}")
            took = time.monotonic() - started
            await wait_for(lambda: pods_informer().status()["connected"], timeout=60, message="watch reconnected")
            after = pods_informer().status()
            assert after["watches"] > before["watches"], (name, before, after)
            assert after[counter] > before[counter], (name, counter, before, after)
            assert not after["forbidden"]
            counters = ", ".join(f"{k} +{after.get(k, 0) - v}" for k, v in before.items())
            record(f"kube watch: {name}", f"pod {pod} crash-looped during it", f"signal in {took:.1f}s; {counters}")
    finally:
        await watcher.stop()


async def test_a_stalled_watch_is_given_up_on_and_a_pod_broken_during_the_stall_is_seen(
    sandbox: BackgroundSandbox,
) -> None:
    """The stream stays open and silent (no events, no bookmarks, no end): a hung proxy.

    The periodic resync only re-emits the informer's cache, so it cannot see a change the
    stall swallowed; what ends the stall is the watch's read timeout (the server-side
    ``timeoutSeconds`` + 15 s), after which the watch resumes from its resourceVersion and the
    backlog carries the change. The informer runs here with ``watch_timeout_seconds=2``
    (read timeout 17 s) to keep the test short; the default of 60 s gives 75 s.
    """

    async def ignore(_event: Any) -> None:
        return None

    client = KubeClient.from_kubeconfig(str(sandbox.kubeconfig_path))
    informer = Informer(client, "Pod", NAMESPACE, sink=ignore, resync_seconds=1.0, watch_timeout_seconds=2)
    await informer.start()

    def broken(pod: str) -> bool:
        return any(f.name == pod for f in detect_all(informer.snapshot(), [], now=datetime.now(UTC)))

    try:
        async with asyncio.timeout(120):
            await wait_for(lambda: informer.synced, timeout=60, message="the pod informer synced")
            pod = (await asyncio.to_thread(_healthy_pods, sandbox))[0]
            await wait_for(
                lambda: sandbox.stall_watches() > 0,
                timeout=30,
                interval=0.1,
                message="an open watch to stall",
            )
            await asyncio.to_thread(sandbox.inject, NAMESPACE, pod, "crashloop")  # during the stall
            started = time.monotonic()
            before = dict(informer.counters)
            await wait_for(
                lambda: informer.counters["resyncs"] >= before["resyncs"] + 3,
                timeout=30,
                message="three resyncs during the stall",
            )
            seen_by_resync = broken(pod)
            await wait_for(lambda: broken(pod), timeout=60, interval=0.1, message=f"the crash loop of {pod} seen")
            took = time.monotonic() - started
            after = dict(informer.counters)
            assert after["watches"] > before["watches"], (before, after)
    finally:
        await informer.stop()
        client.close()
    counters = ", ".join(f"{k} +{after[k] - before[k]}" for k in ("watches", "errors", "resyncs"))
    record(
        "kube watch: stalled (open, silent, no bookmarks)",
        f"pod {pod} crash-looped during it; watch timeout 2 s (read timeout 17 s)",
        f"seen {took:.1f}s later, after the read timeout"
        f"{'' if not seen_by_resync else ' (already by a resync)'}; not by the 1 s resyncs; {counters}",
    )
