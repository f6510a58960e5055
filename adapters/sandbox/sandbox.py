"""A sandbox Kubernetes cluster on loopback: emulator + store + simulator, with a kubeconfig.

``Sandbox`` runs on the caller's asyncio loop. The platform's Kubernetes client is blocking
and may run in the same process, so ``BackgroundSandbox`` runs a ``Sandbox`` on its own loop
in a thread and offers a synchronous API (for tests, ``aiops demo`` and benchmarks); the
CLI (``python -m adapters.sandbox``) runs one in the foreground for other processes (Ray
actors) that reach it over HTTP through the kubeconfig file.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import logging
import os
import random
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import aiohttp.web
import yaml

from adapters.sandbox.emulator import ApiServer, LogBook, SandboxEmulator
from adapters.sandbox.scenario import Behaviour, Scenario, load_scenario
from adapters.sandbox.simulator import Simulator
from adapters.sandbox.store import KIND_TO_PLURAL, RESOURCES, JsonObj, ObjectStore

log = logging.getLogger(__name__)
T = TypeVar("T")


def kubeconfig_for(url: str, token: str = "sandbox-token") -> JsonObj:  # noqa: S107 - a fake token
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": "sandbox", "cluster": {"server": url}}],
        "users": [{"name": "sandbox", "user": {"token": token}}],
        "contexts": [{"name": "sandbox", "context": {"cluster": "sandbox", "user": "sandbox", "namespace": "default"}}],
        "current-context": "sandbox",
    }


class Sandbox:
    """The sandbox cluster on the running loop. Use ``async with Sandbox(scenario) as sb``."""

    def __init__(
        self,
        scenario: Scenario | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        kubeconfig_path: str | Path | None = None,
        bookmark_interval: float = 5.0,
        tick: float = 0.05,
        seed: int = 0,
    ) -> None:
        self._scenario = scenario
        self._host, self._port = host, port
        self._kubeconfig_arg = Path(kubeconfig_path) if kubeconfig_path else None
        self._kubeconfig: Path | None = None
        self._own_kubeconfig = False
        self.store = ObjectStore()
        self.logs = LogBook()
        self.api = ApiServer(self.store, self.logs, bookmark_interval=bookmark_interval)
        self.simulator = Simulator(self.store, self.logs, tick=tick, seed=seed)
        self.emulator = SandboxEmulator(self.api)
        self._runner: aiohttp.web.ServerRunner | None = None
        self._rng = random.Random(seed)  # noqa: S311 - picks a victim pod, not a secret

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        await self.emulator.__aenter__()
        server = aiohttp.web.Server(self.emulator, handler_cancellation=True)
        self._runner = aiohttp.web.ServerRunner(server, shutdown_timeout=1.0)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self._host, self._port))
        self._port = sock.getsockname()[1]
        await aiohttp.web.SockSite(self._runner, sock).start()
        self.simulator.start()
        if self._scenario is not None:
            self.simulator.apply(self._scenario)
        if self._kubeconfig_arg is not None:
            self._kubeconfig = self.write_kubeconfig(self._kubeconfig_arg)
        else:
            fd, name = tempfile.mkstemp(prefix="aiops-sandbox-", suffix=".kubeconfig")
            os.close(fd)
            self._kubeconfig = self.write_kubeconfig(name)
            self._own_kubeconfig = True
        log.info("sandbox cluster at %s (kubeconfig %s)", self.url, self._kubeconfig)

    async def stop(self) -> None:
        await self.simulator.stop()
        self.api.close_watches()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.emulator.__aexit__(None, None, None)
        if self._own_kubeconfig and self._kubeconfig is not None:
            self._kubeconfig.unlink(missing_ok=True)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # -- addresses -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self._host}:{self._port}"

    @property
    def kubeconfig_path(self) -> Path:
        if self._kubeconfig is None:
            raise RuntimeError("the sandbox is not started")
        return self._kubeconfig

    def write_kubeconfig(self, path: str | Path) -> Path:
        p = Path(path)
        p.write_text(yaml.safe_dump(kubeconfig_for(self.url), sort_keys=False), encoding="utf-8")
        return p

    # -- scenario and fault injection ------------------------------------------------------
    async def apply_scenario(self, scenario: Scenario) -> None:
        self.simulator.apply(scenario)

    async def inject(self, namespace: str, name: str, behaviour: Behaviour | str) -> float:
        """Make a pod or a scenario workload misbehave now; returns the wall-clock time of it."""
        self.simulator.inject(namespace, name, Behaviour(behaviour))
        return time.time()

    async def inject_random(self, behaviour: Behaviour | str = Behaviour.CRASHLOOP) -> tuple[str, str, float]:
        """Pick a random running pod and break it; returns (namespace, pod, injected_at)."""
        pods = [p for p in self.store.list("pods") if p.get("status", {}).get("phase") == "Running"]
        if not pods:
            raise RuntimeError("no running pod to break")
        pod = pods[self._rng.randrange(len(pods))]
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        return ns, name, await self.inject(ns, name, behaviour)

    async def fail_watches(self, code: int = 410, *, as_http: bool = False) -> None:
        """End every open watch with an ERROR event (410 also compacts history, so resuming needs a
        relist). With ``as_http``, compact and reset the connections instead: the clients resume
        from their old resourceVersion and get an HTTP 410 answer."""
        self.api.expired_as_http = as_http
        if as_http:
            self.store.compact()
            self.api.drop_watches()
        else:
            self.api.fail_watches(code)

    async def drop_watches(self) -> None:
        self.api.drop_watches()

    async def stall_watches(self) -> int:
        """Open watches go silent but stay open (see ``ApiServer.stall_watches``); how many."""
        return self.api.stall_watches()

    async def set_forbidden(self, forbidden: bool, namespace: str | None = None) -> None:
        """Answer resource requests with 403, as an API server whose RBAC denies us: every
        request, or with ``namespace`` only that namespace's."""
        if namespace is None:
            self.api.forbidden = forbidden
        elif forbidden:
            self.api.forbidden_namespaces.add(namespace)
        else:
            self.api.forbidden_namespaces.discard(namespace)

    def objects(self, kind: str, namespace: str | None = None) -> list[JsonObj]:
        """Copies of the stored objects of ``kind`` (``Pod`` or ``pods``), for assertions."""
        plural = KIND_TO_PLURAL.get(kind, kind)
        if plural not in RESOURCES:
            raise KeyError(f"unknown kind {kind!r}")
        return copy.deepcopy(self.store.list(plural, namespace))


