"""The bounded, redacting accumulator behind the evidence plan.

Each ``_Collector`` method is a small generator (use with ``yield from``) that asks one
query, enforces the budgets, validates the answer's shape, slims and redacts it and
records it. The plan in ``core.rca.evidence`` only decides *what* to ask next.

Why here: budgets and hygiene in one place means no plan branch can forget them. A
query over ``max_queries`` is not asked (it answers ``Unavailable``); a result that
would exceed ``max_bytes`` is used to navigate but not kept; every kept object has lost
its ``managedFields`` and last-applied annotation and went through ``redact_obj``.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Mapping, Sequence
from datetime import datetime
from typing import Any

from core.detectors.objects import items, mapping
from core.rca.facts import EventFact, event_fact
from core.rca.logs import analyze, to_text
from core.rca.queries import (
    Endpoints,
    GetNode,
    GetObject,
    ListEvents,
    ListObjects,
    PodLogs,
    Query,
    Result,
    RolloutHistory,
    Unavailable,
    describe,
)
from core.rca.records import Budget, Evidence, ListRecord, LogRecord, ObjectRecord, Subject
from core.rca.redact import redact, redact_obj
from core.rca.rollout import RolloutChange

Step = Generator[Query, Result, Any]
_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def slim(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A copy without the bulky parts that never help a diagnosis (managedFields, last-applied)."""
    result = dict(obj)
    metadata = mapping(result.get("metadata"))
    if metadata:
        metadata = {key: value for key, value in metadata.items() if key != "managedFields"}
        annotations = mapping(metadata.get("annotations"))
        if _LAST_APPLIED in annotations:
            metadata["annotations"] = {k: v for k, v in annotations.items() if k != _LAST_APPLIED}
        result["metadata"] = metadata
    return result


def _size(obj: Any) -> int:
    try:
        return len(json.dumps(obj, default=str, separators=(",", ":")))
    except (TypeError, ValueError, RecursionError):
        return 1 << 30


def as_items(result: Result) -> list[dict[str, Any]] | None:
    """The items of a list answer (a JSON list or a ``{"items": [...]}`` object); None if neither."""
    if isinstance(result, Unavailable | str | bytes):
        return None
    if isinstance(result, Mapping):
        raw = result.get("items")
        return [dict(item) for item in items(raw)] if isinstance(raw, Sequence) else None
    if isinstance(result, Sequence):
        return [dict(item) for item in items(result)]
    return None


