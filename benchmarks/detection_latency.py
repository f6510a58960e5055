"""Detection latency: object change in the emulator -> signal row in PostgreSQL.

Runs the production path: a local Ray, the ``aiops-rules`` actor, the ``aiops-watchers``
supervisor and ``aiops-watchers-<i>`` host actors of ``--per-actor`` namespaces each, all watching the sandbox
cluster over HTTP. Failures are injected into random running pods at random times; the
latency of each is the first stored signal for that pod minus the injection time.

    .venv/bin/python -m benchmarks.detection_latency --namespaces 10 --pods 50 --failures 50

Prints p50/p95/p99 and the unique memory (USS) of the watcher actors, per actor and per
watched namespace.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

import asyncpg
import psutil
import ray

from actors import remote
from adapters.sandbox import BackgroundSandbox
from adapters.sandbox.scenario import large_scenario
from config.settings import Settings


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


async def first_signal(dsn: str, namespace: str, pod: str, since: float, deadline: float) -> float | None:
    conn = await asyncpg.connect(dsn)
    try:
        while time.time() < deadline:
            found = await conn.fetchval(
                "SELECT extract(epoch FROM min(received_at)) FROM signals WHERE namespace = $1"
                " AND labels->>'pod' = $2 AND status = 'firing' AND received_at >= to_timestamp($3)",
                namespace,
                pod,
                since,
            )
            if found is not None:
                return float(found)
            await asyncio.sleep(0.01)
    finally:
        await conn.close()
    return None


def failing_since(sandbox: BackgroundSandbox, namespace: str, pod: str, deadline: float) -> float | None:
    """Wall time at which the emulator's pod object first shows the failure (a terminated or waiting
    container, or restarts), polled in-process every 5 ms: the "object change" the latency starts at."""
    while time.time() < deadline:
        for obj in sandbox.objects("Pod", namespace):
            if obj["metadata"]["name"] != pod:
                continue
            for status in (obj.get("status") or {}).get("containerStatuses") or []:
                state = status.get("state") or {}
                if "terminated" in state or "waiting" in state or status.get("restartCount", 0) > 0:
                    return time.time()
        time.sleep(0.005)
    return None


def watcher_uss_mb() -> list[float]:
    sizes = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = " ".join(proc.info.get("cmdline") or [])
        if "ray::WatcherHost" in cmd:
            try:
                sizes.append(proc.memory_full_info().uss / 2**20)
            except (psutil.Error, OSError):
                continue
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--namespaces", type=int, default=10)
    parser.add_argument("--pods", type=int, default=50, help="pods per namespace")
    parser.add_argument("--failures", type=int, default=50)
    parser.add_argument("--spread", type=float, default=20.0, help="seconds over which failures are injected")
    parser.add_argument("--resync", type=float, default=None, help="watcher resync period (seconds), default off")
    parser.add_argument(
        "--per-actor", type=int, default=None, help="namespaces per watcher actor (default: the setting's, 10)"
    )
    args = parser.parse_args()

    database_url = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    scenario = large_scenario(args.namespaces, args.pods)
    with BackgroundSandbox(scenario, bookmark_interval=5.0) as sandbox:
        data = Path(tempfile.mkdtemp(prefix="aiops-bench-"))
        dsn = asyncio.run(fresh_database(database_url))
        settings = Settings.from_env(
            database_url=dsn,
            redis_url=redis_url,
            kubeconfig=str(sandbox.kubeconfig_path),
            data_dir=data,
            redis_prefix=f"bench-{time.time_ns()}:",
            watch_namespaces=["bench-*"],
            exclude_namespaces=[],
            watch_resync_seconds=args.resync,
            **({"watch_namespaces_per_actor": args.per_actor} if args.per_actor else {}),
        )
        ray.init(address="local", num_cpus=2, include_dashboard=False, namespace=remote.NAMESPACE, log_to_driver=False)
        try:
            started = time.time()
            ray.get(remote.rule_engine(settings).health.remote())
            supervisor = remote.watch_supervisor(settings)
            expected = args.namespaces + 1
            while len(ray.get(supervisor.status.remote())["watching"]) < expected:
                time.sleep(0.2)
            # wait until every hosted watcher has listed
            for handle in remote.watcher_hosts().values():
                while not all(
                    all(i["synced"] for i in scope["informers"]) and scope["informers"]
                    for scope in ray.get(handle.status.remote())["scopes"].values()
                ):
                    time.sleep(0.1)
            hosts = len(remote.watcher_hosts())
            print(
                f"{expected} watchers synced in {time.time() - started:.1f}s on {hosts} watcher actors "
                f"({args.namespaces} namespaces x {args.pods} pods, {settings.watch_namespaces_per_actor} per actor)"
            )
            rng = random.Random(7)  # noqa: S311
            latencies: list[float] = []
            sim_delays: list[float] = []
            missed = 0
            for _ in range(args.failures):
                time.sleep(rng.uniform(0, 2 * args.spread / max(1, args.failures)))
                namespace, pod, injected = sandbox.inject_random("crashloop")
                changed = failing_since(sandbox, namespace, pod, injected + 15)
                seen = asyncio.run(first_signal(dsn, namespace, pod, injected, injected + 15))
                if seen is None or changed is None:
                    missed += 1
                else:
                    latencies.append(seen - changed)
                    sim_delays.append(changed - injected)
            uss = watcher_uss_mb()
            print(f"failures injected: {args.failures}, detected: {len(latencies)}, missed: {missed}")
            if sim_delays:
                print(
                    f"the simulated kubelet showed each failure {percentile(sim_delays, 50) * 1000:.0f} ms (p50) after"
                    " the injection; the latency below counts from that object change"
                )
            if latencies:
                print(
                    f"detection latency p50 {percentile(latencies, 50) * 1000:.0f} ms, "
                    f"p95 {percentile(latencies, 95) * 1000:.0f} ms, p99 {percentile(latencies, 99) * 1000:.0f} ms, "
                    f"max {max(latencies) * 1000:.0f} ms"
                )
            if uss:
                print(
                    f"watcher actor USS: mean {statistics.mean(uss):.0f} MB, max {max(uss):.0f} MB "
                    f"over {len(uss)} actors; {sum(uss) / expected:.1f} MB per watched namespace "
                    f"({expected} with cluster), resync {'off' if args.resync is None else f'{args.resync}s'}"
                )
            del supervisor
        finally:
            for name in remote.actor_names():
                remote.kill(name, restart=False)
            ray.shutdown()
            asyncio.run(drop_database(database_url, dsn))


async def fresh_database(server_url: str) -> str:
    name = f"aiops_bench_{time.time_ns()}"
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base, _, _ = server_url.rpartition("/")
    return f"{base}/{name}"


async def drop_database(server_url: str, dsn: str) -> None:
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{dsn.rpartition("/")[2]}" WITH (FORCE)')
    finally:
        await conn.close()


if __name__ == "__main__":
    main()
