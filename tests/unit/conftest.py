"""Unit tests run without Ray, network or real clocks: starting Ray here is a bug."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    import ray

    def refuse(*args: object, **kwargs: object) -> None:
        raise RuntimeError("unit tests must not start Ray; move this test to tests/e2e")

    monkeypatch.setattr(ray, "init", refuse)
