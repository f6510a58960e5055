"""Sustained mixed load: alert storm + watch churn + chat commands + approvals, for minutes.

Starts the platform as ``aiops demo`` does (the launcher: a local Ray, the rule engine, the
watchers on the sandbox cluster, the coordinator, the alerts/chat/ops apps over HTTP) against
a fresh PostgreSQL database, with Slack pointed at the loopback Slack Web API server, and
then, all at once for ``--seconds``:

- alerts at a steady ``--alert-rate`` through the Alertmanager webhook (batches of ``--batch``),
  each one new, or ``--distinct N`` alerts resent in turn as Alertmanager repeats firing ones;
- watch churn: every ``--churn-every`` seconds a running pod of the sandbox starts
  crash-looping, and recovers ``--recover-after`` seconds later (unless an approved restart
  deleted it first);
- chat commands (``status``, ``incidents``) as signed Slack events at ``--chat-rate``;
- approvals: a crashloop playbook run on an incident of a running ``payments`` pod, its
  pending approval decided through ``POST /api/approvals/{id}`` (approve or reject, turn about).

    .venv/bin/python -m benchmarks.mixed_load --seconds 180

Prints throughput, p50/p99 latency and errors per stream, alerts sent vs. stored (loss), the
churned pods the watchers reported, and the unique memory (USS) of every actor process of
this Ray at the start, middle and end of the load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil
import ray

from actors import remote
from adapters.sandbox import BackgroundSandbox, load_scenario
from adapters.sandbox.store import ApiError
from benchmarks.alert_storm import payload
from benchmarks.approval_roundtrip import incident, lift_budgets
from benchmarks.detection_latency import drop_database, fresh_database, percentile
from config.settings import Settings
from tests.servers.slack_server import message_event, signed_headers

TOKEN = "mixed-load-token-5be1"
SLACK_SECRET = "mixed-load-slack-signing-secret-77"


@dataclass(frozen=True)
class Target:
    """A running platform to load: its URL, credentials, stores and sandbox."""

    base_url: str
    settings: Settings
    dsn: str
    sandbox: BackgroundSandbox
    am_token: str
    ops_token: str
    slack_secret: str
    slack_channel: str = "C0OPS"
    slack_user: str = "UOPS"


@dataclass
class Stream:
    name: str
    unit: str
    done: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    last_error: str = ""

    def failed(self, what: str) -> None:
        self.errors += 1
        self.last_error = what[:200]

    def line(self, seconds: float) -> str:
        lat = (
            f"p50 {percentile(self.latencies, 50) * 1000:.0f} ms, p99 {percentile(self.latencies, 99) * 1000:.0f} ms"
            if self.latencies
            else "no latencies"
        )
        error = f" (last: {self.last_error})" if self.errors else ""
        rate = f"{self.done / seconds:.1f}/s"
        return f"{self.name:<10} {self.done:>6} {self.unit} ({rate}), {lat}, errors {self.errors}{error}"


@dataclass
class Figures:
    seconds: float
    streams: dict[str, Stream]
    alerts_sent: int  # distinct alerts in webhooks answered 200
    alerts_stored: int
    signal_rows: int
    churned: int
    churn_gone: int  # broken pods deleted (by an approved restart) before they were to recover
    churn_missed: list[str] | None  # broken pods no k8s signal was stored for; None: watchers off
    memory: dict[int, tuple[str, list[float]]]  # pid -> (name, USS MB at start, middle, end)
    load: str

    def lines(self) -> list[str]:
        out = [f"{self.seconds:.0f} s of mixed load, load average at the end {self.load}"]
        out += [s.line(self.seconds) for s in self.streams.values()]
        out.append(
            f"alerts accepted: {self.alerts_sent}, stored: {self.alerts_stored} "
            f"(lost: {self.alerts_sent - self.alerts_stored}), signal rows: {self.signal_rows} "
            f"(duplicates: {self.signal_rows - self.alerts_stored})"
        )
        if self.churn_missed is None:
            detected = "watchers off"
        else:
            missed = f" (not: {', '.join(self.churn_missed)})" if self.churn_missed else ""
            detected = f"{self.churned - len(self.churn_missed)} reported by the watchers{missed}"
        out.append(
            f"watch churn: {self.churned} pods broken, {self.churned - self.churn_gone} recovered and "
            f"{self.churn_gone} deleted by an approved restart first; {detected}"
        )
        out.append("actor process USS (MB) start / middle / end, growth over the run and over its second half:")
        whole: list[float] = []
        second: list[float] = []
        for pid, (name, sizes) in sorted(self.memory.items(), key=lambda item: item[1][0]):
            shown = " / ".join(f"{s:.0f}" for s in sizes)
            if len(sizes) != 3:
                out.append(f"  {name:<40} pid {pid:<8} {shown}  (not sampled 3 times: restarted?)")
                continue
            whole.append((sizes[2] - sizes[0]) / sizes[0] * 100)
            second.append((sizes[2] - sizes[1]) / sizes[1] * 100)
            out.append(f"  {name:<40} pid {pid:<8} {shown}  {whole[-1]:+.1f}%  {second[-1]:+.1f}%")
        if whole:
            out.append(
                f"USS growth over {len(whole)} processes: median {statistics.median(whole):+.1f}%, "
                f"max {max(whole):+.1f}%; second half: median {statistics.median(second):+.1f}%, "
                f"max {max(second):+.1f}%"
            )
        return out


# Ray's and Serve's own processes: not ours to measure.
_RAY_OWN = frozenset({"DashboardAgent", "RuntimeEnvAgent", "ServeController", "ProxyActor"})


def actor_processes() -> dict[int, str]:
    """The aiops actors and Serve replicas of this driver's Ray (its descendants), by pid and title."""
    found: dict[int, str] = {}
    for proc in psutil.Process(os.getpid()).children(recursive=True):
        try:
            cmd = proc.cmdline()
        except (psutil.Error, OSError):
            continue
        title = cmd[0] if cmd else ""
        name = title.removeprefix("ray::").split(".")[0].split(" ")[0]
        if title.startswith("ray::") and name != "IDLE" and name not in _RAY_OWN:
            found[proc.pid] = name
    return found


