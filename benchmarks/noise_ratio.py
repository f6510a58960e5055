"""Noise ratio: signals in / incidents out for the sandbox scenarios.

Runs the watcher and rule-engine classes in-process (no Ray) against the sandbox for
``--seconds``, with the demo scenario's failures (OOM crash loop, image pull error, failing
job, node NotReady) plus optional random crash loops, then counts stored signals and incidents.

    .venv/bin/python -m benchmarks.noise_ratio --seconds 40
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from actors.rule_engine import RuleEngine
from actors.watchers import CLUSTER_SCOPE, Watcher
from adapters.sandbox import BackgroundSandbox, load_scenario
from benchmarks.detection_latency import drop_database, fresh_database
from config.settings import Settings


class Handle:
    def __init__(self, engine: RuleEngine) -> None:
        self.ingest = self
        self._engine = engine

    def remote(self, batch: list[dict[str, Any]]) -> Any:
        return self._engine.ingest(batch)


async def run(settings: Settings, seconds: float, scopes: list[str]) -> tuple[int, int, int]:
    engine = RuleEngine(settings)
    watchers = [Watcher(settings, scope, Handle(engine)) for scope in scopes]
    for watcher in watchers:
        await watcher.start()
    await asyncio.sleep(seconds)
    for watcher in watchers:
        await watcher.stop()
    stores = await engine._ready()
    pool = stores.postgres.pool
    signals = int(await pool.fetchval("SELECT count(*) FROM signals"))
    incidents = int(await pool.fetchval("SELECT count(*) FROM incidents"))
    active = int(await pool.fetchval("SELECT count(*) FROM incidents WHERE status <> 'resolved'"))
    await engine.close()
    return signals, incidents, active


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=40.0)
    args = parser.parse_args()
    server = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    dsn = asyncio.run(fresh_database(server))
    scenario = load_scenario("demo").model_copy(update={"restart_interval_seconds": 0.5})
    try:
        with BackgroundSandbox(scenario, bookmark_interval=1.0) as sandbox:
            settings = Settings.from_env(
                database_url=dsn,
                redis_url=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
                redis_prefix=f"noise-{uuid.uuid4().hex[:6]}:",
                kubeconfig=str(sandbox.kubeconfig_path),
                data_dir=Path(tempfile.mkdtemp()),
            )
            started = time.perf_counter()
            signals, incidents, active = asyncio.run(
                run(settings, args.seconds, ["production", "staging", "batch", CLUSTER_SCOPE])
            )
    finally:
        asyncio.run(drop_database(server, dsn))
    print(
        f"demo scenario for {time.perf_counter() - started:.0f}s: {signals} signals stored -> {incidents} incidents "
        f"({active} open); noise ratio {signals / max(1, incidents):.1f} signals per incident"
    )


if __name__ == "__main__":
    main()
