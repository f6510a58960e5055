"""Counts the generated cases each abuse property ran, for the summary printed at the end.

Hypothesis reports per-test statistics only with ``--hypothesis-show-statistics``; this
counter is always on, so the README test command shows how many cases the abuse suite ran.
"""

from __future__ import annotations

from collections import Counter

CASES: Counter[str] = Counter()


def count(name: str) -> None:
    CASES[name] += 1