def sample_memory(memory: dict[int, tuple[str, list[float]]], processes: dict[int, str]) -> None:
    for pid, name in processes.items():
        try:
            uss = psutil.Process(pid).memory_full_info().uss / 2**20
        except (psutil.Error, OSError):
            continue
        memory.setdefault(pid, (name, []))[1].append(uss)


async def _paced(seconds: float, rate: float, step: Any) -> None:
    """Call ``step(i)`` ``rate`` times a second for ``seconds``, catching up when late, never skipping."""
    started = time.monotonic()
    i = 0
    tasks: set[asyncio.Task[None]] = set()
    while time.monotonic() - started < seconds:
        due = started + i / rate
        if due > time.monotonic():
            await asyncio.sleep(due - time.monotonic())
        task = asyncio.create_task(step(i))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        i += 1
    if tasks:
        await asyncio.gather(*tasks)


async def _timed(stream: Stream, call: Any, ok: Any) -> Any:
    started = time.perf_counter()
    try:
        answer = await call
    except httpx.HTTPError as e:
        stream.failed(f"{type(e).__name__}: {e}")
        return None
    if not ok(answer):
        stream.failed(f"HTTP {answer.status_code}: {answer.text[:150]}")
        return None
    stream.latencies.append(time.perf_counter() - started)
    stream.done += 1
    return answer


