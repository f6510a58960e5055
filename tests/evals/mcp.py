"""The eval scenarios served by a real API server and read through the real MCP read tools.

``FakeCluster`` answers the evidence plan in memory; this module answers it the way the
``RcaWorker`` does in production: each scenario's objects, events and logs are loaded into
the sandbox's API server (the kmock emulator with the sandbox's store, selectors and log
endpoint; the simulator is stopped so nothing plays the objects on), and the plan's queries
go through ``adapters.rca_queries`` to ``aiops mcp-server --read-only`` over stdio, which
reads the cluster with the official ``kubernetes`` client. What the diagnosis gets is
therefore exactly what MCP serves: trimmed, server-side redacted, bounded.

One sandbox and one MCP server serve every scenario; the store is emptied in between.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, cast

from adapters.mcp_client import KubeMcpClient
from adapters.rca_queries import McpAnswerer
from adapters.sandbox import BackgroundSandbox
from adapters.sandbox.sandbox import Sandbox
from adapters.sandbox.store import KIND_TO_PLURAL, RESOURCES, ApiError
from core.rca import Diagnosis, Evidence, Plan, Query, Result, Unavailable, diagnose, plan
from tests.evals.k8s import NOW
from tests.evals.scenarios import Scenario


async def drive_async(evidence_plan: Plan, answer: Callable[[Query], Awaitable[Result]]) -> Evidence:
    """Run a plan with an async answerer (the RcaWorker's loop, without its time budget)."""
    try:
        query = next(evidence_plan)
        while True:
            query = evidence_plan.send(await answer(query))
    except StopIteration as stop:
        return cast(Evidence, stop.value)


def _namespace(obj: dict[str, Any]) -> str | None:
    return cast(str | None, (obj.get("metadata") or {}).get("namespace"))


async def _load(sb: Sandbox, scenario: Scenario) -> None:
    """Empty the store and the log book, then create the scenario's world as it is."""
    for plural in RESOURCES:
        for obj in list(sb.store.list(plural)):
            meta = obj["metadata"]
            if plural == "pods":
                sb.logs.forget(meta.get("namespace") or "", meta["name"])
            sb.store.delete(plural, meta.get("namespace"), meta["name"])
    objects = [dict(o) for o in scenario.objects if o.get("kind") in KIND_TO_PLURAL]
    events = [dict(e) for e in scenario.events]
    namespaces = {"default"} | {ns for o in [*objects, *events] if (ns := _namespace(o))}
    for ns in sorted(namespaces):
        sb.store.create("namespaces", {"metadata": {"name": ns}, "status": {"phase": "Active"}})
    for obj in objects:
        plural = KIND_TO_PLURAL[str(obj["kind"])]
        if RESOURCES[plural].namespaced and not _namespace(obj):
            obj = {**obj, "metadata": {**obj["metadata"], "namespace": "default"}}
        sb.store.create(plural, obj)
    for i, event in enumerate(events):
        meta = dict(event.get("metadata") or {})
        meta.setdefault("namespace", "default")
        try:
            sb.store.create("events", {**event, "metadata": meta})
        except ApiError:  # two scenario events with one name: the API would have two names
            sb.store.create("events", {**event, "metadata": {**meta, "name": f"{meta.get('name')}.{i}"}})
    pods = {o["metadata"]["name"]: _namespace(o) or "default" for o in objects if o.get("kind") == "Pod"}
    for previous in (True, False):  # a previous run is the current one rotated away
        for (pod, container, was_previous), text in scenario.logs.items():
            if was_previous is not previous or pod not in pods:
                continue
            for line in (text.decode("utf-8", "replace") if isinstance(text, bytes) else text).splitlines():
                sb.logs.append(pods[pod], pod, container, line)
            if previous:
                sb.logs.rotate(pods[pod], pod, container)


class McpEval:
    """``with McpEval() as ev: outcomes = await ev.run(SCENARIOS)``: scenarios through MCP."""

    def __init__(self, errlog: Path | None = None) -> None:
        self._sandbox = BackgroundSandbox(None, bookmark_interval=0.5)
        self._errlog = errlog

    def __enter__(self) -> McpEval:
        self._sandbox.start()

        async def quiet(sb: Sandbox) -> None:
            await sb.simulator.stop()  # the objects are a still picture; nothing plays them on

        self._sandbox.call(quiet)
        return self

    def __exit__(self, *exc: object) -> None:
        self._sandbox.stop()

    def load(self, scenario: Scenario) -> None:
        async def load(sb: Sandbox) -> None:
            await _load(sb, scenario)

        self._sandbox.call(load)

    async def run(self, scenarios: Iterable[Scenario]) -> list[tuple[Scenario, Evidence, Diagnosis]]:
        errlog = self._errlog.open("a") if self._errlog else None
        client = KubeMcpClient(
            kubeconfig=self._sandbox.kubeconfig_path, deny_namespaces="", read_only=True, errlog=errlog,
            start_timeout=120,
        )
        await client.start()
        answer = McpAnswerer(client)
        rows = []
        try:
            for scenario in scenarios:
                self.load(scenario)
                evidence = await drive_async(plan(scenario.subject, NOW), answer)
                rows.append((scenario, evidence, diagnose(evidence)))
        finally:
            await client.close()
            if errlog is not None:
                errlog.close()
        return rows


def unavailable_notes(evidence: Evidence) -> Sequence[str]:
    """The evidence notes saying a query was unavailable (for reading a miss)."""
    return [note for note in evidence.notes if note.startswith("unavailable")]


__all__ = ["McpEval", "Unavailable", "drive_async", "unavailable_notes"]
