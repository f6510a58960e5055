"""The whole remediation loop without Ray: watcher -> rule engine -> coordinator -> MCP server -> cluster.

A crash-looping pod in the sandbox is detected, correlated into an incident, handed to the
crashloop playbook; the read steps run by themselves, the restart waits for an operator,
runs once approved, verifies, and the watcher's recovery signal resolves the incident.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from actors.approvals import ApprovalCoordinator
from actors.rule_engine import RuleEngine
from actors.watchers import Watcher
from adapters.mcp_client import KubeMcpClient
from adapters.sandbox import BackgroundSandbox, parse_scenario
from config.loader import load_playbook
from config.policy import policy_from_text
from config.settings import Settings
from tests.helpers import wait_for

SCENARIO = """
name: remediation-loop
namespaces: [production]
restart_interval_seconds: 0.2
workloads:
  - {name: web, namespace: production, replicas: 1, behaviour: crashloop, fixed_by: restart,
     logs: ["starting web", "panic: runtime error: invalid memory address"]}
"""
PLAYBOOK = """
playbook:
  name: crashloop
  steps:
    - {name: inspect-pod, tool: get_pod, risk: read,
       params: {namespace: "{{ incident.namespace }}", name: "{{ incident.labels.pod }}"}}
    - {name: previous-logs, tool: pod_logs, risk: read,
       params: {namespace: "{{ incident.namespace }}", name: "{{ incident.labels.pod }}", previous: true}}
    - name: restart-pod
      tool: delete_pod
      risk: medium
      params: {namespace: "{{ incident.namespace }}", name: "{{ incident.labels.pod }}"}
      verify:
        check: pod_ready
        params: {namespace: "{{ incident.namespace }}", deployment: "{{ incident.labels.deployment }}"}
        timeout: 30s
        stable_for: 1s
"""
POLICY = "policy:\n  roles:\n    - {identity: 'cli:alice', role: operator}\n  approvals: {ttl: 10m}\n"


class Starter:
    """The rule engine's remediation sink, in-process: start the run on the coordinator."""

    def __init__(self, coordinator: ApprovalCoordinator) -> None:
        self.coordinator = coordinator
        self.tasks: list[asyncio.Task[Any]] = []

    def submit(self, incident: dict[str, Any], playbook: str) -> None:
        self.tasks.append(asyncio.get_running_loop().create_task(self.coordinator.start_run(incident, playbook)))


class Handle:
    def __init__(self, engine: RuleEngine) -> None:
        self.ingest = self
        self._engine = engine

    def remote(self, batch: list[dict[str, Any]]) -> Any:
        return self._engine.ingest(batch)


@pytest_asyncio.fixture
async def loop_parts(
    database_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> AsyncIterator[tuple[BackgroundSandbox, RuleEngine, ApprovalCoordinator, Watcher]]:
    sandbox = BackgroundSandbox(parse_scenario(SCENARIO), bookmark_interval=0.5).start()
    settings = Settings(
        database_url=database_url,
        redis_url=redis_url,
        redis_prefix=redis_prefix,
        kubeconfig=str(sandbox.kubeconfig_path),
        data_dir=tmp_path,
        dev_mode=True,
    )
    (tmp_path / "crashloop.yaml").write_text(PLAYBOOK)
    book = load_playbook(tmp_path / "crashloop.yaml")
    mcp = KubeMcpClient(kubeconfig=str(sandbox.kubeconfig_path), read_only=False, start_timeout=120)
    await mcp.start()
    coordinator = ApprovalCoordinator(
        settings, tools=mcp, policy=policy_from_text(POLICY), playbooks={book.name: book}, verify_interval=0.1
    )
    starter = Starter(coordinator)
    engine = RuleEngine(settings, remediation=starter)
    stores = await engine._ready()
    async with stores.postgres.pool.acquire() as conn:
        await conn.execute("TRUNCATE incidents, signals, incident_events CASCADE")
    watcher = Watcher(settings, "production", Handle(engine))
    await watcher.start()
    try:
        yield sandbox, engine, coordinator, watcher
    finally:
        await watcher.stop()
        for task in starter.tasks:
            task.cancel()
        await engine.close()
        await coordinator.close()
        await mcp.close()
        sandbox.stop()


@pytest.mark.integration
async def test_a_crash_loop_is_detected_restarted_after_approval_verified_and_its_incident_resolved(
    loop_parts: tuple[BackgroundSandbox, RuleEngine, ApprovalCoordinator, Watcher],
) -> None:
    sandbox, engine, coordinator, _ = loop_parts
    stores = await engine._ready()

    async def pending() -> list[dict[str, Any]]:
        # The session database is shared with other tests: keep only this test's workload.
        found = await coordinator.list_approvals("pending")
        return [a for a in found if str(a["action"]["params"].get("name", "")).startswith("web-")]

    (approval,) = await wait_for(pending, timeout=60, interval=0.1, message="the restart waiting for approval")
    pod = approval["action"]["params"]["name"]
    assert approval["action"]["tool"] == "delete_pod" and approval["risk"] == "medium"
    incidents = [
        i for i in await stores.postgres.list_incidents(status="open", namespace="production") if "web" in i.title
    ]
    assert len(incidents) == 1, [i.title for i in incidents]
    incident_id = incidents[0].id

    result = await coordinator.decide(approval["id"], who="cli:alice", decision="approve", channel="cli")
    assert result["outcome"] == "approved", result
    await wait_for(
        lambda: all(p["metadata"]["name"] != pod for p in sandbox.objects("Pod", "production")),
        timeout=30,
        message="the crash-looping pod replaced",
    )

    async def run_succeeded() -> bool:
        return (await coordinator.get_run(approval["run_id"]))["status"] == "succeeded"

    await wait_for(run_succeeded, timeout=60, interval=0.2, message="verification to pass and the run to succeed")

    async def resolved() -> bool:
        found = await stores.postgres.get_incident(incident_id)
        return found is not None and found.status.value == "resolved"

    await wait_for(resolved, timeout=60, interval=0.2, message="the incident resolved by the watcher's recovery")
    trail = await coordinator.audit_trail(approval["run_id"])
    actions = [row["action"] for row in trail]
    assert any("delete_pod" in action for action in actions)
    assert any(row["actor"] == "cli:alice" for row in trail)
