from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.guardrails import (
    FreezeWindow,
    GuardrailConfig,
    GuardrailContext,
    PastAction,
    WeeklyWindow,
    check,
    consecutive_failures,
    workload_of,
)
from core.tools import Action

MON_NOON = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
SAT_NOON = datetime(2026, 11, 7, 12, 0, tzinfo=UTC)
FRI_17 = datetime(2026, 11, 6, 17, 59, tzinfo=UTC)
FRI_18 = datetime(2026, 11, 6, 18, 0, tzinfo=UTC)
MON_8 = datetime(2026, 11, 9, 8, 0, tzinfo=UTC)

RESTART = Action(tool="rollout_restart", params={"namespace": "shop", "name": "api"})
READ = Action(tool="get_pod", params={"namespace": "shop", "name": "api-1"})
WEEKEND = WeeklyWindow.parse("fri 18:00 - mon 08:00")
XMAS = FreezeWindow(start=datetime(2026, 12, 24, tzinfo=UTC), end=datetime(2026, 12, 27, tzinfo=UTC), label="xmas")


def restarts(*minutes_ago: int, workload: str = "shop/api", now: datetime = MON_NOON) -> tuple[PastAction, ...]:
    return tuple(PastAction(tool="delete_pod", workload=workload, at=now - timedelta(minutes=m)) for m in minutes_ago)


@pytest.mark.parametrize(
    ("action", "context", "now", "rule"),
    [
        pytest.param(RESTART, GuardrailContext(), MON_NOON, None, id="nothing-in-the-way"),
        pytest.param(
            READ,
            GuardrailContext(config=GuardrailConfig(paused=True)),
            MON_NOON,
            None,
            id="reads-pass-even-when-paused",
        ),
        pytest.param(
            RESTART, GuardrailContext(config=GuardrailConfig(paused=True)), MON_NOON, "paused", id="global-pause"
        ),
        pytest.param(
            RESTART,
            GuardrailContext(config=GuardrailConfig(freezes=(WEEKEND,))),
            SAT_NOON,
            "change_freeze",
            id="weekly-freeze-over-the-weekend",
        ),
        pytest.param(
            RESTART,
            GuardrailContext(config=GuardrailConfig(freezes=(WEEKEND,))),
            FRI_18,
            "change_freeze",
            id="weekly-freeze-starts-inclusive",
        ),
        pytest.param(
            RESTART,
            GuardrailContext(config=GuardrailConfig(freezes=(WEEKEND,))),
            FRI_17,
            None,
            id="weekly-freeze-not-yet",
        ),
        pytest.param(
            RESTART,
            GuardrailContext(config=GuardrailConfig(freezes=(WEEKEND,))),
            MON_8,
            None,
            id="weekly-freeze-ends-exclusive",
        ),
        pytest.param(
            RESTART,
            GuardrailContext(config=GuardrailConfig(freezes=(XMAS,))),
            datetime(2026, 12, 25, 9, tzinfo=UTC),
            "change_freeze",
            id="absolute-freeze",
        ),
        pytest.param(
            RESTART,
            GuardrailContext(config=GuardrailConfig(freezes=(XMAS,))),
            MON_NOON,
            None,
            id="absolute-freeze-elsewhere",
        ),
        pytest.param(
            RESTART, GuardrailContext(config=GuardrailConfig(dry_run=True)), MON_NOON, "dry_run", id="platform-dry-run"
        ),
        pytest.param(RESTART, GuardrailContext(dry_run=True), MON_NOON, "dry_run", id="run-dry-run"),
        pytest.param(
            RESTART,
            GuardrailContext(consecutive_failed_verifications=3),
            MON_NOON,
            "circuit_breaker",
            id="breaker-trips-at-three",
        ),
        pytest.param(
            RESTART, GuardrailContext(consecutive_failed_verifications=2), MON_NOON, None, id="breaker-holds-at-two"
        ),
        pytest.param(
            RESTART,
            GuardrailContext(config=GuardrailConfig(breaker_threshold=0), consecutive_failed_verifications=9),
            MON_NOON,
            None,
            id="breaker-disabled",
        ),
        pytest.param(
            RESTART,
            GuardrailContext(history=restarts(5, 20, 59)),
            MON_NOON,
            "budget",
            id="budget-exhausted-after-three-restarts-in-an-hour",
        ),
        pytest.param(
            RESTART,
            GuardrailContext(history=restarts(5, 20, 61)),
            MON_NOON,
            None,
            id="budget-forgets-actions-older-than-the-window",
        ),
        pytest.param(
            RESTART,
            GuardrailContext(history=restarts(5, 20, 30, workload="shop/web")),
            MON_NOON,
            None,
            id="budget-is-per-workload",
        ),
        pytest.param(
            Action(tool="delete_pod", params={"namespace": "shop", "name": "api-7d9-x2"}),
            GuardrailContext(workload="shop/api", history=restarts(1, 2, 3)),
            MON_NOON,
            "budget",
            id="pod-actions-count-against-their-deployment",
        ),
        pytest.param(
            Action(tool="scale_deployment", params={"namespace": "shop", "name": "api", "replicas": 2}),
            GuardrailContext(history=restarts(1, 2, 3)),
            MON_NOON,
            None,
            id="restarts-do-not-use-the-changes-budget",
        ),
    ],
)
def test_guardrails_name_the_rule_that_refuses(
    action: Action, context: GuardrailContext, now: datetime, rule: str | None
) -> None:
    verdict = check(action, context, now)
    assert (verdict.allowed, verdict.rule) == (rule is None, rule), verdict.reason


