"""The sandbox cluster, driven by the official kubernetes client over HTTP, behaves like a cluster."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes import watch

from adapters.sandbox import BackgroundSandbox, Scenario, WorkloadSpec, large_scenario, parse_scenario
from core.errors import ConfigError
from tests.helpers import wait_until

REPO = Path(__file__).resolve().parents[2]


def _pods(api: k8s.ApiClient, ns: str, selector: str | None = None) -> list[Any]:
    return list(k8s.CoreV1Api(api).list_namespaced_pod(ns, label_selector=selector).items)


def _running_ready(pods: list[Any]) -> bool:
    return bool(pods) and all(
        p.status.phase == "Running" and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions)
        for p in pods
    )


def test_official_client_with_load_kube_config_lists_namespaces_version_and_pods(sandbox: BackgroundSandbox) -> None:
    k8s_config.load_kube_config(config_file=str(sandbox.kubeconfig_path))
    v1 = k8s.CoreV1Api()
    assert k8s.VersionApi().get_code().major == "1"
    names = {ns.metadata.name for ns in v1.list_namespace().items}
    assert {"production", "staging", "batch", "default"} <= names
    pods = wait_until(lambda: _pods(v1.api_client, "production", "app=frontend"), message="frontend pods")
    assert len(pods) == 3
    pod = v1.read_namespaced_pod(pods[0].metadata.name, "production")
    owner = pod.metadata.owner_references[0]
    assert owner.kind == "ReplicaSet" and owner.controller
    assert pod.metadata.name.startswith(owner.name + "-") and len(pod.metadata.name) == len(owner.name) + 6
    assert pod.metadata.labels["pod-template-hash"] == owner.name.rsplit("-", 1)[1]
    assert pod.spec.node_name in {"node-1", "node-2", "node-3"}
    assert int(pod.metadata.resource_version) > 0


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        pytest.param("app=frontend", 3, id="equality"),
        pytest.param("app==frontend", 3, id="double-equals"),
        pytest.param("app=frontend,tier=web", 0, id="and-of-two-requirements"),
        pytest.param("app in (frontend,payments)", 5, id="set-in"),
        pytest.param("app!=frontend,app!=checkout", 3, id="inequality"),
    ],
)
def test_label_selectors_filter_pod_lists(k8s_api: k8s.ApiClient, selector: str, expected: int) -> None:
    wait_until(lambda: len(_pods(k8s_api, "production")) == 8, message="8 production pods")
    assert len(_pods(k8s_api, "production", selector)) == expected


def test_field_selectors_pick_events_of_one_object_and_objects_by_name(k8s_api: k8s.ApiClient) -> None:
    v1 = k8s.CoreV1Api(k8s_api)
    pod = wait_until(lambda: _pods(k8s_api, "production", "app=checkout"), message="checkout pods")[0]
    name = pod.metadata.name
    events = wait_until(
        lambda: v1.list_namespaced_event("production", field_selector=f"involvedObject.name={name}").items,
        message="events of the pod",
    )
    assert {e.involved_object.name for e in events} == {name}
    by_name = v1.list_namespaced_pod("production", field_selector=f"metadata.name={name}").items
    assert [p.metadata.name for p in by_name] == [name]


def test_list_pagination_with_limit_and_continue_returns_every_pod_once(k8s_api: k8s.ApiClient) -> None:
    v1 = k8s.CoreV1Api(k8s_api)
    wait_until(lambda: len(_pods(k8s_api, "production")) == 8, message="8 production pods")
    first = v1.list_namespaced_pod("production", limit=5)
    second = v1.list_namespaced_pod("production", limit=5, _continue=first.metadata._continue)
    names = [p.metadata.name for p in first.items + second.items]
    assert len(first.items) == 5 and second.metadata._continue is None
    assert len(names) == len(set(names)) == 8


def test_crashloop_from_oom_raises_restart_count_with_oomkilled_last_state(k8s_api: k8s.ApiClient) -> None:
    def crashing() -> Any:
        for p in _pods(k8s_api, "production", "app=checkout"):
            cs = (p.status.container_statuses or [None])[0]
            if cs is not None and cs.restart_count >= 3:
                return cs
        return None

    cs = wait_until(crashing, message="restartCount >= 3")
    assert cs.state.waiting.reason == "CrashLoopBackOff"
    assert cs.last_state.terminated.reason == "OOMKilled"
    assert cs.last_state.terminated.exit_code == 137
    first = cs.restart_count
    wait_until(lambda: (c := crashing()) is not None and c.restart_count > first, message="restartCount rising")


def test_pod_logs_are_plain_text_with_previous_tail_lines_and_container(k8s_api: k8s.ApiClient) -> None:
    v1 = k8s.CoreV1Api(k8s_api)
    wait_until(
        lambda: any(
            (p.status.container_statuses or [None])[0] and p.status.container_statuses[0].restart_count
            for p in _pods(k8s_api, "production", "app=checkout")
        ),
        message="a restart",
    )
    name = _pods(k8s_api, "production", "app=checkout")[0].metadata.name
    previous = v1.read_namespaced_pod_log(name, "production", previous=True)
    assert "fatal error: runtime: out of memory" in previous
    assert v1.read_namespaced_pod_log(name, "production", previous=True, tail_lines=1, container="app") == (
        "fatal error: runtime: out of memory\n"
    )
    healthy = _pods(k8s_api, "production", "app=frontend")[0].metadata.name
    assert "listening" in v1.read_namespaced_pod_log(healthy, "production")
    with pytest.raises(k8s.ApiException) as err:
        v1.read_namespaced_pod_log(healthy, "production", previous=True)
    assert err.value.status == 400
    with pytest.raises(k8s.ApiException) as err:
        v1.read_namespaced_pod_log(healthy, "production", container="nope")
    assert err.value.status == 400


def test_watch_stream_sees_a_deleted_pod_and_its_replacement(k8s_api: k8s.ApiClient) -> None:
    v1 = k8s.CoreV1Api(k8s_api)
    pods = wait_until(
        lambda: _running_ready(p := _pods(k8s_api, "staging", "app=frontend")) and p, message="staging frontend running"
    )
    victim = pods[0].metadata.name
    rv = v1.list_namespaced_pod("staging").metadata.resource_version
    v1.delete_namespaced_pod(victim, "staging")
    seen: list[tuple[str, str]] = []
    w = watch.Watch()
    for event in w.stream(
        v1.list_namespaced_pod, "staging", resource_version=rv, timeout_seconds=5, allow_watch_bookmarks=True
    ):
        seen.append((event["type"], event["object"].metadata.name))
        if (
            event["type"] == "MODIFIED"
            and event["object"].metadata.name != victim
            and event["object"].status.phase == "Running"
        ):
            w.stop()
    assert ("DELETED", victim) in seen
    assert any(t == "ADDED" and n != victim for t, n in seen)


def test_deleted_pod_is_recreated_by_its_replicaset(k8s_api: k8s.ApiClient) -> None:
    v1 = k8s.CoreV1Api(k8s_api)
    before = wait_until(
        lambda: len(p := _pods(k8s_api, "production", "app=payments")) == 2 and p, message="2 payments pods"
    )
    v1.delete_namespaced_pod(before[0].metadata.name, "production")
    after = wait_until(
        lambda: (
            len(p := _pods(k8s_api, "production", "app=payments")) == 2
            and before[0].metadata.name not in {x.metadata.name for x in p}
            and _running_ready(p)
            and p
        ),
        message="a replacement pod",
    )
    assert before[1].metadata.name in {p.metadata.name for p in after}


def test_rollout_restart_rolls_a_new_replicaset_revision_and_replaces_pods(k8s_api: k8s.ApiClient) -> None:
    apps = k8s.AppsV1Api(k8s_api)
    old = {
        p.metadata.name
        for p in wait_until(lambda: _pods(k8s_api, "production", "app=frontend"), message="frontend pods")
    }
    patch = {
        "spec": {
            "template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z"}}}
        }
    }
    apps.patch_namespaced_deployment("frontend", "production", patch)

    def replaced() -> Any:
        pods = _pods(k8s_api, "production", "app=frontend")
        return len(pods) == 3 and not old & {p.metadata.name for p in pods} and _running_ready(pods) and pods

    wait_until(replaced, message="all frontend pods replaced")
    rs = [r for r in apps.list_namespaced_replica_set("production").items if r.metadata.name.startswith("frontend-")]
    revisions = {r.metadata.annotations["deployment.kubernetes.io/revision"]: r.spec.replicas for r in rs}
    assert revisions == {"1": 0, "2": 3}


def test_raising_the_memory_limit_ends_the_oom_loop(k8s_api: k8s.ApiClient) -> None:
    apps = k8s.AppsV1Api(k8s_api)
    patch = {
        "spec": {"template": {"spec": {"containers": [{"name": "app", "resources": {"limits": {"memory": "1Gi"}}}]}}}
    }
    apps.patch_namespaced_deployment("checkout", "production", patch)
    dep = apps.read_namespaced_deployment("checkout", "production")
    assert dep.spec.template.spec.containers[0].image.endswith("checkout:2.3.1")  # strategic merge kept it

    def healed() -> Any:
        pods = _pods(k8s_api, "production", "app=checkout")
        return (
            len(pods) == 2
            and _running_ready(pods)
            and all(p.status.container_statuses[0].restart_count == 0 for p in pods)
            and all(p.spec.containers[0].resources.limits["memory"] == "1Gi" for p in pods)
            and pods
        )

    wait_until(healed, message="checkout healthy after the memory fix")
    wait_until(
        lambda: (apps.read_namespaced_deployment("checkout", "production").status.ready_replicas or 0) == 2,
        message="deployment ready",
    )


def test_scale_subresource_changes_the_pod_count(k8s_api: k8s.ApiClient) -> None:
    apps = k8s.AppsV1Api(k8s_api)
    wait_until(lambda: len(_pods(k8s_api, "production", "app=frontend")) == 3, message="3 frontend pods")
    assert apps.read_namespaced_deployment_scale("frontend", "production").spec.replicas == 3
    apps.patch_namespaced_deployment_scale("frontend", "production", {"spec": {"replicas": 1}})
    wait_until(lambda: len(_pods(k8s_api, "production", "app=frontend")) == 1, message="scaled to 1")


def test_node_goes_not_ready_at_the_scenario_time(k8s_api: k8s.ApiClient) -> None:
    v1 = k8s.CoreV1Api(k8s_api)

    def ready_status(name: str) -> str:
        node = v1.read_node(name)
        return next(c.status for c in node.status.conditions if c.type == "Ready")

    wait_until(lambda: ready_status("node-3") == "False", message="node-3 NotReady")
    assert ready_status("node-1") == ready_status("node-2") == "True"
    assert [t.key for t in v1.read_node("node-3").spec.taints] == ["node.kubernetes.io/unreachable"]
    events = v1.list_namespaced_event("default", field_selector="involvedObject.name=node-3").items
    assert any(e.reason == "NodeNotReady" for e in events)


def test_image_pull_failure_reports_backoff_and_not_found_events(k8s_api: k8s.ApiClient) -> None:
    v1 = k8s.CoreV1Api(k8s_api)

    def reasons() -> set[str]:
        return {
            p.status.container_statuses[0].state.waiting.reason
            for p in _pods(k8s_api, "staging", "app=search")
            if p.status.container_statuses
        }

    wait_until(lambda: "ImagePullBackOff" in reasons() or "ErrImagePull" in reasons(), message="pull failure")
    events = wait_until(
        lambda: [
            e
            for e in v1.list_namespaced_event("staging").items
            if e.reason == "Failed" and "Failed to pull image" in e.message
        ],
        message="pull failure events",
    )
    assert "not found" in events[0].message


def test_failing_job_hits_backoff_limit_and_succeeds_when_recreated(k8s_api: k8s.ApiClient) -> None:
    batch = k8s.BatchV1Api(k8s_api)

    def condition(kind: str) -> Any:
        job = batch.read_namespaced_job("nightly-report", "batch")
        return next(
            (c for c in (job.status and job.status.conditions) or [] if c.type == kind and c.status == "True"), None
        )

    failed = wait_until(lambda: condition("Failed"), message="job failed")
    assert failed.reason == "BackoffLimitExceeded"
    batch.delete_namespaced_job("nightly-report", "batch")
    new = {
        "metadata": {"name": "nightly-report", "namespace": "batch"},
        "spec": {
            "backoffLimit": 1,
            "template": {
                "metadata": {"labels": {"app": "nightly-report"}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "app", "image": "registry.example.com/shop/report:0.7.2"}],
                },
            },
        },
    }
    batch.create_namespaced_job("batch", new)
    wait_until(lambda: condition("Complete"), message="recreated job completes")


@pytest.mark.parametrize(
    ("behaviour", "check"),
    [
        pytest.param(
            "unschedulable",
            lambda p: (
                p.status.phase == "Pending"
                and any(
                    c.type == "PodScheduled" and c.status == "False" and "Insufficient memory" in c.message
                    for c in p.status.conditions or []
                )
            ),
            id="unschedulable",
        ),
        pytest.param(
            "pvc_pending",
            lambda p: (
                p.status.phase == "Pending"
                and any(
                    "unbound immediate PersistentVolumeClaims" in (c.message or "") for c in p.status.conditions or []
                )
            ),
            id="pvc-pending",
        ),
        pytest.param(
            "probe_failure",
            lambda p: (
                p.status.phase == "Running"
                and any(c.type == "Ready" and c.status == "False" for c in p.status.conditions or [])
            ),
            id="probe-failure",
        ),
    ],
)
def test_scenario_behaviours_show_in_pod_status(
    sandbox_factory: Callable[..., BackgroundSandbox], behaviour: str, check: Callable[[Any], bool]
) -> None:
    scenario = Scenario(
        namespaces=["ns"],
        restart_interval_seconds=0.2,
        workloads=[WorkloadSpec(name="w", namespace="ns", behaviour=behaviour)],
    )  # type: ignore[arg-type]
    sb = sandbox_factory(scenario)
    api = k8s_config.new_client_from_config(config_file=str(sb.kubeconfig_path))
    try:
        wait_until(lambda: any(check(p) for p in _pods(api, "ns")), message=behaviour)
        if behaviour == "probe_failure":
            wait_until(
                lambda: any(e.reason == "Unhealthy" for e in k8s.CoreV1Api(api).list_namespaced_event("ns").items),
                message="Unhealthy events",
            )
        if behaviour == "pvc_pending":
            pvc = k8s.CoreV1Api(api).read_namespaced_persistent_volume_claim("w-data", "ns")
            assert pvc.status.phase == "Pending"
    finally:
        api.close()


def test_watch_fails_with_410_after_compaction_as_event_or_http(
    sandbox: BackgroundSandbox, k8s_api: k8s.ApiClient
) -> None:
    v1 = k8s.CoreV1Api(k8s_api)
    pod = wait_until(lambda: _pods(k8s_api, "staging", "app=frontend"), message="a staging pod")[0]
    old_rv = v1.list_namespaced_pod("staging").metadata.resource_version
    v1.delete_namespaced_pod(pod.metadata.name, "staging")  # history moves past old_rv
    sandbox.fail_watches(410)
    resp = v1.list_namespaced_pod(
        "staging", watch=True, resource_version=old_rv, timeout_seconds=2, _preload_content=False
    )
    first = json.loads(resp.readline())
    assert first["type"] == "ERROR" and first["object"]["code"] == 410
    sandbox.fail_watches(410, as_http=True)
    with pytest.raises(k8s.ApiException) as err:
        v1.list_namespaced_pod("staging", watch=True, resource_version=old_rv, timeout_seconds=2)
    assert err.value.status == 410


def test_scenario_schema_rejects_unknown_keys_with_a_dotted_path() -> None:
    with pytest.raises(ConfigError) as err:
        parse_scenario("namespaces: [a]\nworkloads:\n  - {name: w, namespace: a, replicaz: 2}\n")
    assert "workloads.0.replicaz" in str(err.value)
    with pytest.raises(ConfigError, match="not listed under namespaces"):
        parse_scenario("namespaces: [a]\nworkloads:\n  - {name: w, namespace: b}\n")


def test_large_scenario_runs_n_by_m_healthy_pods_and_reports_injection_time(
    sandbox_factory: Callable[..., BackgroundSandbox],
) -> None:
    sb = sandbox_factory(large_scenario(3, 20))
    wait_until(
        lambda: len([p for p in sb.objects("Pod") if p.get("status", {}).get("phase") == "Running"]) == 60,
        message="60 running pods",
    )
    ns, pod, injected_at = sb.inject_random("crashloop")
    assert ns.startswith("bench-") and injected_at > 0

    def restarted() -> bool:
        found = [p for p in sb.objects("Pod", ns) if p["metadata"]["name"] == pod]
        return bool(found) and found[0]["status"]["containerStatuses"][0]["restartCount"] >= 1

    wait_until(restarted, message="the injected pod crash-loops")


def test_cli_runner_serves_a_scenario_to_another_process(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    proc = subprocess.Popen(
        [sys.executable, "-m", "adapters.sandbox", "--scenario", "demo", "--kubeconfig", str(kubeconfig)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == str(kubeconfig)
        api = k8s_config.new_client_from_config(config_file=str(kubeconfig))
        names = {n.metadata.name for n in k8s.CoreV1Api(api).list_node().items}
        assert names == {"node-1", "node-2", "node-3"}
        api.close()
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
