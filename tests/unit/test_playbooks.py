from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
import yaml

from config.schema import PlaybookFile
from core.approvals import Approval, Decide, Verdict
from core.authz import Role
from core.effects import Announce, Audit, Refused
from core.errors import ApprovalError, ConfigError
from core.models import ApprovalId, Incident, IncidentId, IncidentStatus, ObjectRef, RunId, Severity
from core.plans import Playbook
from core.playbooks import (
    CancelApproval,
    CancelRun,
    CheckPrecondition,
    ExecuteRollback,
    ExecuteStep,
    PreconditionResult,
    RequestApproval,
    RollbackResult,
    Run,
    RunEffect,
    RunEvent,
    RunStatus,
    Start,
    StartVerify,
    StepApprovalExpired,
    StepApproved,
    StepBlocked,
    StepRejected,
    StepResult,
    Tick,
    VerifyResult,
    advance,
    decide,
)
from core.templates import incident_context

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
AID = ApprovalId("k3x9q2")

PLAYBOOK_YAML = """
playbook:
  name: demo
  steps:
    - name: look
      tool: get_pod
      risk: read
      params: {namespace: "{{ incident.namespace }}", name: "{{ incident.labels.pod }}"}
    - name: restart
      tool: delete_pod
      risk: medium
      params: {namespace: "{{ incident.namespace }}", name: "{{ incident.labels.pod }}"}
      timeout: 60s
      verify:
        check: pod_ready
        params: {namespace: "{{ incident.namespace }}", deployment: "{{ incident.labels.deployment }}"}
        timeout: 2m
        stable_for: 30s
    - name: resize
      tool: set_resources
      risk: medium
      params: {namespace: "{{ incident.namespace }}", name: "{{ incident.labels.deployment }}", container: app,
               memory_factor: 1.5, max_memory: 2Gi}
      verify: {check: workload_available, params: {name: "{{ incident.labels.deployment }}"}, timeout: 1m}
      rollback: {tool: rollback_deployment, params: {namespace: "{{ incident.namespace }}",
                                                     name: "{{ incident.labels.deployment }}"}}
"""


def playbook(text: str = PLAYBOOK_YAML) -> Playbook:
    return PlaybookFile.model_validate(yaml.safe_load(text)).playbook.to_core()


def incident(namespace: str | None = "shop", **labels: str) -> Incident:
    return Incident(
        id=IncidentId("inc-1"),
        group_key="k",
        status=IncidentStatus.OPEN,
        severity=Severity.WARNING,
        title="api crashing",
        rule="crashloop",
        namespace=namespace,
        object=ObjectRef(kind="Pod", namespace=namespace, name="api-1"),
        labels={"deployment": "api", "pod": "api-1", **labels},
        opened_at=NOW,
        updated_at=NOW,
    )


def new_run(text: str = PLAYBOOK_YAML, dry_run: bool = False, requested_by: str | None = None) -> Run:
    inc = incident()
    return Run.from_scratch(
        RunId("run-1"),
        playbook(text),
        incident_context(inc),
        inc.namespace,
        NOW,
        dry_run=dry_run,
        requested_by=requested_by,
        incident_id=inc.id,
    )


def drive(run: Run, events: Sequence[RunEvent], at: datetime = NOW) -> tuple[Run, list[RunEffect]]:
    effects: list[RunEffect] = []
    for event in events:
        run, more = advance(run, event, at)
        effects.extend(more)
    return run, effects


def executed(effects: Sequence[object]) -> list[str]:
    return [e.step for e in effects if isinstance(e, ExecuteStep)]


def kinds(effects: Sequence[object]) -> list[str]:
    return [e.kind for e in effects if not isinstance(e, Announce | Audit)]  # type: ignore[attr-defined]


