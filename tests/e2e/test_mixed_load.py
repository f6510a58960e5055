"""benchmarks/mixed_load.py, for a few seconds against the session platform, so it cannot rot.

The session platform has no watchers (churn is injected but not detected here) and its
approvals are rejected: an approved restart would spend the payments budget other e2e
tests need. Churn stays in ``staging`` for the same reason. The figures come from the
benchmark's own run (RELIABILITY.md), not from this test.
"""

from __future__ import annotations

import asyncio

import pytest

from benchmarks.mixed_load import Target, drive
from tests.platform import AM_TOKEN, OPS_TOKEN, SLACK_CHANNEL, SLACK_SECRET, Platform

pytestmark = pytest.mark.e2e


def test_the_mixed_load_benchmark_runs_every_stream_without_errors_or_loss(platform: Platform) -> None:
    target = Target(
        platform.base_url,
        platform.settings,
        platform.database_url,
        platform.sandbox,
        AM_TOKEN,
        OPS_TOKEN,
        SLACK_SECRET,
        slack_channel=SLACK_CHANNEL,
    )
    figures = asyncio.run(
        drive(
            target,
            seconds=5,
            alert_rate=40,
            chat_rate=2,
            churn_every=2,
            recover_after=1,
            approval_every=2,
            approve=False,
            churn_namespaces=("staging",),
            watchers=False,
        )
    )
    report = "\n".join(figures.lines())
    for stream in figures.streams.values():
        assert stream.done > 0 and stream.errors == 0, report
    assert figures.alerts_sent >= 150 and figures.alerts_stored == figures.alerts_sent == figures.signal_rows, report
    assert figures.memory and all(len(sizes) == 3 for _, sizes in figures.memory.values()), report
