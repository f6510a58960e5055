"""The table of faults injected and what the platform did, printed at the end of the run."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Outcome:
    fault: str
    injected: str
    result: str


OUTCOMES: list[Outcome] = []


def record(fault: str, injected: str, result: str) -> None:
    OUTCOMES.append(Outcome(fault, injected, result))