TO_RESTART_APPROVAL: list[RunEvent] = [Start(), StepResult(step="look", ok=True)]
TO_RESTART_RUNNING = [*TO_RESTART_APPROVAL, StepApproved(step="restart", approval_id=AID, approvers=("slack:U1",))]
TO_RESTART_VERIFYING = [*TO_RESTART_RUNNING, StepResult(step="restart", ok=True)]
TO_RESIZE_VERIFYING = [
    *TO_RESTART_VERIFYING,
    VerifyResult(step="restart", passed=True),
    StepApproved(step="resize", approval_id=ApprovalId("r2"), approvers=("slack:U1",)),
    StepResult(step="resize", ok=True),
]


def test_a_full_run_executes_each_step_once_in_order_and_succeeds() -> None:
    run, effects = drive(new_run(), [*TO_RESIZE_VERIFYING, VerifyResult(step="resize", passed=True)])
    assert run.status is RunStatus.SUCCEEDED
    assert executed(effects) == ["look", "restart", "resize"]
    assert kinds(effects) == [
        "execute_step",
        "request_approval",
        "execute_step",
        "start_verify",
        "request_approval",
        "execute_step",
        "start_verify",
    ]
    assert [o.status for o in run.outcomes] == ["succeeded", "succeeded", "succeeded"]
    assert run.approvals == {"restart": AID, "resize": ApprovalId("r2")}


@pytest.mark.parametrize(
    ("events", "status", "last_kind"),
    [
        pytest.param([Start()], RunStatus.EXECUTING, "execute_step", id="read-step-runs-unattended"),
        pytest.param(TO_RESTART_APPROVAL, RunStatus.AWAITING_APPROVAL, "request_approval", id="medium-waits"),
        pytest.param(TO_RESTART_RUNNING, RunStatus.EXECUTING, "execute_step", id="approval-executes"),
        pytest.param(TO_RESTART_VERIFYING, RunStatus.VERIFYING, "start_verify", id="result-ok-starts-verify"),
        pytest.param(
            [*TO_RESIZE_VERIFYING, VerifyResult(step="resize", passed=False, detail="2/3 ready")],
            RunStatus.ROLLING_BACK,
            "execute_rollback",
            id="verify-failed-rolls-back",
        ),
    ],
)
def test_each_transition_emits_its_effect_and_an_audit(
    events: list[RunEvent], status: RunStatus, last_kind: str
) -> None:
    run, effects = drive(new_run(), events[:-1])
    run, effects = advance(run, events[-1], NOW)
    assert run.status is status and kinds(effects)[-1] == last_kind
    assert any(isinstance(e, Audit) for e in effects) and any(isinstance(e, Announce) for e in effects)


def test_the_approval_request_carries_the_exact_action_and_its_rollback() -> None:
    run, effects = drive(
        new_run(requested_by="slack:U0"), [*TO_RESTART_VERIFYING, VerifyResult(step="restart", passed=True)]
    )
    (request,) = [e for e in effects if isinstance(e, RequestApproval) and e.step == "resize"]
    assert request.action.params["name"] == "api" and request.required_approvals == 1
    assert (
        request.rollback is not None and request.rollback.describe() == "rollback_deployment(name=api, namespace=shop)"
    )
    assert request.requested_by == "slack:U0"


@pytest.mark.parametrize(
    ("events", "status"),
    [
        pytest.param(
            [*TO_RESIZE_VERIFYING, VerifyResult(step="resize", passed=False), RollbackResult(step="resize", ok=True)],
            RunStatus.ROLLED_BACK,
            id="rollback-ok",
        ),
        pytest.param(
            [*TO_RESIZE_VERIFYING, VerifyResult(step="resize", passed=False), RollbackResult(step="resize", ok=False)],
            RunStatus.FAILED,
            id="rollback-failed",
        ),
        pytest.param(
            [*TO_RESTART_VERIFYING, VerifyResult(step="restart", passed=False)],
            RunStatus.FAILED,
            id="verify-failed-without-rollback",
        ),
        pytest.param(
            [*TO_RESTART_RUNNING, StepResult(step="restart", ok=False, detail="403")],
            RunStatus.FAILED,
            id="step-failed",
        ),
        pytest.param(
            [*TO_RESTART_APPROVAL, StepRejected(step="restart", approval_id=AID, by="slack:U1")],
            RunStatus.REJECTED,
            id="rejected",
        ),
        pytest.param(
            [*TO_RESTART_APPROVAL, StepApprovalExpired(step="restart", approval_id=AID)],
            RunStatus.EXPIRED,
            id="approval-expired",
        ),
        pytest.param(
            [*TO_RESTART_APPROVAL, StepBlocked(step="restart", rule="budget", reason="budget exhausted")],
            RunStatus.BLOCKED,
            id="guardrail-blocked",
        ),
        pytest.param([*TO_RESTART_APPROVAL, CancelRun(by="slack:U1")], RunStatus.CANCELLED, id="cancelled"),
    ],
)
def test_terminal_states_are_announced_never_silent(events: list[RunEvent], status: RunStatus) -> None:
    run, effects = drive(new_run(), events)
    assert run.status is status and run.status.final
    last = [e for e in effects if isinstance(e, Announce)][-1]
    assert status.value in last.text and run.reason in last.text


