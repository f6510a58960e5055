"""Approval round trip: decision received -> mutating API call made, and -> verification finished.

The coordinator class of ``aiops-approvals`` runs a one-step playbook (delete a pod of a healthy
deployment, verify the deployment's pods Ready for 2 s) through the real MCP server subprocess
against the sandbox cluster, on real PostgreSQL and Redis.

    .venv/bin/python -m benchmarks.approval_roundtrip --rounds 20
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from actors.approvals import ApprovalCoordinator
from adapters.mcp_client import KubeMcpClient
from adapters.sandbox import BackgroundSandbox, load_scenario
from benchmarks.detection_latency import drop_database, fresh_database, percentile
from config.loader import load_playbook
from config.policy import LoadedPolicy, default_policy_path, policy_from_text
from config.settings import Settings
from core.models import Incident, IncidentId, IncidentStatus, ObjectRef, Severity
from tests.helpers import wait_for

PLAYBOOK = """
playbook:
  name: bench-restart
  steps:
    - name: restart-pod
      tool: delete_pod
      risk: medium
      params: {namespace: "{{ incident.namespace }}", name: "{{ incident.labels.pod }}"}
      verify:
        check: pod_ready
        params: {namespace: "{{ incident.namespace }}", deployment: "{{ incident.labels.deployment }}"}
        timeout: 60s
        stable_for: 2s
"""


class TimedTools:
    def __init__(self, inner: KubeMcpClient) -> None:
        self.inner = inner
        self.mutations: list[float] = []

    async def call(self, tool: str, params: dict[str, Any]) -> dict[str, Any]:
        if tool == "delete_pod":
            self.mutations.append(time.perf_counter())
        return await self.inner.call(tool, params)


def incident(pod: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    return Incident(
        id=IncidentId(f"inc-{uuid.uuid4().hex[:10]}"),
        group_key=f"bench|{pod}",
        status=IncidentStatus.OPEN,
        severity=Severity.WARNING,
        title=f"bench {pod}",
        rule="bench",
        namespace="production",
        object=ObjectRef(kind="Pod", name=pod, namespace="production"),
        labels={"namespace": "production", "pod": pod, "deployment": "payments"},
        opened_at=now,
        updated_at=now,
    ).model_dump(mode="json")


def lift_budgets(policy_text: str) -> str:
    """A policy file's text with the budgets lifted: the 3 restarts/hour budget would stop round 4."""
    return policy_text.replace("max: 3", "max: 10000").replace("max: 2", "max: 10000")


def lifted_policy() -> LoadedPolicy:
    return policy_from_text(lift_budgets(Path(str(default_policy_path())).read_text()))


async def run(
    sandbox: BackgroundSandbox, settings: Settings, rounds: int, policy: LoadedPolicy
) -> tuple[list[float], list[float]]:
    path = Path(tempfile.mkdtemp()) / "bench.yaml"
    path.write_text(PLAYBOOK)
    book = load_playbook(path)
    client = KubeMcpClient(kubeconfig=str(sandbox.kubeconfig_path), read_only=False, start_timeout=120)
    await client.start()
    tools = TimedTools(client)
    coordinator = ApprovalCoordinator(
        settings,
        tools=tools,
        playbooks={book.name: book},
        verify_interval=0.2,
        policy=policy,
    )
    to_call: list[float] = []
    to_verified: list[float] = []
    try:
        for _ in range(rounds):
            pods = [
                p["metadata"]["name"]
                for p in sandbox.objects("Pod", "production")
                if p["metadata"]["name"].startswith("payments-") and p.get("status", {}).get("phase") == "Running"
            ]
            started = await coordinator.start_run(incident(pods[0]), book.name)
            approval = started["pending_approval"]
            decided = time.perf_counter()
            result = await coordinator.decide(approval["id"], who="api:ops", decision="approve", channel="api")
            to_call.append(tools.mutations[-1] - decided)
            run_id = result["run"]["id"]

            async def finished(run_id: str = run_id) -> bool:
                return (await coordinator.get_run(run_id))["status"] in ("succeeded", "failed", "rolled_back")

            await wait_for(finished, timeout=120, interval=0.05, message="the run to finish")
            to_verified.append(time.perf_counter() - decided)
    finally:
        await coordinator.close()
        await client.close()
    return to_call, to_verified


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    server = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    dsn = asyncio.run(fresh_database(server))
    try:
        quiet = load_scenario("demo").model_copy(update={"node_events": []})  # no node outage mid-benchmark
        with BackgroundSandbox(quiet, bookmark_interval=1.0) as sandbox:
            settings = Settings.from_env(
                database_url=dsn,
                redis_url=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
                redis_prefix=f"bench-appr-{uuid.uuid4().hex[:6]}:",
                kubeconfig=str(sandbox.kubeconfig_path),
                data_dir=Path(tempfile.mkdtemp()),
            )
            to_call, to_verified = asyncio.run(run(sandbox, settings, args.rounds, lifted_policy()))
    finally:
        asyncio.run(drop_database(server, dsn))
    print(f"rounds: {len(to_call)} pod restarts approved through the coordinator (MCP server over stdio)")
    print(
        f"decision -> mutating call: p50 {percentile(to_call, 50) * 1000:.0f} ms, "
        f"p99 {percentile(to_call, 99) * 1000:.0f} ms"
    )
    print(
        f"decision -> verification finished (pods Ready, stable 2 s): p50 {percentile(to_verified, 50):.1f} s, "
        f"p99 {percentile(to_verified, 99):.1f} s"
    )


if __name__ == "__main__":
    main()
