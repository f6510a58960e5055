"""``aiops demo`` as a newcomer runs it, unattended: the console script, no env, its own everything.

The demo is started as a subprocess with a fresh data directory and without
``DATABASE_URL``/``REDIS_URL``/``RAY_ADDRESS``, so it starts embedded PostgreSQL and Redis,
the sandbox cluster and a Ray of its own (own temp dir, free ports: it never touches the
test session's Ray). The test plays the operator at the console: it reads stdout line by
line with a deadline and answers approval prompts on stdin (medium steps approved, high
ones rejected), until the OOM crash loop's incident resolves after its approved memory
raise; then it closes stdin and the demo must stop by itself, exit 0 and leave no process
behind.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import pytest

from deployments.demo import ray_temp_dir
from tests.helpers import wait_until

pytestmark = pytest.mark.e2e
AIOPS = str(Path(sys.executable).parent / "aiops")
STARTUP_DEADLINE = 360.0
LOOP_DEADLINE = 300.0
_PROMPT = re.compile(r"^approve> waiting for your decision on ([a-z0-9]+)$")
_REQUEST = re.compile(r"Approval needed \((\w+) risk\): step (\S+)")
_FIELD = re.compile(r"^\s+(Incident|Action): (.+)$")
_RESOLVED = re.compile(r"✅ Resolved")


@dataclass
class Demo:
    proc: subprocess.Popen[str]
    data_dir: Path
    stderr_path: Path
    lines: queue.Queue[str | None] = field(default_factory=queue.Queue)
    seen: list[str] = field(default_factory=list)

    def story(self) -> str:
        """The end of stdout and stderr, for failure messages."""
        errors = self.stderr_path.read_text(errors="replace").splitlines() if self.stderr_path.exists() else []
        return "\n".join(self.seen[-80:]) + "\n--- stderr ---\n" + "\n".join(errors[-40:])

    def next_line(self, deadline: float) -> str | None:
        """The next stdout line, or None at end of output; fails at the deadline."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError("deadline passed; demo output so far:\n" + self.story())
        try:
            line = self.lines.get(timeout=remaining)
        except queue.Empty:
            raise AssertionError("no output before the deadline:\n" + self.story()) from None
        if line is not None:
            self.seen.append(line)
        return line

    def send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()


def ours(data_dir: Path) -> list[psutil.Process]:
    """Processes that belong to this demo: by its data dir or its Ray temp dir on the command line."""
    marks = (str(data_dir), ray_temp_dir(data_dir))
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        with contextlib.suppress(psutil.Error):
            cmdline = " ".join(proc.info["cmdline"] or [])
            if proc.info["status"] != psutil.STATUS_ZOMBIE and any(m in cmdline for m in marks):
                found.append(proc)
    return found