async def _alerts(
    target: Target,
    client: httpx.AsyncClient,
    stream: Stream,
    tag: str,
    seconds: float,
    rate: float,
    batch: int,
    distinct: int | None,
) -> int:
    accepted: set[int] = set()
    headers = {"Authorization": f"Bearer {target.am_token}"}
    starts = datetime.now(UTC).isoformat()  # Alertmanager keeps an alert's startsAt on every resend

    async def one(i: int) -> None:
        numbers = [n % distinct if distinct else n for n in range(i * batch, (i + 1) * batch)]
        alerts = [
            {
                "status": "firing",
                "labels": {
                    "alertname": "MixedLoadProbe",
                    "severity": "warning",
                    "namespace": f"load-{n % 10}",
                    "pod": f"load-{n % 200}",
                    "test": tag,
                },
                "annotations": {"summary": "mixed load probe"},
                "startsAt": starts,
                "fingerprint": f"{tag}-{n}",
            }
            for n in numbers
        ]
        answer = await _timed(
            stream,
            client.post(target.base_url + "/api/alert/webhook", json=payload(alerts), headers=headers),
            lambda a: a.status_code == 200,
        )
        if answer is not None:
            accepted.update(numbers)  # from now on the platform owes these alerts
            stream.done += len(alerts) - 1  # counted in alerts, one per alert

    await _paced(seconds, rate / batch, one)
    return len(accepted)


async def _chat(target: Target, client: httpx.AsyncClient, stream: Stream, seconds: float, rate: float) -> None:
    base = random.randrange(10**6)  # noqa: S311 - event ids only need to differ between runs

    async def one(i: int) -> None:
        text = "status" if i % 2 == 0 else "incidents"
        body = message_event(target.slack_channel, target.slack_user, text, ts=f"17{base:06d}{i:02d}.{i:06d}")
        headers = signed_headers(target.slack_secret, body, int(time.time()))
        await _timed(
            stream,
            client.post(target.base_url + "/api/webhook/slack/events", content=body, headers=headers),
            lambda a: a.status_code == 200 and "ignored" not in a.text and "refused" not in a.text,
        )

    await _paced(seconds, rate, one)


def _running_pods(sandbox: BackgroundSandbox, namespaces: tuple[str, ...] | None) -> list[tuple[str, str]]:
    return [
        (p["metadata"]["namespace"], p["metadata"]["name"])
        for p in sandbox.objects("Pod")
        if p.get("status", {}).get("phase") == "Running"
        and (namespaces is None or p["metadata"]["namespace"] in namespaces)
    ]


async def _churn(
    target: Target,
    stream: Stream,
    seconds: float,
    every: float,
    recover_after: float,
    namespaces: tuple[str, ...] | None,
    broken: list[tuple[str, str, float]],
    gone: set[tuple[str, str]],
) -> None:
    rng = random.Random(11)  # noqa: S311
    recoveries: set[asyncio.Task[None]] = set()
    now_broken: set[tuple[str, str]] = set()

    async def recover(namespace: str, pod: str) -> None:
        await asyncio.sleep(recover_after)
        try:
            await asyncio.to_thread(target.sandbox.inject, namespace, pod, "healthy")
        except ApiError as e:
            if e.code != 404:
                raise
            gone.add((namespace, pod))  # an approved restart deleted it: its controller made a new one
            return
        finally:
            now_broken.discard((namespace, pod))
        stream.done += 1

    async def one(_i: int) -> None:
        running = await asyncio.to_thread(_running_pods, target.sandbox, namespaces)
        pods = [p for p in running if p not in now_broken]
        if not pods:
            stream.failed("no running pod to break")
            return
        namespace, pod = rng.choice(pods)
        now_broken.add((namespace, pod))
        started = time.perf_counter()
        injected = await asyncio.to_thread(target.sandbox.inject, namespace, pod, "crashloop")
        stream.latencies.append(time.perf_counter() - started)
        broken.append((namespace, pod, injected))
        task = asyncio.create_task(recover(namespace, pod))
        recoveries.add(task)

    await _paced(seconds, 1 / every, one)
    await asyncio.gather(*recoveries)


