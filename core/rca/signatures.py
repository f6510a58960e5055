"""The signature library, container failures: what an engineer recognises on sight.

Each signature is a function ``(Context) -> Match | None`` that names a root cause
only when the evidence shows it (a termination reason, a kubelet message, a log line)
and returns the lines that show it. Confidence reflects how direct the evidence is:
a kubelet's ``OOMKilled`` is near-certain (0.95), an exit code without a log line
much less (0.45). ``diagnosis.diagnose`` runs them all and keeps the strongest.

Placement failures (scheduling, storage, nodes) live in ``core.rca.placement``.
"""

from __future__ import annotations

import re
from datetime import timedelta

from core.rca.categories import Category, Match, Playbook
from core.rca.context import Context, clip, event_line, log_line, state_lines, where
from core.rca.facts import ContainerFacts, PodFacts, duration_text
from core.rca.logs import LogCategory, categorize
from core.rca.records import LogRecord

_IMAGE_WAITING = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"})
_RATE_LIMIT = re.compile(r"toomanyrequests|too many requests|\b429\b|rate limit", re.IGNORECASE)
_NOT_FOUND = re.compile(r"manifest unknown|: not found|\bnot found\b|NotFound|name unknown|no such image", re.I)
_AUTH = re.compile(
    r"unauthorized|authentication required|denied|\b401\b|\b403\b|forbidden|no basic auth credentials|"
    r"authorization failed|insufficient_scope|failed to authorize",
    re.IGNORECASE,
)
_WEAK_NOT_FOUND = re.compile(r"does not exist|InvalidImageName|invalid reference format|couldn't parse image", re.I)

_CONFIG_MISSING = re.compile(r"\b(configmaps?|secrets?) \"([^\"]{1,253})\" not found", re.IGNORECASE)
_KEY_MISSING = re.compile(r"couldn't find key (\S{1,253}) in (ConfigMap|Secret) ([\w.-]{1,253})/([\w.-]{1,253})")
_BAD_COMMAND = re.compile(
    r"executable file not found|exec format error|no such file or directory|permission denied|"
    r"exec: \"[^\"]{1,200}\"",
    re.IGNORECASE,
)
_COMMAND_WAITING = frozenset({"RunContainerError", "CreateContainerError", "StartError", "ContainerCannotRun"})
_DNS = re.compile(
    r"no such host|name or service not known|could not translate host|enotfound|eai_again|"
    r"unknownhostexception|temporary failure in name resolution"
)
_PROBE = re.compile(r"^(Liveness|Readiness|Startup) probe (?:failed|errored)", re.IGNORECASE)


def _crash_playbook(ctx: Context) -> Playbook:
    return "failed-job" if ctx.is_job() else "crashloop"


def image_pull(ctx: Context) -> Match | None:
    for pod, item in ctx.containers():
        if item.waiting_reason not in _IMAGE_WAITING:
            continue
        events = [e for e in ctx.pod_events("Failed", "ErrImagePull", "InspectFailed") if "image" in e.message.lower()]
        messages = " ".join([item.waiting_message, *(e.message for e in events)])
        lines = [*state_lines(pod, item), *(event_line(e) for e in events[-3:])]
        image = item.image or "?"
        if _RATE_LIMIT.search(messages):
            return Match(
                Category.REGISTRY_RATE_LIMIT,
                f"Registry rate limit: pulling {image} was refused with 429 Too Many Requests",
                tuple(lines),
                0.9,
                "image-pull",
                "image_rate_limit",
            )
        if _NOT_FOUND.search(messages):
            return Match(
                Category.IMAGE_NOT_FOUND,
                f"Image {image} not found in its registry (tag or name does not exist)",
                tuple(lines),
                0.9,
                "image-pull",
                "image_not_found",
            )
        if _AUTH.search(messages):
            ambiguous = "does not exist" in messages
            return Match(
                Category.REGISTRY_AUTH,
                f"Registry refused credentials for {image}"
                + (" (or the repository does not exist)" if ambiguous else "")
                + "; check imagePullSecrets",
                tuple(lines),
                0.65 if ambiguous else 0.88,
                "image-pull",
                "registry_auth",
            )
        if _WEAK_NOT_FOUND.search(messages) or item.waiting_reason == "InvalidImageName":
            return Match(
                Category.IMAGE_NOT_FOUND,
                f"Image reference {image} is invalid or does not exist",
                tuple(lines),
                0.75,
                "image-pull",
                "image_invalid",
            )
    return None


