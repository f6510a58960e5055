"""``aiops up`` / ``aiops down``: a Ray cluster of our own, deployed with ``serve deploy``.

``up`` joins the cluster named by ``--address`` / ``RAY_ADDRESS`` (or the one a previous
``up`` started, recorded in ``<data dir>/ray.json``), otherwise starts a head on free ports
with its own temp dir, so it never collides with another Ray on the machine. Then it
deploys the Serve config through the dashboard exactly as ``serve deploy`` does and waits
until ``/health`` answers. ``down`` shuts Serve down and stops only the processes of the
cluster ``up`` started (found by its temp dir), then the embedded stores.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import psutil
import yaml

from config.settings import Settings
from core.errors import ConfigError, TemporaryError


@dataclass(frozen=True)
class ClusterState:
    address: str
    dashboard: str
    temp_dir: str
    started_by_us: bool


def _bin(name: str) -> str:
    return shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name) or name


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _state_path(settings: Settings) -> Path:
    return settings.data_dir / "ray.json"


def _load_state(settings: Settings) -> ClusterState | None:
    path = _state_path(settings)
    if not path.exists():
        return None
    try:
        return ClusterState(**json.loads(path.read_text()))
    except (ValueError, TypeError):
        return None


def _alive(state: ClusterState) -> bool:
    try:
        return httpx.get(state.dashboard + "/api/version", timeout=3.0).status_code in (200, 401, 403)
    except httpx.HTTPError:
        return False


def _temp_dir(settings: Settings) -> str:
    # Short and per data dir: Ray's unix socket paths live below it and must stay under ~100 chars.
    digest = hashlib.sha256(str(settings.data_dir.resolve()).encode()).hexdigest()[:10]
    return f"/tmp/aiops-ray-{digest}"  # noqa: S108 - a private, per-install directory


def _serve_http(config: Path) -> str:
    try:
        data = yaml.safe_load(config.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"{config}: cannot read the Serve config: {e}") from e
    http = data.get("http_options") or {}
    return f"http://{http.get('host', '127.0.0.1')}:{http.get('port', 8000)}"


def _ray_env() -> dict[str, str]:
    env = dict(os.environ)
    # Ray >= 2.59 enables token auth for local clusters; say so explicitly so that `ray start`
    # and `serve deploy` agree. The token lives in ~/.ray/auth_token.
    env.setdefault("RAY_AUTH_MODE", "token")
    return env


def start_head(settings: Settings, *, num_cpus: int) -> ClusterState:
    env = _ray_env()
    if env["RAY_AUTH_MODE"] == "token":
        subprocess.run([_bin("ray"), "get-auth-token", "--generate"], capture_output=True, check=True, env=env)  # noqa: S603
    port, dashboard_port = free_port(), free_port()
    temp_dir = _temp_dir(settings)
    subprocess.run(  # noqa: S603
        [
            _bin("ray"),
            "start",
            "--head",
            f"--port={port}",
            f"--dashboard-port={dashboard_port}",
            "--dashboard-host=127.0.0.1",
            "--include-dashboard=true",
            f"--num-cpus={num_cpus}",
            f"--temp-dir={temp_dir}",
            "--disable-usage-stats",
        ],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    state = ClusterState(f"127.0.0.1:{port}", f"http://127.0.0.1:{dashboard_port}", temp_dir, True)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    _state_path(settings).write_text(json.dumps(asdict(state)))
    return state


def wait_healthy(url: str, timeout: float) -> None:
    """Poll ``/health`` until every subsystem (stores and all actors) reports ok."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            answer = httpx.get(url, timeout=10.0)
            status = answer.json().get("status") if answer.status_code == 200 else None
            if status == "ok":
                return
            if status:
                down = [k for k, v in answer.json().get("subsystems", {}).items() if v.get("status") != "ok"]
                last = f"degraded: {', '.join(down)}"
            else:
                last = f"HTTP {answer.status_code}"
        except (httpx.HTTPError, ValueError) as e:
            last = type(e).__name__
        time.sleep(0.5)
    raise TemporaryError(f"{url} did not become healthy within {timeout:.0f}s (last: {last})")


def up(
    settings: Settings, config: Path, *, num_cpus: int, address: str | None, timeout: float = 180.0
) -> dict[str, str]:
    """Start or join Ray, ``serve deploy`` the config, wait for ``/health``; return the URLs."""
    http = _serve_http(config)
    if address:
        state = ClusterState(address, f"http://{address.split(':')[0]}:8265", "", False)
        print(f"• joining Ray at {address}", flush=True)
    elif (known := _load_state(settings)) is not None and _alive(known):
        state = known
        print(f"• joining the Ray cluster started earlier ({state.address})", flush=True)
    else:
        print("• starting a Ray head ...", flush=True)
        state = start_head(settings, num_cpus=num_cpus)
    print(f"• serve deploy {config} ...", flush=True)
    subprocess.run(  # noqa: S603
        [_bin("serve"), "deploy", str(config), "-a", state.dashboard],
        check=True,
        env=_ray_env(),
        stdout=subprocess.DEVNULL,
    )
    print("• waiting for the apps to become healthy ...", flush=True)
    wait_healthy(http + "/health", timeout)
    return {"api": http, "webhook": http + "/api/alert/webhook", "dashboard": state.dashboard, "ray": state.address}


def _cluster_processes(temp_dir: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info.get("cmdline") or [])
        if temp_dir and temp_dir in cmdline and proc.pid != os.getpid():
            found.append(proc)
    return found


def down(settings: Settings, *, grace: float = 15.0) -> list[str]:
    """Shut Serve down and stop the cluster ``up`` started; returns what was stopped."""
    state = _load_state(settings)
    if state is None:
        return []
    stopped = []
    if _alive(state):
        subprocess.run(  # noqa: S603
            [_bin("serve"), "shutdown", "-y", "-a", state.dashboard],
            check=False,
            env=_ray_env(),
            capture_output=True,
            timeout=120,
        )
        stopped.append("serve")
    if state.started_by_us:
        procs = _cluster_processes(state.temp_dir)
        for proc in procs:
            try:
                proc.send_signal(signal.SIGTERM)
            except psutil.Error:
                continue
        _, alive = psutil.wait_procs(procs, timeout=grace)
        for proc in alive:
            try:
                proc.kill()
            except psutil.Error:
                continue
        stopped.append(f"ray ({len(procs)} processes)")
    _state_path(settings).unlink(missing_ok=True)
    return stopped
