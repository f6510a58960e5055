"""A small async client for ``aiops mcp-server``, as the platform uses it.

The platform talks to the Kubernetes tools through the same MCP server any outside client
uses, so what the LLM can reach is exactly what ``--read-only`` exposes. This wrapper starts
the server as a subprocess over stdio (the ``mcp`` SDK's ``stdio_client`` + ``ClientSession``),
and offers ``list_tools()`` and ``call(tool, params) -> dict``.

``read_only=True`` (the default) is a second lock on the same door: the server is started
with ``--read-only``, ``start()`` refuses a server that lists a mutating tool anyway, and a
mutating (or unknown) tool name is refused here, before anything is sent. ``read_tools()``
is what an LLM may be offered: the listed tools whose risk is ``read`` in both the server's
metadata and the catalogue.

The SDK's transports are anyio context managers that must be entered and left by one task;
callers (pytest fixtures, Ray actors) start and stop from different tasks, so the session
lives in a task of its own and calls are made from any task on the same loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TextIO

from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp_types import CallToolResult, TextContent, Tool

from core.errors import InputError, PermanentError, TemporaryError
from core.tools import MUTATING, READ_ONLY, TOOLS, Risk

RISK_META = "aiops/risk"
log = logging.getLogger(__name__)


class ToolRefused(InputError):
    """Refused by this client before sending: a mutating tool in read-only mode, or an unknown tool."""


class ToolFailed(PermanentError):
    """The server answered the call with an error result; ``message`` is its text."""

    def __init__(self, tool: str, message: str) -> None:
        self.tool = tool
        self.message = message
        super().__init__(f"{tool}: {message}")


class McpUnavailable(TemporaryError):
    """The server process could not be started or the session is not open."""


@dataclass(frozen=True)
class ToolSpec:
    """A tool as the server lists it."""

    name: str
    description: str
    risk: Risk
    read_only: bool
    input_schema: dict[str, Any]


def default_command() -> list[str]:
    """The ``aiops`` executable next to this interpreter (or on PATH)."""
    beside = Path(sys.executable).parent / "aiops"
    found = str(beside) if beside.exists() else shutil.which("aiops")
    if found is None:
        raise McpUnavailable("cannot find the `aiops` command to start the MCP server")
    return [found]


def _risk_of(tool: Tool) -> Risk:
    value = (tool.meta or {}).get(RISK_META)
    if isinstance(value, str):
        return Risk.parse(value)
    description = tool.description or ""
    if description.startswith("[risk: "):
        return Risk.parse(description[len("[risk: ") :].split("]", 1)[0])
    return Risk.HIGH


def _result_dict(tool: str, result: CallToolResult) -> dict[str, Any]:
    text = "\n".join(block.text for block in result.content if isinstance(block, TextContent))
    if result.is_error:
        prefix = f"Error executing tool {tool}: "  # the SDK's wrapper; the message follows it
        message = text[len(prefix) :] if text.startswith(prefix) else text
        raise ToolFailed(tool, message or "the server reported an error without a message")
    if isinstance(result.structured_content, dict):
        return result.structured_content
    try:
        parsed = json.loads(text)
    except ValueError:
        return {"text": text}
    return parsed if isinstance(parsed, dict) else {"result": parsed}


class KubeMcpClient:
    """``async with KubeMcpClient(kubeconfig=...) as mcp: await mcp.call("list_pods", {...})``."""

    def __init__(
        self,
        *,
        kubeconfig: str | Path | None = None,
        allow_namespaces: str | Sequence[str] = "*",
        deny_namespaces: str | Sequence[str] = "kube-system",
        read_only: bool = True,
        command: Sequence[str] | None = None,
        env: Mapping[str, str] | None = None,
        errlog: TextIO | None = None,
        call_timeout: float = 60.0,
        start_timeout: float = 30.0,
    ) -> None:
        def joined(value: str | Sequence[str]) -> str:
            return value if isinstance(value, str) else ",".join(value)

        args = [*(command or default_command()), "mcp-server"]
        if kubeconfig is not None:
            args += ["--kubeconfig", str(kubeconfig)]
        args += ["--allow-namespaces", joined(allow_namespaces), "--deny-namespaces", joined(deny_namespaces)]
        if read_only:
            args.append("--read-only")
        self.read_only = read_only
        self.call_timeout = call_timeout
        self.start_timeout = start_timeout
        self._params = StdioServerParameters(command=args[0], args=args[1:], env=dict(env) if env else None)
        self._errlog = errlog
        self._session: ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None

    @property
    def alive(self) -> bool:
        """Whether the session is open and the server process has not gone away."""
        return self._session is not None and self._task is not None and not self._task.done()

    @property
    def command(self) -> list[str]:
        return [self._params.command, *self._params.args]

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the server subprocess and initialise the session."""
        if self._task is not None:
            return
        ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._serve(ready, self._stop), name="aiops-mcp-client")
        waiter = asyncio.create_task(ready.wait())
        try:
            await asyncio.wait({waiter, self._task}, timeout=self.start_timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if self._session is None:
            task, self._task = self._task, None
            if task.done():
                error = task.exception()
                raise McpUnavailable(f"the MCP server did not start: {error}") from error
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            raise McpUnavailable(f"the MCP server did not answer within {self.start_timeout}s")
        if self.read_only:
            try:
                listed = await self.list_tools()
            except (TimeoutError, McpUnavailable) as e:
                await self.close()
                raise McpUnavailable(f"the MCP server did not list its tools: {e}") from e
            mutating = sorted(t.name for t in listed if t.name in MUTATING or t.risk is not Risk.READ)
            if mutating:
                await self.close()
                raise McpUnavailable(f"a read-only client refuses a server that lists mutating tools: {mutating}")

    async def _serve(self, ready: asyncio.Event, stop: asyncio.Event) -> None:
        errlog = self._errlog if self._errlog is not None else sys.stderr
        async with stdio_client(self._params, errlog=errlog) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            self._session = session
            ready.set()
            try:
                await stop.wait()
            finally:
                self._session = None

    async def close(self) -> None:
        """End the session; the server process exits when its stdin closes."""
        task, self._task = self._task, None
        if task is None:
            return
        if self._stop is not None:
            self._stop.set()
        try:
            await asyncio.wait_for(task, timeout=15.0)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        except Exception:
            log.warning("the MCP session ended with an error", exc_info=True)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- calls -----------------------------------------------------------------------------
    def _open(self) -> ClientSession:
        if self._session is None:
            raise McpUnavailable("the MCP session is not open; call start() first")
        return self._session

    async def list_tools(self) -> list[ToolSpec]:
        result = await asyncio.wait_for(self._open().list_tools(), timeout=self.call_timeout)
        return [
            ToolSpec(
                name=tool.name,
                description=tool.description or "",
                risk=_risk_of(tool),
                read_only=bool(tool.annotations and tool.annotations.read_only_hint),
                input_schema=dict(tool.input_schema),
            )
            for tool in result.tools
        ]

    async def read_tools(self) -> list[ToolSpec]:
        """The listed tools that only read: risk ``read`` on the server and in the catalogue."""
        return [t for t in await self.list_tools() if t.risk is Risk.READ and t.name in READ_ONLY]

    async def call(self, tool: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Call ``tool``; its JSON result as a dict. Raises ToolRefused (local), ToolFailed (server)."""
        if tool not in TOOLS:
            raise ToolRefused(f"unknown tool {tool!r}; known tools: {', '.join(sorted(TOOLS))}")
        if self.read_only and tool in MUTATING:
            raise ToolRefused(
                f"tool {tool!r} mutates the cluster ({TOOLS[tool].risk.value} risk); this client is read-only"
            )
        session = self._open()
        try:
            result = await asyncio.wait_for(session.call_tool(tool, dict(params or {})), timeout=self.call_timeout)
        except TimeoutError as e:
            raise TemporaryError(f"{tool}: no answer from the MCP server within {self.call_timeout}s") from e
        return _result_dict(tool, result)
