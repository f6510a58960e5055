"""Deterministic diagnosis: one table per signature family, rollout diffs, and hostile evidence."""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest

from core.rca import Category, Diagnosis, FakeCluster, diagnose, drive, plan
from core.rca import diagnosis as diagnosis_module
from core.rca.rollout import diff_templates, rollout_change
from tests.evals.k8s import NOW, container, event, pod, probe, replicaset, status, terminated
from tests.evals.scenarios import SCENARIOS, pod_subject


def diagnose_pod(obj: dict[str, Any], events: list[dict[str, Any]] | None = None,
                 logs: dict[tuple[str, str, bool], str] | None = None, extra: list[dict[str, Any]] | None = None,
                 reason: str = "CrashLoopBackOff") -> Diagnosis:
    name = obj["metadata"]["name"]
    cluster = FakeCluster.of([obj, *(extra or [])], events or [], logs or {})
    return diagnose(drive(plan(pod_subject(reason, name, owners=()), NOW), cluster))


def pulling(message: str) -> Diagnosis:
    obj = pod("p", statuses=[status(waiting="ErrImagePull")])
    return diagnose_pod(obj, [event("Pod", "p", "Failed", f'Failed to pull image "x/y:1": {message}')])


@pytest.mark.parametrize(
    ("message", "category"),
    [
        pytest.param("rpc error: code = NotFound desc = failed to pull and unpack image: x/y:1: not found",
                     Category.IMAGE_NOT_FOUND, id="containerd-not-found"),
        pytest.param("manifest unknown: manifest tagged by \"1\" is not found", Category.IMAGE_NOT_FOUND,
                     id="manifest-unknown"),
        pytest.param("failed to authorize: failed to fetch oauth token: 401 Unauthorized", Category.REGISTRY_AUTH,
                     id="401"),
        pytest.param("pull access denied, repository does not exist or may require authorization: "
                     "insufficient_scope", Category.REGISTRY_AUTH, id="ambiguous-denied"),
        pytest.param("no basic auth credentials", Category.REGISTRY_AUTH, id="no-credentials"),
        pytest.param("429 Too Many Requests - Server message: toomanyrequests: rate limit",
                     Category.REGISTRY_RATE_LIMIT, id="429"),
    ],
)
def test_image_pull_messages_name_the_registry_problem(message: str, category: Category) -> None:
    result = pulling(message)
    assert result.category is category
    assert result.playbook == "image-pull"


def test_an_ambiguous_denied_message_lowers_confidence() -> None:
    assert pulling("pull access denied, repository does not exist or may require authorization").confidence < 0.7


@pytest.mark.parametrize(
    ("waiting_message", "expected"),
    [
        pytest.param('configmap "app-cfg" not found', 'ConfigMap "app-cfg"', id="configmap"),
        pytest.param('secret "db" not found', 'Secret "db"', id="secret"),
        pytest.param("couldn't find key PORT in ConfigMap shop/app-cfg", "key PORT", id="configmap-key"),
    ],
)
def test_create_container_config_errors_name_the_missing_object(waiting_message: str, expected: str) -> None:
    obj = pod("p", statuses=[status(waiting="CreateContainerConfigError", waiting_message=waiting_message)])
    result = diagnose_pod(obj, reason="CreateContainerConfigError")
    assert result.category is Category.MISSING_CONFIG and expected in result.root_cause
    assert result.confidence >= 0.9


def test_a_failed_mount_of_a_missing_configmap_is_missing_config() -> None:
    obj = pod("p", phase="Pending", statuses=[status(waiting="ContainerCreating")])
    events = [event("Pod", "p", "FailedMount", 'MountVolume.SetUp failed for volume "cfg" : configmap "cfg" '
                    "not found")]
    assert diagnose_pod(obj, events).category is Category.MISSING_CONFIG


