"""chat.yaml: the shipped file loads; mistakes are reported with dotted paths, all at once."""

from __future__ import annotations

import pytest

from config.chat import chat_from_text, chat_problems, load_chat
from config.loader import parse_yaml_text
from core.chat_routing import Target
from core.errors import ConfigError
from core.models import Severity

VALID = """
chat:
  telegram: {enabled: true, allowed_chats: [-100123], bot_username: aiops_bot}
  slack: {enabled: true, allowed_channels: [C0PROD]}
  routes:
    - name: prod
      namespaces: ["prod-*"]
      min_severity: warning
      targets: ["telegram:-100123", "slack:C0PROD"]
  default_targets: [console]
  rate_limits: {channel: {per_second: 1, burst: 10}, user: {per_second: 0.5, burst: 3}}
"""


def test_the_shipped_chat_file_loads_and_routes_to_the_console() -> None:
    config = load_chat()
    assert config.routing.targets_for("shop", Severity.CRITICAL) == (Target("console"),)
    assert not config.telegram.allows(123) and not config.slack.allows("C1")


def test_a_valid_file_compiles_into_routing_and_allow_lists() -> None:
    config = chat_from_text(VALID)
    assert config.telegram.allows(-100123) and config.telegram.bot_username == "aiops_bot"
    assert config.routing.targets_for("prod-eu", Severity.WARNING) == (
        Target("telegram", "-100123"),
        Target("slack", "C0PROD"),
    )
    assert config.user_rate.burst == 3


@pytest.mark.parametrize(
    ("text", "path", "message"),
    [
        pytest.param("chat: {telegrm: {}}", "chat.telegrm", "Extra inputs", id="unknown-key"),
        pytest.param(
            "chat: {routes: [{name: a, targets: ['email:x']}]}", "chat.routes[0].targets", "must start", id="bad-target"
        ),
        pytest.param(
            "chat: {routes: [{name: a, targets: ['telegram:5']}]}",
            "chat.routes[0].targets[0]",
            "not enabled",
            id="target-on-disabled-channel",
        ),
        pytest.param(
            "chat: {telegram: {enabled: true}, routes: [{name: a, targets: ['telegram:5']}]}",
            "chat.routes[0].targets[0]",
            "could not be answered",
            id="target-not-allowed",
        ),
        pytest.param(
            "chat: {routes: [{name: a, targets: [console]}, {name: a, targets: [console]}]}",
            "chat.routes[1].name",
            "duplicate",
            id="duplicate-route",
        ),
        pytest.param(
            "chat: {rate_limits: {user: {per_second: 0, burst: 1}}}",
            "chat.rate_limits.user.per_second",
            "greater than 0",
            id="zero-rate",
        ),
    ],
)
def test_mistakes_are_reported_with_dotted_paths(text: str, path: str, message: str) -> None:
    problems = chat_problems(parse_yaml_text(text, "chat.yaml"), "chat.yaml")
    assert any(p.path == path and message in p.message for p in problems), problems
    with pytest.raises(ConfigError):
        chat_from_text(text)