def test_an_expired_approval_says_expired() -> None:
    _, effects = drive(new_run(), [*TO_RESTART_APPROVAL, StepApprovalExpired(step="restart", approval_id=AID)])
    assert any(isinstance(e, Announce) and "expired" in e.text and "nothing was run" in e.text for e in effects)


def test_a_step_whose_verify_times_out_rolls_back() -> None:
    run, _ = drive(new_run(), TO_RESIZE_VERIFYING)
    still, quiet = advance(run, Tick(), NOW + timedelta(seconds=59))
    assert still is run and quiet == []
    run, effects = advance(run, Tick(), NOW + timedelta(seconds=60))
    assert run.status is RunStatus.ROLLING_BACK and kinds(effects) == ["execute_rollback"]
    assert "verify timed out" in run.outcomes[-1].detail


def test_a_verify_deadline_includes_stable_for() -> None:
    run, _ = drive(new_run(), TO_RESTART_VERIFYING)
    assert advance(run, Tick(), NOW + timedelta(seconds=149))[0].status is RunStatus.VERIFYING
    failed, _ = advance(run, Tick(), NOW + timedelta(seconds=150))
    assert failed.status is RunStatus.FAILED and failed.failed_verifications == 1


def test_a_failed_read_step_is_recorded_and_the_run_goes_on_to_ask_for_approval() -> None:
    run, effects = drive(
        new_run(), [Start(), StepResult(step="look", ok=False, detail="no previous container", missing=True)]
    )
    assert run.status is RunStatus.AWAITING_APPROVAL
    assert run.outcomes[-1].status == "failed" and "continuing" in run.outcomes[-1].detail
    assert "request_approval" in kinds(effects) or any(type(e).__name__ == "RequestApproval" for e in effects)


def test_a_refused_or_hung_read_step_still_fails_the_run() -> None:
    run, _ = drive(new_run(), [Start(), StepResult(step="look", ok=False, detail="refused: namespace not allowed")])
    assert run.status is RunStatus.FAILED


def test_a_failed_mutating_step_still_fails_the_run() -> None:
    run, _ = drive(new_run(), [*TO_RESTART_RUNNING, StepResult(step="restart", ok=False, detail="api said no")])
    assert run.status is RunStatus.FAILED


def test_a_step_that_times_out_fails_and_a_late_result_is_refused() -> None:
    run, _ = drive(new_run(), TO_RESTART_RUNNING)
    run, _ = advance(run, Tick(), NOW + timedelta(seconds=60))
    assert run.status is RunStatus.FAILED and run.outcomes[-1].status == "timed_out"
    late, effects = advance(run, StepResult(step="restart", ok=True), NOW + timedelta(seconds=61))
    assert late is run and isinstance(effects[0], Refused)


