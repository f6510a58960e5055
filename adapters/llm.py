"""The LLM edge: an RCA report written by Claude, or the deterministic one when that fails.

Why it looks like this:

* **The LLM analyses, it never controls** (DESIGN.md principle 1). The report request
  carries no ``tools`` and no ``tool_choice``; a reply that tries to call a tool anyway
  has no text and is rejected. The model only ever returns a JSON document that
  ``core.rca.parse_llm_output`` validates against a closed schema.
* **Never raises for LLM problems.** No key, a timeout, 429, 5xx, a refused
  connection, prose instead of JSON, JSON of the wrong shape, a reply cut at
  ``max_tokens``: each gives ``fallback_report(diagnosis, reason)``, the deterministic
  report labelled ``mode="fallback"`` with the reason, so an incident always has an
  analysis and the reader knows which kind it is.
* **Bounded.** One deadline per call (``llm_timeout_seconds``) covers waiting for a
  concurrency slot, the request and any retry; the SDK's own retries are off so a
  ``retry-after`` longer than what is left of the deadline is not slept through.
  ``llm_concurrency`` calls at most run at once; the prompt is cut to a character
  budget and the reply to ``llm_max_tokens``.
* **Tools only when the caller offers them.** ``tool_turn`` is the one request that
  carries ``tools``: the chat assistant (``adapters.assistant``) offers the MCP server's
  read tools there and runs the loop itself; reports never get any.
* **Nothing secret leaves.** ``build_prompt`` redacts every data block with the
  platform's known secret values (and our own API key), on top of the pattern
  redaction already applied when the evidence was collected.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import anthropic
from pydantic import ValidationError

from config.settings import Settings
from core.errors import InputError, TemporaryError
from core.rca import Diagnosis, Evidence, RcaReport, build_prompt, fallback_report, parse_llm_output, report_from_llm
from core.rca.report import DEFAULT_PROMPT_BUDGET

log = logging.getLogger(__name__)

_RETRY_BACKOFF_SECONDS = 0.5


class _Fallback(Exception):
    """Why this call falls back (``kind`` names its error counter); never leaves this module."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


class LlmUnavailable(TemporaryError):
    """A tool-use turn could not be had: ``kind`` is no_key, timeout, rate_limited, server_error, ..."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


@dataclass(frozen=True)
class ToolTurn:
    """One assistant turn of a tool-use conversation: text and tool_use blocks as API dicts."""

    content: tuple[dict[str, Any], ...]
    stop_reason: str | None

    @property
    def tool_uses(self) -> list[dict[str, Any]]:
        return [block for block in self.content if block.get("type") == "tool_use"]

    @property
    def text(self) -> str:
        return "".join(str(block.get("text", "")) for block in self.content if block.get("type") == "text")


def _retry_after(error: anthropic.APIStatusError) -> float | None:
    try:
        value = error.response.headers.get("retry-after")
        return float(value) if value is not None else None
    except (TypeError, ValueError, AttributeError):
        return None


def _detail(error: anthropic.APIStatusError) -> str:
    """The API's own error message (``{"error": {"message": ...}}``), short."""
    body = error.body
    if isinstance(body, dict):
        inner = body.get("error")
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return str(inner["message"])[:160]
    return str(error.message)[:160]


def _rejected(error: InputError) -> _Fallback:
    """Name what was wrong with a reply: not JSON at all, or JSON of the wrong shape."""
    cause = error.__cause__
    if not isinstance(cause, ValidationError):
        return _Fallback("invalid_json", f"LLM reply is not JSON: {error}")
    problems = cause.errors()
    if any(problem.get("type") == "json_invalid" for problem in problems):
        return _Fallback("invalid_json", "LLM reply is not valid JSON")
    where = "; ".join(
        f"{'.'.join(str(part) for part in problem.get('loc', ())) or 'reply'}: {problem.get('msg', '')}"
        for problem in problems[:3]
    )
    return _Fallback("wrong_schema", f"LLM reply does not match the RCA schema ({where})")


