"""Which chats hear about which incident: routes by name, namespace glob and severity.

A rule may name routes (``notify: [payments-oncall]``, carried on ``Notify.routes``);
those routes are used when they exist. Otherwise the routes are tried in order and the
first whose namespace globs and minimum severity match wins, unless it says
``continue`` (then later matching routes add their targets too), as in Alertmanager's
routing tree, flattened. Nothing matching means the default targets. A target is
``telegram:<chat id>``, ``slack:<channel id>`` or ``console``.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass

from core.models import Severity

CHANNEL_KINDS = ("telegram", "slack", "console")


@dataclass(frozen=True)
class Target:
    channel: str
    chat: str = ""

    @classmethod
    def parse(cls, text: str) -> Target:
        """``telegram:-100123`` / ``slack:C0123`` / ``console``; ValueError says what is wrong."""
        kind, sep, chat = text.strip().partition(":")
        if kind not in CHANNEL_KINDS:
            raise ValueError(f"target {text!r} must start with one of {', '.join(CHANNEL_KINDS)}")
        if kind == "console":
            return cls("console", chat)
        if not sep or not chat or any(ch.isspace() for ch in chat):
            raise ValueError(f"target {text!r} needs a chat id: {kind}:<id>")
        if kind == "telegram":
            try:
                int(chat)
            except ValueError:
                raise ValueError(f"telegram chat id in {text!r} must be an integer") from None
        return cls(kind, chat)

    def __str__(self) -> str:
        return f"{self.channel}:{self.chat}" if self.chat else self.channel


@dataclass(frozen=True)
class Route:
    name: str
    targets: tuple[Target, ...]
    namespaces: tuple[str, ...] = ("*",)
    min_severity: Severity = Severity.INFO
    cont: bool = False

    def matches(self, namespace: str | None, severity: Severity) -> bool:
        if severity.rank < self.min_severity.rank:
            return False
        if namespace is None:
            # Cluster-scoped incidents (nodes) only match routes that cover every namespace.
            return "*" in self.namespaces
        return any(fnmatch.fnmatchcase(namespace, pattern) for pattern in self.namespaces)


@dataclass(frozen=True)
class Routing:
    routes: tuple[Route, ...] = ()
    default: tuple[Target, ...] = ()

    def targets_for(self, namespace: str | None, severity: Severity, named: Iterable[str] = ()) -> tuple[Target, ...]:
        """The distinct targets for one notification, in route order."""
        wanted = tuple(named)
        chosen = [r for r in self.routes if r.name in wanted]
        if not chosen:
            for route in self.routes:
                if route.matches(namespace, severity):
                    chosen.append(route)
                    if not route.cont:
                        break
        targets = [t for r in chosen for t in r.targets] if chosen else list(self.default)
        return tuple(dict.fromkeys(targets))
