"""Pure root-cause analysis: evidence plan, log analysis, redaction, diagnosis, report.

The RcaWorker drives ``plan`` (a sans-I/O generator of read-only queries) with the
Kubernetes adapter, passes the ``Evidence`` to ``diagnose`` (the deterministic
signature library) and builds an ``RcaReport``; with an LLM configured it sends
``build_prompt`` to the model and validates the reply with ``parse_llm_output``,
falling back to the deterministic report. Everything here is pure: no I/O, no
clock (``now`` is a parameter), and bad input (empty or binary logs, vanished pods,
missing fields) never raises.
"""

from __future__ import annotations

from core.rca.answers import FakeCluster
from core.rca.categories import PLAYBOOKS, Category, Playbook
from core.rca.diagnosis import Diagnosis, diagnose
from core.rca.evidence import DEFAULT_BUDGET, Plan, drive, plan
from core.rca.logs import LogCategory, LogSignature, LogSummary, analyze, first_error_line
from core.rca.queries import (
    Endpoints,
    GetNode,
    GetObject,
    ListEvents,
    ListObjects,
    PodLogs,
    Query,
    Result,
    RolloutHistory,
    Unavailable,
)
from core.rca.records import Budget, Evidence, Subject
from core.rca.redact import redact, redact_obj
from core.rca.report import (
    LlmRcaOutput,
    RcaReport,
    build_prompt,
    fallback_report,
    llm_output_schema,
    parse_llm_output,
    render_text,
    report_from_diagnosis,
    report_from_llm,
)

__all__ = [
    "DEFAULT_BUDGET",
    "PLAYBOOKS",
    "Budget",
    "Category",
    "Diagnosis",
    "Endpoints",
    "Evidence",
    "FakeCluster",
    "GetNode",
    "GetObject",
    "ListEvents",
    "ListObjects",
    "LlmRcaOutput",
    "LogCategory",
    "LogSignature",
    "LogSummary",
    "Plan",
    "Playbook",
    "PodLogs",
    "Query",
    "RcaReport",
    "Result",
    "RolloutHistory",
    "Subject",
    "Unavailable",
    "analyze",
    "build_prompt",
    "diagnose",
    "drive",
    "fallback_report",
    "first_error_line",
    "llm_output_schema",
    "parse_llm_output",
    "plan",
    "redact",
    "redact_obj",
    "render_text",
    "report_from_diagnosis",
    "report_from_llm",
]
