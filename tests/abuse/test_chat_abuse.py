"""Chat commands: whatever a person types or a client forges, parsing never raises and never guesses.

Properties of ``core.chat``: ``parse``/``parse_button``/``parse_callback`` return a command
for every input; a command is recognised only by its whole first token (a known word glued
to other characters, or appearing later in the text, is never that command); a decision
always carries an id that passes the approval-id grammar; a forged button (any action but
approve/reject, any malformed id) never becomes a decision.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from core.authz import Role
from core.chat import (
    APPROVAL_ID,
    INCIDENT_ID,
    MAX_MESSAGE_CHARS,
    USAGE,
    Ack,
    Decision,
    Ignored,
    Invalid,
    ListApprovals,
    ListIncidents,
    Pause,
    Resume,
    ShowIncident,
    SilenceRequest,
    Status,
    parse,
    parse_button,
    parse_callback,
    required_role,
)
from tests.abuse.tally import count

SETTINGS = settings(max_examples=200, deadline=None)
COMMANDS = sorted(USAGE)
ACTING = (Ack, SilenceRequest, Decision, Pause, Resume)
words = st.sampled_from([*COMMANDS, *(f"/{c}" for c in COMMANDS), "confirm", "inc-3f9a0c12de", "k3x9q2", "?"])
chatty = st.lists(words | st.text(max_size=12), max_size=6).map(" ".join)


@SETTINGS
@given(st.text(max_size=300) | chatty, st.none() | st.text(max_size=20))
def test_parse_never_raises_and_decisions_carry_valid_ids(text: str, bot: str | None) -> None:
    count("chat: parse any text")
    command = parse(text, bot_username=bot)
    if isinstance(command, Decision):
        assert APPROVAL_ID.match(command.approval_id)
    if isinstance(command, ShowIncident | Ack):
        assert INCIDENT_ID.match(command.incident_id)


@SETTINGS
@given(
    st.sampled_from(COMMANDS),
    st.text(alphabet=st.characters(blacklist_categories=("Zs", "Cc", "Zl", "Zp")), min_size=1, max_size=8),
    st.booleans(),
    chatty,
)
def test_a_command_word_glued_to_other_characters_is_never_that_command(
    name: str, glue: str, before: bool, rest: str
) -> None:
    count("chat: glued command word")
    token = f"{glue}{name}" if before else f"{name}{glue}"
    for head in (token, "/" + token):
        command = parse(f"{head} {rest}")
        if head.lower().lstrip("/").startswith(("start", "approval", "inc", "acknowledge")):
            continue  # aliases are their own whole tokens, e.g. "approval" -> approvals
        if head.lower().startswith(f"/{name}@"):
            continue  # Telegram's /cmd@bot addressing
        assert not isinstance(command, ACTING), (head, command)
        assert not isinstance(command, Status | ListIncidents | ListApprovals) or head.lower().lstrip("/") in (
            "status",
            "incidents",
            "approvals",
        )


@SETTINGS
@given(st.text(max_size=40).filter(lambda t: not t.strip().lower().startswith(tuple(USAGE))), st.sampled_from(COMMANDS))
def test_a_command_word_later_in_the_message_does_not_act(prefix: str, name: str) -> None:
    count("chat: command word not first")
    text = f"{prefix.strip() or 'please'} {name} k3x9q2 confirm"
    first = text.split()[0].lower().lstrip("/")
    if first.split("@")[0] in USAGE or first in ("start", "approval", "inc", "acknowledge"):
        return
    assert not isinstance(parse(text), ACTING)


@SETTINGS
@given(st.text(max_size=60), st.text(max_size=60))
def test_a_forged_button_decides_only_with_a_valid_id_and_action(action: str, value: str) -> None:
    count("chat: forged button")
    for command in (parse_button(action, value), parse_callback(f"{action}:{value}"), parse_callback(action)):
        if isinstance(command, Decision):
            assert command.verdict.value in ("approve", "reject")
            assert APPROVAL_ID.match(command.approval_id)
            assert required_role(command) is Role.OPERATOR
        else:
            assert required_role(command) in (Role.VIEWER, None)


@SETTINGS
@given(st.text(max_size=50), st.integers(min_value=1, max_value=100))
def test_an_oversized_message_is_refused_whatever_it_says(text: str, over: int) -> None:
    count("chat: oversized")
    padding = " " * (MAX_MESSAGE_CHARS + over)
    assert isinstance(parse("approve k3x9q2 confirm " + text + padding), Invalid)


@SETTINGS
@given(st.sampled_from(COMMANDS), st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_", min_size=1, max_size=20))
def test_a_command_addressed_to_another_bot_runs_nothing(name: str, other: str) -> None:
    count("chat: other bot")
    command = parse(f"/{name}@{other}x k3x9q2", bot_username=f"{other}")
    assert isinstance(command, Ignored)
    assert required_role(command) is None