class LlmClient:
    """Claude through the official SDK, for RCA reports only."""

    def __init__(
        self,
        settings: Settings,
        *,
        prompt_budget_chars: int = DEFAULT_PROMPT_BUDGET,
        retries: int = 1,
    ) -> None:
        self._api_key = settings.secret("anthropic_api_key")
        self._base_url = settings.anthropic_base_url
        self.model = settings.llm_model
        self.timeout = settings.llm_timeout_seconds
        self.max_tokens = settings.llm_max_tokens
        # llm_concurrency is the platform-wide bound: each of the rca_workers processes gets its
        # share, so all workers together never run more calls at once than configured.
        self.concurrency = max(1, settings.llm_concurrency // max(1, settings.rca_workers))
        self.prompt_budget_chars = prompt_budget_chars
        self.retries = max(retries, 0)
        self._client: anthropic.AsyncAnthropic | None = None
        self._slots: asyncio.Semaphore | None = None
        self._in_flight = 0
        self._stats: dict[str, Any] = {
            "requests": 0,
            "reports": 0,
            "fallbacks": 0,
            "tokens_in": 0,
            "tokens_out": 0,
            "errors": {},
            "last_error": None,
        }

    @property
    def configured(self) -> bool:
        """Whether an API key is set (without one, every report is the fallback)."""
        return bool(self._api_key)

    def _sdk(self) -> anthropic.AsyncAnthropic:
        # Created on first use, on the loop that uses it (the SDK's HTTP pool binds to a loop).
        if self._client is None:
            self._client = anthropic.AsyncAnthropic(
                api_key=self._api_key, base_url=self._base_url, timeout=self.timeout, max_retries=0
            )
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    def stats(self) -> dict[str, Any]:
        """Counters: requests sent, llm reports, fallbacks, tokens in/out, errors by kind."""
        return {**self._stats, "errors": dict(self._stats["errors"]), "in_flight": self._in_flight,
                "configured": self.configured, "model": self.model}

    def _count_error(self, kind: str, reason: str) -> None:
        errors: dict[str, int] = self._stats["errors"]
        errors[kind] = errors.get(kind, 0) + 1
        self._stats["last_error"] = reason[:300]

    async def report(self, evidence: Evidence, diagnosis: Diagnosis, known_secrets: Iterable[str] = ()) -> RcaReport:
        """The LLM's report on ``evidence``, or the deterministic fallback saying why not."""
        known = tuple(known_secrets) + ((self._api_key,) if self._api_key else ())
        try:
            if not self.configured:
                raise _Fallback("no_key", "no LLM API key configured (ANTHROPIC_API_KEY)")
            try:
                async with asyncio.timeout(self.timeout):
                    text = await self._ask(evidence, diagnosis, known)
            except TimeoutError as e:
                raise _Fallback("timeout", f"LLM call timed out after {self.timeout:g}s") from e
            try:
                output = parse_llm_output(text)
            except InputError as e:
                raise _rejected(e) from e
        except _Fallback as fallback:
            self._stats["fallbacks"] += 1
            self._count_error(fallback.kind, fallback.reason)
            if fallback.kind != "no_key":
                log.warning("RCA LLM fallback: %s", fallback.reason)
            return fallback_report(diagnosis, fallback.reason, evidence)
        self._stats["reports"] += 1
        return report_from_llm(output, diagnosis, known)

    async def _ask(self, evidence: Evidence, diagnosis: Diagnosis, known: tuple[str, ...]) -> str:
        system, user = build_prompt(evidence, diagnosis, self.prompt_budget_chars, known)
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.concurrency)
        async with self._slots:
            self._in_flight += 1
            try:
                return await self._send(system, user)
            finally:
                self._in_flight -= 1

    async def _send(self, system: str, user: str) -> str:
        # No tools, no tool_choice: this request can only produce text.
        message = await self._create(
            time.monotonic() + self.timeout, system=system, messages=[{"role": "user", "content": user}]
        )
        return self._text_of(message)

    async def tool_turn(
        self,
        *,
        system: str,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]],
        budget_s: float,
    ) -> ToolTurn:
        """One Messages API turn offering ``tools`` (the caller's read-only tools); raises LlmUnavailable.

        The caller runs the tool-use loop: it executes the turn's ``tool_use`` blocks (or
        refuses them) and sends ``tool_result`` blocks back in the next turn. ``budget_s``
        (capped at ``llm_timeout_seconds``) bounds the wait for a concurrency slot, the request and any retry.
        """
        if not self.configured:
            raise LlmUnavailable("no_key", "no LLM API key configured (ANTHROPIC_API_KEY)")
        timeout = max(min(budget_s, self.timeout), 0.05)
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.concurrency)
        try:
            async with asyncio.timeout(timeout), self._slots:
                self._in_flight += 1
                try:
                    message = await self._create(
                        time.monotonic() + timeout,
                        system=system,
                        messages=[dict(m) for m in messages],
                        tools=[dict(t) for t in tools],
                    )
                finally:
                    self._in_flight -= 1
        except TimeoutError as e:
            self._count_error("timeout", f"LLM call timed out after {timeout:g}s")
            raise LlmUnavailable("timeout", f"LLM call timed out after {timeout:g}s") from e
        except _Fallback as fallback:
            self._count_error(fallback.kind, fallback.reason)
            raise LlmUnavailable(fallback.kind, fallback.reason) from fallback
        usage = getattr(message, "usage", None)
        self._stats["tokens_in"] += int(getattr(usage, "input_tokens", 0) or 0)
        self._stats["tokens_out"] += int(getattr(usage, "output_tokens", 0) or 0)
        blocks: list[dict[str, Any]] = []
        for block in getattr(message, "content", None) or []:
            kind = getattr(block, "type", None)
            if kind == "text":
                blocks.append({"type": "text", "text": str(block.text)})
            elif kind == "tool_use":
                arguments = block.input if isinstance(block.input, dict) else {}
                blocks.append({"type": "tool_use", "id": str(block.id), "name": str(block.name), "input": arguments})
        return ToolTurn(content=tuple(blocks), stop_reason=getattr(message, "stop_reason", None))

    def own_secrets(self) -> tuple[str, ...]:
        """Secret values this client holds (its API key), for the caller's redaction."""
        return (self._api_key,) if self._api_key else ()

    async def _create(self, deadline: float, **request: Any) -> Any:
        """``messages.create`` with the retry policy above; errors become ``_Fallback``."""
        attempt = 0
        while True:
            attempt += 1
            remaining = deadline - time.monotonic()
            self._stats["requests"] += 1
            try:
                message = await self._sdk().messages.create(
                    model=self.model,
                    max_tokens=self.max_tokens,
                    timeout=max(remaining, 0.05),
                    **request,
                )
            except anthropic.APITimeoutError as e:
                raise _Fallback("timeout", f"LLM call timed out after {self.timeout:g}s") from e
            except anthropic.APIStatusError as e:
                status = e.status_code
                kind = "rate_limited" if status == 429 else "server_error" if status >= 500 else "client_error"
                reason = f"LLM API answered {status}" + (" (rate limited)" if status == 429 else "")
                if status not in (429, 500):
                    reason += f": {_detail(e)}"
                wait = _retry_after(e) if status == 429 else None
                wait = _RETRY_BACKOFF_SECONDS if wait is None else wait
                retryable = status == 429 or status >= 500
                if retryable and attempt <= self.retries and time.monotonic() + wait < deadline - 0.1:
                    self._count_error(kind, reason)
                    await asyncio.sleep(wait)
                    continue
                if wait and status == 429:
                    reason += f"; retry-after {wait:g}s"
                raise _Fallback(kind, reason) from e
            except anthropic.APIConnectionError as e:
                raise _Fallback("connection", f"cannot reach the LLM API: {e}") from e
            except anthropic.AnthropicError as e:
                raise _Fallback("sdk_error", f"LLM client error: {type(e).__name__}: {e}") from e
            return message

    def _text_of(self, message: Any) -> str:
        usage = getattr(message, "usage", None)
        self._stats["tokens_in"] += int(getattr(usage, "input_tokens", 0) or 0)
        self._stats["tokens_out"] += int(getattr(usage, "output_tokens", 0) or 0)
        blocks = list(getattr(message, "content", None) or [])
        texts = [block.text for block in blocks if getattr(block, "type", None) == "text"]
        if not texts:
            kinds = ", ".join(sorted({str(getattr(block, "type", "?")) for block in blocks})) or "nothing"
            raise _Fallback("no_text", f"LLM reply held no text (got {kinds}); tools are not offered")
        if getattr(message, "stop_reason", None) == "max_tokens":
            raise _Fallback("truncated", f"LLM reply was cut at max_tokens={self.max_tokens}")
        return "".join(texts)