def config_object_missing(ctx: Context) -> Match | None:
    """CreateContainerConfigError / FailedMount naming a missing ConfigMap, Secret or key."""
    candidates: list[tuple[str, str]] = []
    for pod, item in ctx.containers():
        if item.waiting_reason == "CreateContainerConfigError" and item.waiting_message:
            candidates.append((item.waiting_message, state_lines(pod, item)[0]))
    for event in ctx.pod_events("Failed", "FailedMount"):
        candidates.append((event.message, event_line(event)))
    for message, line in candidates:
        key = _KEY_MISSING.search(message)
        if key is not None:
            cause = f"Missing config: key {key.group(1)} not found in {key.group(2)} {key.group(3)}/{key.group(4)}"
            return Match(Category.MISSING_CONFIG, cause, (line,), 0.95, None, "config_object_missing")
        missing = _CONFIG_MISSING.search(message)
        if missing is not None:
            kind = "ConfigMap" if missing.group(1).lower().startswith("configmap") else "Secret"
            cause = f'Missing config: {kind} "{missing.group(2)}" referenced by the pod does not exist'
            return Match(Category.MISSING_CONFIG, cause, (line,), 0.95, None, "config_object_missing")
    return None


def bad_command(ctx: Context) -> Match | None:
    for pod, item in ctx.containers():
        term = item.latest_termination
        texts = [item.waiting_message if item.waiting_reason in _COMMAND_WAITING else ""]
        if term is not None and term.reason in _COMMAND_WAITING | {"ContainerCannotRun"}:
            texts.append(term.message)
        texts.extend(e.message for e in ctx.pod_events("Failed") if "exec" in e.message or "OCI" in e.message)
        joined = " ".join(texts)
        lines = state_lines(pod, item)
        found = _BAD_COMMAND.search(joined)
        if found is not None:
            return Match(
                Category.BAD_COMMAND,
                f"Bad command: container {item.name} cannot start: {found.group(0)} ({_command_hint(joined)})",
                tuple(lines),
                0.92,
                _crash_playbook(ctx),
                "bad_command",
            )
        if term is not None and term.exit_code in (126, 127):
            meaning = "command not found" if term.exit_code == 127 else "command not executable"
            log_lines = _log_examples(ctx, pod, item, LogCategory.BAD_COMMAND)
            return Match(
                Category.BAD_COMMAND,
                f"Bad command: container {item.name} exits {term.exit_code} ({meaning})",
                tuple([*lines, *log_lines]),
                0.85 if log_lines else 0.78,
                _crash_playbook(ctx),
                "bad_command_exit",
            )
    return None


def _command_hint(message: str) -> str:
    quoted = re.search(r"exec: \"([^\"]{1,200})\"", message)
    return f"command {quoted.group(1)!r}" if quoted else "check command/args and image entrypoint"


def _log_examples(ctx: Context, pod: PodFacts, item: ContainerFacts, category: LogCategory) -> list[str]:
    lines: list[str] = []
    for record, summary in ctx.summaries(pod.name, item.name):
        lines.extend(log_line(record, example) for example in summary.examples(category)[:2])
    return lines[:3]


def memory_limit(ctx: Context) -> Match | None:
    for pod, item in ctx.containers():
        term = item.latest_termination
        if term is None or term.reason != "OOMKilled":
            continue
        limit = item.limits.get("memory")
        times = max(item.restart_count, 1)
        since = pod.start_time or pod.created_at
        window = f" in {duration_text(ctx.now - since)}" if since is not None and ctx.now > since else ""
        what = f"memory limit {limit}" if limit else "memory (no limit set; node memory)"
        lines = [*state_lines(pod, item)]
        if limit:
            lines.append(f"{where(pod, item)}: resources.limits.memory={limit}")
        if item.requests.get("memory"):
            lines.append(f"{where(pod, item)}: resources.requests.memory={item.requests['memory']}")
        lines.extend(_alert_usage(ctx))
        return Match(
            Category.MEMORY_LIMIT, f"OOM: {what} hit {times}x{window}", tuple(lines), 0.95, "oom", "oom_killed"
        )
    for pod, item in ctx.containers():
        oom_lines = _log_examples(ctx, pod, item, LogCategory.OOM)
        if oom_lines and item.restart_count > 0:
            limit = item.limits.get("memory")
            suffix = f" (memory limit {limit})" if limit else ""
            return Match(
                Category.MEMORY_LIMIT,
                f"OOM: container {item.name} ran out of memory{suffix}",
                tuple([*state_lines(pod, item), *oom_lines]),
                0.75,
                "oom",
                "oom_in_logs",
            )
    return None


