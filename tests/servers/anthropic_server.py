"""A loopback server that speaks the Anthropic Messages API wire format, for tests.

The official ``anthropic`` SDK is pointed at it by ``base_url``, so the whole client
path (headers, JSON encoding, status codes, retry-after, timeouts) is exercised for
real. It accepts ``POST /v1/messages``, checks the request the way the API does
(``x-api-key`` and ``anthropic-version`` headers; ``model``, ``max_tokens``,
``messages``, ``system`` types; ``tools`` definitions; every ``tool_result`` answering
a ``tool_use`` id of the assistant turn just before it), records every request body for assertions, and
answers with scripted replies in order (then with the default reply):

* ``Reply.report({...})``: a 200 message whose text is that JSON document;
* ``Reply.text("...")``: a 200 message with arbitrary text (invalid JSON, prose);
* ``Reply.tool_use("delete_pod", {...})``: a 200 message with only a tool_use block
  (``Reply.tool_uses([(name, input), ...])`` for several in one turn);
* ``Reply.responding(fn)``: the reply ``fn(request_body)`` builds, e.g. a text made from
  the ``tool_result`` blocks the client sent (see ``tool_results``);
* ``Reply.error(429, retry_after=1)`` / ``Reply.error(500)``: API error bodies;
* any reply with ``delay=`` seconds before it is sent (a slow model).

A scripted delay waits on an event that ``stop`` sets, so shutdown never waits for it.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


@dataclass(frozen=True)
class Reply:
    """One scripted answer."""

    status: int = 200
    content: tuple[dict[str, Any], ...] = ()
    stop_reason: str = "end_turn"
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0
    usage: tuple[int, int] = (120, 80)
    message: str = ""
    respond: Callable[[dict[str, Any]], Reply] | None = None

    @classmethod
    def report(cls, document: dict[str, Any], **options: Any) -> Reply:
        return cls(content=({"type": "text", "text": json.dumps(document)},), **options)

    @classmethod
    def text(cls, text: str, **options: Any) -> Reply:
        return cls(content=({"type": "text", "text": text},), **options)

    @classmethod
    def tool_use(cls, name: str, arguments: dict[str, Any], **options: Any) -> Reply:
        block = {"type": "tool_use", "id": f"toolu_{uuid.uuid4().hex[:20]}", "name": name, "input": arguments}
        return cls(content=(block,), stop_reason="tool_use", **options)

    @classmethod
    def tool_uses(cls, calls: list[tuple[str, dict[str, Any]]], **options: Any) -> Reply:
        blocks = tuple(
            {"type": "tool_use", "id": f"toolu_{uuid.uuid4().hex[:20]}", "name": name, "input": arguments}
            for name, arguments in calls
        )
        return cls(content=blocks, stop_reason="tool_use", **options)

    @classmethod
    def responding(cls, respond: Callable[[dict[str, Any]], Reply], **options: Any) -> Reply:
        return cls(respond=respond, **options)

    @classmethod
    def error(cls, status: int, *, retry_after: float | None = None, message: str = "", **options: Any) -> Reply:
        headers = (("retry-after", f"{retry_after:g}"),) if retry_after is not None else ()
        return cls(status=status, headers=headers, message=message or f"scripted {status}", **options)


@dataclass(frozen=True)
class Recorded:
    """One request as received."""

    path: str
    headers: dict[str, str]
    body: Any
    raw: bytes
    status: int


@dataclass
class _State:
    script: deque[Reply] = field(default_factory=deque)
    default: Reply = field(default_factory=lambda: Reply.text("{}"))
    requests: list[Recorded] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)
    connections: set[socket.socket] = field(default_factory=set)
    in_flight: int = 0
    max_in_flight: int = 0


def tool_results(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``tool_result`` blocks of the request's last user turn."""
    last = body["messages"][-1]
    content = last.get("content")
    return [b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"] if isinstance(
        content, list) else []


def result_text(block: dict[str, Any]) -> str:
    """The text of one tool_result block (a string, or a list of text blocks)."""
    content = block.get("content")
    if isinstance(content, str):
        return content
    return "".join(str(b.get("text", "")) for b in content or [] if isinstance(b, dict))


_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def _tools_problem(tools: Any) -> str | None:
    if not isinstance(tools, list):
        return "400:tools: must be a list"
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str) or not _TOOL_NAME.match(tool["name"]):
            return f"400:tools.{i}.name: must match ^[a-zA-Z0-9_-]{{1,64}}$"
        schema = tool.get("input_schema")
        if not isinstance(schema, dict) or schema.get("type") != "object":
            return f"400:tools.{i}.input_schema: must be a JSON schema of type object"
    return None


