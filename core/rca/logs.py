"""Container log analysis: error signatures, clusters and the line that matters.

A crashing container's log is usually hundreds of repetitive lines with one line that
names the cause (the exception at the end of a traceback, a ``panic:``, ``connection
refused`` to a dependency). This module finds those lines deterministically:

* each line is classified into a ``LogCategory`` by ordered regexes (OOM before
  connection before timeout before missing config ... before a generic error);
* lines are clustered by a *template*: numbers, hex, UUIDs, IPs and timestamps are
  replaced with placeholders, so "retry 3 of 10 at 12:00:01" and "retry 4 of 10 at
  12:00:02" count as one signature;
* exceptions are read with their stack: Python tracebacks (the final ``Type: msg``
  line), Java ``Exception in thread``/``Caused by:`` (the deepest cause), Go
  ``panic:``/``fatal error:``, Node ``Error: ...`` followed by ``at ...`` frames;
* hosts named in connection errors are collected, so a diagnosis can say *which*
  dependency is unreachable.

Logs are untrusted input: they may be empty, binary or gigantic. Work is bounded by
``max_bytes`` and ``max_lines`` (the *tail* is kept: the end of a crashed container's
log is where the cause is) and by a per-line length cap, and nothing here raises.
Example lines are redacted before they are stored.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from core.rca.redact import redact

DEFAULT_MAX_BYTES = 1_000_000
DEFAULT_MAX_LINES = 5_000
MAX_LINE = 2_000
MAX_EXAMPLE = 300
MAX_SIGNATURES = 20
MAX_HOSTS = 10

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class LogCategory(StrEnum):
    OOM = "oom"
    CONNECTION = "connection"
    TIMEOUT = "timeout"
    MISSING_CONFIG = "missing_config"
    MISSING_FILE = "missing_file"
    PERMISSION = "permission"
    BAD_COMMAND = "bad_command"
    EXCEPTION = "exception"
    ERROR = "error"


# Ordered: the first matching category wins for a line.
_CATEGORY_PATTERNS: tuple[tuple[LogCategory, re.Pattern[str]], ...] = (
    (
        LogCategory.OOM,
        re.compile(
            r"OutOfMemoryError|\bMemoryError\b|Killed process \d+|out of memory|\boom[- ]?kill|"
            r"JavaScript heap out of memory|cannot allocate memory|memory limit exceeded",
            re.IGNORECASE,
        ),
    ),
    (
        LogCategory.CONNECTION,
        re.compile(
            r"connection refused|ECONNREFUSED|ECONNRESET|ENOTFOUND|EAI_AGAIN|no such host|"
            r"Name or service not known|Temporary failure in name resolution|getaddrinfo|"
            r"could not translate host name|UnknownHostException|ConnectException|"
            r"Failed to establish a new connection|Max retries exceeded with url|"
            r"dial tcp[^\n]{0,200}(?:i/o timeout|connect:|no route)|no route to host|"
            r"network is unreachable|Is the server running on host|connection reset by peer|"
            r"could not connect to|unable to connect to|failed to connect to|Connection to \S+ refused",
            re.IGNORECASE,
        ),
    ),
    (
        LogCategory.TIMEOUT,
        re.compile(
            r"timed? ?out|timeout|deadline exceeded|ETIMEDOUT|SocketTimeoutException",
            re.IGNORECASE,
        ),
    ),
    (
        LogCategory.MISSING_CONFIG,
        re.compile(
            r"environment variable[^\n]{0,120}(?:not set|is not set|missing|undefined|required)|"
            r"(?:missing|required)[^\n]{0,40}(?:environment variable|env var|config(?:uration)? (?:key|value|option))|"
            r"\bKeyError: ['\"][A-Z][A-Z0-9_]{2,}['\"]|"
            r"(?:config|configuration)[^\n]{0,60}(?:not found|missing|invalid)|"
            r"must be set|is not set\b",
            re.IGNORECASE,
        ),
    ),
    (
        LogCategory.MISSING_FILE,
        re.compile(r"No such file or directory|FileNotFoundError|ENOENT|FileNotFoundException", re.IGNORECASE),
    ),
    (
        LogCategory.PERMISSION,
        re.compile(
            r"permission denied|EACCES|PermissionError|AccessDeniedException|operation not permitted|"
            r"forbidden|403 Forbidden",
            re.IGNORECASE,
        ),
    ),
    (
        LogCategory.BAD_COMMAND,
        re.compile(
            r"exec format error|executable file not found|command not found|: not found$|"
            r"exec: \"[^\"]{1,200}\": |no such file or directory: exec",
            re.IGNORECASE,
        ),
    ),
    (
        LogCategory.EXCEPTION,
        re.compile(
            r"^Traceback \(most recent call last\)|^Exception in thread|^Caused by: |^panic: |^fatal error: |"
            r"^\s*(?:[A-Za-z_][\w$]*\.)*[A-Z][\w$]*(?:Error|Exception|Exit|Fault|Panic)\b(?::|$)|"
            r"Uncaught |UnhandledPromiseRejection|unhandled exception|segmentation fault|SIGSEGV|"
            r"^thread '[^']*' panicked at",
            re.IGNORECASE,
        ),
    ),
    (
        LogCategory.ERROR,
        re.compile(
            r"\b(?:ERROR|FATAL|CRITICAL|SEVERE|EMERG|PANIC)\b|level[=:]\s*\"?(?:error|fatal|critical)|"
            r"\"level\"\s*:\s*\"(?:error|fatal|critical)\"|\bE\d{4} \d{2}:\d{2}",
        ),
    ),
)

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_TEMPLATE_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(
            r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?|"
            r"\b(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) +\d{1,2} \d{2}:\d{2}:\d{2}|"
            r"\b\d{2}:\d{2}:\d{2}(?:[.,]\d+)?"
        ),
        "<ts>",
    ),
    (re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"), "<uuid>"),
    (re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}(?::\d{1,5})?\b"), "<ip>"),
    (re.compile(r"\b0x[0-9a-fA-F]+\b|\b[0-9a-fA-F]{8,}\b"), "<hex>"),
    (re.compile(r"\b\d+(?:\.\d+)*\b"), "<n>"),
)

_HOST = r"([A-Za-z0-9][A-Za-z0-9_.-]{0,252}(?::\d{1,5})?)"
_HOST_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"lookup " + _HOST + r"(?: on [^\s:]+(?::\d+)?)?: "),
    re.compile(r"dial tcp " + _HOST + r": "),
    re.compile(r"(?:ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENOTFOUND|EAI_AGAIN) " + _HOST),
    re.compile(r"getaddrinfo(?: \w+)? " + _HOST),
    re.compile(r"host[= ]?['\"]" + _HOST + r"['\"](?:,? ?port[= ]?(\d{1,5}))?", re.IGNORECASE),
    re.compile(r"host name ['\"]" + _HOST + r"['\"]", re.IGNORECASE),
    re.compile(r"UnknownHostException: " + _HOST),
    re.compile(
        r"(?:connect(?:ing)? to|connection to|reach|failed to connect to|unable to connect to) "
        r"['\"]?(?:[a-z]+://)?" + _HOST,
        re.IGNORECASE,
    ),
)
_NOT_HOSTS = frozenset({"the", "server", "host", "localhost:0", "database", "a", "an"})

_PY_TRACE = re.compile(r"^Traceback \(most recent call last\)")
_PY_FINAL = re.compile(r"^(?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*(?:Error|Exception|Exit|Interrupt|Warning|Fault)?(?::.*)?$")
_JAVA_START = re.compile(r"Exception in thread \"[^\"]*\" (\S.*)")
_JAVA_CAUSE = re.compile(r"^Caused by: (\S.*)")
_GO_PANIC = re.compile(r"^(?:panic|fatal error): .+")
_NODE_ERROR = re.compile(r"^(?:Uncaught )?(?:[A-Za-z_$][\w$]*)?(?:Error|Exception)(?: \[[A-Z_]+\])?: .+")
_FRAME = re.compile(r"^\s+at |^\s+File \"|^\tat |^goroutine \d+ ")


class LogSignature(BaseModel):
    """One cluster of similar lines: category, normalised template, count and one redacted example."""

    model_config = _FROZEN

    category: LogCategory
    template: str
    count: int
    example: str
    first_line_no: int = Field(description="1-based line number of the first occurrence in the analysed window.")


class LogSummary(BaseModel):
    """What a log says, in a bounded, redacted form."""

    model_config = _FROZEN

    signatures: tuple[LogSignature, ...] = ()
    first_error: str | None = None
    last_error: str | None = None
    exception: str | None = Field(default=None, description="The last exception/panic line (deepest cause), redacted.")
    hosts: tuple[str, ...] = Field(default=(), description="Hosts named in connection errors, first seen first.")
    total_lines: int = 0
    analysed_lines: int = 0
    truncated: bool = False
    binary: bool = False

    def categories(self) -> frozenset[LogCategory]:
        return frozenset(signature.category for signature in self.signatures)

    def count(self, category: LogCategory) -> int:
        return sum(signature.count for signature in self.signatures if signature.category is category)

    def examples(self, category: LogCategory) -> tuple[str, ...]:
        return tuple(signature.example for signature in self.signatures if signature.category is category)


def to_text(raw: str | bytes | None) -> tuple[str, bool]:
    """Log content as text and whether it looked binary (NULs or many undecodable bytes)."""
    if raw is None:
        return "", False
    if isinstance(raw, bytes):
        decoded = raw.decode("utf-8", errors="replace")
        bad = decoded.count("\ufffd") + decoded.count("\x00")
        return decoded, bool(decoded) and (bad > 16 or bad * 20 > len(decoded))
    if not isinstance(raw, str):
        return "", False
    sample = raw[:65536]
    return raw, "\x00" in sample or sample.count("\ufffd") * 20 > max(len(sample), 1)


def clean_line(line: str) -> str:
    """A line without ANSI colours and control characters, cut to ``MAX_LINE``."""
    return _CONTROL.sub("", _ANSI.sub("", line[: MAX_LINE * 2]))[:MAX_LINE].rstrip()


def template_of(line: str) -> str:
    """The line with volatile parts (timestamps, ids, addresses, numbers) replaced by placeholders."""
    result = line[:MAX_LINE]
    for pattern, placeholder in _TEMPLATE_RULES:
        result = pattern.sub(placeholder, result)
    return " ".join(result.split())[:MAX_EXAMPLE]


def categorize(line: str) -> LogCategory | None:
    """The category of one (clean) line, or ``None`` when it is not an error line."""
    for category, pattern in _CATEGORY_PATTERNS:
        if pattern.search(line):
            return category
    return None


def hosts_in(line: str) -> list[str]:
    """Hosts (``name`` or ``name:port``) named by a connection error line."""
    found: list[str] = []
    for pattern in _HOST_PATTERNS:
        for match in pattern.finditer(line):
            host = match.group(1).rstrip(".:")
            port = match.group(2) if (match.lastindex or 0) >= 2 else None
            if port and ":" not in host:
                host = f"{host}:{port}"
            if host.lower() not in _NOT_HOSTS and any(ch.isalnum() for ch in host) and host not in found:
                found.append(host)
    return found


def _window(text: str, max_bytes: int, max_lines: int) -> tuple[list[str], int, bool]:
    """The last lines within both bounds, the total line count and whether anything was cut."""
    total = text.count("\n") + (0 if text.endswith("\n") or not text else 1)
    truncated = False
    if len(text) > max_bytes:
        text = text[-max_bytes:]
        newline = text.find("\n")
        text = text[newline + 1 :] if 0 <= newline < len(text) - 1 else text
        truncated = True
    lines = text.splitlines()
    if len(lines) > max_lines:
        lines = lines[-max_lines:]
        truncated = True
    return lines, total, truncated


def _exceptions(lines: list[str]) -> list[str]:
    """Exception lines in order: Python finals, Java starts/causes, Go panics, Node errors before frames."""
    found: list[str] = []
    in_python = False
    for index, line in enumerate(lines):
        if _PY_TRACE.match(line):
            in_python = True
            continue
        if in_python:
            if line.startswith((" ", "\t")) or not line:
                continue
            in_python = False
            if _PY_FINAL.match(line):
                found.append(line)
                continue
        java = _JAVA_START.search(line) or _JAVA_CAUSE.match(line)
        if java is not None:
            found.append(java.group(1))
        elif _GO_PANIC.match(line) or (
            _NODE_ERROR.match(line) and index + 1 < len(lines) and _FRAME.match(lines[index + 1])
        ):
            found.append(line)
    return found


def analyze(
    raw: str | bytes | None,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_lines: int = DEFAULT_MAX_LINES,
    known_secrets: Iterable[str] = (),
) -> LogSummary:
    """Summarise a log: signatures (largest clusters first), first/last error, exception, hosts."""
    text, binary = to_text(raw)
    if not text:
        return LogSummary(binary=binary)
    known = tuple(known_secrets)
    window, total, truncated = _window(text, max(max_bytes, 1), max(max_lines, 1))
    lines = [clean_line(line) for line in window]
    clusters: dict[tuple[LogCategory, str], list[int]] = {}
    examples: dict[tuple[LogCategory, str], str] = {}
    hosts: list[str] = []
    first_error: str | None = None
    last_error: str | None = None
    for number, line in enumerate(lines, start=1):
        if not line or _FRAME.match(line):
            continue
        category = categorize(line)
        if category is None:
            continue
        first_error = first_error or line
        last_error = line
        key = (category, template_of(line))
        if key not in clusters:
            clusters[key] = [number, 0]
            examples[key] = line[:MAX_EXAMPLE]
        clusters[key][1] += 1
        if category is LogCategory.CONNECTION and len(hosts) < MAX_HOSTS:
            hosts.extend(host for host in hosts_in(line) if host not in hosts)
    ordered = sorted(clusters.items(), key=lambda item: (-item[1][1], item[1][0]))[:MAX_SIGNATURES]
    signatures = tuple(
        LogSignature(
            category=category,
            template=redact(template, known),
            count=count,
            example=redact(examples[(category, template)], known),
            first_line_no=first,
        )
        for (category, template), (first, count) in ordered
    )
    exceptions = _exceptions(lines)
    return LogSummary(
        signatures=signatures,
        first_error=redact(first_error, known)[:MAX_EXAMPLE] if first_error else None,
        last_error=redact(last_error, known)[:MAX_EXAMPLE] if last_error else None,
        exception=redact(exceptions[-1], known)[:MAX_EXAMPLE] if exceptions else None,
        hosts=tuple(hosts[:MAX_HOSTS]),
        total_lines=total,
        analysed_lines=len(lines),
        truncated=truncated,
        binary=binary,
    )


def first_error_line(raw: str | bytes | None, *, max_bytes: int = DEFAULT_MAX_BYTES) -> str | None:
    """The first error-looking line of a log (from its start, within ``max_bytes``), redacted."""
    text, _ = to_text(raw)
    for line in text[: max(max_bytes, 1)].splitlines():
        cleaned = clean_line(line)
        if cleaned and not _FRAME.match(cleaned) and categorize(cleaned) is not None:
            return redact(cleaned)[:MAX_EXAMPLE]
    return None