def test_an_exhausted_budget_says_escalate_to_a_human() -> None:
    verdict = check(RESTART, GuardrailContext(history=restarts(1, 2, 3)), MON_NOON)
    assert "budget exhausted: 3 of 3 restarts on shop/api" in verdict.reason and "escalate to a human" in verdict.reason


def test_pause_wins_over_every_other_rule() -> None:
    config = GuardrailConfig(paused=True, dry_run=True, freezes=(WEEKEND,))
    assert check(RESTART, GuardrailContext(config=config, history=restarts(1, 2, 3)), SAT_NOON).rule == "paused"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("friday 18:00 - mon 08:00", "must look like", id="long-day-name"),
        pytest.param("fri 18:00 - xyz 08:00", "unknown day 'xyz'", id="unknown-day"),
        pytest.param("fri 25:00 - mon 08:00", "invalid time", id="hour-out-of-range"),
        pytest.param("fri 18:00 - fri 18:00", "empty", id="empty-window"),
        pytest.param("fri 18:00", "must look like", id="no-end"),
    ],
)
def test_weekly_windows_reject_bad_text(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        WeeklyWindow.parse(text)


def test_a_non_wrapping_weekly_window_holds_inside_only() -> None:
    lunch = WeeklyWindow.parse("Mon 11:30 - mon 13:00")
    assert lunch.contains(MON_NOON) and not lunch.contains(MON_NOON + timedelta(hours=1))


@pytest.mark.parametrize(
    ("results", "count"),
    [
        pytest.param([], 0, id="none"),
        pytest.param([True, False, False], 2, id="trailing-failures"),
        pytest.param([False, False, True], 0, id="a-pass-resets"),
    ],
)
def test_consecutive_failures_counts_the_trailing_run(results: list[bool], count: int) -> None:
    assert consecutive_failures(results) == count


@pytest.mark.parametrize(
    ("action", "workload"),
    [
        pytest.param(RESTART, "shop/api", id="namespaced"),
        pytest.param(Action(tool="drain_node", params={"name": "n1"}), "node/n1", id="node"),
    ],
)
def test_workload_of_names_what_an_action_touches(action: Action, workload: str) -> None:
    assert workload_of(action) == workload
