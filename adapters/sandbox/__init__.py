"""The sandbox Kubernetes cluster: kmock's emulator, an object store and a simulator.

It lets ``aiops demo`` and the integration tests run the whole loop without a cluster:
the official ``kubernetes`` client talks to it over HTTP through a kubeconfig file.
"""

from adapters.sandbox.sandbox import BackgroundSandbox, Sandbox, kubeconfig_for, run_cli
from adapters.sandbox.scenario import (
    Behaviour,
    Fix,
    NodeEvent,
    NodeSpec,
    Scenario,
    WorkloadSpec,
    large_scenario,
    load_scenario,
    parse_scenario,
)

__all__ = [
    "BackgroundSandbox",
    "Behaviour",
    "Fix",
    "NodeEvent",
    "NodeSpec",
    "Sandbox",
    "Scenario",
    "WorkloadSpec",
    "kubeconfig_for",
    "large_scenario",
    "load_scenario",
    "parse_scenario",
    "run_cli",
]
