"""The chat file: which chats may talk to the bot, where incidents go, how fast we may speak.

``chat.yaml`` is a strict contract like the rules and the policy: unknown keys, malformed
targets and routes that point at chats we would refuse to listen to are errors with a
dotted path, all reported at once. Loading compiles the file into ``ChatConfig`` (plain
frozen values plus ``core.chat_routing.Routing``); nothing downstream sees YAML.

Allowed chats are an allow-list: an empty list means the bot answers nobody there. A
route may only target an allowed chat, because an approval request posted where replies
are refused could never be answered.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from config.loader import Problem, check_yaml_file, dotted, parse_yaml_text, read_yaml, validation_problems
from core.chat_routing import Route, Routing, Target
from core.errors import ConfigError
from core.models import Severity

_STRICT = ConfigDict(extra="forbid", frozen=True)


def _targets_ok(values: list[str]) -> list[str]:
    for text in values:
        Target.parse(text)
    return values


class TelegramSpec(BaseModel):
    model_config = _STRICT

    enabled: bool = Field(default=False, description="Listen to the Telegram webhook and send there.")
    api_url: str = Field(default="https://api.telegram.org/bot", description="Bot API base; the token is appended.")
    bot_username: str | None = Field(default=None, description="For /cmd@BotName in groups; others are ignored.")
    allowed_chats: list[int] = Field(default_factory=list, description="Chat ids the bot listens to.")


class SlackSpec(BaseModel):
    model_config = _STRICT

    enabled: bool = Field(default=False, description="Listen to Slack events/interactions and send there.")
    api_url: str = Field(default="https://slack.com/api/", description="Web API base URL.")
    allowed_channels: list[str] = Field(default_factory=list, description="Channel ids (C..., G..., D...).")


class ConsoleSpec(BaseModel):
    model_config = _STRICT

    enabled: bool = Field(default=True, description="Print notifications on the console (aiops demo).")


class RouteSpec(BaseModel):
    model_config = _STRICT

    name: str = Field(min_length=1, description="Rules name routes in notify: [...].")
    namespaces: list[str] = Field(default_factory=lambda: ["*"], min_length=1, description="Namespace globs.")
    min_severity: Severity = Field(default=Severity.INFO, description="Least severity this route carries.")
    targets: list[str] = Field(min_length=1, description="telegram:<chat id>, slack:<channel id> or console.")
    continue_: bool = Field(default=False, alias="continue", description="Also try later routes.")

    @field_validator("targets")
    @classmethod
    def _check_targets(cls, value: list[str]) -> list[str]:
        return _targets_ok(value)


class RateSpec(BaseModel):
    model_config = _STRICT

    per_second: float = Field(gt=0, le=1000, description="Sustained rate.")
    burst: int = Field(ge=1, le=10_000, description="Bucket size.")


class RateLimitsSpec(BaseModel):
    model_config = _STRICT

    channel: RateSpec = Field(
        default_factory=lambda: RateSpec(per_second=1.0, burst=20), description="Messages we send per chat."
    )
    user: RateSpec = Field(
        default_factory=lambda: RateSpec(per_second=0.2, burst=5), description="Commands one user may send."
    )


class ChatSpec(BaseModel):
    model_config = _STRICT

    link_base_url: str = Field(default="", description="Prefix of incident links (/api/incidents/<id>).")
    telegram: TelegramSpec = Field(default_factory=TelegramSpec)
    slack: SlackSpec = Field(default_factory=SlackSpec)
    console: ConsoleSpec = Field(default_factory=ConsoleSpec)
    routes: list[RouteSpec] = Field(default_factory=list)
    default_targets: list[str] = Field(default_factory=lambda: ["console"], description="When no route matches.")
    rate_limits: RateLimitsSpec = Field(default_factory=RateLimitsSpec)

    @field_validator("default_targets")
    @classmethod
    def _check_targets(cls, value: list[str]) -> list[str]:
        return _targets_ok(value)


class ChatFile(BaseModel):
    model_config = _STRICT

    chat: ChatSpec


@dataclass(frozen=True)
class TelegramConfig:
    enabled: bool = False
    api_url: str = "https://api.telegram.org/bot"
    bot_username: str | None = None
    allowed_chats: frozenset[int] = frozenset()

    def allows(self, chat_id: int | str) -> bool:
        try:
            return int(chat_id) in self.allowed_chats
        except ValueError:
            return False


@dataclass(frozen=True)
class SlackConfig:
    enabled: bool = False
    api_url: str = "https://slack.com/api/"
    allowed_channels: frozenset[str] = frozenset()

    def allows(self, channel: str) -> bool:
        return channel in self.allowed_channels


@dataclass(frozen=True)
class Rate:
    per_second: float
    burst: int


@dataclass(frozen=True)
class ChatConfig:
    """The compiled chat file: what the chat ingress and the notifier are constructed with."""

    telegram: TelegramConfig = TelegramConfig()
    slack: SlackConfig = SlackConfig()
    console: bool = True
    routing: Routing = Routing(default=(Target("console"),))
    channel_rate: Rate = Rate(1.0, 20)
    user_rate: Rate = Rate(0.2, 5)
    link_base_url: str = ""


def _target_problem(target: Target, spec: ChatSpec) -> str | None:
    if target.channel == "telegram":
        if not spec.telegram.enabled:
            return f"{target} targets Telegram, which is not enabled"
        if int(target.chat) not in spec.telegram.allowed_chats:
            return f"{target} is not in telegram.allowed_chats: approvals posted there could not be answered"
    if target.channel == "slack":
        if not spec.slack.enabled:
            return f"{target} targets Slack, which is not enabled"
        if target.chat not in spec.slack.allowed_channels:
            return f"{target} is not in slack.allowed_channels: approvals posted there could not be answered"
    if target.channel == "console" and not spec.console.enabled:
        return f"{target} targets the console, which is not enabled"
    return None


def _semantic_problems(name: str, spec: ChatSpec) -> list[Problem]:
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for index, route in enumerate(spec.routes):
        if route.name in seen:
            problems.append(
                Problem(name, dotted(("chat", "routes", index, "name")), f"duplicate of routes[{seen[route.name]}]")
            )
        seen.setdefault(route.name, index)
        for t_index, text in enumerate(route.targets):
            problem = _target_problem(Target.parse(text), spec)
            if problem:
                problems.append(Problem(name, dotted(("chat", "routes", index, "targets", t_index)), problem))
    for t_index, text in enumerate(spec.default_targets):
        problem = _target_problem(Target.parse(text), spec)
        if problem:
            problems.append(Problem(name, dotted(("chat", "default_targets", t_index)), problem))
    return problems


def chat_problems(data: Any, name: str = "<chat>") -> list[Problem]:
    """Every problem in chat config data, each with a dotted path; empty when it is valid."""
    try:
        spec = ChatFile.model_validate(data)
    except ValidationError as e:
        return validation_problems(name, e)
    return _semantic_problems(name, spec.chat)


def chat_from_data(data: Any, name: str = "<chat>") -> ChatConfig:
    problems = chat_problems(data, name)
    if problems:
        raise ConfigError(f"{name}: {len(problems)} problem(s)", tuple(str(p) for p in problems))
    spec = ChatFile.model_validate(data).chat
    routes = tuple(
        Route(
            name=r.name,
            targets=tuple(Target.parse(t) for t in r.targets),
            namespaces=tuple(r.namespaces),
            min_severity=r.min_severity,
            cont=r.continue_,
        )
        for r in spec.routes
    )
    limits = spec.rate_limits
    return ChatConfig(
        telegram=TelegramConfig(
            enabled=spec.telegram.enabled,
            api_url=spec.telegram.api_url,
            bot_username=spec.telegram.bot_username,
            allowed_chats=frozenset(spec.telegram.allowed_chats),
        ),
        slack=SlackConfig(
            enabled=spec.slack.enabled,
            api_url=spec.slack.api_url,
            allowed_channels=frozenset(spec.slack.allowed_channels),
        ),
        console=spec.console.enabled,
        routing=Routing(routes=routes, default=tuple(Target.parse(t) for t in spec.default_targets)),
        channel_rate=Rate(limits.channel.per_second, limits.channel.burst),
        user_rate=Rate(limits.user.per_second, limits.user.burst),
        link_base_url=spec.link_base_url,
    )


def chat_from_text(text: str, name: str = "<chat>") -> ChatConfig:
    return chat_from_data(parse_yaml_text(text, name), name)


def default_chat_path() -> Path:
    return Path(str(resources.files("config").joinpath("chat.yaml")))


def load_chat(path: str | Path | None = None) -> ChatConfig:
    """Load a chat file; ``None`` loads the shipped ``config/chat.yaml``."""
    target = Path(path) if path else default_chat_path()
    return chat_from_data(read_yaml(target), str(target))


def check_chat_file(path: str | Path) -> list[Problem]:
    """``aiops config check`` for a chat file: every problem, never an exception."""
    return check_yaml_file(path, chat_problems)
