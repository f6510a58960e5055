"""Masking secrets before evidence leaves the process.

RCA evidence travels to chat, to storage and (optionally) to an LLM vendor. Logs and
pod specs routinely carry credentials: a connection string in an env var, a bearer
token in a request log, a private key mounted and printed by a confused app. So every
log line and API object is passed through here when it is collected, and again with
the platform's own known secret values before a prompt is built.

Two entry points:

* ``redact(text, known=())`` masks patterns (bearer tokens, ``password=...``, JSON
  ``"token": "..."``, AWS keys, private key blocks, JWTs, credentials in URLs, Slack,
  Telegram, Anthropic and similar vendor tokens, emails) and the exact ``known`` values;
* ``redact_obj(obj, known=())`` walks dicts/lists/tuples: every string goes through
  ``redact``, and scalar values under secret-looking keys (``DB_PASSWORD``,
  ``apiKey``, ``client_secret``) are masked whole, as are Kubernetes env entries
  ``{"name": "X_TOKEN", "value": ...}`` and the ``data`` of Secret objects.

Masking errs on the side of hiding: a false positive costs a little evidence, a
false negative leaks a credential. Keys naming *where* a secret lives
(``secretName``, ``secretKeyRef``, ``TOKEN_FILE``) are kept, because they are
evidence (which Secret is missing) and not secrets.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "***"
_MAX_DEPTH = 40
_MIN_KNOWN = 4

_SECRET_WORD = r"(?:password|passwd|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key|credentials?)"  # noqa: S105 - a pattern
_SECRET_KEY = re.compile(rf"(?i:{_SECRET_WORD}|authorization)|(?i:[_.-]key$)|(?<=[a-z])Key$")
# Key suffixes that name a place or a reference, not a value.
_REFERENCE_SUFFIX = re.compile(r"(?i)(?:name|names|ref|keyref|namespace|path|file|dir|mountpath|type|length|ttl)$")

_KEY_VALUE = re.compile(
    r"""(?<![A-Za-z0-9_.-])(?P<key>["']?[A-Za-z0-9_.-]{0,40}"""
    + _SECRET_WORD
    + r"""[A-Za-z0-9_.-]{0,40}["']?)(?P<sep>\s{0,5}[:=]\s{0,5})"""
    + r"""(?P<val>"(?:[^"\\\n]|\\.){0,4096}"|'[^'\n]{0,4096}'|[^\s,;&"'}\]]{1,4096})""",
    re.IGNORECASE,
)

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(
            r"-----BEGIN [A-Z0-9 ]{0,30}PRIVATE KEY( BLOCK)?-----(?:(?!-----END ).){0,16384}"
            r"(?:-----END [A-Z0-9 ]{0,30}PRIVATE KEY( BLOCK)?-----)?",
            re.DOTALL,
        ),
        "-----PRIVATE KEY " + MASK + "-----",
    ),
    (re.compile(r"(?i)\b(authorization\s*[:=]\s*)(?!bearer\b|basic\b)[^\s,;]{6,}"), r"\1" + MASK),
    (re.compile(r"\b([Bb]earer|BEARER)(\s+)[A-Za-z0-9._~+/=-]{8,}"), r"\1\2" + MASK),
    (re.compile(r"\b(Basic|BASIC)(\s+)[A-Za-z0-9+/]{8,}={0,2}"), r"\1\2" + MASK),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), MASK),
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]{1,20}://)([^\s:/@]{0,256}):([^\s@/]{1,512})@"), r"\1\2:" + MASK + "@"),
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]{1,20}://)([A-Za-z0-9_-]{20,})@"), r"\1" + MASK + "@"),
    (re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16}\b"), MASK),
    (re.compile(r"\bsk-ant-[A-Za-z0-9_-]{8,}"), MASK),
    (re.compile(r"\bsk-(?:proj-)?[A-Za-z0-9_-]{20,}"), MASK),
    (re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{8,}"), MASK),
    (re.compile(r"\bxapp-[A-Za-z0-9-]{8,}"), MASK),
    (re.compile(r"hooks\.slack\.com/services/[A-Za-z0-9/]+"), "hooks.slack.com/services/" + MASK),
    (re.compile(r"(?<![A-Za-z0-9_])\d{5,12}:[A-Za-z0-9_-]{35}(?![A-Za-z0-9_-])"), MASK),
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}"), MASK),
    (re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}"), MASK),
    (re.compile(r"\bAIza[0-9A-Za-z_-]{35}"), MASK),
    (
        re.compile(
            r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*\.[A-Za-z]{2,24}\b"
        ),
        "<email>",
    ),
)


def looks_secret_key(key: str) -> bool:
    """Whether a dict key or env var name says its value is a secret (``DB_PASSWORD``, ``apiKey``)."""
    return bool(_SECRET_KEY.search(key)) and not _REFERENCE_SUFFIX.search(key)


def _mask_key_value(match: re.Match[str]) -> str:
    key = match.group("key")
    if not looks_secret_key(key.strip("\"'")):
        return match.group(0)
    value = match.group("val")
    if value.strip("\"'") in ("", MASK):
        return match.group(0)
    quote = value[0] if value[0] in "\"'" else ""
    return f"{key}{match.group('sep')}{quote}{MASK}{quote}"


def _known_values(known: Iterable[str]) -> tuple[str, ...]:
    values = {value for value in known if isinstance(value, str) and len(value) >= _MIN_KNOWN}
    return tuple(sorted(values, key=len, reverse=True))


def redact(text: str, known: Iterable[str] = ()) -> str:
    """``text`` with secrets masked; never raises (non-strings come back as ``""``)."""
    if not isinstance(text, str):
        return ""
    result = text
    for value in _known_values(known):
        result = result.replace(value, MASK)
    for pattern, replacement in _PATTERNS:
        result = pattern.sub(replacement, result)
    return _KEY_VALUE.sub(_mask_key_value, result)


def redact_obj(obj: Any, known: Iterable[str] = ()) -> Any:
    """A copy of a JSON-like value with every string redacted and secret-keyed values masked."""
    return _walk(obj, _known_values(known), 0)


def _walk(obj: Any, known: tuple[str, ...], depth: int) -> Any:
    if isinstance(obj, str):
        return redact(obj, known)
    if depth >= _MAX_DEPTH:
        return MASK if isinstance(obj, Mapping | list | tuple) else obj
    if isinstance(obj, Mapping):
        return _walk_mapping(obj, known, depth)
    if isinstance(obj, list):
        return [_walk(item, known, depth + 1) for item in obj]
    if isinstance(obj, tuple):
        return tuple(_walk(item, known, depth + 1) for item in obj)
    return obj


def _walk_mapping(obj: Mapping[Any, Any], known: tuple[str, ...], depth: int) -> dict[Any, Any]:
    is_secret_object = obj.get("kind") == "Secret"
    env_name = obj.get("name")
    secret_env = isinstance(env_name, str) and looks_secret_key(env_name) and "value" in obj
    result: dict[Any, Any] = {}
    for key, value in obj.items():
        if is_secret_object and key in ("data", "stringData") and isinstance(value, Mapping):
            result[key] = {name: MASK for name in value}
        elif _scalar(value) and ((isinstance(key, str) and looks_secret_key(key)) or (secret_env and key == "value")):
            result[key] = MASK if value not in (None, "") else value
        else:
            result[key] = _walk(value, known, depth + 1)
    return result


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)
