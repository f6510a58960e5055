"""The Kubernetes manifests in deploy/, checked offline.

YAML parses, kinds and apiVersions are the right ones, the RayService's serveConfigV2 is
serve_config.yaml (one documented difference: Serve listens on 0.0.0.0 in a pod), the RBAC
grants exactly the reads the platform does and the writes the catalogue's mutating tools do
(computed from ``core.tools.MUTATING`` and ``adapters.kube_rbac``, never a copied list), the
Secret is a template without values, and the ConfigMaps carry the shipped rules, playbooks and
policy byte for byte. ``.venv/bin/python -m tests.unit.test_manifests --write`` regenerates
deploy/configmaps.yaml from config/.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from adapters.kube_rbac import READ_VERBS, TOOL_WRITES, cluster_roles, grants_of, read_grants, write_grants
from config.settings import Settings
from core.tools import MUTATING, READ_ONLY

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CONFIG = ROOT / "config"

EXPECTED_KINDS = {
    "Namespace": "v1",
    "ServiceAccount": "v1",
    "Secret": "v1",
    "ConfigMap": "v1",
    "ClusterRole": "rbac.authorization.k8s.io/v1",
    "ClusterRoleBinding": "rbac.authorization.k8s.io/v1",
    "RayService": "ray.io/v1",
}


def documents() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(DEPLOY.glob("*.yaml")):
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d is not None)
    return docs


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [d for d in documents() if d["kind"] == kind]


def one(kind: str, name: str) -> dict[str, Any]:
    found = [d for d in of_kind(kind) if d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def render_configmaps() -> str:
    """deploy/configmaps.yaml from the shipped files in config/."""
    maps = [
        ("aiops-rules", {"rules.yaml": (CONFIG / "rules.yaml").read_text()}),
        ("aiops-playbooks", {p.name: p.read_text() for p in sorted((CONFIG / "playbooks").glob("*.yaml"))}),
        ("aiops-policy", {"policy.yaml": (CONFIG / "policy.yaml").read_text()}),
    ]
    docs = [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "aiops", "labels": {"app.kubernetes.io/part-of": "ray-aiops"}},
            "data": data,
        }
        for name, data in maps
    ]

    class Dumper(yaml.SafeDumper):
        pass

    def text(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)

    Dumper.add_representer(str, text)
    header = (
        "# Rules, playbooks and policy for the RayService pods (mounted under /etc/aiops/), generated from\n"
        "# config/ by: .venv/bin/python -m tests.unit.test_manifests --write  (a test keeps them equal).\n"
        "# Edit config/, regenerate, kubectl apply; then bump the RayService (or restart) to reload.\n"
    )
    return header + yaml.dump_all(docs, Dumper=Dumper, sort_keys=False, width=1000)


def test_every_manifest_parses_with_the_right_kind_and_api_version() -> None:
    docs = documents()
    assert docs
    for doc in docs:
        assert doc["kind"] in EXPECTED_KINDS, doc["kind"]
        assert doc["apiVersion"] == EXPECTED_KINDS[doc["kind"]], f"{doc['kind']}: {doc['apiVersion']}"
        assert doc["metadata"]["name"]
        if doc["kind"] not in {"Namespace", "ClusterRole", "ClusterRoleBinding"}:
            assert doc["metadata"]["namespace"] == "aiops"
    assert {d["kind"] for d in docs} == set(EXPECTED_KINDS)


def test_the_rayservice_has_a_head_and_one_worker_group_running_as_the_service_account() -> None:
    service = one("RayService", "aiops")
    cluster = service["spec"]["rayClusterConfig"]
    head = cluster["headGroupSpec"]
    workers = cluster["workerGroupSpecs"]
    assert len(workers) == 1 and workers[0]["replicas"] >= 1
    assert head["rayStartParams"]["dashboard-host"] == "0.0.0.0"
    for template in (head["template"], workers[0]["template"]):
        spec = template["spec"]
        assert spec["serviceAccountName"] == one("ServiceAccount", "aiops")["metadata"]["name"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        for container in spec["containers"]:
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert {"secretRef": {"name": "aiops-secrets"}} in container["envFrom"]
            mounted = {m["name"] for m in container["volumeMounts"]}
            volumes = {v["name"]: v for v in spec["volumes"]}
            assert mounted <= set(volumes)
            for name in mounted:
                configmap = volumes[name]["configMap"]["name"]
                one("ConfigMap", configmap)
    ports = {p["name"]: p["containerPort"] for p in head["template"]["spec"]["containers"][0]["ports"]}
    serve = yaml.safe_load((ROOT / "serve_config.yaml").read_text())
    assert ports["serve"] == serve["http_options"]["port"] and ports["dashboard"] == 8265


def test_serve_config_v2_is_serve_config_yaml_with_serve_listening_on_the_pod_ip() -> None:
    in_manifest = yaml.safe_load(one("RayService", "aiops")["spec"]["serveConfigV2"])
    shipped = yaml.safe_load((ROOT / "serve_config.yaml").read_text())
    assert in_manifest["http_options"].pop("host") == "0.0.0.0"
    shipped["http_options"].pop("host")
    assert in_manifest == shipped, "deploy/rayservice.yaml serveConfigV2 is out of step with serve_config.yaml"


def test_the_env_the_pods_get_names_real_settings() -> None:
    container = one("RayService", "aiops")["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]
    env = {e["name"]: e["value"] for e in container["containers"][0]["env"]}
    settings = Settings.from_env(**{k.lower(): v for k, v in env.items() if k.startswith("AIOPS_")})
    assert settings.rules_file == env["AIOPS_RULES_FILE"]
    assert settings.playbooks_dir == env["AIOPS_PLAYBOOKS_DIR"]
    assert settings.policy_file == env["AIOPS_POLICY_FILE"]


def test_every_mutating_tool_of_the_catalogue_declares_what_it_writes() -> None:
    assert set(TOOL_WRITES) == set(MUTATING), "adapters/kube_rbac.py TOOL_WRITES must cover exactly core.tools.MUTATING"
    assert not set(TOOL_WRITES) & READ_ONLY


def test_rbac_grants_exactly_the_reads_and_the_mutating_tools_writes() -> None:
    roles = {r["metadata"]["name"]: r["rules"] for r in of_kind("ClusterRole")}
    assert roles == cluster_roles(sorted(MUTATING)), "deploy/rbac.yaml differs from adapters.kube_rbac.cluster_roles"
    granted = set().union(*(grants_of(rules) for rules in roles.values()))
    assert granted == read_grants() | write_grants(MUTATING)
    writes = {verb for _, _, verb in grants_of(roles["aiops-remediator"])}
    assert writes <= {"create", "delete", "patch"}
    assert {verb for _, _, verb in grants_of(roles["aiops-reader"])} <= set(READ_VERBS)


def test_rbac_never_grants_secrets_configmaps_wildcards_or_escalation() -> None:
    for role in of_kind("ClusterRole"):
        for rule in role["rules"]:
            assert "*" not in rule["apiGroups"] + rule["resources"] + rule["verbs"]
            assert not {"secrets", "configmaps", "roles", "clusterroles", "rolebindings"} & set(rule["resources"])
            assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"])


def test_each_cluster_role_is_bound_to_the_aiops_service_account() -> None:
    account = one("ServiceAccount", "aiops")
    bound = {b["roleRef"]["name"]: b["subjects"] for b in of_kind("ClusterRoleBinding")}
    assert set(bound) == {r["metadata"]["name"] for r in of_kind("ClusterRole")}
    for subjects in bound.values():
        assert subjects == [{"kind": "ServiceAccount", "name": "aiops", "namespace": account["metadata"]["namespace"]}]


@pytest.mark.parametrize(
    ("tool", "resource", "verb"),
    [
        pytest.param("delete_pod", "pods", "delete", id="delete-pod-deletes-pods"),
        pytest.param("cordon_node", "nodes", "patch", id="cordon-patches-nodes"),
        pytest.param("delete_failed_job", "jobs", "create", id="recreating-a-job-creates-jobs"),
        pytest.param("rollout_restart", "statefulsets", "patch", id="restart-patches-statefulsets"),
    ],
)
def test_the_write_grants_follow_the_tools(tool: str, resource: str, verb: str) -> None:
    assert any(r == resource and v == verb for _, r, v in write_grants([tool]))


def test_a_tool_without_a_declaration_is_an_error_not_a_silent_grant() -> None:
    with pytest.raises(KeyError):
        write_grants(["format_disk"])


def test_the_secret_is_a_template_without_values() -> None:
    secret = one("Secret", "aiops-secrets")
    data = secret.get("stringData") or {}
    assert "data" not in secret
    assert set(data) >= {"DATABASE_URL", "REDIS_URL", "ALERTMANAGER_TOKEN", "OPS_API_TOKEN"}
    assert all(value == "" for value in data.values()), "deploy/secrets.yaml must not hold secret values"
    known = {name.upper() for name in Settings.model_fields}
    assert set(data) <= known


def test_the_configmaps_carry_the_shipped_rules_playbooks_and_policy() -> None:
    assert (DEPLOY / "configmaps.yaml").read_text() == render_configmaps(), (
        "deploy/configmaps.yaml is out of step with config/: .venv/bin/python -m tests.unit.test_manifests --write"
    )
    rules = one("ConfigMap", "aiops-rules")["data"]["rules.yaml"]
    assert rules == (CONFIG / "rules.yaml").read_text()


if __name__ == "__main__":  # pragma: no cover - the regeneration helper named in the module doc
    if sys.argv[1:] == ["--write"]:
        (DEPLOY / "configmaps.yaml").write_text(render_configmaps())