def _tool_flow_problem(messages: list[dict[str, Any]], tools: list[Any] | None) -> str | None:
    """tool_use needs tools; each tool_result must answer a tool_use of the assistant turn just before."""
    for i, message in enumerate(messages):
        content = message.get("content")
        blocks = [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []
        if any(b.get("type") in ("tool_use", "tool_result") for b in blocks) and not tools:
            return f"400:messages.{i}: tool_use/tool_result blocks need the tools parameter"
        results = [b for b in blocks if b.get("type") == "tool_result"]
        if not results:
            continue
        before = messages[i - 1].get("content") if i > 0 and messages[i - 1].get("role") == "assistant" else None
        asked = {b.get("id") for b in before if isinstance(b, dict) and b.get("type") == "tool_use"} if isinstance(
            before, list) else set()
        for block in results:
            if block.get("tool_use_id") not in asked:
                return f"400:messages.{i}: tool_result {block.get('tool_use_id')!r} answers no tool_use just before it"
    return None


def validate(headers: dict[str, str], body: Any) -> str | None:
    """The first problem the real API would answer 400/401 for, or None."""
    if not headers.get("x-api-key") and not headers.get("authorization"):
        return "401:x-api-key header is required"
    if not headers.get("anthropic-version"):
        return "400:anthropic-version header is required"
    if not isinstance(body, dict):
        return "400:request body must be a JSON object"
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "400:model: field required"
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        return "400:max_tokens: must be a positive integer"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "400:messages: must be a non-empty list"
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            return f"400:messages.{i}.role: must be user or assistant"
        content = message.get("content")
        if not isinstance(content, str | list) or not content:
            return f"400:messages.{i}.content: must be a string or a list of blocks"
    if messages[0].get("role") != "user":
        return "400:messages.0.role: the first message must be from the user"
    system = body.get("system")
    if system is not None and not isinstance(system, str | list):
        return "400:system: must be a string or a list of text blocks"
    if isinstance(system, list) and not all(isinstance(b, dict) and b.get("type") == "text" for b in system):
        return "400:system: blocks must be text blocks"
    tools = body.get("tools")
    if tools is not None and (problem := _tools_problem(tools)) is not None:
        return problem
    return _tool_flow_problem(messages, tools)


def _handler(state: _State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
            return

        def setup(self) -> None:
            super().setup()
            with state.lock:
                state.connections.add(self.connection)

        def finish(self) -> None:
            with state.lock:
                state.connections.discard(self.connection)
            with contextlib.suppress(OSError):
                super().finish()

        def _send(self, status: int, payload: dict[str, Any], headers: tuple[tuple[str, str], ...] = ()) -> None:
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.send_header("request-id", f"req_{uuid.uuid4().hex[:16]}")
                for name, value in headers:
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test): nothing to answer to

        def _error(self, status: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> None:
            kind = _ERROR_TYPES.get(status, "api_error")
            self._send(status, {"type": "error", "error": {"type": kind, "message": message}}, headers)

        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                body: Any = json.loads(raw) if raw else None
            except ValueError:
                body = None
            if self.path.split("?")[0] != "/v1/messages":
                self._record(headers, body, raw, 404)
                self._error(404, f"no route {self.path}")
                return
            problem = validate(headers, body)
            if problem is not None:
                status, _, message = problem.partition(":")
                self._record(headers, body, raw, int(status))
                self._error(int(status), message)
                return
            with state.lock:
                reply = state.script.popleft() if state.script else state.default
                state.in_flight += 1
                state.max_in_flight = max(state.max_in_flight, state.in_flight)
            self._record(headers, body, raw, reply.status)
            try:
                self._answer(reply, body)
            finally:
                with state.lock:
                    state.in_flight -= 1

        def _answer(self, reply: Reply, body: dict[str, Any]) -> None:
            if reply.respond is not None:
                reply = reply.respond(body)
            if reply.delay and state.stopping.wait(reply.delay):
                return
            if reply.status != 200:
                self._error(reply.status, reply.message, reply.headers)
                return
            self._send(
                200,
                {
                    "id": f"msg_{uuid.uuid4().hex[:24]}",
                    "type": "message",
                    "role": "assistant",
                    "model": body["model"],
                    "content": list(reply.content),
                    "stop_reason": reply.stop_reason,
                    "stop_sequence": None,
                    "usage": {"input_tokens": reply.usage[0], "output_tokens": reply.usage[1]},
                },
                reply.headers,
            )

        def _record(self, headers: dict[str, str], body: Any, raw: bytes, status: int) -> None:
            with state.lock:
                state.requests.append(Recorded(self.path, headers, body, raw, status))

    return Handler


class AnthropicServer:
    """``with AnthropicServer() as server:`` ... ``server.url`` is the SDK's ``base_url``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._state = _State()
        self._httpd = ThreadingHTTPServer((host, port), _handler(self._state))
        # Handler threads are joined on close (their sockets are shut down first): nothing leaks.
        self._httpd.daemon_threads = False
        self._httpd.block_on_close = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="anthropic-loopback", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._state.stopping.set()
        if self._thread is not None:
            self._httpd.shutdown()
        with self._state.lock:
            connections = list(self._state.connections)
        for conn in connections:  # wake handlers blocked reading a kept-alive connection
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(5.0)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- scripting and inspection ------------------------------------------------------------
    def script(self, *replies: Reply) -> None:
        """Queue replies, answered in order; after them, the default reply."""
        with self._state.lock:
            self._state.script.extend(replies)

    def set_default(self, reply: Reply) -> None:
        with self._state.lock:
            self._state.default = reply

    @property
    def requests(self) -> list[Recorded]:
        with self._state.lock:
            return list(self._state.requests)

    @property
    def max_in_flight(self) -> int:
        """The most requests that were being answered at the same time."""
        with self._state.lock:
            return self._state.max_in_flight

    def bodies(self) -> list[Any]:
        return [r.body for r in self.requests]

    def raw_text(self) -> str:
        """Every request body as received, concatenated (for "this never reached the server" checks)."""
        return "\n".join(r.raw.decode("utf-8", errors="replace") for r in self.requests)
