"""Shared integration fixtures: a sandbox Kubernetes cluster reachable by the official client."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from adapters.sandbox import BackgroundSandbox, NodeEvent, Scenario, load_scenario


def fast_demo_scenario() -> Scenario:
    """The shipped demo scenario, sped up: restarts every 0.2 s, node-3 NotReady after 1 s."""
    demo = load_scenario("demo")
    return demo.model_copy(
        update={
            "restart_interval_seconds": 0.2,
            "node_events": [NodeEvent(node="node-3", at_seconds=1.0, condition="NotReady")],
        }
    )


@pytest.fixture
def sandbox_factory() -> Iterator[Callable[..., BackgroundSandbox]]:
    """Start sandboxes (``factory(scenario, **options)``); all are stopped after the test."""
    started: list[BackgroundSandbox] = []

    def start(scenario: Scenario | None = None, **options: Any) -> BackgroundSandbox:
        options.setdefault("bookmark_interval", 0.5)
        sb = BackgroundSandbox(scenario, **options).start()
        started.append(sb)
        return sb

    yield start
    for sb in reversed(started):
        sb.stop()


@pytest.fixture
def sandbox(sandbox_factory: Callable[..., BackgroundSandbox]) -> BackgroundSandbox:
    """A running sandbox with the fast demo scenario; ``sandbox.kubeconfig_path`` points at it."""
    return sandbox_factory(fast_demo_scenario())


@pytest.fixture
def k8s_api(sandbox: BackgroundSandbox) -> Iterator[k8s.ApiClient]:
    """An official-client ``ApiClient`` configured from the sandbox's kubeconfig file."""
    api = k8s_config.new_client_from_config(config_file=str(sandbox.kubeconfig_path))
    yield api
    api.close()
