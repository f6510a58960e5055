"""The ``aiops`` command line.

Every sub-command turns errors of our taxonomy into a one-line message and an exit code
(1 for problems found, 2 for usage or configuration errors), so scripts can rely on it.
This is the only module allowed to call ``sys.exit``.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from config.chat import default_chat_path
from config.loader import check_file, default_playbooks_dir, default_rules_path, load_rules
from config.policy import default_policy_path
from config.settings import Settings
from core.errors import AiopsError, ConfigError
from core.models import Fingerprint, ObjectRef, Severity, Signal, SignalSource
from core.rules import parse_duration

REPO_SERVE_CONFIG = Path(__file__).resolve().parent.parent / "serve_config.yaml"


def _default_config_files() -> list[Path]:
    files = [default_rules_path(), default_policy_path(), default_chat_path()]
    playbooks = default_playbooks_dir()
    if playbooks.is_dir():
        files.extend(sorted(playbooks.glob("*.yaml")))
    return files


def cmd_config_check(args: argparse.Namespace) -> int:
    files = [Path(f) for f in args.files] or _default_config_files()
    total = 0
    for file in files:
        problems = check_file(file)
        total += len(problems)
        if problems:
            for problem in problems:
                print(f"error: {problem}", file=sys.stderr)
        else:
            print(f"ok: {file}")
    if total:
        print(f"{total} problem(s) in {len(files)} file(s)", file=sys.stderr)
        return 1
    return 0


def _parse_labels(pairs: Sequence[str]) -> dict[str, str]:
    labels = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ConfigError(f"invalid label {pair!r}: expected name=value")
        labels[name] = value
    return labels


def cmd_config_test_rules(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    rules = load_rules(args.rules)
    labels = _parse_labels(args.labels)
    kind = labels.get("kind")
    obj = ObjectRef(kind=kind, name=labels.get(kind.lower(), "?"), namespace=labels.get("namespace")) if kind else None
    signal = Signal(
        source=SignalSource(labels.pop("source", "alertmanager")),
        reason=labels.get("reason") or labels.get("alertname", "Unknown"),
        severity=Severity.parse(labels.get("severity")),
        labels=labels,
        object=obj,
        node=labels.get("node"),
        observed_at=datetime.now(UTC),
        fingerprint=Fingerprint("test-rules"),
    )
    decision = rules.evaluate(signal)
    result = {
        "matched": list(decision.matched),
        "rule": decision.rule_name,
        "severity": decision.severity.value,
        "group_key": decision.group_key,
        "playbook": decision.playbook,
        "notify": list(decision.notify),
        "drop": decision.drop,
    }
    if args.output == "json":
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key:10} {value}")
    return 0


def _ensure_tokens(settings: Settings) -> dict[str, str]:
    """Generate webhook/API tokens that are unset, keep them in the data dir (0600)."""
    path = settings.data_dir / "tokens.json"
    stored: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    changed = False
    for name in ("ALERTMANAGER_TOKEN", "OPS_API_TOKEN"):
        if os.environ.get(name):
            continue
        if name not in stored:
            stored[name] = secrets.token_urlsafe(24)
            changed = True
        os.environ[name] = stored[name]
    if changed:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(stored, indent=2))
        path.chmod(0o600)
    return stored


def cmd_up(args: argparse.Namespace) -> int:
    from actors.stores import resolve_urls
    from deployments.cluster import up

    settings = Settings.from_env()
    print("• preparing PostgreSQL and Redis ...", flush=True)
    database_url, redis_url = resolve_urls(settings)
    # Serve replicas and actors inherit the environment of `ray start`.
    os.environ.setdefault("DATABASE_URL", database_url)
    os.environ.setdefault("REDIS_URL", redis_url)
    tokens = _ensure_tokens(settings)
    urls = up(settings, Path(args.config), num_cpus=args.num_cpus, address=args.address or settings.ray_address)
    print(f"\nray-aiops is up.\n  health:         {urls['api']}/health")
    print(f"  Alertmanager:   {urls['webhook']}")
    print(f"  Ray dashboard:  {urls['dashboard']}")
    if tokens:
        print(f"  tokens:         {settings.data_dir / 'tokens.json'} (mode 0600)")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    from adapters.embedded import stop_embedded
    from deployments.cluster import down

    settings = Settings.from_env()
    stopped = down(settings)
    if not args.keep_data_services:
        stopped += [f"embedded {name}" for name in stop_embedded(settings.data_dir)]
    print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from deployments.demo import DemoOptions, run_demo

    return run_demo(
        DemoOptions(
            port=args.port,
            keep=args.keep,
            data_dir=args.data_dir,
            scenario=args.scenario,
            timeout=args.timeout,
            restart_interval=args.restart_interval,
            node_outage_after=args.node_outage_after,
            verify_window=args.verify_window,
            poll=args.poll,
            settle=args.settle,
        )
    )


def cmd_scan(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from adapters.kube import KubeClient
    from core.detectors import CLUSTER_INPUT_KINDS, NAMESPACED_INPUT_KINDS, detect_all

    client = KubeClient.from_kubeconfig(args.kubeconfig or os.environ.get("KUBECONFIG"))
    try:
        objects: list[dict[str, object]] = []
        events: list[dict[str, object]] = []
        for kind in (*NAMESPACED_INPUT_KINDS, *CLUSTER_INPUT_KINDS):
            namespace = None if kind in CLUSTER_INPUT_KINDS else args.namespace
            items, _ = client.list(kind, namespace)
            for item in items:
                item = {**item, "kind": item.get("kind") or kind}
                (events if kind == "Event" else objects).append(item)
        findings = detect_all(objects, events, now=datetime.now(UTC))
    finally:
        client.close()
    if args.namespace:
        findings = [f for f in findings if f.namespace in (args.namespace, None) or f.kind == "Node"]
    rows = [f.to_json() for f in sorted(findings, key=lambda f: (f.namespace or "", f.kind, f.name, f.reason))]
    if args.output == "json":
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no problems found")
        return 0
    widths = {
        key: max(len(key), *(len(str(r[key] or "-")) for r in rows))
        for key in ("severity", "namespace", "kind", "name", "reason")
    }
    header = "  ".join(key.upper().ljust(widths[key]) for key in widths) + "  MESSAGE"
    print(header)
    for row in rows:
        cells = "  ".join(str(row[key] or "-").ljust(widths[key]) for key in widths)
        print(f"{cells}  {str(row['message'])[:120]}")
    print(f"\n{len(rows)} finding(s)")
    return 0


def cmd_sandbox(args: argparse.Namespace) -> int:
    from adapters.sandbox import run_cli

    argv = ["--scenario", args.scenario]
    if args.port:
        argv += ["--port", str(args.port)]
    if args.kubeconfig:
        argv += ["--kubeconfig", args.kubeconfig]
    return run_cli(argv)


def cmd_mcp_server(args: argparse.Namespace) -> int:
    """``aiops mcp-server``: the Kubernetes tools over MCP (stdio by default; stdout is the protocol)."""
    from adapters import mcp_server

    mcp_server.run(
        kubeconfig=args.kubeconfig or os.environ.get("KUBECONFIG"),
        allow_namespaces=args.allow_namespaces,
        deny_namespaces=args.deny_namespaces,
        read_only=args.read_only,
        transport=args.transport,
        host=args.host,
        port=args.port,
    )
    return 0


def _ops_call(args: argparse.Namespace, method: str, path: str, body: dict[str, object] | None = None) -> object:
    import httpx

    settings = Settings.from_env()
    token = os.environ.get("OPS_API_TOKEN")
    tokens_file = settings.data_dir / "tokens.json"
    if not token and tokens_file.exists():
        token = json.loads(tokens_file.read_text()).get("OPS_API_TOKEN")
    if not token:
        raise ConfigError("no ops API token: set OPS_API_TOKEN (or run `aiops up`, which generates one)")
    url = (args.url or f"http://{settings.http_host}:{settings.http_port}").rstrip("/") + path
    try:
        answer = httpx.request(method, url, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=60)
    except httpx.HTTPError as e:
        raise AiopsError(f"cannot reach the ops API at {url}: {e}") from e
    data = answer.json() if answer.headers.get("content-type", "").startswith("application/json") else {}
    if answer.status_code >= 400:
        raise AiopsError(f"{answer.status_code}: {data.get('message') or answer.text[:300]}")
    return data


def cmd_approvals(args: argparse.Namespace) -> int:
    data = _ops_call(args, "GET", f"/api/approvals?state={args.state}")
    rows = data.get("approvals", []) if isinstance(data, dict) else []
    if args.output == "json":
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(f"no {args.state} approvals")
    for row in rows:
        print(f"{row.get('id')}  [{row.get('risk')}]  {row.get('state')}  {row.get('text') or row.get('step')}")
    return 0


def cmd_decide(args: argparse.Namespace) -> int:
    body: dict[str, object] = {"decision": args.decision, "who": args.who, "confirm": bool(args.confirm)}
    if args.note:
        body["note"] = args.note
    data = _ops_call(args, "POST", f"/api/approvals/{args.id}", body)
    print(
        json.dumps(data, indent=2, default=str)
        if args.output == "json"
        else f"{args.id}: {data.get('outcome') if isinstance(data, dict) else data}"
    )
    return 0


def cmd_switch(args: argparse.Namespace) -> int:
    data = _ops_call(args, "POST", f"/api/{args.switch}?who={args.who}")
    print(json.dumps(data, default=str))
    return 0


def cmd_chat_setup_telegram(args: argparse.Namespace) -> int:
    """``aiops chat setup-telegram --url URL``: register the webhook with its secret token."""
    import asyncio

    from adapters.telegram import TelegramChannel
    from config.chat import load_chat

    settings = Settings.from_env()
    token = settings.secret("telegram_bot_token")
    secret = settings.secret("telegram_webhook_secret")
    if not token or not secret:
        raise ConfigError("set TELEGRAM_BOT_TOKEN and TELEGRAM_WEBHOOK_SECRET before registering the webhook")
    url = args.url.rstrip("/")
    if not url.startswith("https://"):
        raise ConfigError(f"Telegram only calls HTTPS webhooks; got {args.url!r}")
    if not url.endswith("/api/webhook/telegram"):
        url += "/api/webhook/telegram"
    api_url = args.api_url or load_chat(args.chat_file or settings.chat_file).telegram.api_url

    async def register() -> None:
        channel = TelegramChannel(token, api_url=api_url)
        try:
            await channel.setup_webhook(url, secret, drop_pending_updates=args.drop_pending)
        finally:
            await channel.close()

    asyncio.run(register())
    print(f"telegram webhook set to {url} (secret token header on every update)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aiops", description="AIOps for Kubernetes on Ray.")
    sub = parser.add_subparsers(dest="command", required=True)

    config = sub.add_parser("config", help="check and try configuration files")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    check = config_sub.add_parser("check", help="validate rules and playbook files")
    check.add_argument("files", nargs="*", help="files to check (default: the shipped rules and playbooks)")
    check.set_defaults(func=cmd_config_check)
    test_rules = config_sub.add_parser("test-rules", help="show which rules match a label set")
    test_rules.add_argument("--labels", nargs="+", required=True, metavar="K=V")
    test_rules.add_argument("--rules", default=None, help="rules file (default: shipped rules)")
    test_rules.add_argument("--output", choices=["table", "json"], default="table")
    test_rules.set_defaults(func=cmd_config_test_rules)

    up = sub.add_parser("up", help="start or join Ray, migrate, serve deploy the config")
    up.add_argument("--config", default=str(REPO_SERVE_CONFIG), help="serve config (default: serve_config.yaml)")
    up.add_argument("--num-cpus", type=int, default=2)
    up.add_argument("--address", default=None, help="join this Ray cluster (default: RAY_ADDRESS, else start one)")
    up.set_defaults(func=cmd_up)

    down = sub.add_parser("down", help="stop Serve, Ray and the embedded stores")
    down.add_argument("--keep-data-services", action="store_true", help="leave embedded Postgres/Redis running")
    down.set_defaults(func=cmd_down)

    scan = sub.add_parser("scan", help="one-shot detection with the watchers' detectors")
    scan.add_argument("--kubeconfig", default=None, help="kubeconfig file (default: KUBECONFIG or ~/.kube/config)")
    scan.add_argument("--namespace", "-n", default=None, help="only this namespace (default: all)")
    scan.add_argument("--output", "-o", choices=["table", "json"], default="table")
    scan.set_defaults(func=cmd_scan)

    sandbox = sub.add_parser("sandbox", help="run the sandbox cluster and print its kubeconfig path")
    sandbox.add_argument("--scenario", default="demo", help="scenario name or YAML file (default: demo)")
    sandbox.add_argument("--port", type=int, default=0)
    sandbox.add_argument("--kubeconfig", default=None, help="where to write the kubeconfig")
    sandbox.set_defaults(func=cmd_sandbox)

    def ops_client(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--url", default=None, help="ops API base URL (default: AIOPS_HTTP_HOST:AIOPS_HTTP_PORT)")
        parser.add_argument("--output", choices=["table", "json"], default="table")

    approvals_cmd = sub.add_parser("approvals", help="list approvals (default: pending)")
    approvals_cmd.add_argument(
        "--state", default="pending", choices=["pending", "approved", "rejected", "expired", "cancelled", "all"]
    )
    ops_client(approvals_cmd)
    approvals_cmd.set_defaults(func=cmd_approvals)
    for verb in ("approve", "reject"):
        decide_cmd = sub.add_parser(verb, help=f"{verb} a pending step by approval id")
        decide_cmd.add_argument("id")
        decide_cmd.add_argument("--who", default="ops", help="recorded approver name (identity api:<who>)")
        decide_cmd.add_argument("--confirm", action="store_true", help="admin's explicit confirm for a high step")
        decide_cmd.add_argument("--note", default="")
        ops_client(decide_cmd)
        decide_cmd.set_defaults(func=cmd_decide, decision=verb)
    for switch in ("pause", "resume"):
        switch_cmd = sub.add_parser(switch, help=f"{switch} every mutating action platform-wide")
        switch_cmd.add_argument("--who", default="ops")
        ops_client(switch_cmd)
        switch_cmd.set_defaults(func=cmd_switch, switch=switch)

    chat_cmd = sub.add_parser("chat", help="chat integrations (Telegram, Slack)")
    chat_sub = chat_cmd.add_subparsers(dest="chat_command", required=True)
    setup_tg = chat_sub.add_parser("setup-telegram", help="register the Telegram webhook with the secret token")
    setup_tg.add_argument("--url", required=True, help="public HTTPS base URL (or the full webhook URL)")
    setup_tg.add_argument("--api-url", default=None, help="Bot API base (default: chat file's telegram.api_url)")
    setup_tg.add_argument("--chat-file", default=None, help="chat file (default: AIOPS_CHAT_FILE or shipped)")
    setup_tg.add_argument("--drop-pending", action="store_true", help="drop updates queued while no webhook was set")
    setup_tg.set_defaults(func=cmd_chat_setup_telegram)

    demo = sub.add_parser("demo", help="run the whole loop locally on embedded defaults")
    demo.add_argument("--port", type=int, default=0, help="HTTP port (default: a free one)")
    demo.add_argument("--keep", action="store_true", help="stay up when input ends, until Ctrl-C or --timeout")
    demo.add_argument("--data-dir", default=None, help="data directory (default: AIOPS_DATA_DIR or ~/.local/share)")
    demo.add_argument("--scenario", default="demo", help="sandbox scenario name or YAML file (default: demo)")
    demo.add_argument("--timeout", type=float, default=None, help="stop after this many seconds (unattended runs)")
    demo.add_argument("--restart-interval", type=float, default=None, help="seconds between crash-loop restarts")
    demo.add_argument("--node-outage-after", type=float, default=None, help="seconds until the node goes NotReady")
    demo.add_argument(
        "--verify-window", type=float, default=15.0, help="cap on the playbooks' verify stable_for (default: 15s)"
    )
    demo.add_argument("--poll", type=float, default=1.0, help="seconds between console refreshes (default: 1)")
    demo.add_argument(
        "--settle", type=float, default=5.0, help="after input ends, stop once nothing changed this long (default: 5)"
    )
    demo.set_defaults(func=cmd_demo)

    mcp = sub.add_parser("mcp-server", help="serve the Kubernetes tools over MCP (stdio or streamable HTTP)")
    mcp.add_argument("--kubeconfig", default=None, help="kubeconfig file (default: KUBECONFIG or ~/.kube/config)")
    mcp.add_argument("--allow-namespaces", default="*", help="comma-separated globs of namespaces (default: *)")
    mcp.add_argument("--deny-namespaces", default="kube-system", help="comma-separated globs, win over allow")
    mcp.add_argument("--read-only", action="store_true", help="expose only the read-only tools")
    mcp.add_argument("--transport", choices=["stdio", "streamable-http"], default="stdio")
    mcp.add_argument("--host", default="127.0.0.1", help="HTTP bind address (streamable-http)")
    mcp.add_argument("--port", type=int, default=8765, help="HTTP port (streamable-http)")
    mcp.set_defaults(func=cmd_mcp_server)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = int(args.func(args))
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        code = 2
    except AiopsError as e:
        print(f"error: {e}", file=sys.stderr)
        code = 1
    except subprocess.CalledProcessError as e:
        command = " ".join(str(part) for part in e.cmd[:3])
        print(f"error: `{command} ...` failed with exit code {e.returncode}; see its output above", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)


__all__ = ["build_parser", "main", "parse_duration"]
