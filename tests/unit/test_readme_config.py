"""The README's configuration table names exactly the settings the platform reads."""

from __future__ import annotations

import re
from pathlib import Path

from config.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def _table_names() -> set[str]:
    text = README.read_text()
    section = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1]))
    return names


def _setting_names() -> set[str]:
    names = set()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        choices = getattr(alias, "choices", None)
        names.add(str(choices[0]) if choices else name.upper())
    return names


def test_every_setting_is_documented_and_every_documented_variable_is_a_setting() -> None:
    documented, settings = _table_names(), _setting_names()
    assert settings - documented == set(), "settings missing from the README's Configuration table"
    assert documented - settings == set(), "README documents variables the settings do not read"