def _alert_usage(ctx: Context) -> list[str]:
    annotations = ctx.evidence.subject.annotations
    return [clip(f"alert {key}: {annotations[key]}") for key in ("usage", "value", "summary") if key in annotations][:2]


def _liveness_failures(ctx: Context, pod: PodFacts, kind: str) -> list[str]:
    return [
        event_line(e)
        for e in ctx.pod_events("Unhealthy")
        if e.object_name == pod.name and (m := _PROBE.match(e.message)) and m.group(1).lower() == kind
    ]


def probes(ctx: Context) -> Match | None:
    """Liveness kills (app hangs) versus slow starts (never healthy in time) versus readiness only."""
    for pod, item in ctx.containers():
        liveness = _liveness_failures(ctx, pod, "liveness")
        startup = _liveness_failures(ctx, pod, "startup")
        readiness = _liveness_failures(ctx, pod, "readiness")
        killed = [event_line(e) for e in ctx.pod_events("Killing") if "probe" in e.message]
        lines = [*state_lines(pod, item), *liveness[-2:], *startup[-2:], *killed[-1:]]
        if startup and item.restart_count > 0:
            return Match(
                Category.SLOW_START,
                f"Slow start: container {item.name} does not pass its startupProbe in time and is restarted",
                tuple(lines),
                0.8,
                None,
                "startup_probe",
            )
        if liveness and (item.restart_count > 0 or killed):
            return _liveness_verdict(ctx, pod, item, lines)
        if readiness and not liveness and item.restart_count == 0:
            return Match(
                Category.SLOW_START,
                f"Readiness only: container {item.name} is running but not ready "
                "(readiness probe failing); it is not restarted",
                tuple([*lines, *readiness[-2:]]),
                0.6,
                None,
                "readiness_only",
            )
    return None


def _liveness_verdict(ctx: Context, pod: PodFacts, item: ContainerFacts, lines: list[str]) -> Match:
    probe = item.liveness
    term = item.last_terminated
    ran = term.run_seconds if term is not None else None
    if probe is not None and ran is not None and item.startup is None:
        allowed = probe.earliest_kill_seconds
        if ran <= allowed + probe.period + 10 and not _crashed_with_error(ctx, pod, item):
            detail = (
                f"killed after {int(ran)}s; liveness allows {allowed}s "
                f"(initialDelaySeconds={probe.initial_delay}, {probe.failure_threshold}x{probe.period}s)"
            )
            return Match(
                Category.SLOW_START,
                f"Slow start: container {item.name} is killed by its liveness probe "
                f"before it finishes starting ({detail}); add a startupProbe or raise "
                "initialDelaySeconds",
                tuple([*lines, f"{where(pod, item)}: {detail}"]),
                0.78,
                None,
                "liveness_before_ready",
            )
        uptime = f" after running {duration_text(timedelta(seconds=ran))}"
    else:
        uptime = ""
    return Match(
        Category.LIVENESS_PROBE,
        f"Liveness probe: container {item.name} stops answering its liveness "
        f"probe{uptime} and is restarted ({item.restart_count} restarts)",
        tuple(lines),
        0.82,
        _crash_playbook(ctx),
        "liveness_probe",
    )


def _crashed_with_error(ctx: Context, pod: PodFacts, item: ContainerFacts) -> bool:
    return any(summary.exception for _, summary in ctx.summaries(pod.name, item.name))


def crash(ctx: Context) -> Match | None:
    """A container that exits non-zero: dependency, config, exception or bare exit code, from its logs."""
    for pod, item in ctx.containers():
        term = item.latest_termination
        crashing = item.waiting_reason == "CrashLoopBackOff" or (
            term is not None and (term.exit_code or 0) != 0 and term.reason != "OOMKilled"
        )
        if not crashing or (term is not None and term.exit_code in (126, 127)):
            continue
        if term is not None and term.exit_code in (137, 143) and _liveness_failures(ctx, pod, "liveness"):
            continue
        return _crash_verdict(ctx, pod, item)
    return None


