"""A small threaded HTTP server on a free loopback port, for the chat API fakes.

Subclasses implement ``answer(call) -> (status, json body, headers)``; the base records
every call, parses JSON and form bodies, and shuts down cleanly (kept-alive connections are
shut so handler threads end, and the serving thread is joined).
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit


@dataclass(frozen=True)
class Call:
    """One request as received: the path, lower-cased headers, the decoded parameters."""

    path: str
    headers: dict[str, str]
    params: dict[str, Any]
    raw: bytes
    status: int = 0


Answer = tuple[int, dict[str, Any], dict[str, str]]


class LoopbackServer:
    name = "loopback"

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.calls: list[Call] = []
        self.lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._httpd = ThreadingHTTPServer((host, 0), self._handler())
        self._httpd.daemon_threads = False
        self._httpd.block_on_close = True
        self._thread: threading.Thread | None = None

    # -- to override --

    def answer(self, call: Call) -> Answer:
        raise NotImplementedError

    def decode(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        return params

    # -- plumbing --

    @property
    def base(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def calls_to(self, suffix: str) -> list[Call]:
        with self.lock:
            return [c for c in self.calls if c.path.endswith(suffix)]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
                return

            def setup(self) -> None:
                super().setup()
                with server.lock:
                    server._connections.add(self.connection)

            def finish(self) -> None:
                with server.lock:
                    server._connections.discard(self.connection)
                with contextlib.suppress(OSError):
                    super().finish()

            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                self._serve()

            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                self._serve()

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                parts = urlsplit(self.path)
                params: dict[str, Any] = dict(parse_qsl(parts.query))
                kind = headers.get("content-type", "")
                if raw and "json" in kind:
                    with contextlib.suppress(ValueError):
                        loaded = json.loads(raw)
                        if isinstance(loaded, dict):
                            params.update(loaded)
                elif raw and "x-www-form-urlencoded" in kind:
                    params.update(parse_qsl(raw.decode()))
                call = Call(parts.path, headers, server.decode(parts.path, params), raw)
                status, body, extra = server.answer(call)
                with server.lock:
                    server.calls.append(Call(call.path, call.headers, call.params, raw, status))
                data = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json; charset=utf-8")
                    self.send_header("content-length", str(len(data)))
                    for name, value in extra.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up; nothing to answer to

        return Handler

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name=f"{self.name}-loopback", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
        with self.lock:
            connections = list(self._connections)
        for conn in connections:
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
