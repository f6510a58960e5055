"""Settings from the environment, read once and passed down through constructors.

Names are the ones DESIGN.md promises (``DATABASE_URL``, ``REDIS_URL``, ...), plus
``AIOPS_*`` for our own knobs. Secrets are ``SecretStr`` so they never print. Outside dev
mode a placeholder secret (``changeme``, ``<token>``, ``xxx``) is refused at start-up,
because a webhook "protected" by ``changeme`` is an open door.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.errors import ConfigError

SECRET_FIELDS = (
    "database_url",
    "redis_url",
    "anthropic_api_key",
    "telegram_bot_token",
    "telegram_webhook_secret",
    "slack_bot_token",
    "slack_signing_secret",
    "alertmanager_token",
    "ops_api_token",
)

_PLACEHOLDER = re.compile(
    r"^(changeme|change-me|change_me|xxx+|todo|fixme|secret|password|token|example|placeholder|dummy|test|"
    r"<.*>|\$\{.*\}|your[-_ ].*|replace[-_ ]?me)$",
    re.IGNORECASE,
)


def is_placeholder(value: str) -> bool:
    return bool(_PLACEHOLDER.match(value.strip())) or value.strip() == ""


def _env(name: str) -> AliasChoices:
    return AliasChoices(name, name.lower())


class Settings(BaseSettings):
    """Every setting of the platform. Construct with ``Settings.from_env()``."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    database_url: SecretStr | None = Field(default=None, validation_alias=_env("DATABASE_URL"))
    redis_url: SecretStr | None = Field(default=None, validation_alias=_env("REDIS_URL"))
    kubeconfig: str | None = Field(default=None, validation_alias=_env("KUBECONFIG"))
    anthropic_api_key: SecretStr | None = Field(default=None, validation_alias=_env("ANTHROPIC_API_KEY"))
    anthropic_base_url: str | None = Field(default=None, validation_alias=_env("ANTHROPIC_BASE_URL"))
    telegram_bot_token: SecretStr | None = Field(default=None, validation_alias=_env("TELEGRAM_BOT_TOKEN"))
    telegram_webhook_secret: SecretStr | None = Field(default=None, validation_alias=_env("TELEGRAM_WEBHOOK_SECRET"))
    slack_bot_token: SecretStr | None = Field(default=None, validation_alias=_env("SLACK_BOT_TOKEN"))
    slack_signing_secret: SecretStr | None = Field(default=None, validation_alias=_env("SLACK_SIGNING_SECRET"))
    alertmanager_token: SecretStr | None = Field(default=None, validation_alias=_env("ALERTMANAGER_TOKEN"))
    alertmanager_basic_user: str | None = Field(default=None, validation_alias=_env("ALERTMANAGER_BASIC_USER"))
    ops_api_token: SecretStr | None = Field(default=None, validation_alias=_env("OPS_API_TOKEN"))

    dev_mode: bool = Field(default=False, validation_alias=_env("AIOPS_DEV_MODE"))
    data_dir: Path = Field(
        default_factory=lambda: Path.home() / ".local" / "share" / "ray-aiops",
        validation_alias=_env("AIOPS_DATA_DIR"),
    )
    redis_prefix: str = Field(default="aiops:", validation_alias=_env("AIOPS_REDIS_PREFIX"))
    rules_file: str | None = Field(default=None, validation_alias=_env("AIOPS_RULES_FILE"))
    playbooks_dir: str | None = Field(default=None, validation_alias=_env("AIOPS_PLAYBOOKS_DIR"))
    policy_file: str | None = Field(default=None, validation_alias=_env("AIOPS_POLICY_FILE"))
    chat_file: str | None = Field(default=None, validation_alias=_env("AIOPS_CHAT_FILE"))
    chat_session_ttl_seconds: float = Field(
        default=1800.0, ge=10, le=7 * 86400, validation_alias=_env("AIOPS_CHAT_SESSION_TTL_SECONDS")
    )
    ray_address: str | None = Field(default=None, validation_alias=_env("RAY_ADDRESS"))
    http_host: str = Field(default="127.0.0.1", validation_alias=_env("AIOPS_HTTP_HOST"))
    http_port: int = Field(default=8000, ge=1, le=65535, validation_alias=_env("AIOPS_HTTP_PORT"))
    max_body_bytes: int = Field(default=5 * 1024 * 1024, ge=1024, validation_alias=_env("AIOPS_MAX_BODY_BYTES"))
    watch_namespaces: list[str] = Field(default_factory=lambda: ["*"], validation_alias=_env("AIOPS_WATCH_NAMESPACES"))
    exclude_namespaces: list[str] = Field(
        default_factory=lambda: ["kube-public", "kube-node-lease"], validation_alias=_env("AIOPS_EXCLUDE_NAMESPACES")
    )
    kubernetes_service_host: str | None = Field(default=None, validation_alias=_env("KUBERNETES_SERVICE_HOST"))
    watch_enabled: bool = Field(
        default=True,
        validation_alias=_env("AIOPS_WATCH"),
        description="Start the watchers when a cluster is configured (KUBECONFIG or in-cluster).",
    )
    watch_resync_seconds: float | None = Field(default=None, ge=1, validation_alias=_env("AIOPS_WATCH_RESYNC_SECONDS"))
    watch_namespaces_per_actor: int = Field(
        default=10,
        ge=1,
        le=500,
        validation_alias=_env("AIOPS_WATCH_NAMESPACES_PER_ACTOR"),
        description="Namespaces one watcher actor process hosts (1: a process per namespace).",
    )
    db_pool_max: int = Field(default=5, ge=1, le=100, validation_alias=_env("AIOPS_DB_POOL_MAX"))
    actor_placement: Literal["spread", "pack"] = Field(
        default="spread",
        validation_alias=_env("AIOPS_ACTOR_PLACEMENT"),
        description="spread: watcher hosts and RCA workers go round the Ray nodes; pack: Ray's default placement.",
    )

    # -- root-cause analysis and the LLM (actors/rca.py, adapters/llm.py) --------------------
    llm_model: str = Field(default="claude-sonnet-4-5", min_length=1, validation_alias=_env("AIOPS_LLM_MODEL"))
    llm_timeout_seconds: float = Field(default=20.0, gt=0, le=600, validation_alias=_env("AIOPS_LLM_TIMEOUT_SECONDS"))
    llm_max_tokens: int = Field(default=1500, ge=64, le=64_000, validation_alias=_env("AIOPS_LLM_MAX_TOKENS"))
    llm_concurrency: int = Field(default=2, ge=1, le=64, validation_alias=_env("AIOPS_LLM_CONCURRENCY"))
    rca_workers: int = Field(default=2, ge=1, le=64, validation_alias=_env("AIOPS_RCA_WORKERS"))

    @model_validator(mode="after")
    def _no_placeholders(self) -> Settings:
        if self.dev_mode:
            return self
        bad = []
        for name in SECRET_FIELDS:
            value = getattr(self, name)
            if value is not None and is_placeholder(value.get_secret_value()):
                bad.append(name.upper())
        if bad:
            raise ValueError(
                f"placeholder values for {', '.join(bad)}: set real secrets or AIOPS_DEV_MODE=1 for local use"
            )
        return self

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """Read the environment once; ConfigError with every problem on invalid values."""
        try:
            return cls(**overrides)  # type: ignore[arg-type]
        except ValidationError as e:
            problems = tuple(
                f"{'.'.join(str(p) for p in item['loc']) or 'settings'}: {item['msg'].removeprefix('Value error, ')}"
                for item in e.errors()
            )
            raise ConfigError("invalid settings", problems) from e

    @property
    def cluster_configured(self) -> bool:
        """A kubeconfig is named, or we run in a pod with a service account."""
        return bool(self.kubeconfig or self.kubernetes_service_host)

    def secret(self, name: str) -> str | None:
        value = getattr(self, name)
        return value.get_secret_value() if isinstance(value, SecretStr) else None

    def secret_values(self) -> tuple[str, ...]:
        """All configured secret strings, for redaction."""
        return tuple(v for v in (self.secret(n) for n in SECRET_FIELDS) if v)
