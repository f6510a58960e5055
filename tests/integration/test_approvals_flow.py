"""The ApprovalCoordinator end to end: a sandbox cluster, the real ``aiops mcp-server``
subprocess as its tools, real PostgreSQL and Redis.

One sandbox and one MCP server (``--allow-namespaces production``) per module; each test
works on its own workload and incident ids, with its own Redis prefix. Tool calls are
counted by a recording wrapper around the real MCP client (it forwards every call), so
"nothing executed" and "exactly one execution" are facts about what reached the server.
Playbooks are the shipped ones with short verification times.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import pytest_asyncio

from actors.approvals import ApprovalCoordinator
from adapters.mcp_client import KubeMcpClient
from adapters.sandbox import BackgroundSandbox, parse_scenario
from config.loader import default_playbooks_dir, load_playbooks
from config.policy import LoadedPolicy, policy_from_text
from config.settings import Settings
from core.errors import ApprovalError, ConfigError, InputError, NotFound
from core.models import Incident, IncidentId, IncidentStatus, ObjectRef, Severity
from core.plans import Playbook, Step
from core.tools import MUTATING, Risk
from tests.helpers import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

SCENARIO = """
name: approvals
namespaces: [production, staging]
restart_interval_seconds: 0.2
workloads:
  - {name: api, namespace: production, replicas: 1, logs: ["starting api", "panic: nil map"]}
  - {name: checkout, namespace: production, replicas: 1, memory_limit: 128Mi, behaviour: oom, memory_threshold: 8Gi}
  - {name: worker, namespace: production, replicas: 3, behaviour: crashloop}
  - {name: cart, namespace: production, replicas: 2}
  - {name: ledger, namespace: production, replicas: 2}
  - {name: search, namespace: staging, replicas: 1}
"""
POLICY = """
policy:
  roles:
    - {identity: "cli:alice", role: operator}
    - {identity: "cli:bob", role: operator}
    - {identity: "cli:carol", role: admin}
    - {identity: "cli:victor", role: viewer}
    - {identity: "cli:stan", role: operator, namespaces: [staging]}
  approvals: {ttl: 10m}
