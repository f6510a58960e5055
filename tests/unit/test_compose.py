"""docker-compose.yml, checked offline (this machine has no Docker engine).

The file must parse, every service must be healthy-checkable, non-root and keep its data in a
named volume, no secret may be written into it, and what it wires together must agree with
``serve_config.yaml`` (port, routes) and with the config files it mounts (which must exist and
pass ``promtool``/``amtool``). ``docker compose config -q`` runs too where it works.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
SERVE = ROOT / "serve_config.yaml"

_SECRET_KEY = re.compile(r"(PASSWORD|TOKEN|SECRET|API_KEY|AUTH|CREDENTIALS)", re.IGNORECASE)
_INTERPOLATION = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?:[:?\-][^}]*)?\}")


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose()["services"]
    return found


def serve_config() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(SERVE.read_text())
    return data


def app(name: str) -> dict[str, Any]:
    return next(a for a in serve_config()["applications"] if a["name"] == name)


def mounts(service: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(source, target, mode) of each short-syntax volume entry."""
    out = []
    for entry in service.get("volumes", []):
        parts = str(entry).split(":")
        out.append((parts[0], parts[1], parts[2] if len(parts) > 2 else "rw"))
    return out


def bind_source(source: str) -> Path | None:
    return ROOT / source if source.startswith(("./", "/")) else None


def mounted_file(service: str, target: str) -> Path:
    for source, into, _ in mounts(services()[service]):
        if into == target:
            path = bind_source(source)
            assert path is not None, f"{service}:{target} is not a bind mount"
            return path
    raise AssertionError(f"{service} mounts nothing at {target}")


def test_the_compose_file_runs_the_whole_stack() -> None:
    assert set(services()) == {"postgres", "redis", "aiops", "prometheus", "alertmanager", "grafana"}


@pytest.mark.parametrize("name", sorted(services()))
def test_every_service_has_a_health_check_and_runs_as_a_non_root_user(name: str) -> None:
    service = services()[name]
    test = service.get("healthcheck", {}).get("test")
    assert test and test[0] in {"CMD", "CMD-SHELL"}, f"{name} has no health check"
    user = str(service.get("user", "")).split(":")[0]
    assert user and user not in {"root", "0"}, f"{name} must set a non-root user"


def literal_secrets(environment: dict[str, Any]) -> list[str]:
    """Names of environment entries that carry a secret written into the file itself."""
    found = []
    for key, value in environment.items():
        if value is None:
            continue  # `KEY:` with no value passes the variable through from the environment, if set
        text = str(value)
        if _SECRET_KEY.search(key) and _INTERPOLATION.sub("", text):
            found.append(key)
        for userinfo in re.findall(r"://([^/@]*)@", text):
            if ":" in userinfo and not _INTERPOLATION.fullmatch(userinfo.split(":", 1)[1]):
                found.append(key)
    return found


@pytest.mark.parametrize(
    ("environment", "bad"),
    [
        pytest.param({"OPS_API_TOKEN": "${OPS_API_TOKEN:?set it}"}, [], id="interpolated-token"),
        pytest.param({"OPS_API_TOKEN": "s3cr3t"}, ["OPS_API_TOKEN"], id="literal-token"),
        pytest.param({"DATABASE_URL": "postgresql://u:${PW:?x}@db/aiops"}, [], id="interpolated-url-password"),
        pytest.param({"DATABASE_URL": "postgresql://u:hunter2@db/aiops"}, ["DATABASE_URL"], id="literal-url-password"),
        pytest.param({"GRAFANA_ADMIN_PASSWORD": "pre${X}fix"}, ["GRAFANA_ADMIN_PASSWORD"], id="partly-literal"),
        pytest.param({"SLACK_BOT_TOKEN": None}, [], id="passed-through-from-the-environment"),
    ],
)
def test_the_secret_check_catches_literal_secrets(environment: dict[str, Any], bad: list[str]) -> None:
    assert literal_secrets(environment) == bad


@pytest.mark.parametrize("name", sorted(services()))
def test_no_secret_is_written_into_the_compose_file(name: str) -> None:
    environment = services()[name].get("environment") or {}
    assert literal_secrets(environment) == []
    for key, value in environment.items():
        if _SECRET_KEY.search(key) and value is not None:
            assert ":-}" not in str(value), f"{name}.{key}: an empty secret is refused at start-up; pass it through"
    text = COMPOSE.read_text()
    assert "REPLACE" not in text and "changeme" not in text.lower()


def test_required_secrets_fail_loudly_when_unset() -> None:
    text = COMPOSE.read_text()
    for var in ("POSTGRES_PASSWORD", "REDIS_PASSWORD", "ALERTMANAGER_TOKEN", "OPS_API_TOKEN", "GRAFANA_ADMIN_PASSWORD"):
        assert f"${{{var}:?" in text, f"{var} must be required (${{{var}:?...}})"


