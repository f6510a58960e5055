"""Selecting and reading the core/v1 Events that concern one object.

Some failures are visible only as Events (probe failures, mount errors, provisioning
errors): the object's status looks fine or merely "not ready". Watchers pass the
recent Events of their namespace; these helpers keep those about one object, and,
when the caller gives ``now``, only those seen within a window, because Events live
for an hour and a probe that failed 50 minutes ago is history, not a condition.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from core.detectors.objects import aware, integer, items, mapping, name_of, namespace_of, sub, text, timestamp

DEFAULT_EVENT_WINDOW = timedelta(minutes=15)


@dataclass(frozen=True)
class ObjectEvent:
    """The parts of one Event the detectors use."""

    reason: str
    message: str
    type: str
    count: int
    seen_at: datetime | None
    container: str | None
    init_container: bool


def event_time(event: Mapping[str, Any]) -> datetime | None:
    """When the event was last seen: lastTimestamp, series.lastObservedTime, eventTime, firstTimestamp."""
    for moment in (
        event.get("lastTimestamp"),
        sub(event, "series").get("lastObservedTime"),
        event.get("eventTime"),
        event.get("firstTimestamp"),
        sub(event, "metadata").get("creationTimestamp"),
    ):
        parsed = timestamp(moment)
        if parsed is not None:
            return parsed
    return None


def container_of_field_path(field_path: Any) -> tuple[str | None, bool]:
    """``spec.containers{app}`` -> ("app", False); ``spec.initContainers{init}`` -> ("init", True)."""
    path = text(field_path)
    if path is None or not path.endswith("}") or "{" not in path:
        return None, False
    head, _, rest = path.partition("{")
    name = rest[:-1]
    return (name or None), head.endswith("initContainers")


def events_for(
    obj: Mapping[str, Any],
    kind: str,
    events: Sequence[Any],
    *,
    now: datetime | None = None,
    window: timedelta = DEFAULT_EVENT_WINDOW,
) -> list[ObjectEvent]:
    """Events whose involvedObject is ``obj``, oldest first; with ``now``, only recent ones."""
    name, namespace, uid = name_of(obj), namespace_of(obj), text(sub(obj, "metadata").get("uid"))
    if name is None:
        return []
    found: list[ObjectEvent] = []
    for event in items(events):
        involved = mapping(event.get("involvedObject") or event.get("regarding"))
        if text(involved.get("name")) != name or text(involved.get("kind")) not in (None, kind):
            continue
        other_ns, other_uid = text(involved.get("namespace")), text(involved.get("uid"))
        if (namespace and other_ns and other_ns != namespace) or (uid and other_uid and other_uid != uid):
            continue
        seen_at = event_time(event)
        if now is not None and seen_at is not None and aware(now) - seen_at > window:
            continue
        container, init = container_of_field_path(involved.get("fieldPath"))
        found.append(
            ObjectEvent(
                reason=text(event.get("reason")) or "",
                message=text(event.get("message") or event.get("note")) or "",
                type=text(event.get("type")) or "",
                count=max(integer(event.get("count")) or 1, 1),
                seen_at=seen_at,
                container=container,
                init_container=init,
            )
        )
    found.sort(key=lambda item: item.seen_at.timestamp() if item.seen_at else float("-inf"))
    return found
