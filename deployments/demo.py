"""``aiops demo``: the whole loop on this machine with nothing configured.

It starts, in order and each with progress shown: embedded PostgreSQL and Redis under the
data directory (unless ``DATABASE_URL``/``REDIS_URL`` are set), the sandbox Kubernetes
cluster playing the demo scenario (an OOM crash loop in ``production``, an image pull
error in ``staging``, a failing Job in ``batch``, a node going NotReady), a local Ray of
its own (own temp dir, free ports, never another Ray on the machine) with its dashboard,
and the platform: watchers on the sandbox, rule engine, RCA worker (offline,
deterministic diagnosis), approval coordinator and the three Serve apps. Then the console
(``deployments/demo_console.py``) shows incidents, their root cause and approval requests
as they arrive and reads commands from stdin (``approve <id>``, ``/incidents``, ...),
acting as ``cli:demo`` (admin in the shipped policy).

Ctrl-C (or SIGTERM), end of input once nothing is left to do (unless ``--keep``), or
``--timeout`` stops everything it started: Ray and its actors, the sandbox and the
embedded databases. Demo pacing (crash-loop restarts, the node outage, verification
windows) is set by options so an unattended run can be fast; the shipped playbooks are
used with their verification "stable for" windows capped at ``--verify-window``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import secrets
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import psutil
import yaml

from adapters.sandbox import BackgroundSandbox, NodeEvent, Scenario, load_scenario
from config.loader import default_playbooks_dir, load_playbooks
from config.settings import Settings
from core.errors import AiopsError, ConfigError, TemporaryError


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class DemoOptions:
    port: int = 0
    keep: bool = False
    data_dir: str | None = None
    scenario: str = "demo"
    timeout: float | None = None
    restart_interval: float | None = None
    node_outage_after: float | None = None
    verify_window: float = 15.0
    poll: float = 1.0
    settle: float = 5.0

    def problems(self) -> list[str]:
        found = []
        if not 0 <= self.port <= 65535:
            found.append(f"--port {self.port}: must be 0 (a free port) or 1-65535")
        if self.timeout is not None and self.timeout <= 0:
            found.append(f"--timeout {self.timeout:g}: must be > 0 seconds")
        if self.restart_interval is not None and self.restart_interval <= 0:
            found.append(f"--restart-interval {self.restart_interval:g}: must be > 0 seconds")
        if self.node_outage_after is not None and self.node_outage_after < 0:
            found.append(f"--node-outage-after {self.node_outage_after:g}: must be >= 0 seconds")
        if self.verify_window < 0:
            found.append(f"--verify-window {self.verify_window:g}: must be >= 0 seconds")
        if not 0.05 <= self.poll <= 30:
            found.append(f"--poll {self.poll:g}: must be between 0.05 and 30 seconds")
        if self.settle < 0:
            found.append(f"--settle {self.settle:g}: must be >= 0 seconds")
        return found


def paced_scenario(options: DemoOptions) -> Scenario:
    """The scenario with the demo's pacing applied."""
    scenario = load_scenario(options.scenario)
    update: dict[str, Any] = {}
    if options.restart_interval is not None:
        update["restart_interval_seconds"] = options.restart_interval
    if options.node_outage_after is not None:
        update["node_events"] = [
            NodeEvent(node=e.node, at_seconds=options.node_outage_after, condition=e.condition)
            for e in scenario.node_events
        ]
    return scenario.model_copy(update=update) if update else scenario


def paced_playbooks(source: str | None, target: Path, verify_window: float) -> Path:
    """Copy the playbooks to ``target`` with every verification's ``stable_for`` capped."""
    specs = load_playbooks([source or default_playbooks_dir()])
    target.mkdir(parents=True, exist_ok=True)
    for old in target.glob("*.yaml"):
        old.unlink()
    for name, spec in specs.items():
        steps = [
            step.model_copy(
                update={
                    "verify": step.verify.model_copy(update={"stable_for": min(step.verify.stable_for, verify_window)})
                }
            )
            if step.verify is not None
            else step
            for step in spec.steps
        ]
        data = {"playbook": spec.model_copy(update={"steps": steps}).model_dump(mode="json", exclude_none=True)}
        (target / f"{name}.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return target


def ray_temp_dir(data_dir: Path) -> str:
    # Short and per data dir: Ray's unix socket paths live below it and must stay under ~100 chars.
    digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:10]
    return f"/tmp/aiops-demo-{digest}"  # noqa: S108 - a private, per-data-dir directory


