"""The e2e suite runs against the session's ``platform`` (defined in ``tests/platform.py``,
shared with the abuse suite); its names stay importable from here."""

from __future__ import annotations

from tests.platform import (
    AM_TOKEN,
    CHAT_ROLES,
    OPS_TOKEN,
    SLACK_CHANNEL,
    SLACK_SECRET,
    SLACK_TOKEN,
    TELEGRAM_CHAT,
    TELEGRAM_SECRET,
    TELEGRAM_TOKEN,
    Platform,
)

__all__ = [
    "AM_TOKEN",
    "CHAT_ROLES",
    "OPS_TOKEN",
    "SLACK_CHANNEL",
    "SLACK_SECRET",
    "SLACK_TOKEN",
    "TELEGRAM_CHAT",
    "TELEGRAM_SECRET",
    "TELEGRAM_TOKEN",
    "Platform",
]