@pytest.mark.parametrize("name", sorted(services()))
def test_data_lives_in_named_volumes_and_bind_mounts_are_read_only_files_that_exist(name: str) -> None:
    declared = set(compose()["volumes"])
    for source, _target, mode in mounts(services()[name]):
        path = bind_source(source)
        if path is None:
            assert source in declared, f"{name}: volume {source} is not declared"
        else:
            assert mode == "ro", f"{name}: bind mount {source} must be read-only"
            assert path.exists(), f"{name}: {source} does not exist"
    used = {s for svc in services().values() for s, _, _ in mounts(svc) if bind_source(s) is None}
    assert used == declared, "every named volume is used"


def test_redis_keeps_an_append_only_file() -> None:
    command = " ".join(services()["redis"]["command"])
    assert "--appendonly yes" in command


def test_the_agent_runs_a_ray_head_and_serve_deploy_with_the_dashboard_published() -> None:
    aiops = services()["aiops"]
    entrypoint = ROOT / aiops["entrypoint"][0].removeprefix("/app/")
    script = entrypoint.read_text()
    assert "ray start --head" in script and "serve deploy" in script
    assert "/app/serve_config.yaml" in script
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY serve_config.yaml" in dockerfile and "USER 1000" in dockerfile
    published = {p.rsplit(":", 2)[-2]: p.rsplit(":", 1)[-1] for p in aiops["ports"]}
    assert published.get("8265") == "8265", "the Ray dashboard port is published"


def test_the_agent_port_and_routes_match_serve_config() -> None:
    port = str(serve_config()["http_options"]["port"])
    aiops = services()["aiops"]
    assert any(p.endswith(f":{port}:{port}") for p in aiops["ports"]), f"Serve port {port} is published"
    health = " ".join(aiops["healthcheck"]["test"])
    assert f"127.0.0.1:{port}/ready" in health and app("ops")["route_prefix"] == "/"
    # Alertmanager delivers to the alerts app's webhook, with the token from the compose secret.
    am = yaml.safe_load(mounted_file("alertmanager", "/etc/alertmanager/alertmanager.yml").read_text())
    webhooks = [w for r in am["receivers"] for w in r.get("webhook_configs", [])]
    assert [urlsplit(w["url"]).netloc for w in webhooks] == [f"aiops:{port}"]
    assert urlsplit(webhooks[0]["url"]).path == app("alerts")["route_prefix"] + "/webhook"
    auth = webhooks[0]["http_config"]["authorization"]
    assert auth["type"] == "Bearer" and "credentials" not in auth
    secret = Path(auth["credentials_file"]).name
    assert secret in services()["alertmanager"]["secrets"]
    assert compose()["secrets"][secret] == {"environment": "ALERTMANAGER_TOKEN"}
    # The agent's own alerts do not route to the agent.
    assert any('aiops_self="true"' in m for r in am["route"].get("routes", []) for m in r.get("matchers", []))
    # Prometheus scrapes the ops app's /metrics as job "aiops" (what the rules expect) and loads the rules.
    prom = yaml.safe_load(mounted_file("prometheus", "/etc/prometheus/prometheus.yml").read_text())
    job = next(j for j in prom["scrape_configs"] if j["job_name"] == "aiops")
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == [f"aiops:{port}"]
    rules_file = mounted_file("prometheus", prom["rule_files"][0])
    assert rules_file == ROOT / "config" / "prometheus" / "aiops-rules.yml"
    assert prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]


def test_grafana_is_provisioned_with_the_agent_dashboard() -> None:
    provisioning = mounted_file("grafana", "/etc/grafana/provisioning")
    dashboards = mounted_file("grafana", "/var/lib/grafana/dashboards")
    assert (dashboards / "aiops.json").exists()
    providers = yaml.safe_load((provisioning / "dashboards" / "aiops.yml").read_text())
    assert providers["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    datasource = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"][0]
    assert urlsplit(datasource["url"]).netloc == "prometheus:9090"


def test_the_mounted_prometheus_config_passes_promtool() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (apt-get install prometheus; .ci/run does)")
    path = mounted_file("prometheus", "/etc/prometheus/prometheus.yml")
    done = subprocess.run([promtool, "check", "config", "--syntax-only", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_mounted_alertmanager_config_passes_amtool() -> None:
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.skip("amtool is not installed (apt-get install prometheus-alertmanager; .ci/run does)")
    path = mounted_file("alertmanager", "/etc/alertmanager/alertmanager.yml")
    done = subprocess.run([amtool, "check-config", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def _docker_compose_works() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        done = subprocess.run([docker, "compose", "version"], capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def test_docker_compose_accepts_the_file_where_it_is_available() -> None:
    if not _docker_compose_works():
        pytest.skip("docker compose is not available on this machine")
    env = {
        "PATH": "/usr/bin:/bin:/usr/local/bin",
        **{v: "x-test-value" for v in ("POSTGRES_PASSWORD", "REDIS_PASSWORD", "ALERTMANAGER_TOKEN", "OPS_API_TOKEN")},
        "GRAFANA_ADMIN_PASSWORD": "x-test-value",
    }
    done = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True, env=env, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
