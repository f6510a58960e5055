"""The RCA eval suite through the real MCP read tools: every scenario's objects, events and logs
are served by the sandbox's API server and read by ``aiops mcp-server --read-only`` over stdio,
exactly as the RcaWorker reads a cluster. The deterministic diagnosis must keep its accuracy
bar there too, and agree with the in-memory run scenario by scenario."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.rca import diagnose, drive, plan
from tests.evals.k8s import NOW
from tests.evals.mcp import McpEval, unavailable_notes
from tests.evals.scenarios import SCENARIOS

pytestmark = pytest.mark.integration

MIN_ACCURACY = 0.9


async def test_the_eval_suite_through_mcp_meets_the_accuracy_bar_and_matches_the_in_memory_run(
    tmp_path: Path,
) -> None:
    with McpEval(errlog=tmp_path / "mcp.log") as evaluation:
        rows = await evaluation.run(SCENARIOS)

    correct = [s.id for s, _, d in rows if d.category is s.expected]
    differ = {}
    for scenario, evidence, diagnosis in rows:
        in_memory = diagnose(drive(plan(scenario.subject, NOW), scenario.cluster()))
        if in_memory.category is not diagnosis.category:
            differ[scenario.id] = (in_memory.category.value, diagnosis.category.value, unavailable_notes(evidence)[:3])
    print(f"\nthrough MCP: {len(correct)}/{len(rows)} top-1")
    assert len(rows) == len(SCENARIOS) >= 25
    assert len(correct) / len(rows) >= MIN_ACCURACY, differ
    assert not differ
