"""Platform actors killed in the middle of their work, and restarted by Ray (``max_restarts=-1``).

These run against the session's Ray + Serve ``platform`` (tests/platform.py): real actors,
the real HTTP API, the sandbox cluster, this session's PostgreSQL database.

* an RCA worker (``aiops-rca-0``) killed while incidents are being analysed: Ray retries
  the calls it had in flight (``max_task_retries=-1``) on the restarted worker and queues
  the ones sent meanwhile, and the report is stored per (incident, mode): every incident
  gets exactly one report, none lost, none twice;
* the watch supervisor (``aiops-watchers``) killed while namespaces are being created:
  the restarted supervisor rebuilds its placement from the watcher hosts, places the
  namespaces created before, during and after the kill, and no namespace is watched twice;
* the approval coordinator (``aiops-approvals``) killed while an approval is pending, and
  again right after the approved step ran (while it is being verified): the pending approval
  and every audit row survive, the approval is decided on the restarted coordinator, and
  the mutating call is made exactly once; the verification resumes.

The rule engine and a single watcher are killed in tests/e2e (not repeated here).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import asyncpg
import httpx
import pytest
import ray

from actors import remote
from benchmarks.approval_roundtrip import incident
from tests.e2e.test_approvals_api import pending_for
from tests.e2e.test_storm import db
from tests.e2e.test_watchers_in_ray import watching  # noqa: F401 - the fixture (stops the watchers after)
from tests.faults.outcomes import record
from tests.helpers import wait_until
from tests.payloads import am_alert, am_payload
from tests.platform import Platform

pytestmark = pytest.mark.e2e


def send(platform: Platform, *alerts: dict[str, Any]) -> None:
    answer = httpx.post(
        platform.base_url + "/api/alert/webhook", json=am_payload(*alerts), headers=platform.am_headers(), timeout=60
    )
    assert answer.status_code == 200, answer.text


def rows(platform: Platform, sql: str, *args: Any) -> list[dict[str, Any]]:
    async def run() -> list[dict[str, Any]]:
        conn = await asyncpg.connect(platform.database_url)
        try:
            return [dict(r) for r in await conn.fetch(sql, *args)]
        finally:
            await conn.close()

    return asyncio.run(run())


def answers(name: str, method: str = "health") -> bool:
    """Whether the actor ``name`` is alive and answers ``method`` (it is back after a restart)."""
    handle = remote.existing(name)
    if handle is None:
        return False
    try:
        ray.get(getattr(handle, method).remote(), timeout=10)
    except ray.exceptions.RayError:
        return False
    return True


def test_an_rca_worker_killed_mid_analysis_loses_no_report_and_doubles_none(platform: Platform) -> None:
    tag = "rca-kill"
    count = 16
    alerts = [
        am_alert("KubePodNotReady", f"{tag}-{i}", namespace=f"{tag}-ns{i}", pod=f"{tag}-app{i}-5f6d7-abcde", test=tag)
        for i in range(count)
    ]
    per_incident = (
        "SELECT i.id, count(r.id) AS reports FROM incidents i LEFT JOIN rca_reports r ON r.incident_id = i.id"
        " WHERE i.labels->>'test' = $1 GROUP BY i.id"
    )

    def stored() -> int:
        return sum(1 for r in rows(platform, per_incident, tag) if r["reports"])

    worker = remote.existing(remote.rca_worker_name(0))
    assert worker is not None

    def in_flight() -> int:
        counters = ray.get(worker.health.remote(), timeout=30)
        return int(counters["analyses"] - counters["stored"] - counters["storage_errors"])

    send(platform, *alerts[: count // 2])
    busy = wait_until(in_flight, timeout=120, interval=0.05, message="aiops-rca-0 analysing")
    at_kill = stored()
    assert remote.kill(remote.rca_worker_name(0), restart=True)  # with `busy` analyses under way
    send(platform, *alerts[count // 2 :])  # handed to the pool while aiops-rca-0 is restarting
    killed_at = time.monotonic()
    wait_until(
        lambda: len(rows(platform, per_incident, tag)) == count and stored() == count,
        timeout=180,
        interval=0.5,
        message=f"an RCA report for each of the {count} incidents",
    )
    took = time.monotonic() - killed_at
    reports = rows(platform, per_incident, tag)
    assert len(reports) == count and all(r["reports"] == 1 for r in reports), reports
    wait_until(lambda: answers(remote.rca_worker_name(0)), timeout=60, message="aiops-rca-0 restarted by Ray")
    record(
        "RCA worker aiops-rca-0 killed mid-analysis (Ray restarts it)",
        f"{count} incidents; killed with {busy} analyses in flight ({at_kill} reports stored),"
        f" {count // 2} more sent during the restart",
        f"{count} of {count} incidents have exactly 1 report ({took:.1f}s after the kill), 0 lost, 0 doubled",
    )


def _decide(platform: Platform, approval_id: str, who: str = "ops") -> httpx.Response:
    return httpx.post(
        f"{platform.base_url}/api/approvals/{approval_id}",
        headers=platform.ops_headers(),
        json={"decision": "approve", "who": who},
        timeout=120,
    )


def test_the_approval_coordinator_killed_while_an_approval_waits_and_while_its_step_verifies_runs_it_once(
    platform: Platform,
) -> None:
    pods = sorted(
        p["metadata"]["name"]
        for p in platform.sandbox.objects("Pod", "production")
        if p["metadata"]["name"].startswith("payments-")
    )
    pod = pods[-1]
    # A run of its own incident, started on the coordinator directly: an alert for a payments pod would
    # join the payments incident that earlier tests of the session left open, and start no new run.
    ray.get(remote.approvals(platform.settings).start_run.remote(incident(pod), "crashloop"), timeout=120)
    (approval,) = wait_until(
        lambda: pending_for(platform, pod), timeout=120, interval=0.5, message="an approval request for the pod"
    )
    run_id = approval["run_id"]
    audit = "SELECT count(*) FROM audit_log WHERE target = ANY($1::text[])"
    targets = [run_id, approval["id"]]
    audit_before = db(platform, audit, targets)

    # 1. Killed while the approval waits: it is still there, still pending, after the restart.
    assert remote.kill(remote.APPROVALS, restart=True)
    wait_until(lambda: answers(remote.APPROVALS), timeout=60, message="aiops-approvals restarted by Ray")
    assert [a["id"] for a in pending_for(platform, pod)] == [approval["id"]]
    assert db(platform, audit, targets) == audit_before

    # 2. Approved on the restarted coordinator: the step runs once.
    decided = _decide(platform, approval["id"])
    assert decided.status_code == 200, decided.text
    wait_until(
        lambda: all(p["metadata"]["name"] != pod for p in platform.sandbox.objects("Pod", "production")),
        timeout=60,
        message="the approved pod deletion",
    )

    # 3. Killed again while the step is being verified (pod_ready for 30 s): no second call, the
    #    verification resumes on the restarted coordinator, the decision cannot be replayed.
    assert remote.kill(remote.APPROVALS, restart=True)
    wait_until(lambda: answers(remote.APPROVALS), timeout=60, message="aiops-approvals restarted again")
    handle = remote.existing(remote.APPROVALS)
    resumed = wait_until(
        lambda: (
            ray.get(handle.health.remote(), timeout=10)["verifications_running"]
            or ray.get(handle.get_run.remote(run_id), timeout=10)["status"] != "verifying"
        ),
        timeout=60,
        message="the verification resumed (or finished) after the restart",
    )
    again = _decide(platform, approval["id"])
    assert again.status_code == 409, again.text
    executions = ray.get(handle.executions.remote(run_id), timeout=30)
    deletes = [e for e in executions if e["tool"] == "delete_pod"]
    assert len(deletes) == 1, executions
    succeeded = db(
        platform,
        "SELECT count(*) FROM audit_log WHERE target = $1 AND action LIKE 'delete_pod%' AND outcome = 'succeeded'",
        run_id,
    )
    assert succeeded == 1
    audit_after = db(platform, audit, targets)
    assert audit_after > audit_before
    record(
        "approval coordinator aiops-approvals killed twice (Ray restarts it)",
        "once with the approval pending, once while the approved delete_pod was being verified",
        f"approval still pending after restart 1 and approved there; 1 delete_pod call ({len(deletes)} execution row,"
        f" 1 'succeeded' audit row); verification {'resumed' if resumed is True or resumed else 'done'} after"
        f" restart 2; replayed approval refused (409); audit rows {audit_before} -> {audit_after}, none lost",
    )


def _placement() -> dict[int, list[str]]:
    """What each live watcher host watches (asked of the hosts themselves)."""
    found = {}
    for index, handle in remote.watcher_hosts().items():
        try:
            found[index] = list(ray.get(handle.scopes.remote(), timeout=10))
        except ray.exceptions.RayError:
            found[index] = []
    return found


@pytest.mark.usefixtures("watching")
def test_the_watch_supervisor_killed_while_namespaces_are_added_resumes_without_doubles(platform: Platform) -> None:
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config

    core = k8s.CoreV1Api(k8s_config.new_client_from_config(config_file=str(platform.sandbox.kubeconfig_path)))
    names = [f"sv-kill-{i}" for i in range(6)]

    def create(name: str) -> None:
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}, "status": {"phase": "Active"}}
        core.create_namespace(body)

    def watched() -> set[str]:
        return {scope for scopes in _placement().values() for scope in scopes}

    wait_until(lambda: {"production", "cluster"} <= watched(), timeout=90, message="the first watchers placed")
    try:
        create(names[0])
        create(names[1])
        assert remote.kill(remote.WATCH_SUPERVISOR, restart=True)  # while it places the first two
        create(names[2])
        create(names[3])  # made while it is down or restarting
        killed_at = time.monotonic()
        wait_until(lambda: answers(remote.WATCH_SUPERVISOR, "status"), timeout=60, message="aiops-watchers back")
        create(names[4])
        create(names[5])  # made after the restart
        wait_until(lambda: set(names) <= watched(), timeout=90, interval=0.5, message="a watcher for every namespace")
        took = time.monotonic() - killed_at
        placement = _placement()
        scopes = [scope for hosted in placement.values() for scope in hosted]
        assert len(scopes) == len(set(scopes)), placement  # no namespace watched twice
        supervisor = remote.existing(remote.WATCH_SUPERVISOR)
        status = wait_until(
            lambda: (s := ray.get(supervisor.status.remote(), timeout=10)) and set(names) <= set(s["watching"]) and s,
            timeout=30,
            message="the restarted supervisor's own view including every namespace",
        )
        assert sorted(status["watching"]) == sorted(set(scopes)), (status, placement)
        for name in names:
            host = remote.host_of(name)
            assert host is not None
            wait_until(
                lambda h=host, n=name: ray.get(h.status.remote(n), timeout=10)["started"],
                timeout=60,
                message=f"the watcher of {name} started",
            )
    finally:
        for name in names:
            with contextlib.suppress(k8s.ApiException):
                core.delete_namespace(name)
    record(
        "watch supervisor aiops-watchers killed while namespaces are added (Ray restarts it)",
        "2 namespaces created just before the kill, 2 during the restart, 2 after",
        f"all 6 watched {took:.1f}s after the kill; {len(scopes)} scopes on {len(placement)} host(s), each once",
    )