async def _approvals(
    target: Target, client: httpx.AsyncClient, stream: Stream, seconds: float, every: float, approve: bool
) -> None:
    coordinator = remote.approvals(target.settings)
    headers = {"Authorization": f"Bearer {target.ops_token}"}
    started = time.monotonic()
    i = 0
    while time.monotonic() - started < seconds:
        due = started + i * every
        if due > time.monotonic():
            await asyncio.sleep(due - time.monotonic())
        pods = [
            n
            for ns, n in await asyncio.to_thread(_running_pods, target.sandbox, ("production",))
            if n.startswith("payments-")
        ]
        if not pods:
            stream.failed("no running payments pod")
            i += 1
            continue
        try:
            run = await coordinator.start_run.remote(incident(pods[0]), "crashloop")
        except ray.exceptions.RayError as e:
            stream.failed(f"start_run: {type(e).__name__}")
            i += 1
            continue
        pending = run.get("pending_approval")
        if not pending:
            stream.failed(f"run {run.get('run', {}).get('status')} without a pending approval")
            i += 1
            continue
        decision = "approve" if approve and i % 2 == 0 else "reject"
        await _timed(
            stream,
            client.post(
                f"{target.base_url}/api/approvals/{pending['id']}", json={"decision": decision}, headers=headers
            ),
            lambda a: a.status_code == 200,
        )
        i += 1


async def _stored(dsn: str, tag: str) -> tuple[int, int]:
    """(distinct fingerprints, rows) of the signals of this run's alerts."""
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT count(DISTINCT fingerprint) AS fps, count(*) AS n FROM signals WHERE labels->>'test' = $1", tag
        )
        return int(row["fps"]), int(row["n"])
    finally:
        await conn.close()


async def _missed(dsn: str, broken: list[tuple[str, str, float]]) -> list[str]:
    """The broken pods no k8s signal was stored for since they were broken."""
    conn = await asyncpg.connect(dsn)
    try:
        missed = []
        for namespace, pod, injected in broken:
            seen = await conn.fetchval(
                "SELECT count(*) FROM signals WHERE namespace = $1 AND labels->>'pod' = $2 AND source = 'k8s'"
                " AND received_at >= to_timestamp($3)",
                namespace,
                pod,
                injected,
            )
            if not seen:
                missed.append(f"{namespace}/{pod}")
        return missed
    finally:
        await conn.close()


async def drive(
    target: Target,
    *,
    seconds: float,
    alert_rate: float = 100.0,
    batch: int = 10,
    distinct: int | None = None,
    chat_rate: float = 2.0,
    churn_every: float = 2.0,
    recover_after: float = 6.0,
    approval_every: float = 3.0,
    approve: bool = True,
    churn_namespaces: tuple[str, ...] | None = None,
    watchers: bool = True,
    settle: float = 60.0,
) -> Figures:
    """Run the four streams at once against ``target``; measure them and the actors' memory."""
    tag = f"mixed-{uuid.uuid4().hex[:8]}"
    streams = {
        "alerts": Stream("alerts", "alerts"),
        "churn": Stream("churn", "recoveries"),
        "chat": Stream("chat", "commands"),
        "approvals": Stream("approvals", "decisions"),
    }
    memory: dict[int, tuple[str, list[float]]] = {}
    processes = actor_processes()
    sample_memory(memory, processes)
    broken: list[tuple[str, str, float]] = []
    gone: set[tuple[str, str]] = set()

    async def middle() -> None:
        await asyncio.sleep(seconds / 2)
        await asyncio.to_thread(sample_memory, memory, processes)

    started = time.perf_counter()
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        sent, *_ = await asyncio.gather(
            _alerts(target, client, streams["alerts"], tag, seconds, alert_rate, batch, distinct),
            _churn(target, streams["churn"], seconds, churn_every, recover_after, churn_namespaces, broken, gone),
            _chat(target, client, streams["chat"], seconds, chat_rate),
            _approvals(target, client, streams["approvals"], seconds, approval_every, approve),
            middle(),
        )
    elapsed = time.perf_counter() - started
    sample_memory(memory, processes)
    deadline = time.monotonic() + settle
    stored, rows = await _stored(target.dsn, tag)
    while stored < sent and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        stored, rows = await _stored(target.dsn, tag)
    missed = await _missed(target.dsn, broken) if watchers else None
    load = " ".join(f"{v:.1f}" for v in os.getloadavg())
    return Figures(elapsed, streams, sent, stored, rows, len(broken), len(gone), missed, memory, load)


