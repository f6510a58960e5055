"""The Kubernetes adapter against the sandbox: dict reads, wrapped errors, and an informer that
survives dropped watches, 410 Gone, 403 and an unreachable API server."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from adapters.kube import KINDS, Backoff, EventType, Informer, KubeClient, KubeForbidden, KubeNotFound, WatchEvent
from adapters.sandbox import BackgroundSandbox, Scenario, WorkloadSpec, kubeconfig_for
from core.errors import PermanentError, TemporaryError
from tests.helpers import wait_for, wait_until

NAMESPACED_KINDS = sorted(k for k, info in KINDS.items() if info.namespaced)
CLUSTER_KINDS = sorted(k for k, info in KINDS.items() if not info.namespaced)


@pytest.fixture
def kube(sandbox: BackgroundSandbox) -> Iterator[KubeClient]:
    client = KubeClient.from_kubeconfig(sandbox.kubeconfig_path, request_timeout=5.0)
    yield client
    client.close()


class Recorder:
    """An async sink that keeps every event, for assertions."""

    def __init__(self) -> None:
        self.events: list[WatchEvent] = []

    async def __call__(self, event: WatchEvent) -> None:
        self.events.append(event)

    def names(self, kind: EventType) -> list[str]:
        return [e.obj.get("metadata", {}).get("name", "") for e in self.events if e.type == kind]


@asynccontextmanager
async def running(informer: Informer) -> AsyncIterator[Informer]:
    await informer.start()
    try:
        yield informer
    finally:
        await informer.stop()


def _pod_names(kube: KubeClient, ns: str, selector: str) -> list[str]:
    return [p["metadata"]["name"] for p in kube.list("Pod", ns, label_selector=selector)[0]]


@pytest.mark.parametrize("kind", NAMESPACED_KINDS)
def test_list_of_every_namespaced_kind_returns_api_shaped_dicts(kube: KubeClient, kind: str) -> None:
    items, rv = kube.list(kind, "production")
    assert int(rv) > 0
    for item in items:
        assert item["kind"] == kind and "resourceVersion" in item["metadata"]


@pytest.mark.parametrize("kind", CLUSTER_KINDS)
def test_list_of_cluster_scoped_kinds_ignores_namespaces(kube: KubeClient, kind: str) -> None:
    items, _ = kube.list(kind)
    assert items and all(i["kind"] == kind and "namespace" not in i["metadata"] for i in items)


def test_list_paginates_and_reads_are_camel_case_dicts(kube: KubeClient) -> None:
    pods = wait_until(lambda: len(p := kube.list("Pod", "production")[0]) == 8 and p, message="8 pods")
    paged, _ = kube.list("Pod", "production", page_size=3)
    assert sorted(p["metadata"]["name"] for p in paged) == sorted(p["metadata"]["name"] for p in pods)
    pod = kube.get("Pod", "production", pods[0]["metadata"]["name"])
    assert pod["kind"] == "Pod" and "ownerReferences" in pod["metadata"] and "nodeName" in pod["spec"]


def test_read_pod_log_returns_previous_run_text(kube: KubeClient) -> None:
    def crashed() -> str | None:
        for p in kube.list("Pod", "production", label_selector="app=checkout")[0]:
            if p.get("status", {}).get("containerStatuses", [{}])[0].get("restartCount", 0) >= 1:
                return str(p["metadata"]["name"])
        return None

    name = wait_until(crashed, message="a restarted checkout pod")
    text = kube.read_pod_log("production", name, previous=True, tail_lines=1)
    assert text == "fatal error: runtime: out of memory\n"


@pytest.mark.parametrize(
    ("call", "error"),
    [
        pytest.param(lambda k: k.get("Pod", "production", "nope"), KubeNotFound, id="missing-object-is-404"),
        pytest.param(lambda k: k.read_pod_log("production", "nope"), KubeNotFound, id="missing-pod-log-is-404"),
        pytest.param(lambda k: k.list("Gadget", "production"), PermanentError, id="unknown-kind"),
    ],
)
def test_errors_are_wrapped_into_the_platform_taxonomy(
    kube: KubeClient, call: Callable[[KubeClient], object], error: type[Exception]
) -> None:
    with pytest.raises(error):
        call(kube)


def test_forbidden_and_unreachable_api_servers_raise_permanent_and_temporary_errors(
    sandbox: BackgroundSandbox, kube: KubeClient, tmp_path: Path
) -> None:
    sandbox.set_forbidden(True)
    with pytest.raises(KubeForbidden) as err:
        kube.list("Pod", "production")
    assert err.value.status == 403 and err.value.__cause__ is not None
    sandbox.set_forbidden(False)
    dead = KubeClient.from_kubeconfig(_dead_kubeconfig(tmp_path), request_timeout=2.0)
    with pytest.raises(TemporaryError, match="cannot reach"):
        dead.list("Pod", "production")


def test_delete_and_patch_change_the_cluster(kube: KubeClient) -> None:
    victim = wait_until(lambda: _pod_names(kube, "production", "app=payments"), message="payments pods")[0]
    kube.delete("Pod", "production", victim)
    wait_until(lambda: victim not in _pod_names(kube, "production", "app=payments"), message="pod deleted")
    kube.patch("Deployment", "production", "payments", {"spec": {"replicas": 1}})
    wait_until(lambda: len(_pod_names(kube, "production", "app=payments")) == 1, message="scaled down")


async def test_informer_sees_added_modified_and_deleted_pods(kube: KubeClient) -> None:
    rec = Recorder()
    async with running(Informer(kube, "Pod", "production", sink=rec)) as inf:
        await wait_for(lambda: inf.synced and rec.names(EventType.ADDED), message="initial list")
        await wait_for(lambda: rec.names(EventType.MODIFIED), message="modifications (crash loop)")
        victim = (await asyncio.to_thread(_pod_names, kube, "production", "app=frontend"))[0]
        await asyncio.to_thread(kube.delete, "Pod", "production", victim)
        await wait_for(lambda: victim in rec.names(EventType.DELETED), message="DELETED event")
        await wait_for(
            lambda: len([p for p in inf.snapshot() if p["metadata"]["labels"].get("app") == "frontend"]) == 3,
            message="replacement in the cache",
        )
        assert inf.status()["connected"] is True and inf.status()["events"] > 0


async def test_informer_survives_a_dropped_watch_without_losing_a_change(
    sandbox: BackgroundSandbox, kube: KubeClient
) -> None:
    rec = Recorder()
    backoff = Backoff(initial=0.3, maximum=1.0, jitter=0.0)
    async with running(Informer(kube, "Pod", "staging", sink=rec, backoff=backoff)) as inf:
        await wait_for(lambda: inf.synced and sandbox.call(_open_watches) > 0, message="watching")
        victim = (await asyncio.to_thread(_pod_names, kube, "staging", "app=frontend"))[0]
        await asyncio.to_thread(sandbox.drop_watches)
        await asyncio.to_thread(kube.delete, "Pod", "staging", victim)  # while the informer is away
        await wait_for(lambda: victim in rec.names(EventType.DELETED), message="the missed DELETED, replayed")
        status = inf.status()
        assert status["reconnects"] >= 1 and status["relists"] == 0 and status["connected"]


@pytest.mark.parametrize("as_http", [pytest.param(False, id="error-event"), pytest.param(True, id="http-410")])
async def test_informer_relists_on_410_and_still_sees_changes(
    sandbox: BackgroundSandbox, kube: KubeClient, as_http: bool
) -> None:
    rec = Recorder()
    backoff = Backoff(initial=1.0, maximum=1.0, jitter=0.0)  # a wide window while it is away
    async with running(Informer(kube, "Pod", "staging", sink=rec, backoff=backoff)) as inf:
        await wait_for(lambda: inf.synced and sandbox.call(_open_watches) > 0, message="watching")
        victim = (await asyncio.to_thread(_pod_names, kube, "staging", "app=frontend"))[0]
        if as_http:  # away, a change, compaction: the resume from the old resourceVersion gets HTTP 410
            await asyncio.to_thread(sandbox.drop_watches)
            await asyncio.to_thread(kube.delete, "Pod", "staging", victim)
            await asyncio.to_thread(sandbox.fail_watches, 410, as_http=True)
        else:  # the open watch ends with an ERROR event carrying code 410
            await asyncio.to_thread(kube.delete, "Pod", "staging", victim)
            await asyncio.to_thread(sandbox.fail_watches, 410)
        await wait_for(lambda: any(e.type == EventType.RELISTED for e in rec.events), message="a relist")
        await wait_for(lambda: victim in rec.names(EventType.DELETED), message="the deletion, seen")
        assert inf.status()["relists"] >= 1
        await wait_for(
            lambda: (
                len([p for p in inf.snapshot() if p["metadata"]["labels"].get("app") == "frontend"]) == 1
                and victim not in {p["metadata"]["name"] for p in inf.snapshot()}
            ),
            message="cache matches the cluster",
        )


async def test_informer_started_for_a_new_namespace_picks_up_its_objects(
    sandbox: BackgroundSandbox, kube: KubeClient
) -> None:
    scenario = Scenario(
        namespaces=["team-x"],
        restart_interval_seconds=0.2,
        workloads=[WorkloadSpec(name="api", namespace="team-x", replicas=2)],
    )
    await asyncio.to_thread(sandbox.apply_scenario, scenario)
    rec = Recorder()
    async with running(Informer(kube, "Pod", "team-x", sink=rec)) as inf:
        await wait_for(
            lambda: (
                len({p["metadata"]["name"] for p in inf.snapshot() if p.get("status", {}).get("phase") == "Running"})
                == 2
            ),
            message="2 pods",
        )
        assert all(e.obj["metadata"]["namespace"] == "team-x" for e in rec.events)


async def test_forbidden_api_is_reported_in_status_with_backoff_and_recovers(
    sandbox: BackgroundSandbox, kube: KubeClient
) -> None:
    await asyncio.to_thread(sandbox.set_forbidden, True)
    queue: asyncio.Queue[WatchEvent] = asyncio.Queue()
    backoff = Backoff(initial=0.05, maximum=0.2)
    async with running(Informer(kube, "Pod", "production", sink=queue, backoff=backoff)) as inf:
        await wait_for(lambda: inf.status()["errors"] >= 3, message="repeated 403s")
        status = inf.status()
        assert status["forbidden"] and not status["connected"] and status["alive"] and "403" in status["last_error"]
        assert backoff.attempt >= 3
        await asyncio.to_thread(sandbox.set_forbidden, False)
        await wait_for(lambda: inf.synced and inf.status()["connected"], message="recovery")
        assert not inf.status()["forbidden"] and backoff.attempt == 0 and not queue.empty()


async def test_unreachable_api_is_reported_without_crashing_and_stop_is_prompt(tmp_path: Path) -> None:
    dead = KubeClient.from_kubeconfig(_dead_kubeconfig(tmp_path), request_timeout=1.0)
    inf = Informer(dead, "Node", sink=asyncio.Queue(), backoff=Backoff(initial=0.05, maximum=0.1))
    await inf.start()
    try:
        await wait_for(lambda: inf.status()["errors"] >= 2, message="repeated connection errors")
        status = inf.status()
        assert not status["connected"] and status["alive"] and "cannot reach" in status["last_error"]
    finally:
        started = time.monotonic()
        await inf.stop()
        assert time.monotonic() - started < 2.0
    assert not inf.status()["alive"]


async def test_stop_is_prompt_while_a_watch_is_idle(sandbox_factory: Callable[..., BackgroundSandbox]) -> None:
    sb = sandbox_factory(Scenario(namespaces=["quiet"]), bookmark_interval=60.0)
    kube = KubeClient.from_kubeconfig(sb.kubeconfig_path)
    inf = Informer(kube, "Pod", "quiet", sink=asyncio.Queue(), watch_timeout_seconds=300)
    await inf.start()
    await wait_for(lambda: inf.synced and sb.call(_open_watches) > 0, message="an idle open watch")
    started = time.monotonic()
    await inf.stop()
    assert time.monotonic() - started < 2.0 and not inf.status()["alive"]
    kube.close()


async def test_periodic_resync_re_emits_the_cache(kube: KubeClient) -> None:
    rec = Recorder()
    async with running(Informer(kube, "Node", sink=rec, resync_seconds=0.1)) as inf:
        await wait_for(lambda: len(rec.names(EventType.RESYNC)) >= 6, message="two resyncs of 3 nodes")
        assert set(rec.names(EventType.RESYNC)) == {"node-1", "node-2", "node-3"}
        assert inf.status()["resyncs"] >= 2


@pytest.mark.parametrize(
    ("attempts", "expected"),
    [
        pytest.param(1, 0.1, id="first-delay-is-initial"),
        pytest.param(3, 0.4, id="doubles"),
        pytest.param(10, 2.0, id="bounded-by-maximum"),
    ],
)
def test_backoff_grows_exponentially_to_a_bound(attempts: int, expected: float) -> None:
    backoff = Backoff(initial=0.1, maximum=2.0, jitter=0.0)
    delays = [backoff.next() for _ in range(attempts)]
    assert delays[-1] == pytest.approx(expected)
    backoff.reset()
    assert backoff.next() == pytest.approx(0.1)


async def _open_watches(sb: object) -> int:
    return int(sb.api.open_watches)  # type: ignore[attr-defined]


def _dead_kubeconfig(tmp_path: Path) -> Path:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = tmp_path / "dead.kubeconfig"
    import yaml

    path.write_text(yaml.safe_dump(kubeconfig_for(f"http://127.0.0.1:{port}")))
    return path
