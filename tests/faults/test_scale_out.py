"""The platform on a two-node Ray cluster loses its worker node and loses nothing else.

Runs ``benchmarks/scale_out.py`` in a subprocess: its own Ray (``ray.cluster_utils.Cluster``,
a head and one worker node, 1 CPU each, no dashboard, 80 MiB object store), apart from this
session's shared Ray, with the sandbox cluster, real PostgreSQL and Redis and the platform's
actors as production starts them (``actors/remote.py``, placement ``spread``). The script
prints what it saw as one JSON line; this test judges it:

- watcher hosts and RCA workers were on both nodes before the loss;
- every actor that lived on the worker node is alive on the head afterwards (restarted by Ray);
- failures injected before, during (right before the node goes) and after the loss, in the
  namespaces watched on the lost node, each became an incident;
- every incident and approval stored before the loss is still stored, and an approval made
  before the loss is approved after it: the step runs (the pod is deleted);
- every incident got its RCA report.

The subprocess's Ray lives under its own temp dir; whatever of it is left after the run (also
after a timeout) is killed by pid.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks.scale_out import kill_strays
from tests.faults.outcomes import record

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def ray_temp_dir() -> Iterator[Path]:
    # Short: Ray's unix socket paths live under it (at most 107 bytes).
    folder = Path(tempfile.mkdtemp(prefix="aiops-so-", dir="/tmp"))
    yield folder
    kill_strays(folder)  # the script shuts its Ray down itself; this is for a run that was killed
    shutil.rmtree(folder, ignore_errors=True)


def scale_out(database_url: str, redis_url: str, temp_dir: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env |= {"DATABASE_URL": database_url, "REDIS_URL": redis_url, "RAY_USAGE_STATS_ENABLED": "0"}
    argv = [sys.executable, "-m", "benchmarks.scale_out", "--json", "--temp-dir", str(temp_dir)]
    # 3 namespaces + the cluster scope, 2 per host: two watcher hosts, one per node.
    argv += ["--namespaces", "3", "--pods", "21", "--per-host", "2", "--timeout", "120"]
    try:
        done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=420, check=False)
    except subprocess.TimeoutExpired as e:
        kill_strays(temp_dir)
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else str(e.stderr)
        raise AssertionError(f"the scale-out run did not finish in 420 s: {err[-3000:]}") from e
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no facts printed (rc {done.returncode}): {done.stderr[-3000:]}"
    facts: dict[str, Any] = json.loads(lines[-1])
    assert facts["error"] is None, f"{facts['error']}\n{done.stderr[-3000:]}"
    return facts


def test_losing_a_node_moves_its_watchers_and_rca_workers_and_loses_no_incident_or_approval(
    server_database_url: str, redis_url: str, ray_temp_dir: Path
) -> None:
    # The script makes (and drops) a database of its own on this server.
    facts = scale_out(server_database_url, redis_url, ray_temp_dir)
    before, after = facts["before"], facts["after"]

    for role, prefix in (("watcher hosts", "aiops-watchers-"), ("RCA workers", "aiops-rca-")):
        nodes = {p["node"] for name, p in before.items() if name.startswith(prefix)}
        assert nodes == {"head", "worker"}, f"{role} were not spread over both nodes: {before}"

    moved = sorted(name for name, p in before.items() if p["node"] == "worker")
    for name in moved:
        assert after[name]["node"] == "head" and after[name]["state"] == "ALIVE", (name, after.get(name))
        assert after[name]["restarts"] >= 1, (name, after[name])

    injected = facts["injected"]
    assert injected["during"] and injected["after"], "no namespace was watched on the lost node"
    every = injected["before"] + injected["during"] + injected["after"]
    assert sorted(facts["detected"]) == sorted(every), "a failure did not become an incident"

    stored_before, stored_after = facts["stored_before"], facts["stored_after"]
    assert set(stored_before["incidents"]) <= set(stored_after["incidents"])
    assert set(stored_before["approvals"]) <= set(stored_after["approvals"])
    assert len(stored_before["approvals"]) >= len(injected["before"])
    approved = facts["approved"]
    assert stored_after["approvals"][approved["id"]]["state"] == "approved", approved
    assert set(facts["detected"].values()) <= set(stored_after["rca_reported"])

    t = facts["timings"]
    record(
        "Ray worker node lost (2-node cluster)",
        f"{len(moved)} actors on it ({', '.join(moved)}); {len(every)} crash loops before/during/after "
        f"(cluster + platform up in {t['platform_started_s']:.0f}s)",
        f"all alive on the head {t['moved_actors_alive_s']:.1f}s after, watching {t['moved_watchers_synced_s']:.1f}s "
        f"after; {len(facts['detected'])} of {len(every)} became incidents; incidents/approvals "
        f"{len(stored_before['incidents'])}/{len(stored_before['approvals'])} before, all kept; "
        "one made before approved after",
    )