"""


def _fast(book: Playbook, timeout: float = 20.0, stable_for: float = 1.0) -> Playbook:
    steps = tuple(
        s.model_copy(update={"verify": s.verify.model_copy(update={"timeout": timeout, "stable_for": stable_for})})
        if s.verify
        else s
        for s in book.steps
    )
    return book.model_copy(update={"steps": steps})


def _playbooks() -> dict[str, Playbook]:
    shipped = {name: spec.to_core() for name, spec in load_playbooks([default_playbooks_dir()]).items()}
    ns, pod = "{{ incident.namespace }}", "{{ incident.labels.pod }}"
    return {
        "crashloop": _fast(shipped["crashloop"]),
        "oom": _fast(shipped["oom"], timeout=3.0),
        "restart-only": Playbook(
            name="restart-only",
            steps=(
                Step(name="restart-pod", tool="delete_pod", risk=Risk.MEDIUM, params={"namespace": ns, "name": pod}),
            ),
        ),
        "restart-two-person": Playbook(
            name="restart-two-person",
            steps=(Step(name="restart-pod", tool="delete_pod", risk=Risk.HIGH, params={"namespace": ns, "name": pod}),),
        ),
        "wrong-namespace": Playbook(
            name="wrong-namespace",
            steps=(
                Step(
                    name="restart-pod",
                    tool="delete_pod",
                    risk=Risk.MEDIUM,
                    params={"namespace": "kube-system", "name": pod},
                ),
            ),
        ),
        "slow-read": Playbook(
            name="slow-read",
            steps=(
                Step(
                    name="inspect", tool="get_pod", risk=Risk.READ, params={"namespace": ns, "name": pod}, timeout=0.2
                ),
                Step(name="restart-pod", tool="delete_pod", risk=Risk.MEDIUM, params={"namespace": ns, "name": pod}),
            ),
        ),
    }


class RecordingTools:
    """Forwards every call to the real MCP client and remembers it."""

    def __init__(self, inner: KubeMcpClient, *, stall: frozenset[str] = frozenset()) -> None:
        self.inner = inner
        self.stall = stall  # tools whose answer never comes (a hung API server), for time-out tests
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def call(self, tool: str, params: Mapping[str, Any]) -> dict[str, Any]:
        self.calls.append((tool, dict(params)))
        if tool in self.stall:
            await asyncio.Event().wait()
        return await self.inner.call(tool, params)

    def count(self, tool: str) -> int:
        return sum(1 for name, _ in self.calls if name == tool)

    def mutations(self) -> list[str]:
        return [name for name, _ in self.calls if name in MUTATING]


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture(scope="module")
def cluster() -> Iterator[BackgroundSandbox]:
    sb = BackgroundSandbox(parse_scenario(SCENARIO), bookmark_interval=0.5).start()
    yield sb
    sb.stop()


@pytest.fixture(scope="module")
def errlog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TextIO]:
    with (tmp_path_factory.mktemp("mcp") / "server.log").open("w") as f:
        yield f


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def mcp(cluster: BackgroundSandbox, errlog: TextIO) -> AsyncIterator[KubeMcpClient]:
    client = KubeMcpClient(
        kubeconfig=Path(cluster.kubeconfig_path),
        allow_namespaces="production",
        read_only=False,
        errlog=errlog,
        start_timeout=120.0,  # a loaded CI box can take a while to import the server
    )
    await client.start()
    yield client
    await client.close()


@pytest_asyncio.fixture(loop_scope="module")
async def database(server_database_url: str) -> AsyncIterator[str]:
    """A database of this test's own, so runs and approvals of other tests are not in sight."""
    name = f"aiops_approvals_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(server_database_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    parts = urlsplit(server_database_url)
    yield urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))
    conn = await asyncpg.connect(server_database_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture
def settings(database: str, redis_url: str, redis_prefix: str, cluster: BackgroundSandbox) -> Settings:
    return Settings(
        database_url=database,
        redis_url=redis_url,
        redis_prefix=redis_prefix,
        kubeconfig=str(cluster.kubeconfig_path),
        dev_mode=True,
    )


@pytest.fixture
def policy() -> LoadedPolicy:
    return policy_from_text(POLICY, "test-policy")


Factory = Callable[..., ApprovalCoordinator]


@pytest_asyncio.fixture(loop_scope="module")
async def make(settings: Settings, policy: LoadedPolicy) -> AsyncIterator[Factory]:
    """``make(tools, **options)``: a coordinator on the test's stores; every one is closed after the test."""
    made: list[ApprovalCoordinator] = []

    def factory(tools: RecordingTools, **options: Any) -> ApprovalCoordinator:
        options.setdefault("policy", policy)
        options.setdefault("playbooks", _playbooks())
        options.setdefault("verify_interval", 0.1)
        options.setdefault("tick_interval", 0.2)
        coordinator = ApprovalCoordinator(settings, tools=tools, **options)
        made.append(coordinator)
        return coordinator

    yield factory
    for coordinator in made:
        await coordinator.close()


@pytest.fixture
def tools(mcp: KubeMcpClient) -> RecordingTools:
    return RecordingTools(mcp)


def incident(namespace: str, deployment: str, pod: str | None, **labels: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    all_labels = {"deployment": deployment, "container": "app", **labels}
    if pod is not None:
        all_labels.setdefault("pod", pod)
    return Incident(
        id=IncidentId(f"inc-{uuid.uuid4().hex[:10]}"),
        group_key=f"{namespace}/{deployment}",
        status=IncidentStatus.OPEN,
        severity=Severity.CRITICAL,
        title=f"{deployment} is failing",
        rule="test",
        namespace=namespace,
        object=ObjectRef(kind="Pod", name=pod or deployment, namespace=namespace),
        labels=all_labels,
        opened_at=now,
        updated_at=now,
    ).model_dump(mode="json")


async def pods_of(mcp: KubeMcpClient, app: str, namespace: str = "production") -> list[dict[str, Any]]:
    result = await mcp.call("list_pods", {"namespace": namespace, "label_selector": f"app={app}"})
    pods: list[dict[str, Any]] = result["pods"]
    return pods


async def a_pod(mcp: KubeMcpClient, app: str, avoid: set[str] | frozenset[str] = frozenset()) -> str:
    async def found() -> str | None:
        return next((p["name"] for p in await pods_of(mcp, app) if p["name"] not in avoid), None)

    return await wait_for(found, timeout=15, message=f"a pod of {app}")


async def finished(coordinator: ApprovalCoordinator, run_id: str, timeout: float = 40.0) -> dict[str, Any]:  # noqa: ASYNC109
    async def done() -> dict[str, Any] | None:
        view = await coordinator.get_run(run_id)
        return view if view["status"] not in ("planned", "checking", "executing", "verifying", "rolling_back") else None

    return await wait_for(done, timeout=timeout, interval=0.1, message=f"run {run_id} to finish")


def outcomes(rows: list[dict[str, Any]]) -> list[str]:
    return [r["outcome"] for r in rows]


# -- 1. crash loop end to end ----------------------------------------------------------------
async def test_crashloop_playbook_restarts_the_pod_verifies_it_and_finishes_with_an_audit_trail(
    make: Factory, tools: RecordingTools, mcp: KubeMcpClient, cluster: BackgroundSandbox, database: str
) -> None:
    pod = await a_pod(mcp, "api")
    cluster.inject("production", pod, "crashloop")

    async def crashed() -> bool:
        return any(p["name"] == pod and p["restarts"] >= 2 for p in await pods_of(mcp, "api"))

    await wait_for(crashed, timeout=20, message="the api pod to crash-loop")
    inc = incident("production", "api", pod)
    coordinator = make(tools)
    assert (await coordinator.health())["ok"] is True  # opens the stores and migrates the schema
    conn = await asyncpg.connect(database)
    try:  # the rule engine's record of the incident, which the incident_open precondition reads
        await conn.execute(
            "INSERT INTO incidents (id, group_key, status, severity, title, rule, namespace, opened_at, updated_at)"
            " VALUES ($1, $2, 'open', 'critical', 't', 'test', 'production', now(), now())",
            inc["id"],
            inc["group_key"],
        )
        started = await coordinator.start_run(inc, "crashloop")
        assert started["created"] is True and started["status"] == "awaiting_approval"
        assert [t for t, _ in tools.calls] == ["get_pod", "pod_logs", "list_events"]
        pending = started["pending_approval"]
        assert pending["step"] == "restart-pod" and pending["action"]["params"] == {
            "namespace": "production",
            "name": pod,
        }
        assert pending["id"] in {a["id"] for a in await coordinator.list_approvals()}
        again = await coordinator.start_run(inc, "crashloop")
        assert again["created"] is False and again["run"]["id"] == started["run"]["id"]

        decided = await coordinator.decide(pending["id"], who="cli:alice", decision="approve", channel="cli")
        assert decided["outcome"] == "approved" and decided["executed"] == [
            f"delete_pod(name={pod}, namespace=production)"
        ]
        await conn.execute("UPDATE incidents SET status = 'resolved' WHERE id = $1", inc["id"])  # recovery seen

        async def replaced() -> bool:
            names = {p["name"] for p in await pods_of(mcp, "api")}
            return bool(names) and pod not in names

        await wait_for(replaced, timeout=15, message="the sandbox to recreate the api pod")
        view = await finished(coordinator, started["run"]["id"])
    finally:
        await conn.close()
    assert view["status"] == "succeeded", view["run"]["reason"]
    steps = {o["step"]: o["status"] for o in view["run"]["outcomes"]}
    assert steps == {
        "inspect-pod": "succeeded",
        "previous-logs": "succeeded",
        "recent-events": "succeeded",
        "restart-pod": "succeeded",
        "restart-rollout": "skipped",
    }
    assert tools.mutations() == ["delete_pod"]
    trail = await coordinator.audit_trail(started["run"]["id"])
    granted = next(r for r in trail if r["outcome"] == "approval_granted")
    assert granted["actor"] == "cli:alice" and granted["channel"] == "cli"
    assert granted["action"] == f"delete_pod(name={pod}, namespace=production)"
    executed = next(r for r in trail if r["action"].startswith("delete_pod") and r["outcome"] == "succeeded")
    assert executed["actor"] == "cli:alice"
    assert {"approval_requested", "verify_started", "passed", "run_succeeded"} <= set(outcomes(trail))
    texts = [n["text"] for n in await coordinator.notices()]
    assert any(pending["id"] in t and "approve" in t for t in texts)
    assert any("succeeded" in t for t in texts)


# -- 2. OOM: the fix does not work, the rollback does -----------------------------------------
async def test_oom_fix_that_fails_verification_is_rolled_back(
    make: Factory, tools: RecordingTools, mcp: KubeMcpClient
) -> None:
    pod = await a_pod(mcp, "checkout")
    coordinator = make(tools)
    started = await coordinator.start_run(incident("production", "checkout", pod), "oom")
    assert started["status"] == "awaiting_approval", started["run"]["reason"]
    approval = started["pending_approval"]
    assert approval["rollback"] == {
        "tool": "rollback_deployment",
        "params": {"namespace": "production", "name": "checkout"},
    }
    await coordinator.decide(approval["id"], who="cli:bob", decision="approve", channel="slack")
    view = await finished(coordinator, started["run"]["id"])
    assert view["status"] == "rolled_back", view["run"]["reason"]
    assert [o["status"] for o in view["run"]["outcomes"]][-1] == "verify_failed"
    assert tools.mutations() == ["set_resources", "rollback_deployment"]
    dep = (await mcp.call("get_deployment", {"namespace": "production", "name": "checkout"}))["deployment"]
    limits = dep["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits["memory"] == "128Mi"
    trail = outcomes(await coordinator.audit_trail(started["run"]["id"]))
    assert {"approval_granted", "failed", "rollback_started", "run_rolled_back"} <= set(trail)
    executions = await coordinator.executions(started["run"]["id"])
    assert [(e["phase"], e["tool"], e["state"]) for e in executions if e["phase"] == "rollback"] == [
        ("rollback", "rollback_deployment", "succeeded")
    ]

    # with the breaker at one failed verification, the next OOM fix of this playbook is not attempted
    strict = policy_from_text(POLICY + "  guardrails: {circuit_breaker: {max_consecutive_failed_verifications: 1}}\n")
    breaker = make(tools, policy=strict)
    again = await breaker.start_run(incident("production", "checkout", await a_pod(mcp, "checkout")), "oom")
    stopped = await breaker.decide(again["pending_approval"]["id"], who="cli:bob", decision="approve", channel="cli")
    assert stopped["status"] == "blocked" and "failed verification 1 times in a row" in stopped["run"]["reason"]
    assert tools.mutations() == ["set_resources", "rollback_deployment"]


# -- 3. the restart budget -------------------------------------------------------------------
async def test_a_fourth_restart_of_a_workload_within_an_hour_is_blocked_and_escalated(
    make: Factory, tools: RecordingTools, mcp: KubeMcpClient
) -> None:
    coordinator = make(tools)
    deleted: set[str] = set()
    for round_ in range(4):
        pod = await a_pod(mcp, "worker", avoid=deleted)
        deleted.add(pod)
        started = await coordinator.start_run(incident("production", "worker", pod), "restart-only")
        decided = await coordinator.decide(
            started["pending_approval"]["id"], who="cli:alice", decision="approve", channel="cli"
        )
        if round_ < 3:
            assert decided["status"] == "succeeded", decided["run"]["reason"]
    assert decided["status"] == "blocked" and decided["executed"] == []
    assert "budget exhausted: 3 of 3 restarts on production/worker" in decided["run"]["reason"]
    assert tools.count("delete_pod") == 3
    trail = await coordinator.audit_trail(decided["run"]["id"])
    assert any(r["outcome"] == "blocked: budget" and r["action"].startswith("delete_pod") for r in trail)
    notices = [n["text"] for n in await coordinator.notices()]
    assert any("blocked by guardrail budget" in t and "escalate" in t for t in notices)


# -- 4. the pause switch ---------------------------------------------------------------------
async def test_pause_switch_blocks_an_approved_step_and_resume_lets_the_next_one_run(
    make: Factory, tools: RecordingTools, mcp: KubeMcpClient
) -> None:
    coordinator = make(tools)
    first = await coordinator.start_run(incident("production", "cart", await a_pod(mcp, "cart")), "restart-only")
    assert await coordinator.paused() is False
    await coordinator.pause("cli:carol", channel="telegram")
    assert await coordinator.paused() is True
    blocked = await coordinator.decide(
        first["pending_approval"]["id"], who="cli:alice", decision="approve", channel="cli"
    )
    assert blocked["status"] == "blocked" and "paused" in blocked["run"]["reason"]
    assert tools.count("delete_pod") == 0
    assert any("blocked by guardrail paused" in n["text"] for n in await coordinator.notices())

    await coordinator.resume("cli:carol", channel="telegram")
    assert await coordinator.paused() is False
    second = await coordinator.start_run(incident("production", "cart", await a_pod(mcp, "cart")), "restart-only")
    allowed = await coordinator.decide(
        second["pending_approval"]["id"], who="cli:alice", decision="approve", channel="cli"
    )
    assert allowed["status"] == "succeeded" and tools.count("delete_pod") == 1
    with pytest.raises(ApprovalError, match="only operators and admins"):
        await coordinator.pause("cli:victor")
    health = await coordinator.health()
    assert health["ok"] is True and health["paused"] is False


# -- 5. bad input and abuse ------------------------------------------------------------------
async def _pending(coordinator: ApprovalCoordinator, mcp: KubeMcpClient, playbook: str = "restart-only") -> str:
    started = await coordinator.start_run(incident("production", "ledger", await a_pod(mcp, "ledger")), playbook)
    approval_id: str = started["pending_approval"]["id"]
    return approval_id


async def test_unknown_expired_and_repeated_decisions_are_refused_and_audited(
    make: Factory, tools: RecordingTools, mcp: KubeMcpClient
) -> None:
    clock = FakeClock()
    coordinator = make(tools, clock=clock, tick_interval=3600)
    with pytest.raises(NotFound, match="unknown approval id 'zzzzzz'"):
        await coordinator.decide("zzzzzz", who="cli:alice", decision="approve", channel="cli")
    with pytest.raises(InputError, match="must look like"):
        await coordinator.decide("zzzzzz", who="alice", decision="approve", channel="cli")

    late = await _pending(coordinator, mcp)
    clock.advance(11 * 60)
    with pytest.raises(ApprovalError, match="expired"):
        await coordinator.decide(late, who="cli:alice", decision="approve", channel="cli")
    with pytest.raises(ApprovalError, match="already expired"):
        await coordinator.decide(late, who="cli:alice", decision="approve", channel="cli")

    lapsing = await _pending(coordinator, mcp)
    clock.advance(11 * 60)
    expired = await coordinator.expire_due()
    assert [a["id"] for a in expired] == [lapsing]
    assert any(lapsing in n["text"] and "expired" in n["text"] for n in await coordinator.notices())

    twice = await _pending(coordinator, mcp)
    await coordinator.decide(twice, who="cli:alice", decision="approve", channel="cli")
    with pytest.raises(ApprovalError, match="already approved"):
        await coordinator.decide(twice, who="cli:alice", decision="approve", channel="cli")
    with pytest.raises(ApprovalError, match="already approved"):
        await coordinator.decide(twice, who="cli:bob", decision="reject", channel="cli")

    rejected = await _pending(coordinator, mcp)
    result = await coordinator.decide(rejected, who="cli:bob", decision="reject", channel="slack", note="not now")
    assert result["status"] == "rejected"
    with pytest.raises(ApprovalError, match="already rejected"):
        await coordinator.decide(rejected, who="cli:alice", decision="approve", channel="cli")

    assert tools.count("delete_pod") == 1
    rows = await coordinator.audit_trail((await coordinator.get_run(result["run"]["id"]))["run"]["id"])
    refusal = next(r for r in rows if r["outcome"].startswith("refused: approval"))
    assert refusal["actor"] == "cli:alice" and refusal["action"].startswith("delete_pod(name=ledger-")


async def test_two_approvers_racing_execute_the_step_exactly_once(
    make: Factory, tools: RecordingTools, mcp: KubeMcpClient
) -> None:
    coordinator = make(tools)
    approval_id = await _pending(coordinator, mcp)
    results = await asyncio.gather(
        coordinator.decide(approval_id, who="cli:alice", decision="approve", channel="cli"),
        coordinator.decide(approval_id, who="cli:bob", decision="approve", channel="slack"),
        return_exceptions=True,
    )
    assert sorted(type(r).__name__ for r in results) == ["ApprovalError", "dict"]
    assert tools.count("delete_pod") == 1
    other = make(tools)  # a second coordinator on the same stores cannot run it again either
    with pytest.raises(ApprovalError, match="already approved"):
        await other.decide(approval_id, who="cli:carol", decision="approve", channel="cli", confirm=True)
    assert tools.count("delete_pod") == 1


async def test_unauthorised_users_viewers_and_double_counting_cannot_approve(
    make: Factory, tools: RecordingTools, mcp: KubeMcpClient
) -> None:
    coordinator = make(tools)
    approval_id = await _pending(coordinator, mcp)
    for who, reason in [
        ("cli:mallory", "unknown identity"),
        ("cli:victor", "viewers may not"),
        ("cli:stan", "has no role for namespace 'production'"),
    ]:
        with pytest.raises(ApprovalError, match=reason):
            await coordinator.decide(approval_id, who=who, decision="approve", channel="telegram")
    assert (await coordinator.list_approvals())[0]["id"] == approval_id

    high = await _pending(coordinator, mcp, "restart-two-person")
    first = await coordinator.decide(high, who="cli:alice", decision="approve", channel="cli")
    assert first["outcome"] == "recorded" and first["executed"] == []
    with pytest.raises(ApprovalError, match="counts once"):
        await coordinator.decide(high, who="cli:alice", decision="approve", channel="slack")
    assert tools.count("delete_pod") == 0
    second = await coordinator.decide(high, who="cli:bob", decision="approve", channel="cli")
    assert second["outcome"] == "approved" and second["approval"]["approvers"] == ["cli:alice", "cli:bob"]
    assert tools.count("delete_pod") == 1
    rows = await coordinator.audit_trail(second["run"]["id"])
    assert {"approval_recorded", "approval_granted"} <= set(outcomes(rows))
    assert any(r["actor"] == "cli:alice" and "counts once" in r["outcome"] for r in rows)
    pending_rows = await coordinator.audit_trail((await coordinator.list_approvals())[0]["run_id"])
    assert {r["actor"] for r in pending_rows if r["outcome"].startswith("refused")} == {
        "cli:mallory",
        "cli:victor",
        "cli:stan",
    }


@pytest.mark.parametrize(
    ("labels", "playbook", "error", "message"),
    [
        pytest.param({"pod": ""}, "restart-only", ApprovalError, "target name rendered empty", id="empty-target"),
        pytest.param({}, "wrong-namespace", ApprovalError, "differs from the incident's namespace", id="wrong-ns"),
        pytest.param({"drop_pod": "1"}, "restart-only", ConfigError, "has no 'pod'", id="missing-variable"),
    ],
)
async def test_a_playbook_that_renders_a_bad_target_is_refused_before_anything_runs(
    make: Factory,
    tools: RecordingTools,
    labels: dict[str, str],
    playbook: str,
    error: type[Exception],
    message: str,
) -> None:
    coordinator = make(tools)
    inc = incident("production", "ledger", None if "drop_pod" in labels else labels.get("pod", "ledger-x"))
    with pytest.raises(error, match=message):
        await coordinator.start_run(inc, playbook)
    assert tools.calls == []
    assert await coordinator.list_approvals() == []
    notices = [n["text"] for n in await coordinator.notices()]
    assert any(f"playbook {playbook} refused" in t for t in notices)


async def test_namespaces_outside_the_allowlist_and_timed_out_steps_fail_the_run_with_nothing_mutated(
    make: Factory, tools: RecordingTools, mcp: KubeMcpClient
) -> None:
    coordinator = make(tools)
    outside = await coordinator.start_run(incident("staging", "search", "search-abc"), "crashloop")
    assert outside["status"] == "failed" and outside["pending_approval"] is None
    assert "not in this server's allowlist" in outside["run"]["reason"]
    rows = await coordinator.audit_trail(outside["run"]["id"])
    assert any(r["action"].startswith("get_pod(name=search-abc, namespace=staging)") for r in rows)

    hung = make(RecordingTools(mcp, stall=frozenset({"get_pod"})))
    slow = await hung.start_run(incident("production", "ledger", await a_pod(mcp, "ledger")), "slow-read")
    assert slow["status"] == "failed" and "timed out after 0.2s" in slow["run"]["reason"]
    assert tools.mutations() == []
    dry = await coordinator.start_run(incident("production", "ledger", "ledger-dry"), "restart-only", dry_run=True)
    assert dry["status"] == "succeeded" and dry["pending_approval"] is None
    assert [o["status"] for o in dry["run"]["outcomes"]] == ["skipped"]
    assert tools.mutations() == []
    with pytest.raises(NotFound, match="unknown playbook"):
        await coordinator.start_run(incident("production", "ledger", "x"), "no-such-playbook")
    with pytest.raises(InputError, match="not an incident"):
        await coordinator.start_run({"id": "x"}, "restart-only")
    with pytest.raises(ApprovalError, match="only operators and admins"):
        await coordinator.start_run(incident("production", "ledger", "x"), "restart-only", requested_by="cli:victor")


# -- 6. restart ------------------------------------------------------------------------------
async def test_a_new_coordinator_on_the_same_stores_sees_and_can_approve_the_pending_approval(
    make: Factory, tools: RecordingTools, mcp: KubeMcpClient
) -> None:
    first = make(tools)
    started = await first.start_run(incident("production", "ledger", await a_pod(mcp, "ledger")), "restart-only")
    approval_id = started["pending_approval"]["id"]
    await first.close()

    second = make(tools)
    assert [a["id"] for a in await second.list_approvals()] == [approval_id]
    assert (await second.get_run(started["run"]["id"]))["status"] == "awaiting_approval"
    decided = await second.decide(approval_id, who="cli:carol", decision="approve", channel="api")
    assert decided["status"] == "succeeded" and tools.count("delete_pod") == 1
    with pytest.raises(NotFound):
        await second.get_run("run-nope")
