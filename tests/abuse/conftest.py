"""Abuse suite: print how many generated cases each property ran (see ``tally``)."""

from __future__ import annotations

import pytest

from tests.abuse.tally import CASES


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not CASES:
        return
    terminalreporter.section("abuse: generated cases run")
    width = max(len(name) for name in CASES)
    for name, n in sorted(CASES.items()):
        terminalreporter.write_line(f"{name:<{width}}  {n:>6}")
    terminalreporter.write_line(f"{'total':<{width}}  {sum(CASES.values()):>6}")
