"""PyPI has unrelated packages called config, actors, adapters: ours must win."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["core", "config", "adapters", "actors", "deployments"])
def test_each_top_level_package_resolves_to_this_repository(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__file__ is not None
    assert Path(module.__file__).resolve().is_relative_to(REPO), module.__file__


def test_shipped_data_files_are_inside_the_config_package() -> None:
    from config.loader import default_rules_path

    assert default_rules_path().is_file()
    assert default_rules_path().resolve().is_relative_to(REPO)
