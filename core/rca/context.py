"""What every signature reads, computed once per diagnosis, plus evidence-line formatting.

Signatures are small functions ``(Context) -> Match | None``. The context gathers the
focus pods' facts, their events and logs, so a signature never walks raw JSON, and
formats the evidence lines (``Pod/ns/name: ...``) the same way for every signature.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from core.rca.facts import ContainerFacts, EventFact, PodFacts, Termination
from core.rca.logs import LogSummary
from core.rca.records import Evidence, LogRecord

MAX_LINE = 300


def clip(line: str, limit: int = MAX_LINE) -> str:
    line = " ".join(line.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


@dataclass(frozen=True)
class Context:
    evidence: Evidence
    now: datetime
    pods: tuple[PodFacts, ...]
    events: tuple[EventFact, ...]
    logs: tuple[LogRecord, ...]

    @classmethod
    def of(cls, evidence: Evidence, now: datetime) -> Context:
        pods = evidence.pods()
        names = {pod.name for pod in pods}
        subject = evidence.subject.object
        if subject is not None and subject.kind == "Pod":
            names.add(subject.name)
        events = tuple(e for e in evidence.events if e.object_kind in ("Pod", "") and e.object_name in names)
        logs = tuple(record for record in evidence.logs if record.pod in names and not record.unavailable)
        return cls(evidence=evidence, now=now, pods=pods, events=events, logs=logs)

    @property
    def pod(self) -> PodFacts | None:
        return self.pods[0] if self.pods else None

    def containers(self) -> list[tuple[PodFacts, ContainerFacts]]:
        """Every (pod, container) pair of the focus pods, the subject's container first."""
        hinted = self.evidence.subject.container
        pairs = [(pod, item) for pod in self.pods for item in pod.containers]
        return sorted(pairs, key=lambda pair: pair[1].name != hinted)

    def pod_events(self, *reasons: str) -> list[EventFact]:
        return [event for event in self.events if not reasons or event.reason in reasons]

    def summaries(self, pod: str, container: str) -> list[tuple[LogRecord, LogSummary]]:
        """Log summaries of one container, the previous (crashed) instance first."""
        records = [r for r in self.logs if r.pod == pod and r.container == container]
        records.sort(key=lambda record: not record.previous)
        return [(record, record.summary) for record in records]

    def is_job(self) -> bool:
        subject = self.evidence.subject.object
        if subject is not None and subject.kind == "Job":
            return True
        return any(kind == "Job" for pod in self.pods for kind, _ in pod.owners)


def where(pod: PodFacts, container: ContainerFacts | None = None) -> str:
    base = f"Pod/{pod.namespace or ''}/{pod.name}"
    if container is None:
        return base
    return f"{base} container {container.name}{' (init)' if container.init else ''}"


def termination_line(pod: PodFacts, container: ContainerFacts, term: Termination, label: str) -> str:
    parts = [f"{where(pod, container)}: {label} terminated reason={term.reason or '?'}"]
    if term.exit_code is not None:
        parts.append(f"exitCode={term.exit_code}")
    if term.finished_at is not None:
        parts.append(f"at {term.finished_at.isoformat()}")
    if term.message:
        parts.append(f"message={term.message}")
    return clip(" ".join(parts))


def state_lines(pod: PodFacts, container: ContainerFacts) -> list[str]:
    lines: list[str] = []
    if container.waiting_reason:
        message = f": {container.waiting_message}" if container.waiting_message else ""
        lines.append(clip(f"{where(pod, container)}: waiting {container.waiting_reason}{message}"))
    if container.terminated is not None:
        lines.append(termination_line(pod, container, container.terminated, "state"))
    if container.last_terminated is not None:
        lines.append(termination_line(pod, container, container.last_terminated, "lastState"))
    if container.restart_count:
        lines.append(f"{where(pod, container)}: restartCount={container.restart_count}")
    return lines


def event_line(event: EventFact) -> str:
    count = f" x{event.count}" if event.count > 1 else ""
    return clip(
        f"Event {event.type or '?'} {event.reason}{count} on {event.object_kind}/{event.object_name}: {event.message}"
    )


def log_line(record: LogRecord, line: str) -> str:
    return clip(f"log {record.label()}: {line}")
