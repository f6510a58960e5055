"""Readers for Kubernetes API objects given as untrusted JSON dicts.

Watchers hand the detectors whatever the API server (or an emulator, or a stale cache)
sent: fields may be missing, ``null``, of the wrong type, or lists may hold garbage.
A detector that raises on one odd pod would blind a whole namespace watcher, so every
read goes through these helpers, which answer a neutral value (empty mapping, empty
tuple, ``None``) instead of raising. Nothing here interprets Kubernetes semantics
beyond the shape of ``metadata``, ``conditions`` and timestamps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

EMPTY: Mapping[str, Any] = {}

# Kubernetes names are at most 253 characters; longer "names" are garbage we refuse.
_MAX_NAME = 253


def mapping(value: Any) -> Mapping[str, Any]:
    """``value`` if it is a mapping, else an empty one."""
    return value if isinstance(value, Mapping) else EMPTY


def sub(obj: Any, *path: str) -> Mapping[str, Any]:
    """The mapping at ``obj[path[0]][path[1]]...``, empty when any step is not a mapping."""
    current = mapping(obj)
    for key in path:
        current = mapping(current.get(key))
    return current


def items(value: Any) -> tuple[Mapping[str, Any], ...]:
    """The mapping elements of a JSON list; non-lists and non-mapping elements are dropped."""
    if not isinstance(value, Sequence) or isinstance(value, str | bytes):
        return ()
    return tuple(element for element in value if isinstance(element, Mapping))


def text(value: Any) -> str | None:
    """``value`` if it is a non-empty string, else ``None``."""
    return value if isinstance(value, str) and value else None


def integer(value: Any) -> int | None:
    """``value`` if it is an int (not a bool), or a string of digits; else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit() and len(value) < 20:
        return int(value.strip())
    return None


def timestamp(value: Any) -> datetime | None:
    """An RFC 3339 timestamp as an aware datetime (UTC when no zone is given); else ``None``."""
    raw = text(value)
    if raw is None or len(raw) > 64:
        return None
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def aware(moment: datetime) -> datetime:
    """``moment`` with UTC assumed when it carries no zone, so comparisons never raise."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def kind_of(obj: Any) -> str | None:
    return text(mapping(obj).get("kind"))


def name_of(obj: Any) -> str | None:
    name = text(sub(obj, "metadata").get("name"))
    return name if name is not None and len(name) <= _MAX_NAME else None


def namespace_of(obj: Any) -> str | None:
    namespace = text(sub(obj, "metadata").get("namespace"))
    return namespace if namespace is not None and len(namespace) <= _MAX_NAME else None


def labels_of(obj: Any) -> Mapping[str, Any]:
    return sub(obj, "metadata", "labels")


def conditions(obj: Any) -> dict[str, Mapping[str, Any]]:
    """``status.conditions`` by type; the last one wins when a type repeats."""
    found: dict[str, Mapping[str, Any]] = {}
    for condition in items(sub(obj, "status").get("conditions")):
        kind = text(condition.get("type"))
        if kind is not None:
            found[kind] = condition
    return found


def condition_is(condition: Mapping[str, Any] | None, *statuses: str) -> bool:
    """Whether the condition exists and its ``status`` is one of ``statuses`` ("True", ...)."""
    return condition is not None and condition.get("status") in statuses


def is_terminating(obj: Any) -> bool:
    return sub(obj, "metadata").get("deletionTimestamp") is not None


def generation_unobserved(obj: Any) -> bool:
    """True when the controller has not yet seen the latest spec (its status is stale)."""
    generation = integer(sub(obj, "metadata").get("generation"))
    observed = integer(sub(obj, "status").get("observedGeneration"))
    return generation is not None and observed is not None and observed < generation


def first_line(value: Any, limit: int = 300) -> str:
    """A short one-line form of a free-text field, for messages."""
    raw = text(value) or ""
    line = " ".join(raw[: limit * 2].split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
