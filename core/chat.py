"""Chat commands: parse what a person typed (or clicked) into one typed command, purely.

A chat message is untrusted input from a human in a hurry, so parsing is strict and
exact: a command is recognised by its *whole first token* (``/status``, ``approve``),
never by a substring (a message that merely contains "report" or "approve" is not a
command), and its arguments must fit the command's grammar. What does not fit is one of:

* ``Invalid``: a known command with wrong arguments; the reply is the usage line.
* ``Question``: free text for the assistant (read-only analysis; viewer role).
* ``Unknown``: empty, garbage or an unknown slash command; the reply is the help text.
* ``Ignored``: a Telegram ``/cmd@OtherBot`` addressed to another bot in a group.

Slash commands work everywhere (``/status``, Telegram's ``/status@aiops_bot``). A few
read commands and the decisions also work as bare words (``status``, ``approve k3x9q2``)
because Slack intercepts messages that start with ``/``. A bare word whose arguments do
not fit is a question ("status of the api?"), except ``approve``/``reject``, whose
misuse is an ``Invalid`` with the usage: a decision must never be guessed.

Buttons arrive as ``approve:<id>`` (Telegram ``callback_data``) or as Slack's
``action_id``/``value`` pair; both go through :func:`parse_button`.

``required_role`` says which role a command needs (viewer < operator < admin); the risk
of the step being approved is checked later by ``core.authz``/``core.approvals``.

The reply model (``Message``, ``Button``, ``MessageRef``) and the inbound ``ChatEvent``
live here too, so renderers, adapters and the coordinator share one vocabulary.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from core.approvals import Verdict
from core.authz import Role
from core.errors import InputError
from core.models import ApprovalId, IncidentId
from core.silences import Silence, parse_silence_command

MAX_MESSAGE_CHARS = 4096
"""Longer messages are refused unread (Telegram's own limit for one message)."""

APPROVAL_ID = re.compile(r"^[a-z0-9]{2,16}$")
INCIDENT_ID = re.compile(r"^inc-[a-z0-9]{4,32}$")
_BOT_SUFFIX = re.compile(r"^(/[a-z_]+)@([A-Za-z0-9_]{1,64})$")
_SILENCE_CHECK_AT = datetime(2000, 1, 1, tzinfo=UTC)  # syntax check only; the real start is "now" later

# --- commands --------------------------------------------------------------------------


@dataclass(frozen=True)
class Status:
    """Platform health and counts."""


@dataclass(frozen=True)
class ListIncidents:
    """Open incidents."""


@dataclass(frozen=True)
class ShowIncident:
    incident_id: IncidentId


@dataclass(frozen=True)
class ListApprovals:
    """Pending approvals."""


@dataclass(frozen=True)
class Ack:
    incident_id: IncidentId


@dataclass(frozen=True)
class SilenceRequest:
    """``/silence <matchers> <duration> [comment]``; syntax already checked.

    Call :meth:`to_silence` with the current time and the identity to build the Silence.
    """

    spec: str

    def to_silence(self, now: datetime, who: str) -> Silence:
        return parse_silence_command(self.spec, now, who)


@dataclass(frozen=True)
class Pause:
    """Stop every mutating action platform-wide."""


@dataclass(frozen=True)
class Resume:
    """Lift a pause."""


@dataclass(frozen=True)
class Help:
    topic: str | None = None


@dataclass(frozen=True)
class Decision:
    """Approve or reject one approval; ``confirm`` is an admin's explicit confirm for a high step."""

    verdict: Verdict
    approval_id: ApprovalId
    confirm: bool = False
    note: str = ""


@dataclass(frozen=True)
class Question:
    text: str


@dataclass(frozen=True)
class Invalid:
    """A known command used wrongly; ``message`` says what to type instead."""

    command: str
    message: str


@dataclass(frozen=True)
class Unknown:
    """Not a command and not a question; ``help`` is the text to answer with."""

    text: str
    reason: str
    help: str


@dataclass(frozen=True)
class Ignored:
    """Addressed to another bot: answer nothing."""

    reason: str


Command = (
    Status
    | ListIncidents
    | ShowIncident
    | ListApprovals
    | Ack
    | SilenceRequest
    | Pause
    | Resume
    | Help
    | Decision
    | Question
    | Invalid
    | Unknown
    | Ignored
)

USAGE: dict[str, str] = {
    "status": "/status: platform health, open incidents and pending approvals",
    "incidents": "/incidents: list open incidents",
    "incident": "/incident <id>: one incident with its diagnosis, e.g. /incident inc-3f9a0c12de",
    "approvals": "/approvals: list pending approvals",
    "ack": "/ack <incident id>: acknowledge an incident, e.g. /ack inc-3f9a0c12de",
    "silence": '/silence <matchers> <duration> [comment], e.g. /silence namespace="prod",reason="OOMKilled" 2h',
    "pause": "/pause: stop all remediation (admin)",
    "resume": "/resume: allow remediation again (admin)",
    "approve": "approve <approval id> [confirm]: approve a pending step, e.g. approve k3x9q2",
    "reject": "reject <approval id> [reason]: reject a pending step, e.g. reject k3x9q2 not now",
    "help": "/help [command]: this text",
}
HELP_TEXT = "Commands:\n" + "\n".join(USAGE.values()) + "\nAnything else phrased as a question goes to the assistant."

_ALIASES = {"start": "help", "approval": "approvals", "inc": "incident", "acknowledge": "ack"}
_BARE = frozenset({"status", "incidents", "incident", "approvals", "help", "ack", "approve", "reject"})
_STRICT_BARE = frozenset({"approve", "reject"})


def _usage(name: str, problem: str) -> Invalid:
    return Invalid(command=name, message=f"{problem}; usage: {USAGE[name]}")


def approval_id_problem(text: str) -> str | None:
    if APPROVAL_ID.match(text.lower()):
        return None
    return f"{text[:40]!r} is not an approval id (2-16 letters and digits, e.g. k3x9q2)"


def incident_id_problem(text: str) -> str | None:
    if INCIDENT_ID.match(text.lower()):
        return None
    return f"{text[:40]!r} is not an incident id (inc-<letters and digits>, e.g. inc-3f9a0c12de)"


def _grammar(name: str, args: list[str], rest: str) -> Command:
    """The command ``name`` with whitespace-split ``args`` (``rest`` is the raw text after the name)."""
    if name in ("status", "incidents", "approvals", "pause", "resume"):
        if args:
            return _usage(name, f"/{name} takes no arguments")
        simple: dict[str, Command] = {
            "status": Status(),
            "incidents": ListIncidents(),
            "approvals": ListApprovals(),
            "pause": Pause(),
            "resume": Resume(),
        }
        return simple[name]
    if name == "help":
        if len(args) > 1:
            return _usage(name, "/help takes at most one command name")
        if not args:
            return Help()
        topic = _ALIASES.get(args[0].lower().lstrip("/"), args[0].lower().lstrip("/"))
        return Help(topic) if topic in USAGE else _usage(name, f"no command {args[0][:40]!r}")
    if name in ("incident", "ack"):
        if len(args) != 1:
            return _usage(name, f"/{name} needs exactly one incident id")
        problem = incident_id_problem(args[0])
        if problem:
            return _usage(name, problem)
        incident = IncidentId(args[0].lower())
        return ShowIncident(incident) if name == "incident" else Ack(incident)
    if name in ("approve", "reject"):
        return _decision(name, args, rest)
    if name == "silence":
        if not args:
            return Invalid(command=name, message=f"/silence needs matchers and a duration; usage: {USAGE[name]}")
        try:
            parse_silence_command(rest, _SILENCE_CHECK_AT, "syntax-check")
        except InputError as e:
            return Invalid(command=name, message=str(e))
        return SilenceRequest(rest)
    raise AssertionError(f"no grammar for {name}")  # pragma: no cover - _COMMANDS and _grammar agree


def _decision(name: str, args: list[str], rest: str) -> Command:
    verdict = Verdict.APPROVE if name == "approve" else Verdict.REJECT
    if not args:
        return _usage(name, f"{name} needs an approval id")
    problem = approval_id_problem(args[0])
    if problem:
        return _usage(name, problem)
    approval = ApprovalId(args[0].lower())
    if verdict is Verdict.APPROVE:
        extra = [a.lower() for a in args[1:]]
        if extra not in ([], ["confirm"]):
            return _usage(name, "only the word 'confirm' may follow the approval id")
        return Decision(verdict, approval, confirm=bool(extra))
    pieces = rest.split(None, 1)
    note = pieces[1].strip() if len(pieces) > 1 else ""
    return Decision(verdict, approval, note=note[:500])


_COMMANDS = frozenset(USAGE)


def _looks_like_question(text: str) -> bool:
    words = [w for w in text.split() if any(ch.isalpha() for ch in w)]
    return len(words) >= 2 or (len(words) == 1 and text.rstrip().endswith("?"))


def parse(text: str, *, bot_username: str | None = None) -> Command:
    """One chat message -> one command. Never raises on any input."""
    if len(text) > MAX_MESSAGE_CHARS:
        return Invalid(command="", message=f"message of {len(text)} characters refused (limit {MAX_MESSAGE_CHARS})")
    stripped = text.strip()
    if not stripped:
        return Unknown(text="", reason="empty message", help=HELP_TEXT)
    parts = stripped.split(None, 1)
    head, rest = parts[0], (parts[1].strip() if len(parts) > 1 else "")
    token = head.lower()
    if token.startswith("/"):
        suffix = _BOT_SUFFIX.match(token)
        if suffix:
            token = suffix.group(1)
            addressed = head.split("@", 1)[1]
            if bot_username is not None and addressed.lower() != bot_username.lower().lstrip("@"):
                return Ignored(reason=f"addressed to @{addressed}")
        name = _ALIASES.get(token[1:], token[1:])
        if name not in _COMMANDS:
            return Unknown(text=stripped[:200], reason=f"unknown command {head[:40]!r}", help=HELP_TEXT)
        return _grammar(name, rest.split(), rest)
    name = _ALIASES.get(token, token)
    if name in _BARE:
        command = _grammar(name, rest.split(), rest)
        if not isinstance(command, Invalid) or name in _STRICT_BARE:
            return command
    if _looks_like_question(stripped):
        return Question(stripped)
    reason = "not a command" if any(ch.isalpha() for ch in stripped) else "no words in the message"
    hint = f" (did you mean /{name}?)" if name in _COMMANDS else ""
    return Unknown(text=stripped[:200], reason=reason + hint, help=HELP_TEXT)


def parse_button(action: str, value: str) -> Command:
    """A button press: Slack ``action_id``/``value`` or a split Telegram ``callback_data``."""
    name = action.strip().lower()
    if name not in ("approve", "reject"):
        return Unknown(text=f"{action[:40]}:{value[:40]}", reason=f"unknown button {action[:40]!r}", help=HELP_TEXT)
    problem = approval_id_problem(value.strip())
    if problem:
        return _usage(name, problem)
    return Decision(Verdict(name), ApprovalId(value.strip().lower()))


def parse_callback(data: str) -> Command:
    """Telegram ``callback_data`` such as ``approve:k3x9q2``."""
    action, sep, value = data.partition(":")
    if not sep:
        return Unknown(text=data[:80], reason="unknown button", help=HELP_TEXT)
    return parse_button(action, value)


# --- roles -----------------------------------------------------------------------------


def required_role(command: Command) -> Role | None:
    """The least role that may run ``command``; None when nothing runs (``Ignored``)."""
    if isinstance(command, Ignored):
        return None
    if isinstance(command, Pause | Resume):
        return Role.ADMIN
    if isinstance(command, Ack | SilenceRequest | Decision):
        return Role.OPERATOR
    return Role.VIEWER


def authorize(command: Command, role: Role | None) -> tuple[bool, str]:
    """Whether ``role`` may run ``command``, with a reason that reads well in chat."""
    need = required_role(command)
    if need is None:
        return True, "nothing to run"
    if role is None:
        return False, "you are not in the policy, so you may not use this bot"
    if role.rank < need.rank:
        return False, f"this command needs the {need.value} role; you are {role.value}"
    return True, f"{role.value} may run this"


def command_name(command: Command) -> str:
    """A short stable name for metrics, audit and rate limiting."""
    if isinstance(command, Decision):
        return command.verdict.value
    if isinstance(command, Invalid):
        return "invalid"
    return type(command).__name__.lower()


# --- the reply model ---------------------------------------------------------------------


@dataclass(frozen=True)
class MessageRef:
    """Where a sent message lives: the channel kind, the chat/channel and its id (Slack ``ts``)."""

    channel: str
    target: str
    id: str


@dataclass(frozen=True)
class Button:
    label: str
    action: str
    value: str
    style: str = ""  # "primary" | "danger" | ""


@dataclass(frozen=True)
class Message:
    """A channel-neutral message: a headline, key/value fields, paragraphs and buttons.

    ``thread`` is the root message of the incident's thread (replies go under it).
    """

    headline: str
    fields: tuple[tuple[str, str], ...] = ()
    body: tuple[str, ...] = ()
    buttons: tuple[Button, ...] = ()
    link: str | None = None
    thread: MessageRef | None = None
    context: str = ""

    @property
    def text(self) -> str:
        """The whole message as plain text (Telegram, the console, Slack's fallback text)."""
        lines = [self.headline]
        lines.extend(f"{key}: {value}" for key, value in self.fields)
        lines.extend(self.body)
        if self.link:
            lines.append(self.link)
        if self.context:
            lines.append(self.context)
        return "\n".join(line for line in lines if line)


@dataclass(frozen=True)
class ChatEvent:
    """One inbound chat action after verification and parsing, ready for authorisation."""

    channel: str
    chat: str
    user_id: str
    command: Command
    text: str = ""
    message_id: str | None = None
    callback_id: str | None = None
    response_url: str | None = None
    delivery_id: str | None = None
    thread: MessageRef | None = None
    extra: tuple[tuple[str, str], ...] = field(default=())

    @property
    def identity(self) -> str:
        """The policy identity: ``telegram:<id>``, ``slack:<id>`` or ``cli:<name>``."""
        scheme = "cli" if self.channel == "console" else self.channel
        return f"{scheme}:{self.user_id}"
