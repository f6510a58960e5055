"""The LLM adapter through the official anthropic SDK against a loopback Messages API server.

The evidence is real evidence-plan output (an OOM scenario from the eval suite driven
through the pure plan); the SDK, HTTP, status codes, retry-after and timeouts are real.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from adapters.llm import LlmClient
from config.settings import Settings
from core.rca import Category, Diagnosis, Evidence, diagnose, drive, llm_output_schema, plan
from tests.evals.scenarios import SCENARIOS_BASIC
from tests.servers.anthropic_server import AnthropicServer, Reply

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
API_KEY = "sk-ant-loopback-0123456789abcdef"

VALID: dict[str, Any] = {
    "summary": "checkout pods are OOM-killed in production",
    "root_cause": "The container exceeds its 128Mi memory limit while loading the catalogue.",
    "category": "memory_limit",
    "evidence": ["OOMKilled exit 137", "limits memory 128Mi"],
    "confidence": 0.83,
    "recommended_playbook": "oom",
    "risk_notes": ["Check for a leak before raising the limit."],
}


@pytest.fixture
def server() -> Iterator[AnthropicServer]:
    with AnthropicServer() as srv:
        yield srv


def settings_for(server: AnthropicServer, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "anthropic_api_key": API_KEY,
        "anthropic_base_url": server.url,
        "llm_timeout_seconds": 2.0,
        "llm_model": "claude-loopback-1",
        "llm_max_tokens": 900,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def oom() -> tuple[Evidence, Diagnosis]:
    scenario = next(s for s in SCENARIOS_BASIC if s.id == "oom_killed_with_limit")
    evidence = drive(plan(scenario.subject, NOW), scenario.cluster())
    return evidence, diagnose(evidence, NOW)


async def test_a_valid_json_reply_becomes_an_llm_report_with_the_replys_fields(
    server: AnthropicServer, oom: tuple[Evidence, Diagnosis]
) -> None:
    server.script(Reply.report(VALID, usage=(321, 45)))
    llm = LlmClient(settings_for(server))
    try:
        report = await llm.report(*oom)
    finally:
        await llm.close()
    assert report.mode == "llm"
    assert report.category is Category.MEMORY_LIMIT
    assert report.summary == VALID["summary"]
    assert report.root_cause == VALID["root_cause"]
    assert report.evidence == tuple(VALID["evidence"])
    assert report.confidence == pytest.approx(0.83)
    assert report.recommended_playbook == "oom"
    assert report.fallback_reason is None
    stats = llm.stats()
    assert (stats["requests"], stats["reports"], stats["tokens_in"], stats["tokens_out"]) == (1, 1, 321, 45)


async def test_the_request_has_the_messages_api_shape_and_offers_no_tools(
    server: AnthropicServer, oom: tuple[Evidence, Diagnosis]
) -> None:
    server.script(Reply.report(VALID))
    llm = LlmClient(settings_for(server))
    try:
        await llm.report(*oom)
    finally:
        await llm.close()
    (request,) = server.requests
    assert request.path == "/v1/messages"
    # SDK 2.x sends the key as a bearer token; older ones as x-api-key.
    assert API_KEY in (request.headers.get("x-api-key") or request.headers.get("authorization", ""))
    assert request.headers.get("anthropic-version")
    body = request.body
    assert body["model"] == "claude-loopback-1"
    assert body["max_tokens"] == 900
    assert "tools" not in body and "tool_choice" not in body
    assert isinstance(body["system"], str) and '"root_cause"' in body["system"]
    assert all(f'"{name}"' in body["system"] for name in llm_output_schema()["properties"])
    assert [m["role"] for m in body["messages"]] == ["user"]
    assert "<<<DATA" in body["messages"][0]["content"]


@pytest.mark.parametrize(
    ("replies", "reason", "requests"),
    [
        pytest.param([Reply.text("The pod ran out of memory, I think.")], "not JSON", 1, id="prose"),
        pytest.param([Reply.text('{"summary": "x", "category": }')], "not valid JSON", 1, id="broken-json"),
        pytest.param(
            [Reply.report({**VALID, "category": "cosmic_rays"})], "does not match the RCA schema", 1, id="bad-category"
        ),
        pytest.param([Reply.report({"verdict": "oom"})], "does not match the RCA schema", 1, id="wrong-keys"),
        pytest.param([Reply.report(VALID, delay=10.0)], "timed out", 1, id="slow-beyond-timeout"),
        pytest.param([Reply.error(429, retry_after=0.05)] * 2, "429 (rate limited)", 2, id="rate-limited"),
        pytest.param([Reply.error(429, retry_after=30)], "retry-after 30s", 1, id="retry-after-beyond-deadline"),
        pytest.param([Reply.error(500)] * 2, "answered 500", 2, id="server-error"),
        pytest.param([Reply.error(400)], "answered 400", 1, id="bad-request-not-retried"),
        pytest.param(
            [Reply.report(VALID, stop_reason="max_tokens")], "cut at max_tokens", 1, id="truncated-at-max-tokens"
        ),
        pytest.param([Reply.tool_use("delete_pod", {"name": "checkout"})], "held no text", 1, id="tool-call"),
    ],
)
async def test_llm_failures_give_the_deterministic_report_labelled_fallback_with_the_reason(
    server: AnthropicServer,
    oom: tuple[Evidence, Diagnosis],
    replies: list[Reply],
    reason: str,
    requests: int,
) -> None:
    server.script(*replies)
    # 3 s: far above a scripted reply's time even on a loaded machine, far below the slow reply's 10 s.
    llm = LlmClient(settings_for(server, llm_timeout_seconds=3.0))
    evidence, diagnosis = oom
    try:
        report = await llm.report(evidence, diagnosis)
    finally:
        await llm.close()
    assert report.mode == "fallback"
    assert reason in (report.fallback_reason or "")
    assert report.category is diagnosis.category is Category.MEMORY_LIMIT
    assert report.root_cause == diagnosis.root_cause
    assert len(server.requests) == requests
    assert llm.stats()["fallbacks"] == 1


async def test_a_rate_limit_then_a_valid_reply_is_retried_into_an_llm_report(
    server: AnthropicServer, oom: tuple[Evidence, Diagnosis]
) -> None:
    server.script(Reply.error(429, retry_after=0.05), Reply.report(VALID))
    llm = LlmClient(settings_for(server))
    try:
        report = await llm.report(*oom)
    finally:
        await llm.close()
    assert report.mode == "llm"
    assert [r.status for r in server.requests] == [429, 200]
    assert llm.stats()["errors"] == {"rate_limited": 1}


async def test_without_an_api_key_the_fallback_is_reported_and_no_request_is_sent(
    server: AnthropicServer, oom: tuple[Evidence, Diagnosis]
) -> None:
    llm = LlmClient(settings_for(server, anthropic_api_key=None))
    report = await llm.report(*oom)
    await llm.close()
    assert not llm.configured
    assert report.mode == "fallback"
    assert "no LLM API key" in (report.fallback_reason or "")
    assert server.requests == []


async def test_concurrent_reports_never_exceed_the_concurrency_limit(
    server: AnthropicServer, oom: tuple[Evidence, Diagnosis]
) -> None:
    server.set_default(Reply.report(VALID, delay=0.15))
    llm = LlmClient(settings_for(server, llm_concurrency=1, llm_timeout_seconds=5.0))
    try:
        reports = await asyncio.gather(*(llm.report(*oom) for _ in range(3)))
    finally:
        await llm.close()
    assert [r.mode for r in reports] == ["llm"] * 3
    assert len(server.requests) == 3
    assert server.max_in_flight == 1


async def test_known_secret_values_and_secret_patterns_are_masked_in_the_prompt(
    server: AnthropicServer, oom: tuple[Evidence, Diagnosis]
) -> None:
    evidence, diagnosis = oom
    leaky = evidence.subject.model_copy(
        update={"message": "login with password=hunter2 as ops@example.com using s3cr3t-platform-value"}
    )
    server.script(Reply.report({**VALID, "root_cause": "s3cr3t-platform-value leaked"}))
    llm = LlmClient(settings_for(server))
    try:
        report = await llm.report(evidence.model_copy(update={"subject": leaky}), diagnosis, ["s3cr3t-platform-value"])
    finally:
        await llm.close()
    sent = server.raw_text()
    for secret in ("hunter2", "ops@example.com", "s3cr3t-platform-value", API_KEY):
        assert secret not in sent
    assert "s3cr3t-platform-value" not in report.root_cause
