"""Scale-out: the platform on a two-node Ray cluster, and one node lost.

Starts its own Ray on this machine with ``ray.cluster_utils.Cluster`` (a head and one worker
node, 1 CPU each, no dashboard, small object store), the sandbox cluster with ``--namespaces``
namespaces of ``--pods`` pods, and the platform's actors as production starts them: the rule
engine with its RCA pool and approval coordinator, the watch supervisor and its watcher hosts.
Then, in order:

1. where each ``aiops-*`` actor runs, and the unique memory (USS) of each node's processes and
   of each watcher host: from these, how many namespaces one node of a given memory watches;
2. a crash loop in one pod of every namespace, until each is an incident with a pending approval;
3. a crash loop in every namespace watched on the worker node, then, at once, that node removed
   (``Cluster.remove_node``: its raylet and every worker process killed);
4. the actors that lived there found alive again on the head, their namespaces watched again;
   a crash loop after the loss in the same namespaces; every failure of 2-4 must become an
   incident, the incidents and approvals stored before must all still be there, and an approval
   made before the loss is approved (the pod it names gets deleted).

    .venv/bin/python -m benchmarks.scale_out --namespaces 20 --pods 50

``--json`` prints the facts as one JSON line instead of the tables
(``tests/faults/test_scale_out.py`` runs it so and asserts on them). The Ray processes live
under ``--temp-dir``; they are shut down on the way out, also on failure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import psutil
import ray
import ray._private.state as ray_state
from ray.cluster_utils import Cluster

from actors import remote
from adapters.sandbox import BackgroundSandbox
from adapters.sandbox.scenario import large_scenario
from benchmarks.detection_latency import drop_database, fresh_database
from config.settings import Settings

T = TypeVar("T")
MB = 2**20
OBJECT_STORE_BYTES = 80 * MB
NODE_MEMORY_GIB = (2, 4, 8, 16)
HEADROOM = 0.8  # plan on 80 % of a node's memory


class Timeout(AssertionError):
    pass


_T0 = time.monotonic()


def progress(what: str) -> None:
    """One line on stderr per step, so a run that hangs shows where."""
    print(f"[scale-out {time.monotonic() - _T0:6.1f}s] {what}", file=sys.stderr, flush=True)


def poll(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.2) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise Timeout(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


# -- the cluster ------------------------------------------------------------------------------


def start_cluster(temp_dir: Path) -> tuple[Cluster, Any]:
    """A head and one worker node, 1 CPU each, no dashboard, an 80 MiB object store each."""
    node: dict[str, Any] = {"num_cpus": 1, "object_store_memory": OBJECT_STORE_BYTES, "temp_dir": str(temp_dir)}
    cluster = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
    worker = cluster.add_node(**node)
    ray.init(address=cluster.address, namespace=remote.NAMESPACE, log_to_driver=False)
    cluster.wait_for_nodes()
    return cluster, worker


def stray_pids(temp_dir: Path) -> list[int]:
    """Processes of this run's Ray (their command lines name its temp dir), the driver excluded."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        if proc.info["pid"] != os.getpid() and str(temp_dir) in " ".join(proc.info.get("cmdline") or []):
            found.append(int(proc.info["pid"]))
    return found


def kill_strays(temp_dir: Path) -> list[int]:
    pids = stray_pids(temp_dir)
    for pid in pids:
        try:
            psutil.Process(pid).kill()
        except psutil.Error:
            continue
    return pids


@dataclass
class Placed:
    name: str
    node: str  # "head" | "worker" | "?" (a node id we did not start)
    state: str
    pid: int
    restarts: int


def placement(nodes: dict[str, str]) -> dict[str, Placed]:
    """Every ``aiops-*`` actor: the node it is on now (from the GCS actor table; no dashboard needed)."""
    found = {}
    for entry in ray_state.actors().values():
        name = entry.get("Name") or ""
        if not name.startswith("aiops-") or entry["State"] == "DEAD":
            continue
        found[name] = Placed(
            name=name,
            node=nodes.get(entry["Address"]["NodeID"], "?"),
            state=str(entry["State"]),
            pid=int(entry.get("Pid") or 0),
            restarts=int(entry.get("NumRestarts") or 0),
        )
    return found


