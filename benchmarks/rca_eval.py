"""RCA evaluation harness: the eval scenarios in deterministic mode, and with the LLM when a key is set.

    .venv/bin/python -m benchmarks.rca_eval            # deterministic; adds LLM mode if ANTHROPIC_API_KEY is set
    .venv/bin/python -m benchmarks.rca_eval --via-mcp  # also through the sandbox API + MCP read tools

Deterministic mode is also asserted by ``tests/unit/test_rca_eval.py`` (>= 90% top-1), and
through the MCP read tools by ``tests/integration/test_rca_eval_mcp.py``: ``--via-mcp`` loads
each scenario into the sandbox's API server and reads it with ``aiops mcp-server --read-only``,
the RcaWorker's own path. LLM mode
sends each scenario's redacted evidence and the deterministic diagnosis to the configured
model and scores the category it returns; it never runs without a key.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from adapters.llm import LlmClient
from config.settings import Settings
from core.rca import diagnose, drive, plan
from tests.evals.k8s import NOW
from tests.evals.scenarios import SCENARIOS


def via_mcp() -> None:
    from tests.evals.mcp import McpEval

    started = time.perf_counter()
    with McpEval() as evaluation:
        rows = asyncio.run(evaluation.run(SCENARIOS))
    elapsed = time.perf_counter() - started
    correct = sum(d.category is s.expected for s, _, d in rows)
    facts_found = sum(sum(f in " ".join([d.root_cause, *d.evidence]) for f in s.facts) for s, _, d in rows)
    facts_total = sum(len(s.facts) for s, *_ in rows)
    print(
        f"deterministic via MCP: {correct}/{len(rows)} top-1 ({correct / len(rows):.0%}), "
        f"key facts {facts_found}/{facts_total}, {elapsed * 1000 / len(rows):.0f} ms per scenario "
        "(incl. loading it into the sandbox)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--via-mcp", action="store_true", help="also run the suite through the MCP read tools")
    args = parser.parse_args()
    started = time.perf_counter()
    rows = []
    for scenario in SCENARIOS:
        evidence = drive(plan(scenario.subject, NOW), scenario.cluster())
        diagnosis = diagnose(evidence)
        text = " ".join([diagnosis.root_cause, *diagnosis.evidence])
        facts = sum(fact in text for fact in scenario.facts)
        rows.append((scenario, evidence, diagnosis, facts))
    elapsed = time.perf_counter() - started
    correct = sum(d.category is s.expected for s, _, d, _ in rows)
    facts_found = sum(f for *_, f in rows)
    facts_total = sum(len(s.facts) for s, *_ in rows)
    print(
        f"deterministic: {correct}/{len(rows)} top-1 ({correct / len(rows):.0%}), "
        f"key facts {facts_found}/{facts_total}, {elapsed * 1000 / len(rows):.1f} ms per scenario, "
        f"{len({s.expected for s, *_ in rows})} categories"
    )
    if args.via_mcp:
        via_mcp()
    settings = Settings.from_env()
    if not settings.secret("anthropic_api_key"):
        print("llm: skipped (no ANTHROPIC_API_KEY)")
        return

    async def with_llm() -> None:
        client = LlmClient(settings)
        try:
            hits = fallbacks = 0
            for scenario, evidence, diagnosis, _ in rows:
                report = await client.report(evidence, diagnosis, settings.secret_values())
                fallbacks += report.mode == "fallback"
                hits += report.category == scenario.expected.value
            print(f"llm ({settings.llm_model}): {hits}/{len(rows)} top-1, {fallbacks} fallbacks, {client.stats()}")
        finally:
            await client.close()

    asyncio.run(with_llm())


if __name__ == "__main__":
    main()
