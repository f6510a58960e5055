"""RCA evaluation scenarios: a fake cluster per incident and the root cause it must yield.

Each scenario is what an on-call engineer would find with kubectl: API-shaped objects,
events and container logs, plus the expected category and the key facts (a limit, an
exception line, a host) that the diagnosis must quote. ``tests/unit/test_rca_eval.py``
drives the evidence plan on each one and scores top-1 accuracy and fact recall.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.models import ObjectRef, SignalSource
from core.rca import Category, FakeCluster, Subject
from tests.evals.k8s import (
    NS,
    container,
    deployment,
    endpoints,
    event,
    node,
    pod,
    probe,
    pvc,
    replicaset,
    service,
    status,
    terminated,
)

RS = "api-7d9f8c6b5"
OWNERS = (ObjectRef(kind="ReplicaSet", name=RS, namespace=NS), ObjectRef(kind="Deployment", name="api", namespace=NS))


@dataclass(frozen=True)
class Scenario:
    id: str
    subject: Subject
    expected: Category
    facts: tuple[str, ...]
    objects: tuple[dict[str, Any], ...] = ()
    events: tuple[dict[str, Any], ...] = ()
    logs: dict[tuple[str, str, bool], str] = field(default_factory=dict)
    playbook: str | None = None

    def cluster(self) -> FakeCluster:
        return FakeCluster.of(self.objects, self.events, self.logs)


def pod_subject(reason: str, name: str, *, owners: tuple[ObjectRef, ...] = OWNERS) -> Subject:
    return Subject(reason=reason, object=ObjectRef(kind="Pod", name=name, namespace=NS), owners=owners)


def _crash_pod(name: str, exit_code: int = 1, *, restarts: int = 5, **kwargs: Any) -> dict[str, Any]:
    return pod(name, statuses=[status(waiting="CrashLoopBackOff",
                                      waiting_message="back-off 5m0s restarting failed container=api",
                                      last=terminated("Error", exit_code), restarts=restarts)], **kwargs)


_BACKOFF = "Back-off restarting failed container api in pod {pod}"


def _backoff(name: str) -> dict[str, Any]:
    return event("Pod", name, "BackOff", _BACKOFF.format(pod=name), count=40, field_path="spec.containers{api}")


PY_TRACE = """2026-11-05 11:58:01,120 INFO starting worker pid=7
Traceback (most recent call last):
  File "/app/main.py", line 41, in <module>
    main()
  File "/app/main.py", line 33, in main
    workers = int(os.environ.get("WORKERS", "abc"))
