"""Strict placeholders for playbook parameters: ``{{ incident.namespace }}`` and nothing more.

Playbook parameters name the objects a mutating tool will touch, so rendering is
deliberately dumb and loud: a placeholder is a dotted path looked up in plain mappings,
with no expressions, filters, eval or Jinja. An unknown variable, a missing value or a
stray brace is a ``ConfigError``; a rendered target that is empty, a wildcard, or in
another namespace than the incident's is refused with ``ApprovalError`` before anyone is
asked to approve it. A value that is exactly one placeholder keeps its type (``replicas:
"{{ rca.replicas }}"`` stays an int); anything else renders as text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from core.errors import ApprovalError, ConfigError
from core.models import Incident
from core.tools import TARGET_PARAMS, TOOLS, Action, ParamValue

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_][A-Za-z0-9_\-]*)*)\s*\}\}")
_WHOLE = re.compile(r"^\s*" + _PLACEHOLDER.pattern + r"\s*$")

Context = Mapping[str, Any]


def lookup(path: str, context: Context) -> ParamValue:
    """Resolve ``a.b.c`` through nested mappings; every miss is a ConfigError naming what exists."""
    current: Any = context
    walked: list[str] = []
    for part in path.split("."):
        if current is None:
            raise ConfigError(f"unknown variable {path}: {'.'.join(walked)} has no value")
        if not isinstance(current, Mapping):
            raise ConfigError(f"unknown variable {path}: {'.'.join(walked)} is a value, not a mapping")
        if part not in current:
            scope = ".".join(walked) or "the context"
            known = ", ".join(sorted(map(str, current))) or "nothing"
            raise ConfigError(f"unknown variable {path}: {scope} has no {part!r} (it has: {known})")
        current = current[part]
        walked.append(part)
    if current is None:
        raise ConfigError(f"variable {path} has no value")
    if isinstance(current, bool | int | float | str):
        return current
    raise ConfigError(f"variable {path} is a {type(current).__name__}, not a single value")


def render_value(template: ParamValue, context: Context, where: str = "value") -> ParamValue:
    """Render one parameter value; non-strings pass through untouched."""
    if not isinstance(template, str):
        return template
    whole = _WHOLE.match(template)
    if whole:
        return _at(where, template, lambda: lookup(whole.group(1), context))
    rendered = str(_at(where, template, lambda: _PLACEHOLDER.sub(lambda m: str(lookup(m.group(1), context)), template)))
    if "{{" in rendered or "}}" in rendered or "{%" in template:
        raise ConfigError(
            f"{where}: invalid template {template!r}: only {{{{ dotted.name }}}} placeholders are allowed"
        )
    return rendered


def _at(where: str, template: str, render: Any) -> ParamValue:
    try:
        value: ParamValue = render()
    except ConfigError as e:
        raise ConfigError(f"{where}: template {template!r}: {e}") from e
    return value


def render_params(params: Mapping[str, ParamValue], context: Context, where: str = "params") -> dict[str, ParamValue]:
    return {key: render_value(value, context, f"{where}.{key}") for key, value in params.items()}


def check_target(action: Action, namespace: str | None, where: str = "action") -> None:
    """Refuse an action whose rendered target is empty, a pattern, or outside the incident's namespace."""
    for key in sorted(TARGET_PARAMS & set(action.params)):
        value = action.params[key]
        text = str(value).strip() if isinstance(value, str) else ""
        if not text:
            raise ApprovalError(f"{where}: refusing {action.tool}: target {key} rendered empty (got {value!r})")
        if any(ch in text for ch in "/*?") or text != value:
            raise ApprovalError(f"{where}: refusing {action.tool}: target {key}={value!r} is not a plain object name")
    info = TOOLS.get(action.tool)
    if info is None or info.cluster_scoped:
        return
    target_ns = action.namespace
    if namespace is None:
        if info.mutating:
            raise ApprovalError(
                f"{where}: refusing {action.tool}: the incident has no namespace, so a namespaced change cannot be"
                " scoped to it"
            )
        return
    if target_ns is not None and target_ns != namespace:
        raise ApprovalError(
            f"{where}: refusing {action.tool}: target namespace {target_ns!r} differs from the incident's"
            f" namespace {namespace!r}"
        )


def render_action(
    tool: str, params: Mapping[str, ParamValue], context: Context, namespace: str | None, where: str = "action"
) -> Action:
    """Render and check one tool call: what the approver will see is what will run."""
    info = TOOLS.get(tool)
    missing = [p for p in (info.required if info else ()) if p not in params]
    if info is None or missing:
        what = f"unknown tool {tool!r}" if info is None else f"{tool} needs parameter(s) {', '.join(missing)}"
        raise ConfigError(f"{where}: {what}")
    action = Action(tool=tool, params=render_params(params, context, f"{where}.params"))
    check_target(action, namespace, where)
    return action


def incident_context(
    incident: Incident, rca: Mapping[str, Any] | None = None, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The variables a playbook may use: ``incident.*`` (with labels and object) and ``rca.*``."""
    obj = incident.object
    context: dict[str, Any] = {
        "incident": {
            "id": str(incident.id),
            "namespace": incident.namespace,
            "severity": incident.severity.value,
            "rule": incident.rule,
            "title": incident.title,
            "labels": dict(incident.labels),
            "object": None if obj is None else {"kind": obj.kind, "name": obj.name, "namespace": obj.namespace},
        },
        "rca": dict(rca or {}),
    }
    context.update(extra or {})
    return context
