"""``aiops mcp-server`` over stdio, driven by the real ``mcp`` client SDK, against the sandbox.

One sandbox and one server subprocess per module (a read-only one too): each test works on
its own workload of the scenario below, so they do not step on each other; the drain test
touches every workload on its node and runs last.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, TextIO

import pytest
import pytest_asyncio

from adapters.mcp_client import KubeMcpClient, ToolFailed, ToolRefused
from adapters.sandbox import BackgroundSandbox, parse_scenario
from core.tools import READ_ONLY, TOOLS
from tests.helpers import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

SCENARIO = """
name: mcp
namespaces: [production, staging, batch, kube-system]
restart_interval_seconds: 0.2
workloads:
  - {name: checkout, namespace: production, replicas: 1, memory_limit: 128Mi, behaviour: oom,
     memory_threshold: 512Mi, logs: ["starting checkout", "db password=hunter2", "fatal: out of memory"]}
  - {name: ledger, namespace: production, replicas: 2, memory_limit: 128Mi, behaviour: oom, memory_threshold: 512Mi}
  - {name: payments, namespace: production, replicas: 1, behaviour: crashloop}
  - {name: frontend, namespace: production, replicas: 2}
  - {name: cart, namespace: production, replicas: 1}
  - {name: search, namespace: staging, replicas: 1}
  - {name: coredns, namespace: kube-system, replicas: 3}
  - {kind: Job, name: nightly-report, namespace: batch, behaviour: job_fail, backoff_limit: 1}
  - {kind: Job, name: cleanup, namespace: batch}
