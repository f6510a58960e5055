"""The bearer/basic token check of the alerts and ops ingress (``deployments/http.check_token``).

Any Authorization header other than the right token (Bearer, or Basic with the token as
the password) is refused with AuthError, never another exception, so every route answers
401 and never 500; an unset token refuses everything.
"""

from __future__ import annotations

import base64

from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import AuthError
from deployments.http import check_token
from tests.abuse.tally import count

SETTINGS = settings(max_examples=200, deadline=None)
TOKEN = "am-token-0c5e2b7f19d4"
latin1 = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=60)


def _refused(header: str | None, token: str | None = TOKEN, user: str | None = None) -> bool:
    try:
        check_token(header, token, basic_user=user, what="the alerts app")
    except AuthError:
        return True
    return False


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_the_right_token_is_accepted_as_bearer_and_basic() -> None:
    assert not _refused(f"Bearer {TOKEN}")
    assert not _refused(f"bearer  {TOKEN} ")
    assert not _refused(_basic("alertmanager", TOKEN))
    assert not _refused(_basic("alertmanager", TOKEN), user="alertmanager")


@SETTINGS
@given(latin1 | st.sampled_from(["Bearer", "Basic", "Basic ====", "Bearer  ", "Digest x"]).map(str))
def test_any_other_header_is_refused_with_an_auth_error(header: str) -> None:
    count("ingress: arbitrary Authorization header")
    assert _refused(header)
    assert _refused(header, token=None)
    assert _refused(None)


@SETTINGS
@given(st.integers(0, len(TOKEN) - 1), st.characters(min_codepoint=0x21, max_codepoint=0xFF), st.booleans())
def test_a_token_with_one_character_changed_is_refused(at: int, char: str, basic: bool) -> None:
    count("ingress: token one char off")
    forged = TOKEN[:at] + char + TOKEN[at + 1 :]
    if forged == TOKEN:
        return
    assert _refused(_basic("alertmanager", forged) if basic else f"Bearer {forged}")


@SETTINGS
@given(latin1, st.text(max_size=20))
def test_basic_credentials_with_the_wrong_user_or_password_are_refused(password: str, user: str) -> None:
    count("ingress: basic credentials")
    if password != TOKEN:
        assert _refused(_basic(user, password))
    if user != "alertmanager" and ":" not in user:
        assert _refused(_basic(user, TOKEN), user="alertmanager")