@contextlib.contextmanager
def progress(label: str, every: float = 3.0) -> Iterator[None]:
    """Print ``label``, then a line every ``every`` seconds until the block ends, then the time taken."""
    print(f"• {label} ...", flush=True)
    started = time.monotonic()
    done = threading.Event()

    def tick() -> None:
        while not done.wait(every):
            print(f"    ... {label}: {time.monotonic() - started:.0f}s", flush=True)

    ticker = threading.Thread(target=tick, name="demo-progress", daemon=True)
    ticker.start()
    try:
        yield
    finally:
        done.set()
        ticker.join(1.0)
    print(f"  ✓ {label} ({time.monotonic() - started:.1f}s)", flush=True)


@dataclass
class Started:
    """What this demo started, so that stopping undoes exactly that."""

    data_dir: Path
    embedded: list[str] = field(default_factory=list)
    sandbox: BackgroundSandbox | None = None
    ray_temp_dir: str | None = None
    ray_started: bool = False

    def stop(self) -> list[str]:
        stopped: list[str] = []
        if self.ray_started:
            stopped.extend(_stop_ray())
        if self.ray_temp_dir:
            leftovers = _processes_under(self.ray_temp_dir)
            if leftovers:
                _terminate(leftovers)
                stopped.append(f"{len(leftovers)} leftover Ray process(es)")
        if self.sandbox is not None:
            self.sandbox.stop()
            stopped.append("sandbox cluster")
        if self.embedded:
            from adapters.embedded import stop_embedded

            stopped.extend(f"embedded {name}" for name in stop_embedded(self.data_dir))
        return stopped


def _stop_ray() -> list[str]:
    import ray

    from actors import remote
    from deployments import launcher

    if not ray.is_initialized():
        return []
    handle = remote.existing(remote.APPROVALS)
    if handle is not None:
        # Close the coordinator's MCP server subprocess before its actor is killed.
        with contextlib.suppress(Exception):
            ray.get(handle.close.remote(), timeout=10)
    for name in remote.actor_names():
        if name.startswith(remote.WATCHER_HOST_PREFIX):
            watcher = remote.existing(name)
            if watcher is not None:
                with contextlib.suppress(Exception):
                    ray.get(watcher.stop.remote(), timeout=5)
    launcher.shutdown()
    return ["Serve apps and aiops actors", "Ray"]