@pytest.mark.parametrize(
    ("state", "category"),
    [
        pytest.param({"waiting": "RunContainerError", "waiting_message": 'exec: "app": executable file not found '
                      "in $PATH"}, Category.BAD_COMMAND, id="not-in-path"),
        pytest.param({"waiting": "CrashLoopBackOff", "last": terminated("Error", 126)}, Category.BAD_COMMAND,
                     id="exit-126"),
        pytest.param({"waiting": "CrashLoopBackOff", "last": terminated("OOMKilled", 137)}, Category.MEMORY_LIMIT,
                     id="oom-killed"),
        pytest.param({"waiting": "CrashLoopBackOff", "last": terminated("Error", 1)}, Category.APP_CRASH,
                     id="bare-exit-code"),
        pytest.param({"term": terminated("Error", 3)}, Category.APP_CRASH, id="terminated-now"),
    ],
)
def test_container_terminations_are_classified(state: dict[str, Any], category: Category) -> None:
    obj = pod("p", statuses=[status(restarts=2, **state)])
    assert diagnose_pod(obj).category is category


def test_an_exit_code_without_log_lines_is_a_weak_app_crash() -> None:
    result = diagnose_pod(pod("p", statuses=[status(waiting="CrashLoopBackOff", last=terminated("Error", 1),
                                                   restarts=2)]))
    assert result.category is Category.APP_CRASH and result.confidence < 0.5
    assert "no logs could be read" in result.root_cause


def test_an_early_connection_error_does_not_hide_a_later_exception() -> None:
    log = ("WARN connection refused to redis:6379, retrying\nINFO connected to redis\n"
           "Traceback (most recent call last):\n  File \"a.py\"\nAssertionError: schema mismatch\n")
    obj = pod("p", statuses=[status(waiting="CrashLoopBackOff", last=terminated("Error", 1), restarts=2)])
    result = diagnose_pod(obj, logs={("p", "api", True): log})
    assert result.category is Category.APP_CRASH and "AssertionError: schema mismatch" in result.root_cause


@pytest.mark.parametrize(
    ("ran", "delay", "category"),
    [
        pytest.param(25, 10, Category.SLOW_START, id="killed-at-first-chance"),
        pytest.param(3600, 10, Category.LIVENESS_PROBE, id="killed-after-an-hour"),
    ],
)
def test_liveness_kills_split_into_slow_start_and_hang(ran: int, delay: int, category: Category) -> None:
    obj = pod("p", containers=[container(liveness=probe(delay=delay, period=5, threshold=3))],
              statuses=[status(waiting="CrashLoopBackOff", restarts=3, last=terminated("Error", 137, ran=ran))])
    events = [event("Pod", "p", "Unhealthy", "Liveness probe failed: Get \"http://x/healthz\": EOF", count=9)]
    assert diagnose_pod(obj, events).category is category


@pytest.mark.parametrize(
    ("message", "category"),
    [
        pytest.param("0/5 nodes are available: 5 Insufficient memory.", Category.INSUFFICIENT_RESOURCES, id="memory"),
        pytest.param("0/2 nodes are available: 2 Insufficient nvidia.com/gpu.", Category.INSUFFICIENT_RESOURCES,
                     id="gpu"),
        pytest.param("0/4 nodes are available: 2 Insufficient cpu, 2 node(s) had untolerated taint {x: y}.",
                     Category.INSUFFICIENT_RESOURCES, id="mixed-prefers-resources"),
        pytest.param("0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector.",
                     Category.SCHEDULING_CONSTRAINTS, id="affinity"),
        pytest.param("0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules.",
                     Category.SCHEDULING_CONSTRAINTS, id="anti-affinity"),
        pytest.param("0/3 nodes are available: pod has unbound immediate PersistentVolumeClaims.",
                     Category.PVC_UNBOUND, id="unbound-pvc"),
    ],
)
def test_scheduler_messages_split_resources_from_constraints(message: str, category: Category) -> None:
    obj = pod("p", phase="Pending", node=None, scheduled=("Unschedulable", message))
    assert diagnose_pod(obj, reason="Unschedulable").category is category


def test_a_pod_referencing_a_missing_pvc_is_unbound() -> None:
    obj = pod("p", phase="Pending", node=None, scheduled=("Unschedulable", 'persistentvolumeclaim "gone" not found'),
              volumes=[{"name": "d", "persistentVolumeClaim": {"claimName": "gone"}}])
    result = diagnose_pod(obj, reason="Unschedulable")
    assert result.category is Category.PVC_UNBOUND and "gone" in result.root_cause


