"""Deterministic diagnosis: evidence in, one named root cause (or an honest ``unknown``) out.

Every signature of the library (``core.rca.signatures``, ``core.rca.placement``) is
run on the evidence; the strongest match wins (ties go to the earlier, more specific
signature). Then the rollout check: when the failing pods belong to the newest
ReplicaSet revision, the previous revision's pods were healthy and the pod template
changed, the cause is the rollout (rolling it back is the fix) and the symptom is
named inside the sentence: "Bad rollout: revision 7 changed image ...; new pods: App
crash ...".

With no match the category is ``unknown``, the confidence low and the evidence lines
list what was seen: a guess is never dressed as a fact. Signatures never see raw I/O
and a failing signature is logged and skipped, so ``diagnose`` does not raise.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from core.rca.categories import Category, Match, Playbook
from core.rca.context import Context, clip, event_line, state_lines, where
from core.rca.placement import PLACEMENT_SIGNATURES
from core.rca.records import Evidence
from core.rca.rollout import RolloutChange
from core.rca.signatures import CONTAINER_SIGNATURES, alert_context

logger = logging.getLogger(__name__)

MAX_EVIDENCE_LINES = 12
Signature = Callable[[Context], Match | None]
SIGNATURES: tuple[Signature, ...] = (*PLACEMENT_SIGNATURES, *CONTAINER_SIGNATURES)

# Symptoms a bad rollout explains; a missing ConfigMap/Secret or an image that does not
# exist is named as itself, since it says more precisely what to fix.
_ROLLOUT_SYMPTOMS = frozenset(
    {
        Category.APP_CRASH,
        Category.BAD_COMMAND,
        Category.MISSING_CONFIG,
        Category.MEMORY_LIMIT,
        Category.LIVENESS_PROBE,
        Category.SLOW_START,
        Category.DEPENDENCY_UNREACHABLE,
        Category.UNKNOWN,
    }
)
_NOT_ROLLOUT_SIGNATURES = frozenset({"config_object_missing", "readiness_only"})


class Diagnosis(BaseModel):
    """The deterministic verdict on one incident."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    category: Category
    root_cause: str = Field(description='One sentence, e.g. "OOM: memory limit 256Mi hit 3x in 4h".')
    evidence: tuple[str, ...] = Field(default=(), description="The lines that show the cause, redacted.")
    confidence: float = Field(ge=0.0, le=1.0)
    playbook: Playbook | None = None
    signature: str | None = Field(default=None, description="Name of the signature that matched.")
    subject: str = ""
    mode: Literal["deterministic"] = "deterministic"


def diagnose(evidence: Evidence, now: datetime | None = None) -> Diagnosis:
    """Name the root cause in ``evidence``; ``now`` defaults to when the evidence was collected."""
    context = Context.of(evidence, now or evidence.collected_at)
    best: Match | None = None
    for signature in SIGNATURES:
        try:
            match = signature(context)
        except Exception:  # a signature bug must not lose the whole diagnosis
            logger.exception("RCA signature %s failed; skipped", getattr(signature, "__name__", signature))
            continue
        if match is not None and (best is None or match.confidence > best.confidence):
            best = match
    try:
        rollout = _bad_rollout(context, best)
    except Exception:
        logger.exception("RCA rollout check failed; skipped")
        rollout = None
    chosen = rollout or best or _unknown(context)
    lines = [*chosen.evidence, *alert_context(context)]
    return Diagnosis(
        category=chosen.category,
        root_cause=chosen.root_cause,
        evidence=tuple(dict.fromkeys(lines))[:MAX_EVIDENCE_LINES],
        confidence=round(min(max(chosen.confidence, 0.0), 1.0), 2),
        playbook=chosen.playbook,
        signature=chosen.signature,
        subject=evidence.subject.title(),
    )


def _bad_rollout(ctx: Context, symptom: Match | None) -> Match | None:
    change = ctx.evidence.rollout
    if change is None or change.old is None or not change.changes:
        return None
    if symptom is not None and (
        symptom.category not in _ROLLOUT_SYMPTOMS or symptom.signature in _NOT_ROLLOUT_SIGNATURES
    ):
        return None
    failing_new = [
        pod for pod in ctx.pods if _in_revision(pod.template_hash, pod.owners, change, new=True) and pod.badness() > 0
    ]
    if not failing_new:
        return None
    old_healthy = [
        pod.name
        for pod in ctx.evidence.all_pods()
        if _in_revision(pod.template_hash, pod.owners, change, new=False) and pod.healthy
    ]
    healthy = bool(old_healthy) or change.old.ready_replicas > 0
    what = "; ".join(change.changes[:3])
    deployment = ctx.evidence.deployment or "the deployment"
    symptom_text = symptom.root_cause if symptom is not None else "its pods fail"
    cause = (
        f"Bad rollout: revision {change.new.revision} of {deployment} changed {what}; "
        f"new pods fail ({clip(symptom_text, 140)})"
        + (f" while revision {change.old.revision} pods were healthy" if healthy else "")
    )
    lines = [
        f"Deployment {deployment}: revision {change.new.revision} ({change.new.name}) vs "
        f"{change.old.revision} ({change.old.name}): {clip(what, 200)}",
        f"ReplicaSet {change.new.name}: ready {change.new.ready_replicas}/{change.new.replicas}; "
        f"ReplicaSet {change.old.name}: ready {change.old.ready_replicas}/{change.old.replicas}",
    ]
    if old_healthy:
        lines.append(f"healthy pods of revision {change.old.revision}: {', '.join(old_healthy[:3])}")
    lines.extend(symptom.evidence[:4] if symptom is not None else [])
    confidence = 0.92 if healthy else 0.6
    if symptom is not None and not healthy and symptom.confidence > confidence:
        return None
    return Match(Category.BAD_ROLLOUT, cause, tuple(lines), confidence, "bad-rollout", "bad_rollout")


def _in_revision(
    template_hash: str | None, owners: tuple[tuple[str, str], ...], change: RolloutChange, *, new: bool
) -> bool:
    revision = change.new if new else change.old
    if revision is None:
        return False
    if template_hash is not None and revision.template_hash is not None:
        return template_hash == revision.template_hash
    return any(kind == "ReplicaSet" and name == revision.name for kind, name in owners)


def _unknown(ctx: Context) -> Match:
    lines: list[str] = []
    for pod in ctx.pods[:2]:
        lines.append(f"{where(pod)}: phase={pod.phase or '?'}" + (f" reason={pod.reason}" if pod.reason else ""))
        for item in pod.containers:
            lines.extend(state_lines(pod, item))
    lines.extend(event_line(e) for e in ctx.events if e.type == "Warning")
    for record in ctx.logs:
        if record.summary.first_error:
            lines.append(f"log {record.label()}: first error: {record.summary.first_error}")
    lines.extend(f"note: {note}" for note in ctx.evidence.notes[:3])
    if not lines:
        lines.append("no evidence could be gathered")
    confidence = 0.1 if len(lines) > 1 else 0.05
    return Match(
        Category.UNKNOWN,
        "Unknown: no known failure signature matched the evidence; see the evidence lines",
        tuple(lines),
        confidence,
        None,
        "unknown",
    )
