"""``aiops up`` and ``aiops down`` as users run them: a Ray head of their own, ``serve deploy``.

The cluster ``up`` starts uses free ports and its own temp dir, so it runs beside the test
session's Ray without touching it; ``down`` stops exactly its processes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
import yaml

from tests.helpers import wait_until
from tests.payloads import am_alert, am_payload
from tests.servers.processes import free_port

pytestmark = pytest.mark.e2e
AIOPS = str(Path(sys.executable).parent / "aiops")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def installation(tmp_path: Path, database_url: str, redis_url: str) -> Iterator[tuple[dict[str, str], Path, int]]:
    port = free_port()
    config = yaml.safe_load((REPO / "serve_config.yaml").read_text())
    config["http_options"]["port"] = port
    config_path = tmp_path / "serve_config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "ALERTMANAGER_TOKEN", "OPS_API_TOKEN")}
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        AIOPS_DATA_DIR=str(tmp_path / "data"),
        AIOPS_REDIS_PREFIX=f"aiops-up-{uuid.uuid4().hex[:8]}:",
    )
    yield env, config_path, port
    subprocess.run([AIOPS, "down", "--keep-data-services"], env=env, capture_output=True, timeout=180, check=False)


def our_ray_processes(data_dir: Path) -> list[psutil.Process]:
    state = json.loads((data_dir / "ray.json").read_text())
    return [p for p in psutil.process_iter(["cmdline"]) if state["temp_dir"] in " ".join(p.info["cmdline"] or [])]


def test_up_deploys_the_serve_config_and_down_stops_only_what_up_started(
    installation: tuple[dict[str, str], Path, int],
) -> None:
    env, config_path, port = installation
    data_dir = Path(env["AIOPS_DATA_DIR"])
    up = subprocess.run(
        [AIOPS, "up", "--config", str(config_path), "--num-cpus", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
    assert f"http://127.0.0.1:{port}/health" in up.stdout and "Ray dashboard:" in up.stdout
    tokens = json.loads((data_dir / "tokens.json").read_text())
    assert oct((data_dir / "tokens.json").stat().st_mode & 0o777) == "0o600"
    base = f"http://127.0.0.1:{port}"
    assert httpx.get(base + "/health", timeout=10).json()["status"] == "ok"
    body = am_payload(am_alert("KubePodCrashLooping", "up-test-1", namespace="up", pod="p-1", test="up"))
    answer = httpx.post(
        base + "/api/alert/webhook",
        json=body,
        headers={"Authorization": f"Bearer {tokens['ALERTMANAGER_TOKEN']}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] == 1
    processes = our_ray_processes(data_dir)
    assert processes, "up started no Ray processes of its own"

    # serve deploy with changed rules: reloaded in place, incidents kept; invalid rules refused.
    before = httpx.get(
        base + "/api/incidents", headers={"Authorization": f"Bearer {tokens['OPS_API_TOKEN']}"}, timeout=10
    ).json()["count"]
    rules = yaml.safe_load((REPO / "config" / "rules.yaml").read_text())
    rules["rules"].insert(0, {"name": "drop-me", "match": {"reason": ["DropMe"]}, "drop": True})
    rules_path = config_path.parent / "rules.yaml"
    rules_path.write_text(yaml.safe_dump(rules))
    deploy_with_rules(env, config_path, data_dir, rules_path)
    drop_me = am_payload(am_alert("DropMe", "up-drop-1", namespace="up", pod="p-2", test="up"))

    def dropped() -> bool:
        answer = httpx.post(
            base + "/api/alert/webhook",
            json=drop_me,
            headers={"Authorization": f"Bearer {tokens['ALERTMANAGER_TOKEN']}"},
            timeout=30,
        )
        return answer.status_code == 200 and answer.json()["dropped"] == 1

    wait_until(dropped, timeout=120, interval=1.0, message="the new drop rule to take effect")
    broken = config_path.parent / "broken-rules.yaml"
    broken.write_text("rules:\n  - name: x\n    match: {severity: [urgent]}\n")
    deploy_with_rules(env, config_path, data_dir, broken)

    def refused() -> bool:
        detail = httpx.get(base + "/health", timeout=10).json()["subsystems"]["aiops-rules"].get("detail") or {}
        return bool(detail.get("rules_reload_error"))

    wait_until(refused, timeout=120, interval=1.0, message="the invalid rules to be refused and reported")
    assert dropped(), "the old rules must stay after a refused reload"
    after = httpx.get(
        base + "/api/incidents", headers={"Authorization": f"Bearer {tokens['OPS_API_TOKEN']}"}, timeout=10
    ).json()["count"]
    assert after == before

    again = subprocess.run(
        [AIOPS, "up", "--config", str(config_path)], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert again.returncode == 0 and "joining the Ray cluster started earlier" in again.stdout

    down = subprocess.run(
        [AIOPS, "down", "--keep-data-services"], env=env, capture_output=True, text=True, timeout=180, check=False
    )
    assert down.returncode == 0, down.stderr
    assert "serve" in down.stdout and "ray (" in down.stdout
    gone, alive = psutil.wait_procs(processes, timeout=30)
    assert not alive, [p.pid for p in alive]
    with pytest.raises(httpx.HTTPError):
        httpx.get(base + "/health", timeout=3)


def deploy_with_rules(env: dict[str, str], config_path: Path, data_dir: Path, rules_path: Path) -> None:
    config = yaml.safe_load(config_path.read_text())
    for app in config["applications"]:
        if app["name"] == "alerts":
            app["deployments"][0]["user_config"] = {"rules_file": str(rules_path)}
    config_path.write_text(yaml.safe_dump(config))
    dashboard = json.loads((data_dir / "ray.json").read_text())["dashboard"]
    serve = str(Path(sys.executable).parent / "serve")
    result = subprocess.run(
        [serve, "deploy", str(config_path), "-a", dashboard],
        env={**env, "RAY_AUTH_MODE": "token"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_up_with_an_unreadable_serve_config_fails_cleanly(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "AIOPS_DATA_DIR": str(tmp_path / "data"),
        "DATABASE_URL": "postgresql://x@127.0.0.1:1/x",
        "REDIS_URL": "redis://127.0.0.1:1/0",
    }
    bad = tmp_path / "serve.yaml"
    bad.write_text("applications: [\n")
    result = subprocess.run(
        [AIOPS, "up", "--config", str(bad)], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2 and "cannot read the Serve config" in result.stderr
    assert "Traceback" not in result.stderr