"""
ALLOW = "production,batch,kube-system"  # kube-system is allowed here but denied by default


@pytest.fixture(scope="module")
def cluster() -> Iterator[BackgroundSandbox]:
    sb = BackgroundSandbox(parse_scenario(SCENARIO), bookmark_interval=0.5).start()
    yield sb
    sb.stop()


@pytest.fixture(scope="module")
def errlog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TextIO]:
    with (tmp_path_factory.mktemp("mcp") / "server.log").open("w") as f:
        yield f


async def _started(cluster: BackgroundSandbox, errlog: TextIO, *, read_only: bool) -> KubeMcpClient:
    client = KubeMcpClient(
        kubeconfig=Path(cluster.kubeconfig_path), allow_namespaces=ALLOW, read_only=read_only, errlog=errlog
    )
    await client.start()
    return client


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def mcp(cluster: BackgroundSandbox, errlog: TextIO) -> AsyncIterator[KubeMcpClient]:
    client = await _started(cluster, errlog, read_only=False)
    yield client
    await client.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def mcp_read_only(cluster: BackgroundSandbox, errlog: TextIO) -> AsyncIterator[KubeMcpClient]:
    client = await _started(cluster, errlog, read_only=True)
    yield client
    await client.close()


async def _pods(mcp: KubeMcpClient, namespace: str, app: str) -> list[dict[str, Any]]:
    result = await mcp.call("list_pods", {"namespace": namespace, "label_selector": f"app={app}"})
    pods: list[dict[str, Any]] = result["pods"]
    return pods


async def _failure(mcp: KubeMcpClient, tool: str, params: dict[str, Any]) -> str:
    with pytest.raises(ToolFailed) as info:
        await mcp.call(tool, params)
    return info.value.message


# -- the tool list -------------------------------------------------------------------------
async def test_tool_list_has_every_catalogue_tool_with_its_risk_in_the_description(mcp: KubeMcpClient) -> None:
    tools = {t.name: t for t in await mcp.list_tools()}
    assert set(tools) == set(TOOLS)
    for name, spec in tools.items():
        risk = TOOLS[name].risk
        assert spec.description.startswith(f"[risk: {risk.value}] "), name
        assert spec.risk is risk and spec.read_only is (not TOOLS[name].mutating), name
        assert set(spec.input_schema.get("properties", {})) >= set(TOOLS[name].params), name
        assert set(spec.input_schema.get("required", [])) == set(TOOLS[name].required), name


async def test_read_only_server_lists_no_mutating_tool(mcp_read_only: KubeMcpClient) -> None:
    names = {t.name for t in await mcp_read_only.list_tools()}
    assert names == set(READ_ONLY)


async def test_read_only_client_refuses_a_mutating_tool_before_sending(
    mcp_read_only: KubeMcpClient, mcp: KubeMcpClient
) -> None:
    pod = (await _pods(mcp, "production", "frontend"))[0]["name"]
    with pytest.raises(ToolRefused, match="read-only"):
        await mcp_read_only.call("delete_pod", {"namespace": "production", "name": pod})
    assert pod in {p["name"] for p in await _pods(mcp, "production", "frontend")}


# -- reads ---------------------------------------------------------------------------------
async def test_list_and_get_pods_and_events_show_the_oom_loop(mcp: KubeMcpClient) -> None:
    async def oom_pod() -> dict[str, Any] | None:
        return next((p for p in await _pods(mcp, "production", "checkout") if "OOMKilled" in p["reasons"]), None)

    pod = await wait_for(oom_pod, timeout=20, message="an OOMKilled checkout pod")
    assert pod["owner"].startswith("ReplicaSet/checkout-") and pod["restarts"] >= 1
    got = await mcp.call("get_pod", {"namespace": "production", "name": pod["name"]})
    assert got["pod"]["metadata"]["name"] == pod["name"]
    assert "managedFields" not in got["pod"]["metadata"]
    events = (await mcp.call("list_events", {"namespace": "production", "name": pod["name"], "kind": "Pod"}))["events"]
    assert events and all(e["object"] == f"Pod/{pod['name']}" for e in events)
    assert {"Scheduled", "BackOff"} <= {e["reason"] for e in events}


async def test_pod_logs_previous_returns_the_crashed_run_with_secrets_masked(mcp: KubeMcpClient) -> None:
    pod = (await _pods(mcp, "production", "checkout"))[0]["name"]
    params = {"namespace": "production", "name": pod, "previous": True}

    async def previous_log() -> dict[str, Any] | None:
        try:
            return await mcp.call("pod_logs", params)
        except ToolFailed:
            return None

    logs = await wait_for(previous_log, timeout=20, message="a previous container log")
    assert logs["previous"] is True and "fatal: out of memory" in logs["log"]
    assert "hunter2" not in logs["log"] and "password=***" in logs["log"]
    tail = await mcp.call("pod_logs", {**params, "tail_lines": 1})
    assert tail["log"] == "fatal: out of memory\n" and tail["lines"] == 1


async def test_describe_pod_reports_last_termination_limits_and_events(mcp: KubeMcpClient) -> None:
    pod = (await _pods(mcp, "production", "checkout"))[0]["name"]
    described = await mcp.call("describe_pod", {"namespace": "production", "name": pod})
    container = described["summary"]["containers"][0]
    assert container["last_terminated"]["reason"] == "OOMKilled"
    assert described["summary"]["resources"]["app"]["limits"]["memory"] == "128Mi"
    assert described["events"] and described["pod"]["metadata"]["name"] == pod


async def test_resource_usage_says_when_the_metrics_api_is_not_available(mcp: KubeMcpClient) -> None:
    usage = await mcp.call("resource_usage", {"namespace": "production"})
    assert usage["available"] is False and "metrics API not available" in usage["message"]


# -- raw objects (the RCA evidence plan's reads) -------------------------------------------
async def test_get_object_and_list_objects_return_api_json_as_the_rca_plan_reads_it(
    mcp_read_only: KubeMcpClient,
) -> None:
    listed = await mcp_read_only.call("list_objects", {"kind": "Pod", "namespace": "production",
                                                       "label_selector": "app=checkout"})
    assert listed["count"] == len(listed["items"]) >= 1
    pod = listed["items"][0]
    assert pod["metadata"]["labels"]["app"] == "checkout" and "managedFields" not in pod["metadata"]
    assert pod["spec"]["containers"][0]["resources"]["limits"]["memory"] == "128Mi"
    got = await mcp_read_only.call("get_object", {"kind": "Pod", "namespace": "production",
                                                  "name": pod["metadata"]["name"]})
    assert got["object"]["metadata"]["uid"] == pod["metadata"]["uid"]
    replica_sets = await mcp_read_only.call("list_objects", {"kind": "ReplicaSet", "namespace": "production"})
    assert any(ref["kind"] == "Deployment" and ref["name"] == "checkout"
               for rs in replica_sets["items"] for ref in rs["metadata"].get("ownerReferences", []))
    node = await mcp_read_only.call("get_object", {"kind": "Node", "name": "node-1"})
    assert node["object"]["metadata"]["name"] == "node-1" and node["object"]["status"]["conditions"]


async def test_object_events_are_raw_events_of_one_object_in_allowed_namespaces(
    mcp_read_only: KubeMcpClient, cluster: BackgroundSandbox
) -> None:
    pod = next(p["metadata"]["name"] for p in cluster.objects("Pod", "production")
               if p["metadata"]["name"].startswith("checkout-"))
    events = (await mcp_read_only.call("object_events", {"name": pod, "kind": "Pod",
                                                         "namespace": "production"}))["events"]
    assert events and all(e["involvedObject"]["name"] == pod for e in events)
    assert all("reason" in e and "lastTimestamp" in e for e in events)
    anywhere = (await mcp_read_only.call("object_events", {"name": pod, "kind": "Pod"}))["events"]
    assert {e["metadata"]["name"] for e in anywhere} == {e["metadata"]["name"] for e in events}


@pytest.mark.parametrize(
    ("tool", "params", "expected"),
    [
        pytest.param("get_object", {"kind": "Secret", "namespace": "production", "name": "db"}, "Input should be",
                     id="no-secrets"),
        pytest.param("list_objects", {"kind": "ConfigMap", "namespace": "production"}, "Input should be",
                     id="no-configmaps"),
        pytest.param("get_object", {"kind": "Pod", "namespace": "production", "name": "ghost-7f9c"}, "not found",
                     id="gone-pod"),
        pytest.param("list_objects", {"kind": "Pod", "namespace": "staging"}, "not in this server's allowlist",
                     id="outside-allowlist"),
        pytest.param("list_objects", {"kind": "Pod"}, "a namespace is required", id="namespaced-kind-without-one"),
    ],
)
async def test_raw_reads_refuse_secrets_other_kinds_and_namespaces_with_a_clear_error(
    mcp_read_only: KubeMcpClient, tool: str, params: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ToolFailed) as info:
        await mcp_read_only.call(tool, params)
    assert expected in info.value.message


async def test_a_read_only_server_does_not_even_know_a_mutating_tool_called_past_the_client(
    mcp_read_only: KubeMcpClient, mcp: KubeMcpClient
) -> None:
    pod = (await _pods(mcp, "production", "frontend"))[0]["name"]
    # Straight on the session, past the client's own refusal: the server has no such tool.
    result = await mcp_read_only._open().call_tool("delete_pod", {"namespace": "production", "name": pod})
    assert result.is_error
    assert pod in {p["name"] for p in await _pods(mcp, "production", "frontend")}


# -- mutations -----------------------------------------------------------------------------
async def test_delete_pod_is_recreated_by_its_replicaset(mcp: KubeMcpClient) -> None:
    pods = await _pods(mcp, "production", "frontend")
    victim = pods[0]["name"]
    result = await mcp.call("delete_pod", {"namespace": "production", "name": victim})
    assert result["deleted"] == victim and result["owner"]["kind"] == "ReplicaSet"

    async def replaced() -> bool:
        names = {p["name"] for p in await _pods(mcp, "production", "frontend") if p["ready"] == "1/1"}
        return victim not in names and len(names) == 2

    await wait_for(replaced, timeout=20, message="a replacement frontend pod")


async def test_rollout_restart_adds_a_revision_and_rollback_restores_the_previous(mcp: KubeMcpClient) -> None:
    ref = {"namespace": "production", "name": "payments"}
    before = (await mcp.call("rollout_history", ref))["revisions"]
    assert [r["revision"] for r in before] == [1]
    restarted = await mcp.call("rollout_restart", ref)

    async def history() -> list[dict[str, Any]] | None:
        revisions: list[dict[str, Any]] = (await mcp.call("rollout_history", ref))["revisions"]
        return revisions if len(revisions) == 2 else None

    revisions = await wait_for(history, timeout=20, message="a second revision")
    current = next(r for r in revisions if r["current"])
    assert current["revision"] == 2 and current["restarted_at"] == restarted["restarted_at"]

    rolled = await mcp.call("rollback_deployment", ref)
    assert (rolled["from_revision"], rolled["to_revision"]) == (2, 1)
    template = (await mcp.call("get_deployment", ref))["deployment"]["spec"]["template"]
    assert "kubectl.kubernetes.io/restartedAt" not in (template["metadata"].get("annotations") or {})
    after = (await mcp.call("rollout_history", ref))["revisions"]
    assert next(r["revision"] for r in after if r["current"]) == 1


async def test_scale_deployment_changes_the_number_of_pods(mcp: KubeMcpClient) -> None:
    result = await mcp.call("scale_deployment", {"namespace": "production", "name": "cart", "replicas": 3})
    assert (result["replicas_before"], result["replicas"]) == (1, 3)

    async def three() -> bool:
        return len(await _pods(mcp, "production", "cart")) == 3

    await wait_for(three, timeout=20, message="three cart pods")


async def test_set_resources_raises_the_memory_limit_and_ends_the_oom_loop(mcp: KubeMcpClient) -> None:
    async def looping() -> bool:
        return any("OOMKilled" in p["reasons"] for p in await _pods(mcp, "production", "ledger"))

    await wait_for(looping, timeout=20, message="ledger OOM loop")
    params = {"namespace": "production", "name": "ledger", "container": "app", "memory_factor": 4, "max_memory": "1Gi"}
    result = await mcp.call("set_resources", params)
    assert result["before"]["limits"]["memory"] == "128Mi" and result["after"]["limits"]["memory"] == "512Mi"

    async def healthy() -> bool:
        pods = await _pods(mcp, "production", "ledger")
        summary = (await mcp.call("get_deployment", {"namespace": "production", "name": "ledger"}))["summary"]
        return summary["ready"] == 2 and len(pods) == 2 and all(p["ready"] == "1/1" for p in pods)

    await wait_for(healthy, timeout=30, message="ledger ready with the new limit")
    pod = (await _pods(mcp, "production", "ledger"))[0]["name"]
    described = await mcp.call("describe_pod", {"namespace": "production", "name": pod})
    assert described["summary"]["resources"]["app"]["limits"]["memory"] == "512Mi"


async def test_cordon_and_uncordon_flip_unschedulable(mcp: KubeMcpClient) -> None:
    assert (await mcp.call("cordon_node", {"name": "node-2"}))["changed"] is True
    assert (await mcp.call("get_node", {"name": "node-2"}))["summary"]["unschedulable"] is True
    assert (await mcp.call("uncordon_node", {"name": "node-2"}))["changed"] is True
    assert (await mcp.call("get_node", {"name": "node-2"}))["summary"]["unschedulable"] is False


async def test_delete_failed_job_recreates_it_and_it_succeeds(mcp: KubeMcpClient) -> None:
    async def state(name: str) -> str:
        jobs = (await mcp.call("list_jobs", {"namespace": "batch"}))["jobs"]
        return next((str(j["state"]) for j in jobs if j["name"] == name), "absent")

    async def failed() -> bool:
        return await state("nightly-report") == "Failed"

    await wait_for(failed, timeout=30, message="nightly-report to fail")
    result = await mcp.call("delete_failed_job", {"namespace": "batch", "name": "nightly-report", "recreate": True})
    assert result["recreated"] is True

    async def complete() -> bool:
        return await state("nightly-report") == "Complete"

    await wait_for(complete, timeout=30, message="the recreated job to complete")


async def test_delete_failed_job_refuses_a_job_that_did_not_fail(mcp: KubeMcpClient) -> None:
    async def complete() -> bool:
        jobs = (await mcp.call("list_jobs", {"namespace": "batch"}))["jobs"]
        return any(j["name"] == "cleanup" and j["state"] == "Complete" for j in jobs)

    await wait_for(complete, timeout=20, message="cleanup to complete")
    message = await _failure(mcp, "delete_failed_job", {"namespace": "batch", "name": "cleanup"})
    assert "not Failed" in message


# -- refusals and errors -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("tool", "params", "expected"),
    [
        pytest.param("list_pods", {"namespace": "staging"}, "not in this server's allowlist", id="outside-allowlist"),
        pytest.param("list_pods", {"namespace": "kube-system"}, "is denied by this server", id="denied-namespace"),
        pytest.param(
            "delete_pod", {"namespace": "kube-system", "name": "coredns-x"}, "is denied", id="denied-mutation"
        ),
        pytest.param("get_pod", {"namespace": "production", "name": "no-such-pod"}, "not found", id="missing-pod"),
        pytest.param("cordon_node", {"name": "node-9"}, "node 'node-9' does not exist", id="missing-node"),
        pytest.param(
            "list_events", {"namespace": "production", "kind": "Secret"}, "Input should be", id="uncovered-kind"
        ),
        pytest.param(
            "rollout_restart",
            {"namespace": "production", "name": "cart", "kind": "CronJob"},
            "Input should be 'Deployment', 'StatefulSet' or 'DaemonSet'",
            id="uncovered-rollout-kind",
        ),
        pytest.param("get_pod", {"namespace": "production"}, "name\n  Field required", id="missing-parameter"),
        pytest.param(
            "pod_logs",
            {"namespace": "production", "name": "x", "tail_lines": 5000},
            "less than or equal to 2000",
            id="tail-lines-over-the-bound",
        ),
        pytest.param(
            "get_pod", {"namespace": "../etc", "name": "x"}, "String should match pattern", id="invalid-namespace"
        ),
        pytest.param(
            "set_resources",
            {"namespace": "production", "name": "cart", "container": "app"},
            "needs memory_limit, memory_factor, cpu_limit or cpu_factor",
            id="set-resources-without-a-change",
        ),
    ],
)
async def test_refused_and_invalid_calls_answer_with_a_clear_error(
    mcp: KubeMcpClient, tool: str, params: dict[str, Any], expected: str
) -> None:
    message = await _failure(mcp, tool, params)
    assert expected in message
    assert "Traceback" not in message


async def test_rbac_denial_maps_to_forbidden_by_rbac(mcp: KubeMcpClient, cluster: BackgroundSandbox) -> None:
    cluster.set_forbidden(True)
    try:
        message = await _failure(mcp, "list_pods", {"namespace": "production"})
    finally:
        cluster.set_forbidden(False)
    assert message.startswith("forbidden by RBAC")


async def test_unknown_tool_is_refused_by_the_client(mcp: KubeMcpClient) -> None:
    with pytest.raises(ToolRefused, match="unknown tool"):
        await mcp.call("exec_in_pod", {"namespace": "production"})


# -- last: drain touches every workload on its node ----------------------------------------
async def test_drain_node_deletes_pods_but_skips_denied_namespaces(
    mcp: KubeMcpClient, cluster: BackgroundSandbox
) -> None:
    def node_with_denied_pod() -> str | None:
        pods = [p for p in cluster.objects("Pod", "kube-system") if p["spec"].get("nodeName")]
        return str(pods[0]["spec"]["nodeName"]) if pods else None

    node = await wait_for(node_with_denied_pod, timeout=20, message="a scheduled kube-system pod")
    on_node = {
        f"{p['metadata']['namespace']}/{p['metadata']['name']}"
        for p in cluster.objects("Pod")
        if p["spec"].get("nodeName") == node
    }
    try:
        result = await mcp.call("drain_node", {"name": node, "grace_period": 0})
    finally:
        await mcp.call("uncordon_node", {"name": node})
    skipped = {s["pod"] for s in result["skipped"]}
    assert result["cordoned"] is True
    assert {p for p in on_node if p.startswith("kube-system/")} <= skipped
    assert not any(p.startswith("kube-system/") for p in result["evicted"])
    assert set(result["evicted"]) <= on_node
    remaining = {f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in cluster.objects("Pod")}
    assert not set(result["evicted"]) & remaining