@pytest.mark.parametrize(
    ("events", "refused"),
    [
        pytest.param(
            [*TO_RESTART_RUNNING, StepApproved(step="restart", approval_id=AID)], "is executing", id="approving-twice"
        ),
        pytest.param(
            [
                *TO_RESTART_APPROVAL,
                StepRejected(step="restart", approval_id=AID, by="slack:U1"),
                StepApproved(step="restart", approval_id=AID),
            ],
            "already rejected",
            id="approve-after-reject",
        ),
        pytest.param(
            [*TO_RESTART_RUNNING, StepRejected(step="restart", approval_id=AID, by="slack:U2")],
            "is executing",
            id="reject-after-approve",
        ),
        pytest.param(
            [*TO_RESTART_APPROVAL, StepResult(step="resize", ok=True)],
            "not on step 'resize'",
            id="result-for-a-step-not-running",
        ),
        pytest.param(
            [*TO_RESTART_APPROVAL, StepResult(step="restart", ok=True)],
            "is awaiting_approval",
            id="result-before-approval",
        ),
        pytest.param(
            [*TO_RESTART_RUNNING, VerifyResult(step="restart", passed=True)],
            "is executing",
            id="verify-while-executing",
        ),
        pytest.param([Start(), Start()], "already started", id="start-twice"),
        pytest.param(
            [*TO_RESTART_VERIFYING, RollbackResult(step="restart", ok=True)],
            "is verifying",
            id="rollback-result-without-rollback",
        ),
    ],
)
def test_events_that_do_not_fit_return_the_same_run_and_never_a_second_execute(
    events: list[RunEvent], refused: str
) -> None:
    before, effects_before = drive(new_run(), events[:-1])
    after, effects = advance(before, events[-1], NOW)
    assert after is before
    assert len(effects) == 1 and isinstance(effects[0], Refused) and refused in effects[0].reason
    assert executed(effects) == []
    assert len(executed(effects_before)) == len(set(executed(effects_before)))


def pending_approval(run: Run, risk_step: str = "restart") -> Approval:
    step = next(s for s in run.plan if s.name == risk_step)
    return Approval.from_scratch(AID, run.id, step.name, step.risk, step.action, NOW, requested_by=run.requested_by)


def test_two_approvers_racing_yield_exactly_one_execute_step() -> None:
    run, _ = drive(new_run(), TO_RESTART_APPROVAL)
    approval = pending_approval(run)
    first = Decide(who="slack:U1", role=Role.OPERATOR, channel="slack", decision=Verdict.APPROVE)
    second = Decide(who="telegram:7", role=Role.OPERATOR, channel="telegram", decision=Verdict.APPROVE)
    run, approval, effects = decide(run, approval, first, NOW)
    with pytest.raises(ApprovalError, match="already approved by slack:U1"):
        decide(run, approval, second, NOW)
    assert executed(effects) == ["restart"] and run.status is RunStatus.EXECUTING


def test_a_high_step_runs_once_after_the_second_distinct_approver() -> None:
    text = "playbook:\n  name: n\n  steps:\n    - {name: drain, tool: drain_node, risk: high, params: {name: n1}}\n"
    run = Run.from_scratch(RunId("run-2"), playbook(text), {}, None, NOW)
    run, effects = advance(run, Start(), NOW)
    assert kinds(effects) == ["request_approval"]
    approval = pending_approval(run, "drain")
    run, approval, one = decide(
        run, approval, Decide(who="slack:U1", role=Role.OPERATOR, decision=Verdict.APPROVE), NOW
    )
    assert executed(one) == [] and run.status is RunStatus.AWAITING_APPROVAL
    with pytest.raises(ApprovalError, match="counts once"):
        decide(run, approval, Decide(who="slack:U1", role=Role.OPERATOR, decision=Verdict.APPROVE), NOW)
    run, approval, two = decide(
        run, approval, Decide(who="slack:U2", role=Role.OPERATOR, decision=Verdict.APPROVE), NOW
    )
    assert executed(two) == ["drain"] and approval.approvers == ("slack:U1", "slack:U2")


def test_a_viewer_decision_changes_neither_approval_nor_run() -> None:
    run, _ = drive(new_run(), TO_RESTART_APPROVAL)
    approval = pending_approval(run)
    with pytest.raises(ApprovalError, match="viewers may not"):
        decide(run, approval, Decide(who="telegram:1", role=Role.VIEWER, decision=Verdict.APPROVE), NOW)
    assert run.status is RunStatus.AWAITING_APPROVAL


