"""Fault suite: print a table of the faults injected and their outcomes (see ``outcomes``)."""

from __future__ import annotations

import pytest

from tests.faults.outcomes import OUTCOMES


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not OUTCOMES:
        return
    terminalreporter.section("faults injected and outcomes")
    rows = [("fault", "injected", "outcome"), *((o.fault, o.injected, o.result) for o in OUTCOMES)]
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    for fault, injected, result in rows:
        terminalreporter.write_line(f"{fault:<{widths[0]}} | {injected:<{widths[1]}} | {result}")