@contextmanager
def platform(workdir: Path) -> Iterator[Target]:
    """The platform as ``aiops demo`` starts it (launcher), watchers on, Slack on the loopback server."""
    from deployments import launcher
    from tests.platform import _chat_files
    from tests.servers.processes import free_port
    from tests.servers.slack_server import SlackApiServer
    from tests.servers.telegram_server import TelegramApiServer

    server = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    dsn = asyncio.run(fresh_database(server))
    quiet = load_scenario("demo").model_copy(update={"node_events": []})
    try:
        with (
            TelegramApiServer("7000002:AAmixedLOADloopbackTOKEN000000000000") as telegram,
            SlackApiServer("xoxb-mixed-load-loopback") as slack,
            BackgroundSandbox(quiet, bookmark_interval=1.0) as sandbox,
        ):
            chat_file, policy_file = _chat_files(workdir, telegram, slack)
            policy_file.write_text(lift_budgets(policy_file.read_text()))
            settings = Settings.from_env(
                database_url=dsn,
                redis_url=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
                alertmanager_token=TOKEN,
                ops_api_token=TOKEN,
                data_dir=workdir,
                redis_prefix=f"mixed-{time.time_ns()}:",
                slack_bot_token="xoxb-mixed-load-loopback",
                slack_signing_secret=SLACK_SECRET,
                chat_file=str(chat_file),
                policy_file=str(policy_file),
                kubeconfig=str(sandbox.kubeconfig_path),
                watch_enabled=True,
            )
            launcher.init_ray(num_cpus=2, dashboard=False)
            try:
                base = launcher.deploy(settings, port=free_port(), health_timeout=300.0)
                yield Target(base, settings, dsn, sandbox, TOKEN, TOKEN, SLACK_SECRET)
            finally:
                launcher.shutdown()
    finally:
        asyncio.run(drop_database(server, dsn))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--alert-rate", type=float, default=100.0, help="alerts per second")
    parser.add_argument("--batch", type=int, default=10, help="alerts per webhook")
    parser.add_argument(
        "--distinct", type=int, default=None, help="resend the same DISTINCT alerts in turn (default: every one new)"
    )
    parser.add_argument("--chat-rate", type=float, default=2.0, help="chat commands per second")
    parser.add_argument("--churn-every", type=float, default=2.0, help="seconds between two pods broken")
    parser.add_argument("--recover-after", type=float, default=6.0, help="seconds a broken pod stays broken")
    parser.add_argument("--approval-every", type=float, default=3.0, help="seconds between two approvals")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="aiops-mixed-") as workdir, platform(Path(workdir)) as target:
        # The watchers list the sandbox first: the load starts on a platform that is up.
        supervisor = remote.watch_supervisor(target.settings)
        deadline = time.monotonic() + 120
        while not ray.get(supervisor.status.remote())["watching"] and time.monotonic() < deadline:
            time.sleep(0.5)
        figures = asyncio.run(
            drive(
                target,
                seconds=args.seconds,
                alert_rate=args.alert_rate,
                batch=args.batch,
                distinct=args.distinct,
                chat_rate=args.chat_rate,
                churn_every=args.churn_every,
                recover_after=args.recover_after,
                approval_every=args.approval_every,
            )
        )
    print(json.dumps({"command": "benchmarks.mixed_load", **vars(args)}))
    for line in figures.lines():
        print(line)


if __name__ == "__main__":
    main()
