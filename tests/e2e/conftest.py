"""One local Ray with Serve per test session, the platform deployed on a free port.

Ray is started with ``num_cpus=2`` and no dashboard, the three apps are deployed through
the same launcher ``aiops demo`` uses, against this session's own PostgreSQL database.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from adapters.sandbox import BackgroundSandbox
from config.settings import Settings
from tests.integration.conftest import fast_demo_scenario
from tests.servers.processes import free_port

AM_TOKEN = "e2e-alertmanager-token-9f2c"
OPS_TOKEN = "e2e-ops-token-77ab"


@dataclass(frozen=True)
class Platform:
    base_url: str
    settings: Settings
    database_url: str
    sandbox: BackgroundSandbox

    def am_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {AM_TOKEN}"}

    def ops_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {OPS_TOKEN}"}


@pytest.fixture(scope="session")
def platform(database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    from deployments import launcher

    data_dir: Path = tmp_path_factory.mktemp("aiops-data")
    settings = Settings.from_env(
        database_url=database_url,
        redis_url=redis_url,
        alertmanager_token=AM_TOKEN,
        ops_api_token=OPS_TOKEN,
        data_dir=data_dir,
        redis_prefix=f"aiops-e2e-{uuid.uuid4().hex[:8]}:",
        max_body_bytes=8 * 1024 * 1024,
    )
    sandbox = BackgroundSandbox(fast_demo_scenario(), bookmark_interval=0.5).start()
    # Watchers are started by the tests that need them (test_watchers_in_ray.py).
    settings = settings.model_copy(update={"kubeconfig": str(sandbox.kubeconfig_path), "watch_enabled": False})
    launcher.init_ray(num_cpus=2, dashboard=False)
    try:
        base = launcher.deploy(settings, port=free_port())
        yield Platform(base_url=base, settings=settings, database_url=database_url, sandbox=sandbox)
    finally:
        launcher.shutdown()
        sandbox.stop()