def is_watcher_host(name: str) -> bool:
    return name.startswith(remote.WATCHER_HOST_PREFIX)


def is_rca_worker(name: str) -> bool:
    return name.startswith("aiops-rca-")


# -- memory -----------------------------------------------------------------------------------


def uss_mb(pid: int) -> float:
    try:
        return float(psutil.Process(pid).memory_full_info().uss) / MB
    except (psutil.Error, OSError):
        return 0.0


def tree_uss_mb(pid: int) -> float:
    """USS of a process and everything it started (an RCA worker and its MCP server)."""
    try:
        children = [child.pid for child in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        children = []
    return uss_mb(pid) + sum(uss_mb(child) for child in children)


def node_uss_mb(node: Any) -> float:
    """USS of one Ray node: its own processes (raylet, and on the head GCS and monitors) and every
    descendant of its raylet (the worker processes, so the actors, and what they started)."""
    pids: set[int] = set()
    for infos in node.all_processes.values():
        for info in infos:
            pids.add(info.process.pid)
            try:
                pids.update(child.pid for child in psutil.Process(info.process.pid).children(recursive=True))
            except psutil.Error:
                continue
    pids.discard(os.getpid())
    return sum(uss_mb(pid) for pid in pids)


def fit(points: list[tuple[float, float]]) -> tuple[float, float] | None:
    """Least squares ``y = a + b x``; None when every x is the same."""
    xs = [x for x, _ in points]
    if len(set(xs)) < 2:
        return None
    mean_x, mean_y = statistics.mean(xs), statistics.mean(y for _, y in points)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / sum((x - mean_x) ** 2 for x in xs)
    return mean_y - slope * mean_x, slope


def namespaces_per_node(
    memory_gib: float, *, node_base_mb: float, host_base_mb: float, per_namespace_mb: float, per_host: int
) -> int:
    """Namespaces one worker node watches in ``HEADROOM`` of ``memory_gib``: after the node's own
    processes (raylet, one RCA worker), hosts of ``per_host`` namespaces until the memory is used."""
    free = memory_gib * 1024 * HEADROOM - node_base_mb
    host = host_base_mb + per_host * per_namespace_mb
    if free <= 0 or host <= 0:
        return 0
    hosts = free / host
    return max(0, math.floor(hosts * per_host))


# -- what the platform stored -----------------------------------------------------------------


async def _query(dsn: str, sql: str, *args: Any) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(dsn)
    try:
        return [dict(row) for row in await conn.fetch(sql, *args)]
    finally:
        await conn.close()


def query(dsn: str, sql: str, *args: Any) -> list[dict[str, Any]]:
    return asyncio.run(_query(dsn, sql, *args))


def incidents_of_pods(dsn: str) -> dict[str, str]:
    """``namespace/pod`` -> incident id, for every firing pod signal attached to an incident."""
    rows = query(
        dsn,
        "SELECT namespace, labels->>'pod' AS pod, min(incident_id) AS incident FROM signals"
        " WHERE status = 'firing' AND incident_id IS NOT NULL AND labels ? 'pod' GROUP BY 1, 2",
    )
    return {f"{r['namespace']}/{r['pod']}": str(r["incident"]) for r in rows}


def stored(dsn: str) -> dict[str, Any]:
    incidents = query(dsn, "SELECT id FROM incidents")
    approvals = query(
        dsn, "SELECT a.id, a.state, r.incident_id FROM approvals a JOIN playbook_runs r ON r.id = a.run_id"
    )
    reports = query(dsn, "SELECT DISTINCT incident_id FROM rca_reports")
    signals = query(dsn, "SELECT count(*) AS n FROM signals")
    return {
        "incidents": sorted(str(r["id"]) for r in incidents),
        "approvals": {str(r["id"]): {"state": r["state"], "incident": r["incident_id"]} for r in approvals},
        "rca_reported": sorted(str(r["incident_id"]) for r in reports),
        "signals": int(signals[0]["n"]),
    }


# -- the run ----------------------------------------------------------------------------------


@dataclass
class Facts:
    """Everything the run saw; ``--json`` prints it, the tables are made from it."""

    namespaces: int
    pods: int
    per_host: int
    before: dict[str, dict[str, Any]] = field(default_factory=dict)
    after: dict[str, dict[str, Any]] = field(default_factory=dict)
    scopes: dict[str, list[str]] = field(default_factory=dict)
    memory: dict[str, Any] = field(default_factory=dict)
    injected: dict[str, list[str]] = field(default_factory=dict)
    detected: dict[str, str] = field(default_factory=dict)
    stored_before: dict[str, Any] = field(default_factory=dict)
    stored_after: dict[str, Any] = field(default_factory=dict)
    approved: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    error: str | None = None


def host_synced(handle: Any) -> bool:
    if handle is None:
        return False
    try:
        status = ray.get(handle.status.remote(), timeout=10)
    except ray.exceptions.RayError:
        return False
    scopes = status["scopes"]
    return bool(scopes) and all(
        s["started"] and s["informers"] and all(i["synced"] for i in s["informers"]) for s in scopes.values()
    )


def scopes_of_hosts() -> dict[str, list[str]]:
    found = {}
    for index, handle in remote.watcher_hosts().items():
        try:
            found[remote.watcher_host_name(index)] = list(ray.get(handle.scopes.remote(), timeout=30))
        except ray.exceptions.RayError:
            found[remote.watcher_host_name(index)] = []
    return found


def pods_by_deployment(sandbox: BackgroundSandbox, namespace: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for pod in sandbox.objects("Pod", namespace):
        if (pod.get("status") or {}).get("phase") != "Running":
            continue
        name = pod["metadata"]["name"]
        found.setdefault(name.rsplit("-", 2)[0], []).append(name)
    return {deployment: sorted(names) for deployment, names in sorted(found.items())}


def break_one(sandbox: BackgroundSandbox, namespace: str, deployment_index: int) -> str:
    """Crash-loop the first pod of the namespace's ``deployment_index``-th deployment: one incident each
    (the rules group a deployment's pods into one)."""
    deployments = list(pods_by_deployment(sandbox, namespace).values())
    pod = deployments[deployment_index][0]
    sandbox.inject(namespace, pod, "crashloop")
    return f"{namespace}/{pod}"


def run(args: argparse.Namespace, facts: Facts, temp_dir: Path) -> None:  # noqa: PLR0915 - one story, told in order
    database_url = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    scenario = large_scenario(args.namespaces, args.pods).model_copy(update={"restart_interval_seconds": 0.5})
    with BackgroundSandbox(scenario, bookmark_interval=1.0) as sandbox:
        dsn = asyncio.run(fresh_database(database_url))
        cluster: Cluster | None = None
        try:
            settings = Settings.from_env(
                database_url=dsn,
                redis_url=redis_url,
                kubeconfig=str(sandbox.kubeconfig_path),
                data_dir=temp_dir / "data",
                redis_prefix=f"scale-out-{time.time_ns()}:",
                watch_namespaces=["bench-*"],
                exclude_namespaces=[],
                watch_namespaces_per_actor=args.per_host,
                rca_workers=args.rca_workers,
                actor_placement="spread",
            )
            started = time.monotonic()
            cluster, worker = start_cluster(temp_dir)
            head = cluster.head_node
            assert head is not None
            nodes = {head.node_id: "head", worker.node_id: "worker"}
            facts.timings["cluster_started_s"] = time.monotonic() - started
            progress("two-node cluster up")

            ray.get(remote.rule_engine(settings).health.remote(), timeout=120)
            supervisor = remote.watch_supervisor(settings)
            expected_scopes = args.namespaces + 1  # and the cluster scope (nodes)
            poll(
                lambda: sum(len(s) for s in scopes_of_hosts().values()) >= expected_scopes,
                120,
                "every namespace placed on a watcher host",
            )
            poll(lambda: all(host_synced(h) for h in remote.watcher_hosts().values()), 120, "every watcher synced")
            facts.timings["platform_started_s"] = time.monotonic() - started
            progress("platform up, every watcher synced")
            facts.before = {name: vars(p) for name, p in placement(nodes).items()}
            facts.scopes = scopes_of_hosts()

            # 1. memory, before any failure
            hosts = [
                {
                    "name": name,
                    "node": facts.before[name]["node"],
                    "scopes": len(scopes),
                    "uss_mb": uss_mb(facts.before[name]["pid"]),
                }
                for name, scopes in facts.scopes.items()
            ]
            facts.memory = {
                "head_uss_mb": node_uss_mb(head),
                "worker_uss_mb": node_uss_mb(worker),
                "raylet_uss_mb": uss_mb(worker.all_processes["raylet"][0].process.pid),
                "hosts": hosts,
                "actors_uss_mb": {n: uss_mb(p["pid"]) for n, p in facts.before.items()},
            }

            # 2. a failure in every namespace, each an incident with a pending approval
            namespaces = [f"bench-{i:03d}" for i in range(args.namespaces)]
            facts.injected["before"] = [break_one(sandbox, ns, 0) for ns in namespaces]

            def all_pending() -> bool:
                detected = incidents_of_pods(dsn)
                if not all(p in detected for p in facts.injected["before"]):
                    return False
                approvals = stored(dsn)["approvals"].values()
                waiting = {a["incident"] for a in approvals if a["state"] == "pending"}
                return all(detected[p] in waiting for p in facts.injected["before"])

            poll(all_pending, args.timeout, "an incident and a pending approval for every failure")
            facts.stored_before = stored(dsn)
            progress("an incident and a pending approval for every failure")
            # the RCA workers have started their MCP servers by now
            rca = [tree_uss_mb(p["pid"]) for n, p in facts.before.items() if is_rca_worker(n)]
            facts.memory |= {
                "rca_workers_uss_mb": rca,
                "head_uss_busy_mb": node_uss_mb(head),
                "worker_uss_busy_mb": node_uss_mb(worker),
            }
            facts.timings["first_failures_handled_s"] = time.monotonic() - started

            # 3. failures in the worker's namespaces, and at once the worker node lost
            on_worker = sorted(
                scope
                for name, scopes in facts.scopes.items()
                if facts.before[name]["node"] == "worker"
                for scope in scopes
                if scope in namespaces
            )
            facts.injected["during"] = [break_one(sandbox, ns, 1) for ns in on_worker]
            moved = sorted(name for name, p in facts.before.items() if p["node"] == "worker")
            lost_at = time.monotonic()
            cluster.remove_node(worker)
            facts.timings["node_removed_s"] = time.monotonic() - lost_at
            progress(f"worker node removed; its actors: {', '.join(moved)}")

            # 4. the moved actors back on the head, watching again; nothing lost
            def moved_alive() -> dict[str, Placed] | None:
                now = placement(nodes)
                ok = all(n in now and now[n].node == "head" and now[n].state == "ALIVE" for n in moved)
                return now if ok else None

            poll(moved_alive, 120, "the actors of the lost node alive on the head")
            facts.timings["moved_actors_alive_s"] = time.monotonic() - lost_at
            moved_hosts = [h for h in moved if is_watcher_host(h)]
            poll(
                lambda: all(host_synced(remote.existing(h)) for h in moved_hosts),
                120,
                "the moved watcher hosts synced again",
            )
            facts.timings["moved_watchers_synced_s"] = time.monotonic() - lost_at
            progress("moved actors alive on the head, their watchers synced")
            facts.injected["after"] = [break_one(sandbox, ns, 2) for ns in on_worker]
            every = [p for phase in ("before", "during", "after") for p in facts.injected[phase]]
            poll(
                lambda: all(p in incidents_of_pods(dsn) for p in every),
                args.timeout,
                "an incident for every failure, before, during and after the loss",
            )
            facts.timings["all_failures_detected_s"] = time.monotonic() - lost_at
            facts.detected = {p: i for p, i in incidents_of_pods(dsn).items() if p in every}
            progress("every failure is an incident")

            # an approval made before the loss, approved after it: the step runs
            first_pod = facts.injected["before"][0]
            incident = facts.detected[first_pod]
            approval_id = next(a for a, v in facts.stored_before["approvals"].items() if v["incident"] == incident)
            decided = ray.get(
                remote.approvals(settings).decide.remote(approval_id, who="api:ops", decision="approve", channel="api"),
                timeout=120,
            )
            namespace, pod = first_pod.split("/")
            poll(
                lambda: all(p["metadata"]["name"] != pod for p in sandbox.objects("Pod", namespace)),
                60,
                "the approved pod deletion",
            )
            facts.approved = {
                "id": approval_id,
                "pod": first_pod,
                "decided": json.loads(json.dumps(decided, default=str)),
            }

            def all_reported() -> dict[str, Any] | None:
                now = stored(dsn)
                return now if set(facts.detected.values()) <= set(now["rca_reported"]) else None

            progress("approval made before the loss approved, the pod deleted")
            reported = poll(all_reported, args.timeout, "an RCA report for every incident")
            progress("an RCA report for every incident")
            facts.timings["all_rca_reported_s"] = time.monotonic() - lost_at
            facts.stored_after = dict(reported or {})
            facts.after = {name: vars(p) for name, p in placement(nodes).items()}
            facts.memory["head_uss_after_mb"] = node_uss_mb(head)
            del supervisor
        finally:
            if cluster is not None:
                for name in remote.actor_names():
                    remote.kill(name, restart=False)
                ray.shutdown()
                cluster.shutdown()  # type: ignore[no-untyped-call]
            asyncio.run(drop_database(database_url, dsn))


def capacity(facts: Facts) -> dict[str, Any]:
    """Per-namespace memory from the watcher hosts (USS against scopes hosted), and what a node holds."""
    hosts = facts.memory["hosts"]
    line = fit([(float(h["scopes"]), float(h["uss_mb"])) for h in hosts])
    if line is None:
        host_base, per_namespace = statistics.mean(h["uss_mb"] for h in hosts), 0.0
    else:
        host_base, per_namespace = line
    rca = statistics.mean(facts.memory["rca_workers_uss_mb"] or [0.0])
    node_base = facts.memory["raylet_uss_mb"] + rca
    return {
        "host_base_mb": host_base,
        "per_namespace_mb": per_namespace,
        "node_base_mb": node_base,
        "per_node": {
            f"{gib} GiB": namespaces_per_node(
                gib,
                node_base_mb=node_base,
                host_base_mb=host_base,
                per_namespace_mb=per_namespace,
                per_host=facts.per_host,
            )
            for gib in NODE_MEMORY_GIB
        },
    }


def print_tables(facts: Facts) -> None:
    t = facts.timings
    print(
        f"two-node Ray (head + 1 worker, 1 CPU each), {facts.namespaces} namespaces x {facts.pods} pods, "
        f"{facts.per_host} namespaces per watcher host; platform up in {t['platform_started_s']:.1f}s"
    )
    print("\nactor                      node before   node after   restarts  USS MB")
    for name in sorted(facts.before):
        after = facts.after.get(name, {})
        print(
            f"{name:<26} {facts.before[name]['node']:<13} {after.get('node', '-'):<12} "
            f"{after.get('restarts', '-')!s:<9} {facts.memory['actors_uss_mb'].get(name, 0.0):6.0f}"
        )
    print("\nwatcher host   node     scopes  USS MB")
    for host in facts.memory["hosts"]:
        print(f"{host['name']:<14} {host['node']:<8} {host['scopes']:<7} {host['uss_mb']:6.0f}")
    m = facts.memory
    print(
        f"\nnode USS (raylet + its workers + their children; head also GCS): head {m['head_uss_mb']:.0f} MB, "
        f"worker {m['worker_uss_mb']:.0f} MB; after the first failures: head {m['head_uss_busy_mb']:.0f} MB, worker "
        f"{m['worker_uss_busy_mb']:.0f} MB; head after taking the worker's actors {m['head_uss_after_mb']:.0f} MB"
    )
    cap = capacity(facts)
    print(
        f"watcher host = {cap['host_base_mb']:.0f} MB + {cap['per_namespace_mb']:.1f} MB per namespace "
        f"({facts.pods} pods each); worker node base (raylet + 1 RCA worker and its MCP server) "
        f"{cap['node_base_mb']:.0f} MB"
    )
    print(f"namespaces one worker node watches in {HEADROOM:.0%} of its memory:")
    for size, count in cap["per_node"].items():
        print(f"  {size:>7}: {count}")
    before, after = facts.stored_before, facts.stored_after
    lost_incidents = sorted(set(before["incidents"]) - set(after["incidents"]))
    lost_approvals = sorted(set(before["approvals"]) - set(after["approvals"]))
    print("\nnode loss                                   result")
    print(f"{'worker node removed (raylet + workers)':<43} {t['node_removed_s']:.1f}s to kill")
    print(f"{'its actors alive again on the head':<43} {t['moved_actors_alive_s']:.1f}s after the loss")
    print(f"{'their watchers synced again':<43} {t['moved_watchers_synced_s']:.1f}s after the loss")
    n_before, n_during, n_after = (len(facts.injected[k]) for k in ("before", "during", "after"))
    print(
        f"{'failures -> incidents (before/during/after)':<43} {n_before}/{n_during}/{n_after} injected, "
        f"{len(facts.detected)} detected, all {t['all_failures_detected_s']:.1f}s after the loss"
    )
    print(
        f"{'incidents, approvals stored before':<43} {len(before['incidents'])}, {len(before['approvals'])}; "
        f"after: {len(after['incidents'])}, {len(after['approvals'])}; lost {len(lost_incidents)}, "
        f"{len(lost_approvals)}"
    )
    print(f"{'approval made before, approved after':<43} {facts.approved['id']} -> pod {facts.approved['pod']} deleted")
    print(f"{'RCA report for every incident':<43} {t['all_rca_reported_s']:.1f}s after the loss")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--namespaces", type=int, default=20)
    parser.add_argument("--pods", type=int, default=50, help="pods per namespace (3 deployments at least)")
    parser.add_argument("--per-host", type=int, default=10, help="namespaces per watcher host actor")
    parser.add_argument("--rca-workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=180.0, help="deadline of each wait for the platform")
    parser.add_argument("--temp-dir", default=None, help="Ray's temp dir (default: a new one under /tmp)")
    parser.add_argument("--json", action="store_true", help="print the facts as one JSON line")
    args = parser.parse_args()
    if args.pods < 21:
        parser.error("--pods must be at least 21 (three deployments of up to 10 pods)")
    temp_dir = Path(args.temp_dir or tempfile.mkdtemp(prefix="aiops-so-", dir="/tmp"))
    facts = Facts(namespaces=args.namespaces, pods=args.pods, per_host=args.per_host)
    try:
        run(args, facts, temp_dir)
    except (Timeout, ray.exceptions.RayError, StopIteration, KeyError) as e:
        facts.error = f"{type(e).__name__}: {e}"
    finally:
        kill_strays(temp_dir)
        if not args.temp_dir:
            shutil.rmtree(temp_dir, ignore_errors=True)
    if args.json:
        print(json.dumps(vars(facts), default=str))
    elif facts.error:
        print(f"scale-out run failed: {facts.error}", file=sys.stderr)
    else:
        print_tables(facts)
    if facts.error:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
