"""``aiops demo`` options: bad values are refused before anything starts; pacing is applied as asked."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.loader import load_playbooks
from deployments.cli import main
from deployments.demo import DemoOptions, paced_playbooks, paced_scenario


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--poll", "0"], "--poll 0: must be between 0.05 and 30 seconds", id="poll-zero"),
        pytest.param(["--timeout", "-1"], "--timeout -1: must be > 0 seconds", id="negative-timeout"),
        pytest.param(["--port", "70000"], "--port 70000: must be 0 (a free port) or 1-65535", id="port-range"),
        pytest.param(["--restart-interval", "0"], "--restart-interval 0: must be > 0 seconds", id="restart-zero"),
        pytest.param(["--node-outage-after", "-2"], "--node-outage-after -2: must be >= 0", id="outage-negative"),
        pytest.param(["--verify-window", "-1"], "--verify-window -1: must be >= 0 seconds", id="verify-negative"),
        pytest.param(["--settle", "-1"], "--settle -1: must be >= 0 seconds", id="settle-negative"),
        pytest.param(["--scenario", "no-such-scenario"], "cannot read scenario 'no-such-scenario'", id="scenario"),
    ],
)
def test_bad_demo_options_are_refused_with_the_reason_and_nothing_is_started(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "data"
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--data-dir", str(data_dir), *args])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not data_dir.exists()


def test_pacing_speeds_up_the_scenario_and_caps_only_the_verification_windows(tmp_path: Path) -> None:
    options = DemoOptions(restart_interval=0.3, node_outage_after=3, verify_window=2)
    scenario = paced_scenario(options)
    assert scenario.restart_interval_seconds == 0.3
    assert [(e.node, e.at_seconds, e.condition) for e in scenario.node_events] == [("node-3", 3, "NotReady")]
    assert {w.behaviour.value for w in scenario.workloads} >= {"oom", "image_pull", "job_fail"}

    shipped = load_playbooks([Path(__file__).resolve().parents[2] / "config" / "playbooks"])
    paced = load_playbooks([paced_playbooks(None, tmp_path / "books", 2.0)])
    assert sorted(paced) == sorted(shipped)
    for name, book in shipped.items():
        for before, after in zip(book.steps, paced[name].steps, strict=True):
            assert after.model_copy(update={"verify": None}) == before.model_copy(update={"verify": None})
            if before.verify is not None:
                assert after.verify is not None
                assert after.verify.stable_for == min(before.verify.stable_for, 2.0)
                assert after.verify.timeout == before.verify.timeout
    oom = paced["oom"].steps[-1]
    assert oom.verify is not None and oom.verify.stable_for == 2.0  # shipped: 2m


def test_without_pacing_options_the_shipped_scenario_is_played_as_written() -> None:
    scenario = paced_scenario(DemoOptions())
    assert scenario.restart_interval_seconds == 2.0
    assert [e.at_seconds for e in scenario.node_events] == [20]