class BackgroundSandbox:
    """A :class:`Sandbox` on its own loop in a daemon thread, with a synchronous API."""

    def __init__(self, scenario: Scenario | None = None, **options: Any) -> None:
        self._scenario = scenario
        self._options = options
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sandbox: Sandbox | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None

    def start(self, timeout: float = 15.0) -> Self:
        self._thread = threading.Thread(target=self._main, name="aiops-sandbox", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("the sandbox did not start in time")
        if self._error is not None:
            raise RuntimeError("the sandbox failed to start") from self._error
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self._loop is not None and self._stop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _main(self) -> None:
        asyncio.run(self._amain())

    async def _amain(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            self._sandbox = Sandbox(self._scenario, **self._options)
            await self._sandbox.start()
        except Exception as e:
            log.exception("sandbox start failed")
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await self._sandbox.stop()

    @property
    def sandbox(self) -> Sandbox:
        if self._sandbox is None:
            raise RuntimeError("the sandbox is not started")
        return self._sandbox

    def call(self, fn: Callable[[Sandbox], Awaitable[T]], timeout: float = 10.0) -> T:
        """Run ``fn(sandbox)`` on the sandbox loop and wait for its result."""
        if self._loop is None:
            raise RuntimeError("the sandbox is not started")

        async def run() -> T:
            return await fn(self.sandbox)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout)

    @property
    def url(self) -> str:
        return self.sandbox.url

    @property
    def kubeconfig_path(self) -> Path:
        return self.sandbox.kubeconfig_path

    def write_kubeconfig(self, path: str | Path) -> Path:
        return self.sandbox.write_kubeconfig(path)

    def apply_scenario(self, scenario: Scenario) -> None:
        self.call(lambda sb: sb.apply_scenario(scenario))

    def inject(self, namespace: str, name: str, behaviour: Behaviour | str) -> float:
        return self.call(lambda sb: sb.inject(namespace, name, behaviour))

    def inject_random(self, behaviour: Behaviour | str = Behaviour.CRASHLOOP) -> tuple[str, str, float]:
        return self.call(lambda sb: sb.inject_random(behaviour))

    def fail_watches(self, code: int = 410, *, as_http: bool = False) -> None:
        self.call(lambda sb: sb.fail_watches(code, as_http=as_http))

    def drop_watches(self) -> None:
        self.call(lambda sb: sb.drop_watches())

    def stall_watches(self) -> int:
        return self.call(lambda sb: sb.stall_watches())

    def set_forbidden(self, forbidden: bool, namespace: str | None = None) -> None:
        self.call(lambda sb: sb.set_forbidden(forbidden, namespace))

    def objects(self, kind: str, namespace: str | None = None) -> list[JsonObj]:
        async def read(sb: Sandbox) -> list[JsonObj]:
            return sb.objects(kind, namespace)

        return self.call(read)


def run_cli(argv: Sequence[str] | None = None) -> int:
    """``python -m adapters.sandbox``: serve a scenario until Ctrl-C or SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m adapters.sandbox", description=__doc__)
    parser.add_argument("--scenario", default="demo", help="scenario file or shipped name (default: demo)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    parser.add_argument("--kubeconfig", help="where to write the kubeconfig (default: a temp file)")
    parser.add_argument("--bookmark-interval", type=float, default=5.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    scenario = load_scenario(args.scenario)

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with Sandbox(
            scenario,
            host=args.host,
            port=args.port,
            kubeconfig_path=args.kubeconfig,
            bookmark_interval=args.bookmark_interval,
        ) as sb:
            print(sb.kubeconfig_path, flush=True)  # noqa: T201 - the CLI's output
            await stop.wait()

    asyncio.run(serve())
    return 0