def _crash_verdict(ctx: Context, pod: PodFacts, item: ContainerFacts) -> Match:
    term = item.latest_termination
    code = f"exit code {term.exit_code}" if term is not None and term.exit_code is not None else "repeated exits"
    lines = state_lines(pod, item)
    playbook = _crash_playbook(ctx)
    summaries = ctx.summaries(pod.name, item.name)
    for record, summary in summaries:
        decisive = summary.exception or summary.last_error
        if decisive is None:
            continue
        kind = categorize(decisive)
        connection = summary.count(LogCategory.CONNECTION)
        if kind is LogCategory.CONNECTION or (summary.exception is None and connection >= 3):
            return _dependency(ctx, pod, record, lines, code)
        if kind in (LogCategory.MISSING_CONFIG, LogCategory.MISSING_FILE):
            return Match(
                Category.MISSING_CONFIG,
                f"Missing config: container {item.name} exits ({code}): {clip(decisive, 160)}",
                tuple([*lines, log_line(record, decisive)]),
                0.78,
                playbook,
                "config_in_logs",
            )
        if kind is LogCategory.OOM:
            return Match(
                Category.MEMORY_LIMIT,
                f"OOM: container {item.name} ran out of memory: {clip(decisive, 160)}",
                tuple([*lines, log_line(record, decisive)]),
                0.75,
                "oom",
                "oom_in_logs",
            )
        if summary.exception:
            return Match(
                Category.APP_CRASH,
                f"App crash: container {item.name} exits ({code}) after {clip(summary.exception, 160)}",
                tuple([*lines, log_line(record, summary.exception)]),
                0.85,
                playbook,
                "exception",
            )
        return Match(
            Category.APP_CRASH,
            f"App crash: container {item.name} exits ({code}); last error: {clip(decisive, 160)}",
            tuple([*lines, log_line(record, decisive)]),
            0.65,
            playbook,
            "error_line",
        )
    unread = "no logs could be read" if not summaries else "its logs show no error"
    return Match(
        Category.APP_CRASH,
        f"App crash: container {item.name} exits ({code}); {unread}",
        tuple(lines),
        0.45,
        playbook,
        "exit_code",
    )


def _dependency(ctx: Context, pod: PodFacts, record: LogRecord, lines: list[str], code: str) -> Match:
    summary = record.summary
    host = summary.hosts[0] if summary.hosts else None
    examples = [log_line(record, example) for example in summary.examples(LogCategory.CONNECTION)[:2]]
    extra, confidence = _endpoint_facts(ctx, host), 0.85 if host else 0.7
    if any("no ready endpoints" in line for line in extra):
        confidence = 0.9
    target = f"{host}" if host else "a dependency"
    said = " ".join(summary.examples(LogCategory.CONNECTION)).lower()
    if _DNS.search(said):
        how = f"name {target} does not resolve"
    elif "refused" in said:
        how = f"connections to {target} are refused"
    elif "timeout" in said or "timed out" in said:
        how = f"connections to {target} time out"
    else:
        how = f"{target} cannot be reached"
    return Match(
        Category.DEPENDENCY_UNREACHABLE,
        f"Dependency unreachable: {how}; container exits ({code})",
        tuple([*lines, *examples, *extra]),
        confidence,
        None,
        "dependency",
    )


def _endpoint_facts(ctx: Context, host: str | None) -> list[str]:
    if host is None:
        return []
    service = host.split(":")[0].split(".")[0]
    lines: list[str] = []
    for record in ctx.evidence.objects:
        if record.kind == "Endpoints" and record.name == service and record.body is not None:
            subsets = record.body.get("subsets")
            ready = isinstance(subsets, list) and any(isinstance(s, dict) and s.get("addresses") for s in subsets)
            state = "has ready endpoints" if ready else "has no ready endpoints"
            lines.append(f"Service/{record.namespace}/{service} {state}")
    return lines


def alert_context(ctx: Context) -> list[str]:
    """Alertmanager labels and annotations worth quoting as evidence."""
    subject = ctx.evidence.subject
    lines = [
        clip(f"alert {key}: {subject.annotations[key]}")
        for key in ("summary", "description", "message")
        if key in subject.annotations
    ]
    if subject.labels.get("alertname"):
        lines.insert(
            0,
            f"alert {subject.labels['alertname']} labels: "
            + clip(", ".join(f"{k}={v}" for k, v in sorted(subject.labels.items())), 200),
        )
    return lines


CONTAINER_SIGNATURES = (image_pull, config_object_missing, bad_command, memory_limit, probes, crash)