def _processes_under(temp_dir: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if proc.pid != os.getpid() and temp_dir in " ".join(proc.info.get("cmdline") or []):
                found.append(proc)
    return found


def _terminate(procs: list[psutil.Process], grace: float = 10.0) -> None:
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    _, alive = psutil.wait_procs(procs, timeout=grace)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()


def _start_ray(started: Started, *, num_cpus: int, attempts: int = 2) -> str | None:
    import ray

    from actors import remote

    temp_dir = ray_temp_dir(started.data_dir)
    started.ray_temp_dir = temp_dir
    for attempt in range(1, attempts + 1):
        try:
            # address="local": always a new Ray of our own, never one found running on the machine.
            context = ray.init(
                address="local",
                num_cpus=num_cpus,
                namespace=remote.NAMESPACE,
                include_dashboard=True,
                dashboard_port=free_port(),
                log_to_driver=False,
                configure_logging=False,
                _temp_dir=temp_dir,
            )
        except Exception as e:  # noqa: BLE001 - Ray raises a bare Exception when its node misses its start window
            ray.shutdown()
            _terminate(_processes_under(temp_dir))
            if attempt >= attempts:
                raise TemporaryError(
                    f"Ray did not start ({e}); the machine may be too busy, try again", delay=10.0
                ) from e
            print(f"    Ray did not start ({str(e)[:120]}); retrying ({attempt}/{attempts - 1})", flush=True)
            continue
        started.ray_started = True
        url = getattr(context, "dashboard_url", None)
        return f"http://{url}" if url else None
    return None


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run_demo(options: DemoOptions | None = None, **legacy: Any) -> int:
    """Start everything, run the console until told to stop, stop everything; the exit code."""
    opts = options or DemoOptions(**legacy)
    problems = opts.problems()
    if problems:
        raise ConfigError("invalid demo options", tuple(problems))
    overrides: dict[str, Any] = {}
    if opts.data_dir:
        overrides["data_dir"] = Path(opts.data_dir)
    base = Settings.from_env(**overrides)
    scenario = paced_scenario(opts)
    started = Started(data_dir=base.data_dir)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    reason = "interrupted"
    try:
        print(f"ray-aiops demo (data in {base.data_dir})\n", flush=True)
        with progress(
            "starting embedded PostgreSQL and Redis"
            if not (base.database_url and base.redis_url)
            else "connecting to DATABASE_URL / REDIS_URL"
        ):
            database_url, redis_url = _stores(base, started)
        with progress(f"starting the sandbox cluster (scenario {scenario.name})"):
            kubeconfig = base.data_dir / "sandbox.kubeconfig"
            started.sandbox = BackgroundSandbox(scenario, kubeconfig_path=kubeconfig).start()
        playbooks = paced_playbooks(base.playbooks_dir, base.data_dir / "demo-playbooks", opts.verify_window)
        settings = Settings.from_env(
            **overrides,
            database_url=database_url,
            redis_url=redis_url,
            alertmanager_token=base.secret("alertmanager_token") or secrets.token_urlsafe(16),
            ops_api_token=base.secret("ops_api_token") or secrets.token_urlsafe(16),
            kubeconfig=str(kubeconfig),
            kubernetes_service_host=None,
            watch_enabled=True,
            watch_namespaces=list(scenario.namespaces),
            playbooks_dir=str(playbooks),
            anthropic_api_key=None,  # offline: deterministic diagnosis only
            rca_workers=1,
        )
        with progress("starting a local Ray with its dashboard (this takes a few seconds)"):
            dashboard = _start_ray(started, num_cpus=2)
        signal.signal(signal.SIGTERM, _interrupt)  # Ray may have installed its own
        port = opts.port or free_port()
        with progress("deploying the platform: watchers, rules, RCA, approvals and the alerts/chat/ops apps"):
            from deployments import launcher

            api = launcher.deploy(settings, port=port, health_timeout=300.0)
        _print_started(settings, scenario, api, dashboard, kubeconfig, playbooks, started)
        from deployments.demo_console import DemoConsole

        console = DemoConsole(settings, api=api, poll=opts.poll, settle=opts.settle)
        reason = asyncio.run(console.run(sys.stdin, keep=opts.keep, stop_after=opts.timeout))
        print(f"\n{reason}", flush=True)
    except KeyboardInterrupt:
        print("\ninterrupted", flush=True)
    except AiopsError as e:
        print(f"\ndemo failed: {e}", file=sys.stderr, flush=True)
        reason = "failed"
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        print("stopping what the demo started ...", flush=True)
        stopped = started.stop()
        print(f"stopped: {', '.join(stopped) or 'nothing'} (data kept in {base.data_dir})", flush=True)
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    return 1 if reason == "failed" else 0


def _stores(base: Settings, started: Started) -> tuple[str, str]:
    from adapters.embedded import start_postgres, start_redis

    database_url = base.secret("database_url")
    if database_url is None:
        started.embedded.append("postgres")
        database_url = start_postgres(base.data_dir)
    redis_url = base.secret("redis_url")
    if redis_url is None:
        started.embedded.append("redis")
        redis_url = start_redis(base.data_dir)
    return database_url, redis_url


def _print_started(
    settings: Settings,
    scenario: Scenario,
    api: str,
    dashboard: str | None,
    kubeconfig: Path,
    playbooks: Path,
    started: Started,
) -> None:
    stores = ", ".join(f"embedded {n}" for n in started.embedded) or "DATABASE_URL / REDIS_URL"
    failing = [
        f"{w.kind} {w.namespace}/{w.name} ({w.behaviour.value})"
        for w in scenario.workloads
        if w.behaviour.value != "healthy"
    ]
    outages = [f"node {e.node} {e.condition} after {e.at_seconds:g}s" for e in scenario.node_events]
    lines = [
        "",
        "ray-aiops demo is running",
        f"  Ray dashboard:  {dashboard or 'off'}",
        f"  health:         {api}/health",
        f"  incidents API:  {api}/api/incidents  (Authorization: Bearer <OPS_API_TOKEN>)",
        f"  stores:         {stores} under {settings.data_dir}",
        f"  sandbox:        kubectl --kubeconfig {kubeconfig} get pods -A",
        f"  namespaces:     {', '.join(scenario.namespaces)} (watched)",
        f"  failing:        {'; '.join(failing + outages) or 'nothing'}",
        f"  playbooks:      {playbooks} (verification windows capped for the demo)",
        "  diagnosis:      offline (deterministic, no LLM)",
        "  you are:        cli:demo (admin in config/policy.yaml)",
        "",
        "Incidents, diagnoses and approval requests appear below as they arrive.",
        "Type 'approve <id>' or 'reject <id> <reason>' at the prompt; /help lists the commands; Ctrl-C stops.",
        "",
    ]
    print("\n".join(lines), flush=True)
