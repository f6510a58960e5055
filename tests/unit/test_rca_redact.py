"""Redaction: planted secrets never survive, evidence that merely names a secret does."""

from __future__ import annotations

from typing import Any

import pytest

from core.rca.redact import MASK, looks_secret_key, redact, redact_obj

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAq1w2\nZmFrZWtleQ==\n-----END RSA PRIVATE KEY-----"


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        pytest.param("Authorization: Bearer abcdef123456.xyz-TOKEN", "abcdef123456.xyz-TOKEN", id="bearer"),
        pytest.param("Authorization: Basic dXNlcjpodW50ZXIy", "dXNlcjpodW50ZXIy", id="basic-auth"),
        pytest.param("login with password=hunter2xyz ok", "hunter2xyz", id="password-kv"),
        pytest.param("passwd: 'sup3rs3cret'", "sup3rs3cret", id="passwd-quoted"),
        pytest.param('{"password": "p@ss w0rd!"}', "p@ss w0rd!", id="json-password-with-space"),
        pytest.param('{"client_secret":"cs-9f8e7d6c"}', "cs-9f8e7d6c", id="json-client-secret"),
        pytest.param("token=ghx_123456789abc&user=bob", "ghx_123456789abc", id="token-query-param"),
        pytest.param("API_KEY=AbC123xyz789", "AbC123xyz789", id="api-key-env"),
        pytest.param("api-key: k-77aa88bb", "k-77aa88bb", id="api-key-header"),
        pytest.param("aws key AKIAIOSFODNN7EXAMPLE used", "AKIAIOSFODNN7EXAMPLE", id="aws-access-key"),
        pytest.param(f"key:\n{PEM}\nafter", "MIIEowIBAAKCAQEAq1w2", id="private-key-block"),
        pytest.param("-----BEGIN PRIVATE KEY-----\nMIIBVQIBADAN truncated", "MIIBVQIBADAN", id="unterminated-key"),
        pytest.param(f"cookie {JWT}", JWT, id="jwt"),
        pytest.param("dsn postgres://app:Pa55word@db:5432/shop", "Pa55word", id="url-credentials"),
        pytest.param("redis://:r3d1spass@redis:6379/0", "r3d1spass", id="url-password-only"),
        pytest.param("slack xoxb-1234567890-abcdefghij-ZZZZ", "xoxb-1234567890-abcdefghij-ZZZZ", id="slack-bot"),
        pytest.param("xapp-1-A0123-4567-abcdef", "xapp-1-A0123-4567-abcdef", id="slack-app"),
        pytest.param(
            "bot 123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0 ok",
            "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0",
            id="telegram-bot-token",
        ),
        pytest.param(
            "ANTHROPIC sk-ant-api03-AbCdEf123456_xyz-987", "sk-ant-api03-AbCdEf123456_xyz-987", id="anthropic"
        ),
        pytest.param("mail alice.smith+ops@example.com now", "alice.smith+ops@example.com", id="email"),
        pytest.param("ghp_abcdefghijklmnopqrstuvwxyz0123456789", "ghp_abcdefghijklmnopqrstuvwxyz0123", id="github"),
    ],
)
def test_planted_secret_never_survives_redaction(text: str, secret: str) -> None:
    assert secret not in redact(text)


def test_known_secret_values_are_masked_wherever_they_appear() -> None:
    text = "connecting with s3cr3t-value-42 to db; retry s3cr3t-value-42"
    assert redact(text, known=("s3cr3t-value-42",)) == f"connecting with {MASK} to db; retry {MASK}"


def test_known_values_shorter_than_four_characters_are_ignored() -> None:
    assert redact("a b c", known=("a", "")) == "a b c"


@pytest.mark.parametrize(
    "text",
    [
        pytest.param('Error: configmap "api-config" not found', id="configmap-not-found"),
        pytest.param("couldn't find key DB_PASSWORD in Secret production/db-credentials", id="missing-key"),
        pytest.param('secret "db-credentials" not found', id="secret-not-found"),
        pytest.param("FATAL: password authentication failed for user \"app\"", id="auth-failure-message"),
        pytest.param("Liveness probe failed: HTTP probe failed with statuscode: 503", id="probe"),
        pytest.param("image registry.example.com/shop/api@sha256:0123abcd", id="image-digest"),
    ],
)
def test_messages_that_only_name_a_secret_are_kept(text: str) -> None:
    assert redact(text) == text


