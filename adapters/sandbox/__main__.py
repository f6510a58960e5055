"""``python -m adapters.sandbox --scenario FILE``: serve a sandbox cluster until Ctrl-C."""

from adapters.sandbox.sandbox import run_cli

raise SystemExit(run_cli())