ValueError: invalid literal for int() with base 10: 'abc'
"""

SCENARIOS_BASIC: list[Scenario] = [
    Scenario(
        id="oom_killed_with_limit",
        subject=pod_subject("CrashLoopBackOff", "api-server-xyz"),
        objects=(pod("api-server-xyz", containers=[container(limits={"memory": "256Mi", "cpu": "500m"},
                                                             requests={"memory": "128Mi"})],
                     statuses=[status(waiting="CrashLoopBackOff", last=terminated("OOMKilled", 137),
                                      restarts=3)], started_ago=4 * 3600 + 300),),
        events=(_backoff("api-server-xyz"),),
        logs={("api-server-xyz", "api", True): "loading cache\nloaded 1200000 entries\n"},
        expected=Category.MEMORY_LIMIT,
        facts=("256Mi", "3x", "4h", "OOMKilled"),
        playbook="oom",
    ),
    Scenario(
        id="java_heap_out_of_memory_in_logs",
        subject=pod_subject("CrashLoopBackOff", "api-jvm-1"),
        objects=(pod("api-jvm-1", containers=[container(limits={"memory": "1Gi"})],
                     statuses=[status(waiting="CrashLoopBackOff", last=terminated("Error", 1), restarts=2)]),),
        logs={("api-jvm-1", "api", True): "INFO Started\nException in thread \"main\" "
              "java.lang.OutOfMemoryError: Java heap space\n\tat java.util.Arrays.copyOf(Arrays.java:3236)\n"},
        expected=Category.MEMORY_LIMIT,
        facts=("OutOfMemoryError",),
    ),
    Scenario(
        id="python_traceback",
        subject=pod_subject("CrashLoopBackOff", "api-py-1"),
        objects=(_crash_pod("api-py-1"),),
        events=(_backoff("api-py-1"),),
        logs={("api-py-1", "api", True): PY_TRACE},
        expected=Category.APP_CRASH,
        facts=("ValueError: invalid literal", "exit code 1"),
        playbook="crashloop",
    ),
    Scenario(
        id="go_panic",
        subject=pod_subject("CrashLoopBackOff", "api-go-1"),
        objects=(_crash_pod("api-go-1", 2),),
        logs={("api-go-1", "api", True): "level=info msg=\"starting\"\npanic: runtime error: invalid memory "
              "address or nil pointer dereference\n[signal SIGSEGV: segmentation violation code=0x1 addr=0x0]\n\n"
              "goroutine 1 [running]:\nmain.main()\n\t/src/main.go:42 +0x1d\n"},
        expected=Category.APP_CRASH,
        facts=("panic: runtime error", "exit code 2"),
    ),
    Scenario(
        id="node_type_error",
        subject=pod_subject("CrashLoopBackOff", "api-node-1"),
        objects=(_crash_pod("api-node-1"),),
        logs={("api-node-1", "api", True): "> api@1.0.0 start\n> node index.js\n\n/app/index.js:12\n"
              "TypeError: Cannot read properties of undefined (reading 'port')\n"
              "    at Object.<anonymous> (/app/index.js:12:30)\n    at Module._compile (node:internal)\n"},
        expected=Category.APP_CRASH,
        facts=("TypeError: Cannot read properties",),
    ),
    Scenario(
        id="java_caused_by_chain",
        subject=pod_subject("CrashLoopBackOff", "api-java-2"),
        objects=(_crash_pod("api-java-2"),),
        logs={("api-java-2", "api", True): "Exception in thread \"main\" java.lang.IllegalStateException: "
              "Failed to load ApplicationContext\n\tat org.springframework.Boot.run(Boot.java:10)\n"
              "Caused by: java.lang.NumberFormatException: For input string: \"ten\"\n\tat java.lang.Integer"
              ".parseInt(Integer.java:652)\n"},
        expected=Category.APP_CRASH,
        facts=("NumberFormatException",),
    ),
    Scenario(
        id="missing_configmap",
        subject=pod_subject("CreateContainerConfigError", "api-cfg-1"),
        objects=(pod("api-cfg-1", statuses=[status(waiting="CreateContainerConfigError",
                                                    waiting_message='configmap "api-config" not found')]),),
        events=(event("Pod", "api-cfg-1", "Failed", 'Error: configmap "api-config" not found', count=12,
                      field_path="spec.containers{api}"),),
        expected=Category.MISSING_CONFIG,
        facts=("api-config",),
    ),
    Scenario(
        id="missing_secret_key",
        subject=pod_subject("CreateContainerConfigError", "api-cfg-2"),
        objects=(pod("api-cfg-2", statuses=[status(
            waiting="CreateContainerConfigError",
            waiting_message="couldn't find key DB_PASSWORD in Secret production/db-credentials")]),),
        expected=Category.MISSING_CONFIG,
        facts=("DB_PASSWORD", "db-credentials"),
    ),
    Scenario(
        id="missing_env_var_in_logs",
        subject=pod_subject("CrashLoopBackOff", "api-env-1"),
        objects=(_crash_pod("api-env-1"),),
        logs={("api-env-1", "api", True): "Traceback (most recent call last):\n  File \"/app/settings.py\", "
              "line 8, in <module>\n    DATABASE_URL = os.environ[\"DATABASE_URL\"]\n  File \"<frozen os>\", "
              "line 679, in __getitem__\nKeyError: 'DATABASE_URL'\n"},
        expected=Category.MISSING_CONFIG,
        facts=("DATABASE_URL",),
    ),
    Scenario(
        id="executable_not_found",
        subject=pod_subject("RunContainerError", "api-cmd-1"),
        objects=(pod("api-cmd-1", statuses=[status(
            waiting="RunContainerError",
            waiting_message='failed to create containerd task: failed to create shim task: OCI runtime create '
            'failed: runc create failed: unable to start container process: exec: "gunicorn": executable file '
            'not found in $PATH: unknown', restarts=3, last=terminated("StartError", 128))]),),
        expected=Category.BAD_COMMAND,
        facts=("executable file not found", "gunicorn"),
    ),
    Scenario(
        id="exit_127_command_not_found",
        subject=pod_subject("CrashLoopBackOff", "api-cmd-2"),
        objects=(_crash_pod("api-cmd-2", 127),),
        logs={("api-cmd-2", "api", True): "/bin/sh: 1: ./start-server.sh: not found\n"},
        expected=Category.BAD_COMMAND,
        facts=("127",),
    ),
    Scenario(
        id="image_tag_not_found",
        subject=pod_subject("ImagePullBackOff", "api-img-1"),
        objects=(pod("api-img-1", statuses=[status(image="registry.example.com/shop/api:1.9.9",
                                                   waiting="ImagePullBackOff",
                                                   waiting_message='Back-off pulling image '
                                                   '"registry.example.com/shop/api:1.9.9"')],
                     containers=[container(image="registry.example.com/shop/api:1.9.9")]),),
        events=(event("Pod", "api-img-1", "Failed", 'Failed to pull image "registry.example.com/shop/api:1.9.9": '
                      'rpc error: code = NotFound desc = failed to pull and unpack image "registry.example.com/shop'
                      '/api:1.9.9": failed to resolve reference "registry.example.com/shop/api:1.9.9": '
                      'registry.example.com/shop/api:1.9.9: not found', count=4),),
        expected=Category.IMAGE_NOT_FOUND,
        facts=("1.9.9", "not found"),
        playbook="image-pull",
    ),
    Scenario(
        id="registry_unauthorized",
        subject=pod_subject("ErrImagePull", "api-img-2"),
        objects=(pod("api-img-2", statuses=[status(waiting="ErrImagePull", waiting_message="failed to authorize")],
                     containers=[container(image="ghcr.io/acme/private-api:2.0")]),),
        events=(event("Pod", "api-img-2", "Failed", 'Failed to pull image "ghcr.io/acme/private-api:2.0": failed '
                      'to resolve reference "ghcr.io/acme/private-api:2.0": failed to authorize: failed to fetch '
                      'anonymous token: unexpected status from GET request: 401 Unauthorized'),),
        expected=Category.REGISTRY_AUTH,
        facts=("401 Unauthorized",),
    ),
    Scenario(
        id="registry_rate_limited",
        subject=pod_subject("ImagePullBackOff", "api-img-3"),
        objects=(pod("api-img-3", statuses=[status(waiting="ImagePullBackOff")],
                     containers=[container(image="nginx:1.27")]),),
        events=(event("Pod", "api-img-3", "Failed", 'Failed to pull image "nginx:1.27": failed to copy: httpReadSeeker'
                      ': failed open: unexpected status code https://registry-1.docker.io/v2/library/nginx/manifests/'
                      'sha256:aa: 429 Too Many Requests - Server message: toomanyrequests: You have reached your pull '
                      'rate limit.'),),
        expected=Category.REGISTRY_RATE_LIMIT,
        facts=("toomanyrequests",),
    ),
]


def _pending(name: str, message: str, **kwargs: Any) -> dict[str, Any]:
    return pod(name, phase="Pending", node=None, scheduled=("Unschedulable", message), **kwargs)


def _scheduling_event(name: str, message: str) -> dict[str, Any]:
    return event("Pod", name, "FailedScheduling", message, count=8)


_INSUFFICIENT = ("0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: "
                 "3 No preemption victims found for incoming pod.")
_TAINT = ("0/3 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, "
          "2 node(s) didn't match Pod's node affinity/selector. preemption: 0/3 nodes are available: "
          "3 Preemption is not helpful for scheduling.")
_UNBOUND = "0/3 nodes are available: pod has unbound immediate PersistentVolumeClaims. preemption: not helpful."

SCENARIOS_PROBES_PLACEMENT: list[Scenario] = [
    Scenario(
        id="liveness_probe_hang_after_hours",
        subject=pod_subject("CrashLoopBackOff", "api-live-1"),
        objects=(pod("api-live-1", containers=[container(liveness=probe(delay=10))],
                     statuses=[status(running_ago=20, restarts=4,
                                      last=terminated("Error", 137, ran=3 * 3600, ago=30))]),),
        events=(
            event("Pod", "api-live-1", "Unhealthy", 'Liveness probe failed: Get "http://10.244.1.17:8080/healthz": '
                  "context deadline exceeded (Client.Timeout exceeded while awaiting headers)", count=12,
                  field_path="spec.containers{api}"),
            event("Pod", "api-live-1", "Killing", "Container api failed liveness probe, will be restarted",
                  type_="Normal", count=4),
        ),
        logs={("api-live-1", "api", True): "INFO GET /orders 200 12ms\nINFO GET /orders 200 15ms\n"},
        expected=Category.LIVENESS_PROBE,
        facts=("Liveness probe failed",),
    ),
    Scenario(
        id="slow_start_killed_by_liveness",
        subject=pod_subject("CrashLoopBackOff", "api-slow-1"),
        objects=(pod("api-slow-1", containers=[container(liveness=probe(delay=5, period=5, threshold=3))],
                     statuses=[status(waiting="CrashLoopBackOff", restarts=6,
                                      last=terminated("Error", 137, ran=22, ago=40))]),),
        events=(
            event("Pod", "api-slow-1", "Unhealthy", 'Liveness probe failed: Get "http://10.244.1.17:8080/healthz": '
                  "dial tcp 10.244.1.17:8080: connect: connection refused", count=18),
            event("Pod", "api-slow-1", "Killing", "Container api failed liveness probe, will be restarted",
                  type_="Normal", count=6),
        ),
        logs={("api-slow-1", "api", True): "INFO loading model weights from /models (about 90s)\n"
              "INFO loaded 10/48 shards\n"},
        expected=Category.SLOW_START,
        facts=("initialDelaySeconds=5", "killed after 22s"),
    ),
    Scenario(
        id="readiness_only_failures",
        subject=pod_subject("NotReady", "api-ready-1"),
        objects=(pod("api-ready-1", containers=[container(readiness=probe("/ready"))],
                     statuses=[status(running_ago=400, ready=False)]),),
        events=(event("Pod", "api-ready-1", "Unhealthy",
                      "Readiness probe failed: HTTP probe failed with statuscode: 503", count=30),),
        logs={("api-ready-1", "api", False): "INFO warming caches 35%\n"},
        expected=Category.SLOW_START,
        facts=("Readiness probe failed",),
    ),
    Scenario(
        id="insufficient_cpu",
        subject=pod_subject("Unschedulable", "api-big-1"),
        objects=(_pending("api-big-1", _INSUFFICIENT,
                          containers=[container(requests={"cpu": "16", "memory": "2Gi"})]),),
        events=(_scheduling_event("api-big-1", _INSUFFICIENT),),
        expected=Category.INSUFFICIENT_RESOURCES,
        facts=("Insufficient cpu",),
    ),
    Scenario(
        id="untolerated_taint_and_affinity",
        subject=pod_subject("Unschedulable", "api-gpu-1"),
        objects=(_pending("api-gpu-1", _TAINT),),
        events=(_scheduling_event("api-gpu-1", _TAINT),),
        expected=Category.SCHEDULING_CONSTRAINTS,
        facts=("untolerated taint",),
    ),
    Scenario(
        id="pvc_unbound_no_storage_class",
        subject=pod_subject("Unschedulable", "db-0", owners=(ObjectRef(kind="StatefulSet", name="db", namespace=NS),)),
        objects=(
            _pending("db-0", _UNBOUND, owner=("StatefulSet", "db"), labels={"app": "db"},
                     volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "data-db-0"}}]),
            pvc("data-db-0"),
        ),
        events=(
            _scheduling_event("db-0", _UNBOUND),
            event("PersistentVolumeClaim", "data-db-0", "FailedBinding",
                  "no persistent volumes available for this claim and no storage class is set", type_="Normal",
                  count=20),
        ),
        expected=Category.PVC_UNBOUND,
        facts=("data-db-0", "no persistent volumes available"),
    ),
    Scenario(
        id="storage_class_missing",
        subject=Subject(reason="PVCPending", object=ObjectRef(kind="PersistentVolumeClaim", name="cache-data",
                                                             namespace=NS)),
        objects=(pvc("cache-data", storage_class="fast-ssd"),),
        events=(event("PersistentVolumeClaim", "cache-data", "ProvisioningFailed",
                      'storageclass.storage.k8s.io "fast-ssd" not found', count=9),),
        expected=Category.PROVISIONING_FAILED,
        facts=("fast-ssd",),
    ),
    Scenario(
        id="node_not_ready",
        subject=Subject(reason="NodeNotReady", object=ObjectRef(kind="Node", name="worker-3")),
        objects=(node("worker-3", ready="Unknown", message="Kubelet stopped posting node status."),),
        events=(event("Node", "worker-3", "NodeNotReady", "Node worker-3 status is now: NodeNotReady",
                      namespace="default", type_="Normal"),),
        expected=Category.NODE_FAILURE,
        facts=("worker-3", "Kubelet stopped posting node status"),
        playbook="node-not-ready",
    ),
    Scenario(
        id="pod_on_not_ready_node",
        subject=pod_subject("NotReady", "api-nr-1"),
        objects=(pod("api-nr-1", node="worker-3", statuses=[status(running_ago=3000, ready=False)]),
                 node("worker-3", ready="Unknown", message="Kubelet stopped posting node status.")),
        events=(event("Pod", "api-nr-1", "NodeNotReady", "Node is not ready"),),
        logs={("api-nr-1", "api", False): "INFO serving\n"},
        expected=Category.NODE_FAILURE,
        facts=("worker-3",),
    ),
    Scenario(
        id="evicted_node_memory_pressure",
        subject=pod_subject("Evicted", "api-ev-1"),
        objects=(pod("api-ev-1", phase="Failed", reason="Evicted",
                     message="The node was low on resource: memory. Threshold quantity: 100Mi, available: 48Mi. "
                     "Container api was using 1228Mi, request is 256Mi, has larger consumption of memory.",
                     statuses=[status(term=terminated("ContainerStatusUnknown", 137))]),
                 node("worker-1", pressure="MemoryPressure")),
        expected=Category.NODE_PRESSURE,
        facts=("low on resource: memory",),
    ),
]


_PG_REFUSED = """2026-11-05T11:59:58Z INFO connecting to database
Traceback (most recent call last):
  File "/app/db.py", line 12, in connect
    return psycopg2.connect(dsn)