def test_node_pressure_on_an_unrelated_crash_does_not_outrank_the_crash() -> None:
    from tests.evals.k8s import node

    obj = pod("p", statuses=[status(waiting="CrashLoopBackOff", last=terminated("Error", 1), restarts=2)])
    log = {("p", "api", True): "Traceback (most recent call last):\n  File \"a\"\nValueError: x\n"}
    assert diagnose_pod(obj, logs=log, extra=[node(pressure="DiskPressure")]).category is Category.APP_CRASH


def _template(image: str, **extra: Any) -> dict[str, Any]:
    return {"spec": {"containers": [container(image=image, **extra)]}}


@pytest.mark.parametrize(
    ("old", "new", "change"),
    [
        pytest.param(_template("a:1"), _template("a:2"), "image of api: a:1 -> a:2", id="image"),
        pytest.param(_template("a:1", limits={"memory": "512Mi"}), _template("a:1", limits={"memory": "256Mi"}),
                     "resources of api: limits.memory 512Mi -> 256Mi", id="memory-limit"),
        pytest.param(_template("a:1", env=[{"name": "MODE", "value": "a"}]),
                     _template("a:1", env=[{"name": "MODE", "value": "b"}]), "env MODE of api changed: a -> b",
                     id="env-value"),
        pytest.param(_template("a:1"), _template("a:1", env=[{"name": "NEW", "value": "1"}]), "env NEW added to api",
                     id="env-added"),
        pytest.param(_template("a:1", env=[{"name": "DB_PASSWORD", "value": "old-secret-1"}]),
                     _template("a:1", env=[{"name": "DB_PASSWORD", "value": "new-secret-2"}]),
                     "env DB_PASSWORD of api changed", id="secret-env-value-hidden"),
        pytest.param(_template("a:1", command=["run"]), _template("a:1", command=["serve"]),
                     "command of api: ['run'] -> ['serve']", id="command"),
    ],
)
def test_rollout_diffs_name_what_changed(old: dict[str, Any], new: dict[str, Any], change: str) -> None:
    changes = diff_templates(old, new)
    assert change in changes
    assert not any("secret-" in line for line in changes)


def test_rollout_change_orders_revisions_numerically_and_tolerates_garbage() -> None:
    sets = [replicaset(f"rs{n}", revision=n, template_hash=f"h{n}", containers=[container(image=f"a:{n}")])
            for n in (2, 10, 9)]
    change = rollout_change([*sets, {"metadata": None}, "junk", 3])
    assert change is not None and change.new.revision == 10 and change.old is not None and change.old.revision == 9
    assert rollout_change([]) is None


def test_a_failing_signature_is_logged_and_skipped(monkeypatch: pytest.MonkeyPatch,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    def broken(ctx: object) -> None:
        raise RuntimeError("bug in a signature")

    monkeypatch.setattr(diagnosis_module, "SIGNATURES", (broken, *diagnosis_module.SIGNATURES))
    scenario = SCENARIOS[0]
    result = diagnose(drive(plan(scenario.subject, NOW), scenario.cluster()))
    assert result.category is scenario.expected
    assert "bug in a signature" in caplog.text


def _mutate(value: Any, rng: random.Random) -> Any:
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            roll = rng.random()
            if roll < 0.08:
                continue
            out[key] = rng.choice([None, 7, "x", [], {}]) if roll < 0.16 else _mutate(item, rng)
        return out
    if isinstance(value, list):
        return [_mutate(item, rng) for item in value if rng.random() > 0.1]
    return value


@pytest.mark.parametrize("seed", range(12))
def test_mutated_scenarios_never_make_the_plan_or_diagnosis_raise(seed: int) -> None:
    rng = random.Random(seed)
    for scenario in SCENARIOS:
        cluster = scenario.cluster()
        cluster.objects = [_mutate(copy.deepcopy(obj), rng) for obj in cluster.objects]
        cluster.events = [_mutate(copy.deepcopy(obj), rng) for obj in cluster.events]
        result = diagnose(drive(plan(scenario.subject, NOW), cluster))
        assert isinstance(result.category, Category)


def test_unknown_lists_what_was_seen_instead_of_guessing() -> None:
    obj = pod("p", statuses=[status(running_ago=100, ready=True)], ready=True)
    result = diagnose_pod(obj, [event("Pod", "p", "Pulled", "Successfully pulled image", type_="Normal")],
                          reason="NotReady")
    assert result.category is Category.UNKNOWN and result.confidence <= 0.2 and result.playbook is None
    assert any("phase=Running" in line for line in result.evidence)
