"""Silences and maintenance windows: planned quiet, decided by a human, bounded in time.

A silence mutes signals selected by Alertmanager-style matchers (the same grammar rules
use, so ``amtool`` users need nothing new); a maintenance window mutes whole namespaces
by glob. Both carry who created them and why, and both end: an expired silence never
matches, so forgetting to remove one cannot hide tomorrow's outage. ``/silence`` chat
commands are parsed here, purely, with errors that tell the user what to type instead.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from functools import lru_cache

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.errors import InputError
from core.matchers import Matcher, matches_all, parse_matcher, parse_matchers
from core.models import fingerprint_of
from core.rules import parse_duration

MAX_SILENCE = timedelta(days=30)
"""The longest silence a command may create; a longer one is almost always a typo."""

_FROZEN = ConfigDict(frozen=True, extra="forbid")


@lru_cache(maxsize=4096)
def _compiled(text: str) -> Matcher:
    return parse_matcher(text)


class Silence(BaseModel):
    """Mute every signal whose labels match all ``matchers`` while ``starts_at <= now < ends_at``."""

    model_config = _FROZEN

    id: str
    matchers: tuple[str, ...] = Field(min_length=1, description='Matcher texts, e.g. namespace="prod".')
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str = ""

    @model_validator(mode="after")
    def _check(self) -> Silence:
        for text in self.matchers:
            _compiled(text)
        if self.ends_at <= self.starts_at:
            raise ValueError("a silence must end after it starts")
        return self

    def active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at

    def expired(self, now: datetime) -> bool:
        return now >= self.ends_at

    def matches(self, labels: Mapping[str, str], now: datetime) -> bool:
        return self.active(now) and matches_all((_compiled(m) for m in self.matchers), labels)


class MaintenanceWindow(BaseModel):
    """Mute every signal of the namespaces matching ``namespaces`` (globs) during the window."""

    model_config = _FROZEN

    id: str
    namespaces: tuple[str, ...] = Field(min_length=1, description="Glob patterns, e.g. payments-*.")
    starts_at: datetime
    ends_at: datetime
    created_by: str = ""
    comment: str = ""

    @model_validator(mode="after")
    def _check(self) -> MaintenanceWindow:
        if self.ends_at <= self.starts_at:
            raise ValueError("a maintenance window must end after it starts")
        return self

    def active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at

    def expired(self, now: datetime) -> bool:
        return now >= self.ends_at

    def covers(self, namespace: str | None, now: datetime) -> bool:
        if not namespace or not self.active(now):
            return False
        return any(fnmatch.fnmatchcase(namespace, pattern) for pattern in self.namespaces)


def active_silence(labels: Mapping[str, str], silences: Iterable[Silence], now: datetime) -> Silence | None:
    """The first silence that mutes ``labels`` at ``now`` (earliest ending first, for a stable answer)."""
    for silence in sorted(silences, key=lambda s: (s.ends_at, s.id)):
        if silence.matches(labels, now):
            return silence
    return None


def active_maintenance(
    namespace: str | None, windows: Iterable[MaintenanceWindow], now: datetime
) -> MaintenanceWindow | None:
    for window in sorted(windows, key=lambda w: (w.ends_at, w.id)):
        if window.covers(namespace, now):
            return window
    return None


def silence_id(matchers: Iterable[str], starts_at: datetime, created_by: str) -> str:
    """Deterministic, so a retried ``/silence`` command creates the same silence, not a second one."""
    return "sil-" + fingerprint_of("silence", starts_at.isoformat(), created_by, *sorted(matchers))[:12]


_USAGE = (
    'usage: /silence <matchers> <duration> [comment], e.g. /silence alertname="KubePodCrashLooping",namespace=prod 2h'
)


def _tokens(text: str) -> list[str]:
    """Split on whitespace outside quotes and braces."""
    tokens: list[str] = []
    current: list[str] = []
    quote: str | None = None
    depth = 0
    escaped = False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
            continue
        if char == "\\" and quote:
            current.append(char)
            escaped = True
            continue
        if quote:
            quote = None if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char == "{":
            depth += 1
        elif char == "}":
            depth = max(0, depth - 1)
        elif char.isspace() and depth == 0:
            if current:
                tokens.append("".join(current))
                current = []
            continue
        current.append(char)
    if quote:
        raise InputError(f"unterminated quote in {text!r}; {_USAGE}")
    if current:
        tokens.append("".join(current))
    return tokens


_DURATION_TOKEN = re.compile(r"^\d+(?:\.\d+)?(?:ms|s|m|h|d)$")


def parse_silence_command(text: str, now: datetime, who: str, *, max_duration: timedelta = MAX_SILENCE) -> Silence:
    """``[/silence] alertname="X",namespace=prod 2h [comment]`` -> a Silence from ``now``.

    Matchers may be split by commas or spaces and wrapped in braces; the duration needs a
    unit (``30m``, ``2h``, ``1d``). Raises InputError naming the problem and the usage.
    """
    body = text.strip()
    if body.startswith("/silence"):
        body = body[len("/silence") :].strip()
    tokens = _tokens(body)
    index = next((i for i, token in enumerate(tokens) if _DURATION_TOKEN.match(token)), None)
    if index is None:
        raise InputError(f"missing duration with a unit (30m, 2h, 1d); {_USAGE}")
    if index == 0:
        raise InputError(f"missing matchers before the duration; {_USAGE}")
    try:
        matchers = tuple(m for token in tokens[:index] for m in parse_matchers(token))
    except ValueError as e:
        raise InputError(f"{e}; {_USAGE}") from e
    if not matchers:
        raise InputError(f"missing matchers before the duration; {_USAGE}")
    if all(m.matches({}) for m in matchers):
        raise InputError(
            "these matchers would also match signals without those labels (silence everything); "
            'add at least one positive matcher such as namespace="prod"'
        )
    seconds = parse_duration(tokens[index])
    if seconds <= 0:
        raise InputError(f"duration {tokens[index]!r} must be positive; {_USAGE}")
    length = timedelta(seconds=seconds)
    if length > max_duration:
        raise InputError(f"duration {tokens[index]!r} is longer than the maximum of {max_duration}")
    texts = tuple(str(m) for m in matchers)
    return Silence(
        id=silence_id(texts, now, who),
        matchers=texts,
        starts_at=now,
        ends_at=now + length,
        created_by=who,
        comment=" ".join(tokens[index + 1 :]),
    )
