"""Effects shared by the remediation state machines: tell people, write the audit trail.

State machines never talk to chat or storage; they return these values and the
ApprovalCoordinator performs them. ``Announce`` goes to the incident's chat thread,
``Audit`` to the append-only audit log, ``Refused`` explains an event that did not fit
the current state (a second approval, a late result) so nothing is ever silently ignored.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

_FROZEN = ConfigDict(frozen=True, extra="forbid")

AuditValue = str | int | float | bool | None


class Announce(BaseModel):
    model_config = _FROZEN

    kind: Literal["announce"] = "announce"
    subject: str = Field(description="Run or approval id the message is about.")
    text: str


class Audit(BaseModel):
    model_config = _FROZEN

    kind: Literal["audit"] = "audit"
    subject: str
    event: str = Field(description="What happened, e.g. step_executed, approval_granted.")
    detail: dict[str, AuditValue] = Field(default_factory=dict)


class Refused(BaseModel):
    model_config = _FROZEN

    kind: Literal["refused"] = "refused"
    subject: str
    reason: str