psycopg2.OperationalError: could not connect to server: Connection refused
	Is the server running on host "postgres" (10.96.14.2) and accepting
	TCP/IP connections on port 5432?
"""


def _revision(hash_: str, revision: int, image: str, *, ready: int, replicas: int,
              env: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return replicaset(f"api-{hash_}", revision=revision, template_hash=hash_, replicas=replicas, ready=ready,
                      containers=[container(image=image, env=env)])


def _healthy(name: str, hash_: str) -> dict[str, Any]:
    return pod(name, labels={"app": "api", "pod-template-hash": hash_}, owner=("ReplicaSet", f"api-{hash_}"),
               ready=True, statuses=[status(ready=True, running_ago=86400)])


def _new_pod(name: str, hash_: str = "7d9f8c6b5", exit_code: int = 1) -> dict[str, Any]:
    return _crash_pod(name, exit_code, labels={"app": "api", "pod-template-hash": hash_},
                      owner=("ReplicaSet", f"api-{hash_}"), started_ago=900)


def _alert_subject() -> Subject:
    from datetime import UTC, datetime

    from core.models import Severity, Signal, fingerprint_of

    return Subject.from_signal(Signal(
        source=SignalSource.ALERTMANAGER, reason="KubePodCrashLooping", severity=Severity.WARNING,
        labels={"alertname": "KubePodCrashLooping", "namespace": NS, "pod": "api-am-1", "container": "api",
                "severity": "warning"},
        annotations={"summary": "Pod production/api-am-1 (api) is in waiting state (reason: CrashLoopBackOff)."},
        observed_at=datetime(2026, 11, 5, 12, 0, tzinfo=UTC), fingerprint=fingerprint_of("am", "api-am-1"),
    ))


_JOB_LOG = """Traceback (most recent call last):
  File "/job/report.py", line 88, in <module>
    run()
