from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from config.loader import check_file, default_playbooks_dir, load_playbooks, load_rules
from core.models import Incident, IncidentId, IncidentStatus, ObjectRef, RunId, Severity
from core.plans import Playbook, step_problems
from core.playbooks import Run
from core.templates import incident_context
from core.tools import MUTATING, READ_ONLY, TOOL_RISK, Risk

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
SHIPPED = {name: spec.to_core() for name, spec in load_playbooks([default_playbooks_dir()]).items()}


def pod_incident(**labels: str) -> Incident:
    return Incident(
        id=IncidentId("inc-1"),
        group_key="k",
        status=IncidentStatus.OPEN,
        severity=Severity.CRITICAL,
        title="t",
        rule="r",
        namespace="shop",
        object=ObjectRef(kind="Pod", namespace="shop", name="api-7d9-x2"),
        labels={
            "namespace": "shop",
            "deployment": "api",
            "pod": "api-7d9-x2",
            "container": "app",
            "job": "nightly",
            **labels,
        },
        opened_at=NOW,
        updated_at=NOW,
    )


NODE_INCIDENT = pod_incident().model_copy(
    update={"namespace": None, "object": ObjectRef(kind="Node", name="node-1"), "labels": {"node": "node-1"}}
)


def steps(name: str) -> list[tuple[str, str, Risk]]:
    return [(s.name, s.tool, s.risk) for s in SHIPPED[name].steps]


def test_every_playbook_the_default_rules_name_is_shipped() -> None:
    named = {rule.playbook for rule in load_rules().rules if rule.playbook}
    assert named <= set(SHIPPED), named - set(SHIPPED)
    assert set(SHIPPED) == {"crashloop", "oom", "bad-rollout", "node-not-ready", "failed-job", "image-pull"}


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_steps_are_complete_and_as_risky_as_their_tools(name: str) -> None:
    for step in SHIPPED[name].steps:
        assert step_problems(step, complete=True) == [], step.name
        assert step.risk.rank >= TOOL_RISK[step.tool].rank


@pytest.mark.parametrize(
    ("name", "inc"),
    [
        pytest.param("crashloop", pod_incident(), id="crashloop"),
        pytest.param("oom", pod_incident(), id="oom"),
        pytest.param("bad-rollout", pod_incident(), id="bad-rollout"),
        pytest.param("failed-job", pod_incident(), id="failed-job"),
        pytest.param("image-pull", pod_incident(), id="image-pull"),
        pytest.param("node-not-ready", NODE_INCIDENT, id="node-not-ready"),
    ],
)
def test_shipped_playbooks_plan_against_a_typical_incident(name: str, inc: Incident) -> None:
    run = Run.from_scratch(RunId("r"), SHIPPED[name], incident_context(inc), inc.namespace, NOW)
    for step in run.plan:
        if step.action.namespace is not None:
            assert step.action.namespace == "shop"
        assert "{{" not in step.action.describe()


def test_crashloop_gathers_then_restarts_the_pod_then_the_rollout() -> None:
    assert steps("crashloop") == [
        ("inspect-pod", "get_pod", Risk.READ),
        ("previous-logs", "pod_logs", Risk.READ),
        ("recent-events", "list_events", Risk.READ),
        ("restart-pod", "delete_pod", Risk.MEDIUM),
        ("restart-rollout", "rollout_restart", Risk.MEDIUM),
    ]
    restart = SHIPPED["crashloop"].steps[3]
    assert restart.verify is not None and (restart.verify.check, restart.verify.stable_for) == ("pod_ready", 30.0)


def test_oom_raises_memory_by_a_bounded_factor_and_can_roll_back() -> None:
    (raise_step,) = [s for s in SHIPPED["oom"].steps if s.tool == "set_resources"]
    assert raise_step.risk is Risk.MEDIUM and raise_step.params["memory_factor"] == 1.5
    assert raise_step.params["max_memory"] == "4Gi"
    assert raise_step.verify is not None and raise_step.rollback is not None


