"""Inbound chat webhooks: any change to a correctly signed request is refused with AuthError.

Slack (``SlackVerifier``): flip, insert or drop any body byte, change the signature or the
timestamp header to any other text, drop a header, or replay the exact request outside
the five-minute window: refused. Telegram (``verify_secret``): any other secret-token value
is refused. Header names stay case-insensitive, so a proxy that lowercases them still works.

Found by this file: a signature header with a non-ASCII character made slack_sdk's
``hmac.compare_digest`` raise TypeError (a 500 instead of a 401). ``SlackVerifier`` now
refuses such a header as an invalid signature before comparing.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.slack import REPLAY_WINDOW, SIGNATURE_HEADER, TIMESTAMP_HEADER, SlackVerifier
from adapters.telegram import SECRET_HEADER, verify_secret
from core.errors import AuthError
from tests.abuse.tally import count
from tests.servers.slack_server import signed_headers

SETTINGS = settings(max_examples=200, deadline=None)
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
NOW = 1_800_000_000
bodies = st.binary(min_size=1, max_size=200) | st.text(min_size=1, max_size=100).map(str.encode)
header_text = st.text(max_size=80)


def _verifier(now: float = NOW) -> SlackVerifier:
    return SlackVerifier(SECRET, clock=lambda: now)


def _refused(body: bytes, headers: dict[str, str], now: float = NOW) -> bool:
    try:
        _verifier(now).verify(body, headers)
    except AuthError:
        return True
    return False


@SETTINGS
@given(st.text(min_size=1, max_size=100), st.integers(-int(REPLAY_WINDOW), int(REPLAY_WINDOW)), st.booleans())
def test_a_correctly_signed_request_is_accepted_whatever_the_header_case(text: str, skew: int, lower: bool) -> None:
    count("slack: signed request accepted")
    body = text.encode()  # Slack sends UTF-8; other bytes are refused before the HMAC
    headers = signed_headers(SECRET, body, NOW + skew)
    if lower:
        headers = {k.lower(): v for k, v in headers.items()}
    assert not _refused(body, headers)


@st.composite
def mutated_bodies(draw: st.DrawFn) -> tuple[bytes, bytes]:
    body = draw(bodies)
    at = draw(st.integers(0, len(body)))
    how = draw(st.sampled_from(["flip", "insert", "drop", "append"]))
    if how == "flip" and at < len(body):
        bit = 1 << draw(st.integers(0, 7))
        changed = body[:at] + bytes([body[at] ^ bit]) + body[at + 1 :]
    elif how == "drop" and at < len(body):
        changed = body[:at] + body[at + 1 :]
    elif how == "append":
        changed = body + draw(st.binary(min_size=1, max_size=10))
    else:
        changed = body[:at] + draw(st.binary(min_size=1, max_size=10)) + body[at:]
    return body, changed


@SETTINGS
@given(mutated_bodies())
def test_any_body_change_breaks_the_slack_signature(case: tuple[bytes, bytes]) -> None:
    count("slack: body mutation refused")
    body, changed = case
    assert _refused(changed, signed_headers(SECRET, body, NOW))


@SETTINGS
@given(bodies, st.sampled_from([SIGNATURE_HEADER, TIMESTAMP_HEADER]), header_text)
def test_any_other_signature_or_timestamp_header_is_refused(body: bytes, header: str, value: str) -> None:
    count("slack: header mutation refused")
    headers = signed_headers(SECRET, body, NOW)
    if headers[header] == value:
        return
    assert _refused(body, {**headers, header: value})


@SETTINGS
@given(bodies, st.sampled_from([SIGNATURE_HEADER, TIMESTAMP_HEADER]))
def test_a_request_missing_either_header_is_refused(body: bytes, header: str) -> None:
    count("slack: header dropped refused")
    headers = signed_headers(SECRET, body, NOW)
    del headers[header]
    assert _refused(body, headers)


@SETTINGS
@given(bodies, st.integers(int(REPLAY_WINDOW) + 1, 10**8), st.booleans())
def test_the_exact_signed_request_replayed_outside_the_window_is_refused(body: bytes, late: int, past: bool) -> None:
    count("slack: replay outside window refused")
    headers = signed_headers(SECRET, body, NOW)
    assert _refused(body, headers, now=NOW + late if past else NOW - late)


@SETTINGS
@given(bodies, st.text(min_size=8, max_size=40).filter(lambda s: s != SECRET))
def test_a_request_signed_with_another_secret_is_refused(body: bytes, other: str) -> None:
    count("slack: other secret refused")
    assert _refused(body, signed_headers(other, body, NOW))


@SETTINGS
@given(header_text, st.booleans())
def test_any_other_telegram_secret_token_is_refused(value: str, lower: bool) -> None:
    count("telegram: secret mutation refused")
    name = SECRET_HEADER.lower() if lower else SECRET_HEADER
    verify_secret({name: SECRET}, SECRET)
    if value == SECRET:
        return
    try:
        verify_secret({name: value}, SECRET)
    except AuthError:
        return
    raise AssertionError(f"secret token {value!r} was accepted")


@SETTINGS
@given(st.dictionaries(st.text(max_size=20).filter(lambda k: k.lower() != SECRET_HEADER.lower()), header_text))
def test_telegram_requests_without_the_secret_header_are_refused(headers: dict[str, str]) -> None:
    count("telegram: header missing refused")
    try:
        verify_secret({**headers, "X-Other": SECRET}, SECRET)
    except AuthError:
        return
    raise AssertionError("accepted without the secret header")