def alive(pids: set[int]) -> list[int]:
    left = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                left.append(pid)
    return left


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    data_dir = tmp_path / "data"
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "RAY_ADDRESS", "KUBECONFIG", "ANTHROPIC_API_KEY", "AIOPS_DATA_DIR")
    }
    env["PYTHONUNBUFFERED"] = "1"
    stderr_path = tmp_path / "demo.stderr"
    stderr = stderr_path.open("w")
    proc = subprocess.Popen(  # noqa: S603 - our own console script
        [
            AIOPS,
            "demo",
            "--data-dir",
            str(data_dir),
            "--restart-interval",
            "0.3",
            "--node-outage-after",
            "3",
            "--verify-window",
            "2",
            "--poll",
            "0.5",
            "--settle",
            "3",
            "--timeout",
            str(LOOP_DEADLINE + 60),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        env=env,
        start_new_session=True,
    )
    running = Demo(proc=proc, data_dir=data_dir, stderr_path=stderr_path)

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            running.lines.put(line.rstrip("\n"))
        running.lines.put(None)

    threading.Thread(target=pump, name="demo-stdout", daemon=True).start()
    try:
        yield running
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
        (tmp_path / "demo.stdout").write_text("\n".join(running.seen) + "\n")
        for leftover in ours(data_dir):
            with contextlib.suppress(psutil.Error):
                leftover.kill()
        stderr.close()


def test_the_demo_runs_unattended_from_start_to_resolution_and_stops_everything_it_started(demo: Demo) -> None:
    deadline = time.monotonic() + STARTUP_DEADLINE
    while (line := demo.next_line(deadline)) is not None and line != "ray-aiops demo is running":
        pass
    assert line is not None, demo.story()
    header = []
    while (line := demo.next_line(deadline)) is not None and line.strip():
        header.append(line)
    dashboard = next(h.split()[-1] for h in header if h.strip().startswith("Ray dashboard:"))
    assert dashboard.startswith("http://127.0.0.1:"), header
    assert httpx.get(dashboard + "/api/version", timeout=30).status_code in (200, 401, 403)
    failing = next(h for h in header if h.strip().startswith("failing:"))
    for what in ("production/checkout (oom)", "staging/search (image_pull)", "(job_fail)", "NotReady"):
        assert what in failing, failing
    progress = [s for s in demo.seen if s.startswith("• ") or s.startswith("  ✓ ")]
    assert any("PostgreSQL and Redis" in p for p in progress) and any("local Ray" in p for p in progress), progress

    # Everything this demo started, recorded while it runs: its own Ray, embedded stores, children.
    started = {p.pid for p in ours(demo.data_dir)}
    started |= {c.pid for c in psutil.Process(demo.proc.pid).children(recursive=True)}
    started.add(int((demo.data_dir / "redis" / "redis.pid").read_text().split()[0]))
    started.add(int((demo.data_dir / "postgres" / "postmaster.pid").read_text().split()[0]))
    assert any("raylet" in " ".join(psutil.Process(p).cmdline()) for p in alive(started))

    demo.send("/help")
    demo.send("approve !!")
    demo.send("/approvals")

    deadline = time.monotonic() + LOOP_DEADLINE
    request: dict[str, str] = {}
    oom_incident: str | None = None
    approved_oom = False
    decided: set[str] = set()
    while True:
        line = demo.next_line(deadline)
        assert line is not None, "the demo ended early:\n" + demo.story()
        if match := _REQUEST.search(line):
            request = {"risk": match.group(1), "step": match.group(2)}
        elif (match := _FIELD.match(line)) and request:
            request[match.group(1)] = match.group(2)
        elif (match := _PROMPT.match(line)) and match.group(1) not in decided:
            approval = match.group(1)
            decided.add(approval)
            if request.get("risk") == "high":
                demo.send(f"reject {approval} not in this test")
            else:
                demo.send(f"approve {approval}")
            if request.get("step") == "raise-memory-limit":
                assert "name=checkout" in request.get("Action", ""), request
                oom_incident = request.get("Incident")
                approved_oom = True
            request = {}
        elif _RESOLVED.search(line) and oom_incident is not None:
            following = demo.next_line(deadline)
            if following is not None and following.strip() == f"Incident: {oom_incident}":
                break

    assert approved_oom and oom_incident
    output = "\n".join(demo.seen)
    assert "/help [command]" in output  # the help text answered /help
    assert "is not an approval id" in output  # a bad decision got its usage, nothing ran
    assert "pending approval(s)" in output
    assert re.search(r"Approved: step raise-memory-limit", output), output[-3000:]
    assert "🔎 Root cause of" in output

    # Input ends: the demo finishes what is running, then stops everything by itself.
    assert demo.proc.stdin is not None
    demo.proc.stdin.close()
    deadline = time.monotonic() + 180
    while demo.next_line(deadline) is not None:
        pass
    assert demo.proc.wait(timeout=60) == 0, demo.story()
    tail = "\n".join(demo.seen[-10:])
    assert "stopping: input ended and nothing is left to do" in tail and "stopped:" in tail, tail
    assert "embedded postgres" in tail and "embedded redis" in tail and "Ray" in tail, tail

    def nothing_left() -> bool:
        return not alive(started) and not ours(demo.data_dir)

    with contextlib.suppress(AssertionError):
        wait_until(nothing_left, timeout=30, interval=0.2, message="every process of the demo gone")
    assert nothing_left(), (alive(started), [p.cmdline() for p in ours(demo.data_dir)], demo.story())
