"""The fixed vocabulary of root causes, and what one signature match says.

The categories are a closed set on purpose: rules, playbooks, dashboards and the LLM's
structured output all name the same few causes, and anything else is ``unknown``
(with its evidence), never a new free-text category.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal


class Category(StrEnum):
    MEMORY_LIMIT = "memory_limit"
    APP_CRASH = "app_crash"
    MISSING_CONFIG = "missing_config"
    BAD_COMMAND = "bad_command"
    IMAGE_NOT_FOUND = "image_not_found"
    REGISTRY_AUTH = "registry_auth"
    REGISTRY_RATE_LIMIT = "registry_rate_limit"
    LIVENESS_PROBE = "liveness_probe"
    SLOW_START = "slow_start"
    INSUFFICIENT_RESOURCES = "insufficient_resources"
    SCHEDULING_CONSTRAINTS = "scheduling_constraints"
    PVC_UNBOUND = "pvc_unbound"
    PROVISIONING_FAILED = "provisioning_failed"
    NODE_FAILURE = "node_failure"
    NODE_PRESSURE = "node_pressure"
    DEPENDENCY_UNREACHABLE = "dependency_unreachable"
    BAD_ROLLOUT = "bad_rollout"
    UNKNOWN = "unknown"


Playbook = Literal["crashloop", "oom", "bad-rollout", "node-not-ready", "failed-job", "image-pull"]
PLAYBOOKS: tuple[Playbook, ...] = ("crashloop", "oom", "bad-rollout", "node-not-ready", "failed-job", "image-pull")


@dataclass(frozen=True)
class Match:
    """One signature's verdict: a category, a one-sentence cause, the lines that show it."""

    category: Category
    root_cause: str
    evidence: tuple[str, ...]
    confidence: float
    playbook: Playbook | None
    signature: str