class Collector:
    """Mutable while a plan runs; ``build`` freezes it into ``Evidence``."""

    def __init__(self, subject: Subject, budget: Budget) -> None:
        self.subject = subject
        self.budget = budget
        self.queries = 0
        self.bytes = 0
        self.objects: dict[tuple[str, str | None, str], ObjectRecord] = {}
        self.lists: list[ListRecord] = []
        self.events: dict[tuple[str, str], tuple[EventFact, ...]] = {}
        self.logs: list[LogRecord] = []
        self.focus: list[str] = []
        self.deployment: str | None = None
        self.rollout: RolloutChange | None = None
        self.notes: list[str] = []
        self._asked: set[Query] = set()

    def note(self, text: str) -> None:
        if text not in self.notes and len(self.notes) < 50:
            self.notes.append(text)

    def ask(self, query: Query) -> Step:
        """Yield ``query`` unless a budget forbids it; return the answer or ``Unavailable``."""
        if query in self._asked:
            return Unavailable("already asked")
        if self.queries >= self.budget.max_queries:
            self.note(f"query budget of {self.budget.max_queries} exhausted; skipped: {describe(query)}")
            return Unavailable("query budget exhausted")
        self.queries += 1
        self._asked.add(query)
        result = yield query
        if isinstance(result, Unavailable):
            self.note(f"unavailable: {describe(query)}: {redact(str(result.reason))[:200]}")
            return result
        if not isinstance(result, Mapping | Sequence):
            self.note(f"unexpected answer to {describe(query)}: {type(result).__name__}")
            return Unavailable(f"unexpected answer type {type(result).__name__}")
        return result

    def _room(self, size: int) -> bool:
        if self.bytes + size > self.budget.max_bytes:
            return False
        self.bytes += size
        return True

    def get(self, kind: str, namespace: str | None, name: str) -> Step:
        """Fetch and keep one object; returns its (redacted) body or None."""
        key = (kind, namespace, name)
        if key in self.objects:
            return self.objects[key].body
        query: Query = GetNode(name) if kind == "Node" else GetObject(kind, namespace, name)
        result = yield from self.ask(query)
        if not isinstance(result, Mapping):
            reason = result.reason if isinstance(result, Unavailable) else "not an object"
            self.objects[key] = ObjectRecord(kind=kind, namespace=namespace, name=name, unavailable=reason)
            return None
        return self.keep(kind, namespace, name, result)

    def keep(self, kind: str, namespace: str | None, name: str, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Record an object already in hand (e.g. from a list); returns the redacted body."""
        body: dict[str, Any] = redact_obj(slim(obj))
        key = (kind, namespace, name)
        if key not in self.objects:
            if self._room(_size(body)):
                self.objects[key] = ObjectRecord(kind=kind, namespace=namespace, name=name, body=body)
            else:
                self.note(f"size budget: {kind}/{namespace or ''}/{name} used but not kept")
                self.objects[key] = ObjectRecord(
                    kind=kind, namespace=namespace, name=name, unavailable="size budget exhausted"
                )
        return body

    def list_objects(self, kind: str, namespace: str | None, selector: str | None) -> Step:
        """List objects; keeps up to ``max_list_items`` (within the size budget); returns them all."""
        result = yield from self.ask(ListObjects(kind, namespace, selector))
        return self._keep_list(kind, namespace, selector, result)

    def history(self, namespace: str, deployment: str) -> Step:
        result = yield from self.ask(RolloutHistory(namespace, deployment))
        return self._keep_list("ReplicaSet", namespace, f"owner=Deployment/{deployment}", result)

    def _keep_list(self, kind: str, namespace: str | None, selector: str | None, result: Result) -> list[Any]:
        found = as_items(result)
        if found is None:
            reason = result.reason if isinstance(result, Unavailable) else "not a list"
            self.lists.append(ListRecord(kind=kind, namespace=namespace, selector=selector, unavailable=reason))
            return []
        kept: list[dict[str, Any]] = []
        for item in found[: self.budget.max_list_items]:
            body = redact_obj(slim(item))
            if not self._room(_size(body)):
                self.note(f"size budget: list of {kind} cut at {len(kept)} items")
                break
            kept.append(body)
        if len(found) > self.budget.max_list_items:
            self.note(f"list of {kind} in {namespace or '*'} cut to {self.budget.max_list_items} items")
        self.lists.append(ListRecord(kind=kind, namespace=namespace, selector=selector, items=tuple(kept)))
        return [redact_obj(slim(item)) for item in found]

    def events_for(self, namespace: str | None, kind: str, name: str) -> Step:
        """The most recent events of one object (at most ``max_events``)."""
        if (kind, name) in self.events:
            return self.events[(kind, name)]
        result = yield from self.ask(ListEvents(namespace, kind, name))
        facts = [fact for item in as_items(result) or [] if (fact := event_fact(item)) is not None]
        facts = [f for f in facts if f.object_name in ("", name) and f.object_kind in ("", kind)]
        facts.sort(key=lambda fact: fact.last_seen.timestamp() if fact.last_seen else float("-inf"))
        kept = tuple(
            EventFact(**{**fact.__dict__, "message": redact(fact.message)}) for fact in facts[-self.budget.max_events :]
        )
        self.bytes += sum(len(fact.message) + 64 for fact in kept)
        self.events[(kind, name)] = kept
        return kept

    def endpoints(self, namespace: str, service: str) -> Step:
        key = ("Endpoints", namespace, service)
        if key in self.objects:
            return self.objects[key].body
        result = yield from self.ask(Endpoints(namespace, service))
        if not isinstance(result, Mapping):
            self.objects[key] = ObjectRecord(
                kind="Endpoints", namespace=namespace, name=service, unavailable="unavailable"
            )
            return None
        return self.keep("Endpoints", namespace, service, result)

    def pod_logs(self, namespace: str, pod: str, container: str, previous: bool) -> Step:
        """Fetch, analyse and keep the tail of one container log."""
        budget = self.budget
        query = PodLogs(namespace, pod, container, previous, budget.log_tail_lines, budget.analyze_bytes)
        result = yield from self.ask(query)
        if isinstance(result, Unavailable) or not isinstance(result, str | bytes):
            reason = result.reason if isinstance(result, Unavailable) else "not log text"
            self.logs.append(
                LogRecord(namespace=namespace, pod=pod, container=container, previous=previous, unavailable=reason)
            )
            return None
        summary = analyze(result, max_bytes=budget.analyze_bytes, max_lines=budget.analyze_lines)
        text, _ = to_text(result)
        room = max(min(budget.max_log_bytes, budget.max_bytes - self.bytes), 0)
        tail = text[-room:] if room else ""
        self.bytes += len(tail)
        record = LogRecord(
            namespace=namespace,
            pod=pod,
            container=container,
            previous=previous,
            text=redact(tail),
            truncated=len(tail) < len(text) or summary.truncated,
            summary=summary,
        )
        self.logs.append(record)
        return record

    def build(self, now: datetime) -> Evidence:
        return Evidence(
            subject=self.subject,
            collected_at=now,
            objects=tuple(self.objects.values()),
            lists=tuple(self.lists),
            events=tuple(fact for facts in self.events.values() for fact in facts),
            logs=tuple(self.logs),
            focus_pods=tuple(self.focus),
            deployment=self.deployment,
            rollout=self.rollout,
            notes=tuple(self.notes),
            queries_used=self.queries,
            bytes_kept=self.bytes,
        )