def test_redact_never_raises_on_non_strings() -> None:
    assert redact(None) == ""  # type: ignore[arg-type]
    assert redact(b"bytes") == ""  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        pytest.param("DB_PASSWORD", True, id="env-password"),
        pytest.param("SLACK_BOT_TOKEN", True, id="env-token"),
        pytest.param("STRIPE_API_KEY", True, id="env-key-suffix"),
        pytest.param("apiKey", True, id="camel-api-key"),
        pytest.param("signingKey", True, id="camel-key"),
        pytest.param("AWS_SECRET_ACCESS_KEY", True, id="aws-secret"),
        pytest.param("authorization", True, id="authorization"),
        pytest.param("secretName", False, id="secret-name-reference"),
        pytest.param("secretKeyRef", False, id="secret-key-ref"),
        pytest.param("TOKEN_FILE", False, id="token-file-path"),
        pytest.param("key", False, id="bare-key"),
        pytest.param("LOG_LEVEL", False, id="ordinary"),
    ],
)
def test_secret_looking_keys_are_recognised(key: str, secret: bool) -> None:
    assert looks_secret_key(key) is secret


def test_redact_obj_masks_env_values_secret_data_and_secret_keys_but_keeps_references() -> None:
    pod: dict[str, Any] = {
        "spec": {
            "containers": [
                {
                    "name": "api",
                    "env": [
                        {"name": "DB_PASSWORD", "value": "hunter2hunter2"},
                        {"name": "LOG_LEVEL", "value": "debug"},
                        {"name": "DB_URL", "value": "postgres://app:Pa55word@db/shop"},
                        {"name": "API_TOKEN", "valueFrom": {"secretKeyRef": {"name": "api", "key": "token"}}},
                    ],
                }
            ],
            "volumes": [{"name": "tls", "secret": {"secretName": "api-tls"}}],
        },
        "config": {"password": "topsecret1", "nested": [{"api_key": "k-123456"}], "port": 8080},
    }
    secret = {"kind": "Secret", "data": {"password": "aHVudGVyMg=="}, "metadata": {"name": "db"}}
    redacted = redact_obj(pod, known=("debug-not-secret-but-known",))
    text = repr(redacted) + repr(redact_obj(secret))
    for planted in ("hunter2hunter2", "Pa55word", "topsecret1", "k-123456", "aHVudGVyMg=="):
        assert planted not in text
    env = redacted["spec"]["containers"][0]["env"]
    assert env[1] == {"name": "LOG_LEVEL", "value": "debug"}
    assert env[3]["valueFrom"]["secretKeyRef"] == {"name": "api", "key": "token"}
    assert redacted["spec"]["volumes"][0]["secret"]["secretName"] == "api-tls"
    assert redacted["config"]["port"] == 8080
    assert pod["config"]["password"] == "topsecret1", "the input is not modified"


def test_redact_obj_survives_deep_nesting_and_odd_types() -> None:
    deep: Any = "password=deepsecret"
    for _ in range(200):
        deep = {"x": [deep]}
    assert "deepsecret" not in repr(redact_obj(deep))
    assert redact_obj((1, None, 2.5, True, {"k": b"raw"})) == (1, None, 2.5, True, {"k": b"raw"})


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("a" * 100_000, id="one-long-word"),
        pytest.param("a1_." * 25_000, id="key-like-characters"),
        pytest.param("-----BEGIN RSA PRIVATE KEY-----" * 3_000, id="many-key-headers"),
        pytest.param("token=" * 15_000, id="repeated-keys"),
    ],
)
def test_redaction_stays_linear_on_hostile_input(text: str) -> None:
    import time

    started = time.perf_counter()
    redact(text)
    assert time.perf_counter() - started < 5.0, "a regex went quadratic"
