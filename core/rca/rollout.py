"""What changed between a Deployment's two newest ReplicaSet revisions.

"It broke after the deploy" is the most common root cause in production, and the
ReplicaSets a Deployment keeps are its rollout history: each carries the pod template
of one revision (``deployment.kubernetes.io/revision``). Comparing the newest two
templates names the change an engineer would roll back: an image, an env var, a
resource limit, a command. Env values are redacted here, since they end up in chat.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

from core.detectors.objects import integer, items, mapping, name_of, sub, text
from core.rca.redact import looks_secret_key, redact

REVISION = "deployment.kubernetes.io/revision"
MAX_CHANGES = 12
_VALUE = 80


class RevisionInfo(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    revision: int
    template_hash: str | None
    replicas: int
    ready_replicas: int


class RolloutChange(BaseModel):
    """The newest revision, the one before it, and what changed between their pod templates."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    new: RevisionInfo
    old: RevisionInfo | None
    changes: tuple[str, ...]


def revision_of(replica_set: Any) -> int | None:
    return integer(sub(replica_set, "metadata", "annotations").get(REVISION))


def _info(replica_set: Mapping[str, Any], revision: int) -> RevisionInfo:
    status = sub(replica_set, "status")
    return RevisionInfo(
        name=name_of(replica_set) or "?",
        revision=revision,
        template_hash=text(sub(replica_set, "metadata", "labels").get("pod-template-hash")),
        replicas=max(integer(status.get("replicas")) or 0, 0),
        ready_replicas=max(integer(status.get("readyReplicas")) or 0, 0),
    )


def _value(value: Any) -> str:
    raw = value if isinstance(value, str) else repr(value)
    raw = redact(raw)
    return raw if len(raw) <= _VALUE else raw[: _VALUE - 1] + "…"


def _env(container: Mapping[str, Any]) -> dict[str, tuple[str, str | None]]:
    """Env name -> (comparable raw form, shown form or None when the value must not be shown)."""
    found: dict[str, tuple[str, str | None]] = {}
    for env in items(container.get("env")):
        name = text(env.get("name"))
        if name is None:
            continue
        if "valueFrom" in env:
            raw = repr(env.get("valueFrom"))
            found[name] = (raw, "from " + ",".join(sorted(mapping(env.get("valueFrom")).keys())))
        else:
            raw = str(env.get("value") or "")
            found[name] = (raw, None if looks_secret_key(name) else _value(raw))
    return found


def _flat_resources(container: Mapping[str, Any]) -> dict[str, str]:
    flat: dict[str, str] = {}
    for section in ("limits", "requests"):
        for key, value in sub(container, "resources", section).items():
            flat[f"{section}.{key}"] = str(value)
    return flat


def _diff_container(name: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    changes: list[str] = []
    if old.get("image") != new.get("image"):
        changes.append(f"image of {name}: {_value(old.get('image'))} -> {_value(new.get('image'))}")
    for key in ("command", "args"):
        if old.get(key) != new.get(key):
            changes.append(f"{key} of {name}: {_value(old.get(key))} -> {_value(new.get(key))}")
    old_env, new_env = _env(old), _env(new)
    for env in sorted(set(old_env) | set(new_env)):
        if env not in old_env:
            changes.append(f"env {env} added to {name}")
        elif env not in new_env:
            changes.append(f"env {env} removed from {name}")
        elif old_env[env][0] != new_env[env][0]:
            before, after = old_env[env][1], new_env[env][1]
            detail = f": {before} -> {after}" if before is not None and after is not None else ""
            changes.append(f"env {env} of {name} changed{detail}")
    old_res, new_res = _flat_resources(old), _flat_resources(new)
    for key in sorted(set(old_res) | set(new_res)):
        if old_res.get(key) != new_res.get(key):
            changes.append(f"resources of {name}: {key} {old_res.get(key, 'unset')} -> {new_res.get(key, 'unset')}")
    for key in ("livenessProbe", "readinessProbe", "startupProbe"):
        if old.get(key) != new.get(key):
            changes.append(f"{key} of {name} changed")
    return changes


def diff_templates(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[str, ...]:
    """Human-readable changes between two pod templates (``spec.template``)."""
    changes: list[str] = []
    for key in ("initContainers", "containers"):
        old_by_name = {text(c.get("name")) or "?": c for c in items(sub(old, "spec").get(key))}
        new_by_name = {text(c.get("name")) or "?": c for c in items(sub(new, "spec").get(key))}
        for name in sorted(set(old_by_name) | set(new_by_name)):
            if name not in old_by_name:
                changes.append(f"container {name} added")
            elif name not in new_by_name:
                changes.append(f"container {name} removed")
            else:
                changes.extend(_diff_container(name, old_by_name[name], new_by_name[name]))
    for key in ("volumes", "nodeSelector", "tolerations", "affinity", "serviceAccountName"):
        if sub(old, "spec").get(key) != sub(new, "spec").get(key):
            changes.append(f"pod {key} changed")
    return tuple(changes[:MAX_CHANGES])


def rollout_change(replica_sets: Sequence[Any]) -> RolloutChange | None:
    """The newest revision and its change from the previous one; None without revisions."""
    revised = sorted(
        ((revision, rs) for rs in items(replica_sets) if (revision := revision_of(rs)) is not None),
        key=lambda pair: pair[0],
        reverse=True,
    )
    if not revised:
        return None
    new_revision, new_rs = revised[0]
    if len(revised) == 1:
        return RolloutChange(new=_info(new_rs, new_revision), old=None, changes=())
    old_revision, old_rs = revised[1]
    return RolloutChange(
        new=_info(new_rs, new_revision),
        old=_info(old_rs, old_revision),
        changes=diff_templates(sub(old_rs, "spec", "template"), sub(new_rs, "spec", "template")),
    )