def test_node_not_ready_cordons_medium_then_drains_high() -> None:
    assert [(t, r) for _, t, r in steps("node-not-ready") if t in MUTATING] == [
        ("cordon_node", Risk.MEDIUM),
        ("drain_node", Risk.HIGH),
    ]


def test_image_pull_only_diagnoses() -> None:
    assert all(tool in READ_ONLY and risk is Risk.READ for _, tool, risk in steps("image-pull"))
    assert not SHIPPED["image-pull"].mutating


@pytest.mark.parametrize(
    ("name", "tool"),
    [
        pytest.param("bad-rollout", "rollback_deployment", id="bad-rollout"),
        pytest.param("failed-job", "delete_failed_job", id="failed-job"),
    ],
)
def test_single_fix_playbooks_ask_for_one_medium_approval(name: str, tool: str) -> None:
    mutating = [(t, r) for _, t, r in steps(name) if t in MUTATING]
    assert mutating == [(tool, Risk.MEDIUM)]


STEP = "playbook:\n  name: p\n  steps:\n    - {name: s, %s}\n"


@pytest.mark.parametrize(
    ("step", "path", "message"),
    [
        pytest.param(
            "tool: delete_pod, risk: low",
            "playbook.steps[0]",
            "medium risk in the catalogue",
            id="declared-risk-lower-than-the-tool",
        ),
        pytest.param(
            "tool: drain_node, risk: medium",
            "playbook.steps[0]",
            "cannot declare it medium",
            id="high-tool-declared-medium",
        ),
        pytest.param(
            "tool: delete_pod, risk: read",
            "playbook.steps[0]",
            "cannot be used in a read step",
            id="read-step-with-a-mutating-tool",
        ),
        pytest.param(
            "tool: kubectl_exec, risk: high", "playbook.steps[0]", "unknown tool 'kubectl_exec'", id="unknown-tool"
        ),
        pytest.param(
            "tool: get_pod, risk: read, params: {pod: x}",
            "playbook.steps[0]",
            "does not take parameter(s) pod",
            id="unknown-parameter",
        ),
        pytest.param(
            "tool: delete_pod, risk: medium, verify: {check: pod_happy}",
            "playbook.steps[0]",
            "unknown verify check 'pod_happy'",
            id="unknown-verify-check",
        ),
        pytest.param(
            "tool: delete_pod, risk: medium, precondition: moon_full",
            "playbook.steps[0]",
            "unknown precondition",
            id="unknown-precondition",
        ),
        pytest.param(
            "tool: cordon_node, risk: medium, rollback: {tool: drain_node}",
            "playbook.steps[0]",
            "riskier than the medium step",
            id="rollback-riskier-than-its-step",
        ),
        pytest.param(
            "tool: delete_pod, risk: medium, verify: {check: pod_ready, timeout: 0s}",
            "playbook.steps[0].verify.timeout",
            "greater than 0",
            id="zero-verify-timeout",
        ),
    ],
)
def test_unsafe_steps_are_refused_with_a_dotted_path(tmp_path: Path, step: str, path: str, message: str) -> None:
    file = tmp_path / "p.yaml"
    file.write_text(STEP % step)
    rendered = [str(p) for p in check_file(file)]
    assert any(p.startswith(f"{file}: {path}") and message in p for p in rendered), rendered


def test_duplicate_step_names_are_reported_with_other_step_problems(tmp_path: Path) -> None:
    file = tmp_path / "p.yaml"
    file.write_text(
        "playbook:\n  name: p\n  steps:\n    - {name: s, tool: nope}\n    - {name: s, tool: get_pod, risk: read}\n"
    )
    rendered = [str(p) for p in check_file(file)]
    assert any("playbook.steps[0]" in p and "unknown tool 'nope'" in p for p in rendered), rendered
    assert any("duplicate step names ['s']" in p for p in rendered), rendered


def test_core_playbooks_refuse_the_same_unsafe_steps_without_the_schema() -> None:
    with pytest.raises(ValueError, match="medium risk in the catalogue"):
        Playbook.model_validate({"name": "p", "steps": [{"name": "s", "tool": "delete_pod", "risk": "low"}]})