def test_a_rejection_through_decide_rejects_the_run() -> None:
    run, _ = drive(new_run(), TO_RESTART_APPROVAL)
    run, _, effects = decide(
        run, pending_approval(run), Decide(who="slack:U1", role=Role.OPERATOR, decision=Verdict.REJECT), NOW
    )
    assert run.status is RunStatus.REJECTED and executed(effects) == []


def test_dry_run_announces_the_plan_and_never_executes_a_mutating_step() -> None:
    run, effects = drive(new_run(dry_run=True), [Start(), StepResult(step="look", ok=True)])
    assert run.status is RunStatus.SUCCEEDED
    assert executed(effects) == ["look"]
    assert not any(isinstance(e, RequestApproval | ExecuteRollback | StartVerify) for e in effects)
    would = [e.text for e in effects if isinstance(e, Announce) and e.text.startswith("dry-run: would run")]
    assert len(would) == 2 and "needs 1 approval(s)" in would[0]
    assert [o.status for o in run.outcomes] == ["succeeded", "skipped", "skipped"]


PRECONDITION_YAML = """
playbook:
  name: pre
  steps:
    - {name: restart, tool: rollout_restart, risk: medium, precondition: incident_open,
       params: {namespace: shop, name: api}}
"""


@pytest.mark.parametrize(
    ("holds", "status", "effect"),
    [
        pytest.param(True, RunStatus.AWAITING_APPROVAL, "request_approval", id="holds-asks-for-approval"),
        pytest.param(False, RunStatus.SUCCEEDED, None, id="does-not-hold-skips-the-step"),
    ],
)
def test_preconditions_are_checked_before_anyone_is_asked(holds: bool, status: RunStatus, effect: str | None) -> None:
    run, effects = advance(new_run(PRECONDITION_YAML), Start(), NOW)
    assert run.status is RunStatus.CHECKING and isinstance(effects[1], CheckPrecondition)
    run, effects = advance(run, PreconditionResult(step="restart", holds=holds), NOW)
    assert run.status is status and kinds(effects) == ([effect] if effect else [])


def test_cancelling_while_awaiting_approval_cancels_the_approval_too() -> None:
    run, _ = drive(new_run(), [*TO_RESTART_APPROVAL])
    run, effects = advance(run, CancelRun(by="slack:U1", reason="fixed by hand"), NOW)
    assert run.status is RunStatus.CANCELLED and kinds(effects) == ["cancel_approval"]
    assert isinstance(effects[0], CancelApproval)


@pytest.mark.parametrize(
    ("inc", "error", "message"),
    [
        pytest.param(incident(pod=""), ApprovalError, "rendered empty", id="a-template-rendering-an-empty-target"),
        pytest.param(incident(namespace=None), ConfigError, "has no value", id="an-incident-without-namespace"),
        pytest.param(
            incident().model_copy(update={"labels": {"pod": "api-1"}}),
            ConfigError,
            "no 'deployment'",
            id="a-template-with-an-unknown-variable",
        ),
    ],
)
def test_a_run_that_cannot_be_planned_safely_is_refused_before_anything_runs(
    inc: Incident, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        Run.from_scratch(RunId("run-1"), playbook(), incident_context(inc), inc.namespace, NOW)


def test_a_wrong_namespace_target_refuses_the_whole_run() -> None:
    text = PLAYBOOK_YAML.replace('name: "{{ incident.labels.deployment }}", container', "name: x, container").replace(
        'namespace: "{{ incident.namespace }}", name: x', "namespace: kube-system, name: x"
    )
    with pytest.raises(ApprovalError, match="differs from the incident's namespace 'shop'"):
        new_run(text)


def test_a_run_survives_storage_round_trip_mid_flight() -> None:
    run, _ = drive(new_run(), TO_RESTART_VERIFYING)
    restored = Run.from_storage(json.loads(json.dumps(run.for_storage())))
    assert restored == run
    assert advance(restored, VerifyResult(step="restart", passed=True), NOW)[0].status is RunStatus.AWAITING_APPROVAL
