"""Label matchers in Alertmanager's syntax: ``name="v"``, ``name!="v"``, ``name=~"re"``, ``name!~"re"``.

Rules, silences and inhibitions all select signals with the same matchers, so an SRE who
knows ``amtool`` knows ours. Regexes are anchored (full match), as in Alertmanager; a
label that is absent matches as the empty string, so ``severity!="critical"`` is true for
an unlabelled signal and ``team=~".+"`` requires the label.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

_NAME = r"[A-Za-z_][A-Za-z0-9_.\-/]*"
_MATCHER_RE = re.compile(
    rf"""^\s*(?P<name>{_NAME})\s*(?P<op>=~|!~|!=|=)\s*(?P<value>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[^,{{}}"'\s]*)\s*$"""
)


class MatchOp(StrEnum):
    EQ = "="
    NE = "!="
    RE = "=~"
    NRE = "!~"


@dataclass(frozen=True)
class Matcher:
    name: str
    op: MatchOp
    value: str
    _regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def build(cls, name: str, op: MatchOp, value: str) -> Matcher:
        regex = None
        if op in (MatchOp.RE, MatchOp.NRE):
            try:
                regex = re.compile(value)
            except (re.error, OverflowError, RecursionError) as e:  # huge repeat counts, deep nesting
                raise ValueError(f"invalid regex {value!r} in matcher for {name!r}: {e}") from e
        return cls(name, op, value, regex)

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op is MatchOp.EQ:
            return actual == self.value
        if self.op is MatchOp.NE:
            return actual != self.value
        hit = self._regex is not None and self._regex.fullmatch(actual) is not None
        return hit if self.op is MatchOp.RE else not hit

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"')
        return f'{self.name}{self.op.value}"{escaped}"'


def _unquote(raw: str) -> str:
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'":
        body = raw[1:-1]
        return re.sub(r"\\(.)", r"\1", body)
    return raw


def parse_matcher(text: str) -> Matcher:
    """Parse one matcher; raises ValueError quoting the text on any problem."""
    found = _MATCHER_RE.match(text)
    if found is None:
        raise ValueError(
            f'invalid matcher {text!r}: expected name="value", name!="value", name=~"regex" or name!~"regex"'
        )
    return Matcher.build(found["name"], MatchOp(found["op"]), _unquote(found["value"]))


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside quotes."""
    parts: list[str] = []
    current: list[str] = []
    quote: str | None = None
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
            if char == quote:
                quote = None
        elif char in "\"'":
            quote = char
        elif char == ",":
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    if quote:
        raise ValueError(f"unterminated quote in matchers {text!r}")
    parts.append("".join(current))
    return [p for p in (part.strip() for part in parts) if p]


def parse_matchers(text: str) -> tuple[Matcher, ...]:
    """Parse ``{a="b", c=~"d.*"}`` or ``a="b",c=~"d.*"`` (braces optional)."""
    body = text.strip()
    if body.startswith("{"):
        if not body.endswith("}"):
            raise ValueError(f"unbalanced braces in matchers {text!r}")
        body = body[1:-1]
    return tuple(parse_matcher(part) for part in _split_top_level(body))


def matches_all(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)
