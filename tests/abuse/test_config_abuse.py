"""Rule and playbook YAML: arbitrary text and mutated shipped files load or give a ConfigError.

``config.loader`` must never let another exception out: ``aiops config check`` and a
``serve deploy`` with a bad file must show what is wrong and where (a dotted path such as
``rules[3].match.severity``), and keep the old configuration.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.loader import (
    check_file,
    default_playbooks_dir,
    default_rules_path,
    load_playbook,
    rules_from_data,
    rules_from_text,
)
from core.errors import ConfigError
from tests.abuse.tally import count

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
SHIPPED_RULES = yaml.safe_load(default_rules_path().read_text())
SHIPPED_PLAYBOOK = yaml.safe_load((default_playbooks_dir() / "crashloop.yaml").read_text())
DOTTED = re.compile(r"^rules(\[\d+\](\.|\[|$)|$)")  # the rest is the user's own key text

yaml_tokens = st.sampled_from(
    [
        "rules:",
        "playbook:",
        "- ",
        "  ",
        "\n",
        "name: x",
        "match:",
        'matchers: [a=~"("]',
        "severity: [urgent]",
        "steps:",
        "tool: delete_pod",
        "risk: high",
        "&a [*a, *a]",
        "*a",
        "!!python/object:os.system",
        "{",
        "}",
        "'",
        "group_wait: 5 fortnights",
        ": :",
        "\t",
        "---",
        "%YAML 1.1",
        "? ",
        "[",
        "]",
        "- name: y",
    ]
)
yaml_texts = st.text(max_size=200) | st.lists(yaml_tokens, max_size=30).map("".join)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=15),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)


def _paths(node: Any, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out += _paths(value, (*prefix, index))
    return out


@st.composite
def mutated(draw: st.DrawFn, original: Any) -> tuple[Any, tuple[str | int, ...]]:
    data = copy.deepcopy(original)
    path = draw(st.sampled_from(_paths(data)))
    parent = data
    for part in path[:-1]:
        parent = parent[part]
    if draw(st.booleans()) and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(json_values)
    return data, path


def _problems(error: ConfigError) -> tuple[str, ...]:
    return error.problems or (str(error),)


@SETTINGS
@given(yaml_texts)
def test_arbitrary_yaml_text_is_rules_or_a_config_error(text: str) -> None:
    count("config: arbitrary rules text")
    problems: tuple[str, ...] = ()
    try:
        rules_from_text(text, "abuse.yaml")
    except ConfigError as e:
        problems = _problems(e)
    assert all(p.startswith("abuse.yaml") for p in problems)


@settings(SETTINGS, max_examples=100)
@given(mutated(SHIPPED_RULES))
def test_a_mutated_shipped_rules_file_loads_or_names_the_dotted_path(case: tuple[Any, tuple[str | int, ...]]) -> None:
    count("config: mutated shipped rules")
    data, path = case
    try:
        rules_from_data(data, "rules.yaml")  # the text step is the property above
    except ConfigError as e:
        problems = _problems(e)
    else:
        return
    for problem in problems:
        assert problem.startswith("rules.yaml")
        where = problem.removeprefix("rules.yaml: ").split(": ", 1)[0]
        assert DOTTED.match(where) or where == "", problem
    if len(path) >= 2:
        assert any(f"rules[{path[1]}]" in p or p.startswith("rules.yaml: rules:") for p in problems), problems


@SETTINGS
@given(st.one_of(yaml_texts, mutated(SHIPPED_PLAYBOOK).map(lambda case: yaml.safe_dump(case[0]))))
def test_arbitrary_or_mutated_playbooks_load_or_give_a_config_error(
    tmp_path_factory: pytest.TempPathFactory, text: str
) -> None:
    count("config: arbitrary/mutated playbook")
    path = Path(tmp_path_factory.mktemp("pb")) / "playbook.yaml"
    path.write_text(text, encoding="utf-8")
    problems: tuple[str, ...] = ()
    try:
        load_playbook(path)
    except ConfigError as e:
        problems = _problems(e)
    assert all(str(path) in p for p in problems)
    for problem in check_file(path):  # aiops config check: a list of problems, never an exception
        assert str(path) == problem.file
