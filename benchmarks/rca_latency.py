"""RCA latency: evidence gathering + deterministic diagnosis per incident, against the sandbox.

Runs the ``RcaWorker`` class (the code inside the ``aiops-rca-<i>`` actors) over the demo
scenario's failing objects repeatedly, LLM off; evidence comes through the worker's
read-only MCP client (``aiops mcp-server --read-only`` over stdio), as in production,
whose one-time start is reported on its own line, and prints p50/p95 per incident plus the
eval-suite accuracy (the same scenarios ``tests/unit/test_rca_eval.py`` asserts on).

    .venv/bin/python -m benchmarks.rca_latency --rounds 20
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

from actors.rca import RcaWorker
from adapters.sandbox import BackgroundSandbox, load_scenario
from benchmarks.detection_latency import drop_database, fresh_database, percentile
from config.settings import Settings


async def run(settings: Settings, targets: list[dict[str, object]], rounds: int) -> tuple[float, list[float]]:
    worker = RcaWorker(settings)
    durations: list[float] = []
    try:
        started = time.perf_counter()
        await worker.health()  # starts the worker's MCP server subprocess: once per worker, not per incident
        startup = time.perf_counter() - started
        for _ in range(rounds):
            for incident in targets:
                started = time.perf_counter()
                await worker.analyze(incident)
                durations.append(time.perf_counter() - started)
    finally:
        await worker.close()
    return startup, durations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    server = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    dsn = asyncio.run(fresh_database(server))
    with BackgroundSandbox(load_scenario("demo"), bookmark_interval=1.0) as sandbox:
        settings = Settings.from_env(
            database_url=dsn,
            kubeconfig=str(sandbox.kubeconfig_path),
            data_dir=Path(tempfile.mkdtemp(prefix="aiops-rca-")),
        )
        time.sleep(3)  # let the simulated kubelet produce restarts, logs and events
        pods = {
            p["metadata"]["name"]: p for ns in ("production", "staging", "batch") for p in sandbox.objects("Pod", ns)
        }
        targets: list[dict[str, object]] = []
        for name, pod in pods.items():
            if name.startswith(("checkout-", "search-", "nightly-report")):
                ns = pod["metadata"]["namespace"]
                targets.append(
                    {
                        "id": f"bench-{name}",
                        "reason": "CrashLoopBackOff",
                        "source": "k8s",
                        "object": {"kind": "Pod", "name": name, "namespace": ns},
                        "labels": {"namespace": ns, "pod": name},
                    }
                )
        startup, durations = asyncio.run(run(settings, targets, args.rounds))
    asyncio.run(drop_database(server, dsn))
    print(f"incidents analysed: {len(durations)} ({len(targets)} objects x {args.rounds} rounds), LLM off")
    print(f"worker start (MCP server subprocess + first health call): {startup * 1000:.0f} ms, once per worker")
    print(
        f"evidence + deterministic diagnosis: p50 {percentile(durations, 50) * 1000:.0f} ms, "
        f"p95 {percentile(durations, 95) * 1000:.0f} ms, max {max(durations) * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
