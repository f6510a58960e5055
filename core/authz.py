"""Who may approve what: chat identities mapped to roles, optionally per namespace.

No credentials ever travel through chat (DESIGN.md principle 3). A Telegram or Slack
user is only an identity string (``telegram:<user id>``, ``slack:<user id>``,
``cli:<name>``, ``api:<name>``) that the policy maps to a role: viewer < operator < admin.
A grant may be scoped by namespace globs (``prod-*``); a scoped grant never covers
cluster-scoped objects such as nodes. Unknown identities get no role at all and are
refused with a reason that says so, which is what a viewer would get.

What a role may do per risk:

- viewer: look, never decide.
- operator: decide read/low/medium steps; for high steps counts as one of the two approvers.
- admin: everything; alone on a high step only with an explicit confirm (see core.approvals).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from enum import StrEnum
from typing import NewType

from core.errors import InputError
from core.tools import Risk

Identity = NewType("Identity", str)
SCHEMES: tuple[str, ...] = ("telegram", "slack", "cli", "api")


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return {"viewer": 0, "operator": 1, "admin": 2}[self.value]


def identity_problem(text: str) -> str | None:
    """Why ``text`` is not an identity (``scheme:id``), or None when it is one."""
    scheme, sep, rest = text.partition(":")
    if not sep or not rest.strip():
        return f"identity {text!r} must look like <scheme>:<id>, scheme one of {', '.join(SCHEMES)}"
    if scheme not in SCHEMES:
        return f"identity {text!r} has unknown scheme {scheme!r}; expected one of {', '.join(SCHEMES)}"
    if rest != rest.strip() or any(ch.isspace() for ch in rest):
        return f"identity {text!r} must not contain spaces"
    return None


def parse_identity(text: str) -> Identity:
    problem = identity_problem(text)
    if problem:
        raise InputError(problem)
    return Identity(text)


def role_may_decide(role: Role | None, risk: Risk) -> tuple[bool, str]:
    """Whether a role may approve or reject a step of this risk; the reason reads well in chat."""
    if role is None:
        return False, "unknown identity: not in the policy, so it may not approve anything"
    if role is Role.VIEWER:
        return False, "viewers may not approve or reject steps"
    if role is Role.OPERATOR and risk is Risk.HIGH:
        return True, "operator: counts as one of the two approvals a high-risk step needs"
    if role is Role.ADMIN and risk is Risk.HIGH:
        return True, "admin: may approve a high-risk step alone with an explicit confirm"
    return True, f"{role.value} may approve {risk.value}-risk steps"


@dataclass(frozen=True)
class Grant:
    identity: Identity
    role: Role
    namespaces: tuple[str, ...] = ()

    def applies(self, namespace: str | None) -> bool:
        """Unscoped grants cover everything; scoped ones only matching namespaces (never nodes)."""
        if not self.namespaces:
            return True
        return namespace is not None and any(fnmatch.fnmatchcase(namespace, p) for p in self.namespaces)


@dataclass(frozen=True)
class Policy:
    grants: tuple[Grant, ...] = ()

    def role_for(self, identity: str, namespace: str | None) -> Role | None:
        """The highest role any applicable grant gives; None when the identity has none here."""
        roles = [g.role for g in self.grants if g.identity == identity and g.applies(namespace)]
        return max(roles, key=lambda r: r.rank) if roles else None

    def known(self, identity: str) -> bool:
        return any(g.identity == identity for g in self.grants)

    def can_approve(self, identity: str, risk: Risk, namespace: str | None) -> tuple[bool, str]:
        role = self.role_for(identity, namespace)
        if role is None and self.known(identity):
            where = f"namespace {namespace!r}" if namespace else "cluster-scoped objects"
            return False, f"{identity} has no role for {where}"
        allowed, reason = role_may_decide(role, risk)
        return allowed, f"{identity}: {reason}"

    def can_request(self, identity: str, namespace: str | None) -> tuple[bool, str]:
        """Starting a run or accepting a suggestion needs the operator role where it acts."""
        role = self.role_for(identity, namespace)
        if role is None or role.rank < Role.OPERATOR.rank:
            return False, f"{identity}: only operators and admins may start remediation here"
        return True, f"{identity}: {role.value}"
