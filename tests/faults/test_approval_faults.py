"""The ApprovalCoordinator dying between an approval and the call it grants.

``decide`` saves the decision (and the run's move to ``executing``) first, then claims the
call by its execution key, then makes it. A coordinator that dies between the save and the
claim leaves an approved step that nobody has called: the decision cannot be replayed
(the approval is no longer pending), so before the fix the next coordinator only timed the
step out as "effect unknown" a minute later and the approved fix never ran.

The crash is injected at that exact point by doing the first half of ``decide`` with the
same core decision and the same store call, then closing the coordinator. A new one on the
same stores must make the call, exactly once, and a third one must not make it again.
Fixtures (sandbox, real MCP server subprocess, a counting wrapper around its client, the
test's own database) are those of tests/integration/test_approvals_flow.py.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from actors.stores import Stores
from adapters.approval_store import RunRecords
from adapters.mcp_client import KubeMcpClient
from config.settings import Settings
from core.approvals import Decide, Verdict
from core.playbooks import VerifyResult, advance, decide
from core.tools import MUTATING
from tests.faults.outcomes import record
from tests.integration import test_approvals_flow as flow
from tests.integration.test_approvals_flow import Factory, RecordingTools, a_pod, finished, incident

# The flow module's fixtures, used here by name.
cluster, errlog, mcp, database, settings, policy, make, tools = (
    flow.cluster,
    flow.errlog,
    flow.mcp,
    flow.database,
    flow.settings,
    flow.policy,
    flow.make,
    flow.tools,
)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]


async def test_a_coordinator_that_died_between_the_approval_and_the_call_makes_the_call_once_after_restart(
    make: Factory, tools: RecordingTools, mcp: KubeMcpClient
) -> None:
    first = make(tools)
    pod = await a_pod(mcp, "cart")
    started = await first.start_run(incident("production", "cart", pod), "restart-only")
    approval_id = started["pending_approval"]["id"]
    run_id = started["run"]["id"]

    # The first half of decide(): the approval granted and the run moved to executing, saved...
    records, _ = await first._ready()
    approval = await records.get_approval(approval_id)
    assert approval is not None
    found = await records.get_run(run_id)
    assert found is not None
    now = first._clock()
    who = "cli:carol"
    role = first._policy.authz.role_for(who, approval.namespace)
    event = Decide(who=who, role=role, channel="api", decision=Verdict.APPROVE, confirm=False, note="")
    new_run, new_approval, _effects = decide(found[0], approval, event, now)
    assert await records.save_decision(approval, new_approval, new_run)
    assert new_run.status.value == "executing"
    await first.close()  # ...and the crash, before the call was claimed
    assert tools.count("delete_pod") == 0

    second = make(tools, tick_interval=0.2)
    view = await finished(second, run_id, timeout=40)
    assert view["status"] == "succeeded", view["run"]["outcomes"]
    assert tools.count("delete_pod") == 1
    assert [e["step"] for e in await second.executions(run_id)] == ["restart-pod"]
    await second.close()

    third = make(tools, tick_interval=0.2)
    assert (await third.get_run(run_id))["status"] == "succeeded"
    assert tools.count("delete_pod") == 1
    record(
        "approval coordinator died between saving the approval and claiming the call",
        "decision saved (run executing), coordinator closed before the claim",
        "the next coordinator made the call: 1 delete_pod, run succeeded; a third made none"
        " (before the fix: no call, the step timed out as 'effect unknown')",
    )


async def test_a_coordinator_that_died_between_a_failed_verification_and_the_rollback_rolls_back_once(
    make: Factory, tools: RecordingTools, mcp: KubeMcpClient, settings: Settings
) -> None:
    first = make(tools)
    pod = await a_pod(mcp, "checkout")
    started = await first.start_run(incident("production", "checkout", pod), "oom")
    run_id = started["run"]["id"]
    decided = await first.decide(started["pending_approval"]["id"], who="cli:bob", decision="approve", channel="cli")
    assert decided["status"] == "verifying", decided["run"]["reason"]
    await first.close()  # the verification task goes with it

    # What the coordinator does when the verification fails: the run moved to rolling_back, saved...
    # (straight to the store: a coordinator started here would resume the verification itself)
    stores = await Stores.open(settings)
    try:
        records = RunRecords(stores.postgres)
        found = await records.get_run(run_id)
        assert found is not None and found[0].current is not None
        failed = VerifyResult(step=found[0].current.name, passed=False, detail="injected: verification failed")
        rolling, _effects = advance(found[0], failed, datetime.now(UTC))
        assert rolling.status.value == "rolling_back"
        await records.save_run(rolling)  # ...and the crash, before the rollback call was claimed
    finally:
        await stores.close()
    assert tools.mutations() == ["set_resources"]

    second = make(tools, tick_interval=0.2)
    view = await finished(second, run_id, timeout=40)
    assert view["status"] == "rolled_back", view["run"]["reason"]
    assert tools.mutations() == ["set_resources", "rollback_deployment"]
    phases = [(e["phase"], e["tool"]) for e in await second.executions(run_id) if e["tool"] in MUTATING]
    assert phases == [("step", "set_resources"), ("rollback", "rollback_deployment")]
    record(
        "approval coordinator died between a failed verification and the rollback call",
        "run saved as rolling_back, coordinator gone before the claim",
        "the next coordinator made the rollback call once; run rolled_back (before the fix: the rollback"
        " timed out, never made)",
    )