psycopg2.errors.UndefinedTable: relation "orders_2026" does not exist
"""

SCENARIOS_WORKLOADS: list[Scenario] = [
    Scenario(
        id="dependency_connection_refused_no_endpoints",
        subject=pod_subject("CrashLoopBackOff", "api-dep-1"),
        objects=(_crash_pod("api-dep-1"), service("postgres", {"app": "postgres"}), endpoints("postgres", []),
                 service("api", {"app": "api"}), endpoints("api", [])),
        logs={("api-dep-1", "api", True): _PG_REFUSED},
        expected=Category.DEPENDENCY_UNREACHABLE,
        facts=("postgres", "Connection refused", "no ready endpoints"),
    ),
    Scenario(
        id="dependency_dns_no_such_host",
        subject=pod_subject("CrashLoopBackOff", "api-dep-2"),
        objects=(_crash_pod("api-dep-2"),),
        logs={("api-dep-2", "api", True): 'time="2026-11-05T11:59:58Z" level=info msg="connecting to cache"\n'
              'time="2026-11-05T11:59:59Z" level=fatal msg="redis: dial tcp: lookup redis-master on '
              '10.96.0.10:53: no such host"\n'},
        expected=Category.DEPENDENCY_UNREACHABLE,
        facts=("redis-master", "no such host"),
    ),
    Scenario(
        id="init_container_migration_cannot_reach_db",
        subject=pod_subject("CrashLoopBackOff", "api-init-1"),
        objects=(
            {**pod("api-init-1", phase="Pending"),
             "spec": {"initContainers": [container("migrate", "registry.example.com/shop/migrate:3")],
                      "containers": [container()], "nodeName": "worker-1"},
             "status": {"phase": "Pending", "startTime": "2026-11-05T11:00:00Z",
                        "initContainerStatuses": [status("migrate", waiting="CrashLoopBackOff", restarts=7,
                                                         last=terminated("Error", 1))],
                        "containerStatuses": [status(waiting="PodInitializing")]}},
        ),
        logs={("api-init-1", "migrate", True): "Error: connect ECONNREFUSED 10.96.14.2:5432\n"
              "    at TCPConnectWrap.afterConnect [as oncomplete] (node:net:1555:16)\n"},
        expected=Category.DEPENDENCY_UNREACHABLE,
        facts=("10.96.14.2:5432",),
    ),
    Scenario(
        id="bad_rollout_new_image_crashes",
        subject=pod_subject("CrashLoopBackOff", "api-7d9f8c6b5-q2x7v"),
        objects=(
            deployment("api", ready=2),
            _revision("6c5d4b9f7", 4, "registry.example.com/shop/api:1.4.2", ready=2, replicas=2),
            _revision("7d9f8c6b5", 5, "registry.example.com/shop/api:1.5.0", ready=0, replicas=1),
            _new_pod("api-7d9f8c6b5-q2x7v"),
            _healthy("api-6c5d4b9f7-aaaaa", "6c5d4b9f7"),
            _healthy("api-6c5d4b9f7-bbbbb", "6c5d4b9f7"),
        ),
        logs={("api-7d9f8c6b5-q2x7v", "api", True): PY_TRACE},
        expected=Category.BAD_ROLLOUT,
        facts=("1.5.0", "revision 5", "ValueError"),
        playbook="bad-rollout",
    ),
    Scenario(
        id="bad_rollout_env_change_breaks_dependency",
        subject=pod_subject("CrashLoopBackOff", "api-7d9f8c6b5-zz9k1"),
        objects=(
            deployment("api", ready=3),
            _revision("6c5d4b9f7", 11, "registry.example.com/shop/api:2.0.0", ready=3, replicas=3,
                      env=[{"name": "DB_HOST", "value": "postgres"}]),
            _revision("7d9f8c6b5", 12, "registry.example.com/shop/api:2.0.0", ready=0, replicas=1,
                      env=[{"name": "DB_HOST", "value": "postgres-v2"}]),
            _new_pod("api-7d9f8c6b5-zz9k1"),
            _healthy("api-6c5d4b9f7-ccccc", "6c5d4b9f7"),
        ),
        logs={("api-7d9f8c6b5-zz9k1", "api", True): "psycopg2.OperationalError: could not translate host name "
              "\"postgres-v2\" to address: Name or service not known\n"},
        expected=Category.BAD_ROLLOUT,
        facts=("DB_HOST", "postgres-v2"),
    ),
    Scenario(
        id="deployment_unavailable_pods_oom",
        subject=Subject(reason="DeploymentUnavailable", object=ObjectRef(kind="Deployment", name="api",
                                                                         namespace=NS)),
        objects=(
            deployment("api", ready=0, replicas=2),
            _revision("7d9f8c6b5", 1, "registry.example.com/shop/api:1.4.2", ready=0, replicas=2),
            pod("api-7d9f8c6b5-m1", containers=[container(limits={"memory": "512Mi"})],
                statuses=[status(waiting="CrashLoopBackOff", last=terminated("OOMKilled", 137), restarts=9)]),
            pod("api-7d9f8c6b5-m2", containers=[container(limits={"memory": "512Mi"})],
                statuses=[status(waiting="CrashLoopBackOff", last=terminated("OOMKilled", 137), restarts=8)]),
        ),
        expected=Category.MEMORY_LIMIT,
        facts=("512Mi", "9x"),
        playbook="oom",
    ),
    Scenario(
        id="job_failed_with_exception",
        subject=Subject(reason="JobFailed", object=ObjectRef(kind="Job", name="nightly-report", namespace=NS)),
        objects=(
            {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "nightly-report", "namespace": NS},
             "spec": {"backoffLimit": 0, "selector": {"matchLabels": {"controller-uid": "uid-nightly"}}},
             "status": {"failed": 1, "conditions": [{"type": "Failed", "status": "True",
                                                     "reason": "BackoffLimitExceeded",
                                                     "message": "Job has reached the specified backoff limit"}]}},
            pod("nightly-report-x7k2p", phase="Failed", owner=("Job", "nightly-report"),
                labels={"controller-uid": "uid-nightly", "job-name": "nightly-report"},
                statuses=[status("report", term=terminated("Error", 2))],
                containers=[container("report", "registry.example.com/jobs/report:7")]),
        ),
        events=(event("Job", "nightly-report", "BackoffLimitExceeded", "Job has reached the specified backoff limit"),),
        logs={("nightly-report-x7k2p", "report", False): _JOB_LOG},
        expected=Category.APP_CRASH,
        facts=("UndefinedTable", "exit code 2"),
        playbook="failed-job",
    ),
    Scenario(
        id="alertmanager_crashlooping_alert",
        subject=_alert_subject(),
        objects=(_crash_pod("api-am-1"),),
        logs={("api-am-1", "api", True): PY_TRACE},
        expected=Category.APP_CRASH,
        facts=("ValueError", "KubePodCrashLooping"),
    ),
    Scenario(
        id="pod_gone_owner_pods_oom",
        subject=pod_subject("OOMKilled", "api-7d9f8c6b5-gone1"),
        objects=(
            deployment("api", ready=0, replicas=1),
            _revision("7d9f8c6b5", 1, "registry.example.com/shop/api:1.4.2", ready=0, replicas=1),
            pod("api-7d9f8c6b5-new22", containers=[container(limits={"memory": "300Mi"})],
                statuses=[status(running_ago=30, last=terminated("OOMKilled", 137), restarts=2)]),
        ),
        events=(event("Pod", "api-7d9f8c6b5-gone1", "Killing", "Stopping container api", type_="Normal"),),
        expected=Category.MEMORY_LIMIT,
        facts=("300Mi",),
    ),
    Scenario(
        id="pod_gone_nothing_known",
        subject=pod_subject("NonZeroExit", "worker-abc12", owners=()),
        expected=Category.UNKNOWN,
        facts=("unavailable",),
    ),
]

SCENARIOS: list[Scenario] = [*SCENARIOS_BASIC, *SCENARIOS_PROBES_PLACEMENT, *SCENARIOS_WORKLOADS]
