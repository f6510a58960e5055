"""One local Ray with Serve per test session, the platform deployed on a free port.

A plugin (``pytest_plugins`` in ``tests/conftest.py``), not a conftest, so the e2e and the
abuse suites share the one session ``platform`` instead of starting one each.

Ray is started with ``num_cpus=2`` and no dashboard, the three apps are deployed through
the same launcher ``aiops demo`` uses, against this session's own PostgreSQL database.
Chat is configured as in production, only pointed at the loopback Telegram Bot API and
Slack Web API servers: tokens and secrets in the settings, a chat file routing
``production`` to one Telegram group and one Slack channel, and a policy file that adds
chat identities (an operator and a viewer on each platform) to the shipped roles.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from adapters.sandbox import BackgroundSandbox
from config.settings import Settings
from tests.integration.conftest import fast_demo_scenario
from tests.servers.processes import free_port
from tests.servers.slack_server import SlackApiServer
from tests.servers.telegram_server import TelegramApiServer

AM_TOKEN = "e2e-alertmanager-token-9f2c"
OPS_TOKEN = "e2e-ops-token-77ab"
TELEGRAM_TOKEN = "7000001:AAe2eLOOPBACKtokenONLYforTESTS00000"
TELEGRAM_SECRET = "e2e-telegram-webhook-secret-31c7"
SLACK_TOKEN = "xoxb-e2e-loopback-token-4411"
SLACK_SECRET = "e2e-slack-signing-secret-8d0e93aa"
TELEGRAM_CHAT = -1001000
SLACK_CHANNEL = "C0OPS"
CHAT_ROLES = {
    "telegram:111": "operator",
    "telegram:222": "viewer",
    "slack:UOPS": "operator",
    "slack:UVIEW": "viewer",
}


def _chat_files(directory: Path, telegram: TelegramApiServer, slack: SlackApiServer) -> tuple[Path, Path]:
    from config.policy import default_policy_path

    policy = yaml.safe_load(default_policy_path().read_text())
    policy["policy"]["roles"] += [{"identity": who, "role": role} for who, role in CHAT_ROLES.items()]
    policy_path = directory / "policy.yaml"
    policy_path.write_text(yaml.safe_dump(policy))
    chat = {
        "chat": {
            "telegram": {"enabled": True, "api_url": telegram.api_url, "allowed_chats": [TELEGRAM_CHAT]},
            "slack": {"enabled": True, "api_url": slack.api_url, "allowed_channels": [SLACK_CHANNEL]},
            "console": {"enabled": False},
            "routes": [
                {"name": "prod", "namespaces": ["production"], "targets": [f"telegram:{TELEGRAM_CHAT}", "slack:C0OPS"]}
            ],
            "default_targets": [f"slack:{SLACK_CHANNEL}"],
            # Other e2e tests open many incidents; the loopback servers do not throttle.
            "rate_limits": {"channel": {"per_second": 200, "burst": 1000}, "user": {"per_second": 50, "burst": 100}},
        }
    }
    chat_path = directory / "chat.yaml"
    chat_path.write_text(yaml.safe_dump(chat))
    return chat_path, policy_path


@dataclass(frozen=True)
class Platform:
    base_url: str
    settings: Settings
    database_url: str
    sandbox: BackgroundSandbox
    telegram: TelegramApiServer
    slack: SlackApiServer

    def am_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {AM_TOKEN}"}

    def ops_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {OPS_TOKEN}"}


@pytest.fixture(scope="session")
def platform(database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    from deployments import launcher

    data_dir: Path = tmp_path_factory.mktemp("aiops-data")
    with TelegramApiServer(TELEGRAM_TOKEN) as telegram, SlackApiServer(SLACK_TOKEN) as slack:
        chat_file, policy_file = _chat_files(data_dir, telegram, slack)
        settings = Settings.from_env(
            database_url=database_url,
            redis_url=redis_url,
            alertmanager_token=AM_TOKEN,
            ops_api_token=OPS_TOKEN,
            data_dir=data_dir,
            redis_prefix=f"aiops-e2e-{uuid.uuid4().hex[:8]}:",
            max_body_bytes=8 * 1024 * 1024,
            telegram_bot_token=TELEGRAM_TOKEN,
            telegram_webhook_secret=TELEGRAM_SECRET,
            slack_bot_token=SLACK_TOKEN,
            slack_signing_secret=SLACK_SECRET,
            chat_file=str(chat_file),
            policy_file=str(policy_file),
        )
        sandbox = BackgroundSandbox(fast_demo_scenario(), bookmark_interval=0.5).start()
        # Watchers are started by the tests that need them (test_watchers_in_ray.py).
        settings = settings.model_copy(update={"kubeconfig": str(sandbox.kubeconfig_path), "watch_enabled": False})
        launcher.init_ray(num_cpus=2, dashboard=False)
        try:
            base = launcher.deploy(settings, port=free_port())
            yield Platform(
                base_url=base,
                settings=settings,
                database_url=database_url,
                sandbox=sandbox,
                telegram=telegram,
                slack=slack,
            )
        finally:
            launcher.shutdown()
            sandbox.stop()
