from __future__ import annotations

from pathlib import Path

import pytest

from config.loader import check_file, load_playbooks, rules_from_text
from core.errors import ConfigError


def write(tmp_path: Path, text: str, name: str = "rules.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "path", "quoted"),
    [
        pytest.param(
            "rules:\n  - name: a\n  - name: b\n  - name: c\n  - name: d\n    match: {severity: [urgent]}\n",
            "rules[3].match.severity[0]",
            "'urgent'",
            id="bad-severity-with-index",
        ),
        pytest.param("rules:\n  - name: a\n    group_bye: [x]\n", "rules[0].group_bye", "['x']", id="unknown-key"),
        pytest.param(
            "rules:\n  - name: a\n    match: {matchers: ['pod=~\"(\"']}\n",
            "rules[0].match.matchers",
            "invalid regex",
            id="bad-regex",
        ),
        pytest.param("rules:\n  - name: a\n    cooldown: soon\n", "rules[0].cooldown", "'soon'", id="bad-duration"),
        pytest.param("rules:\n  - name: a\n  - name: a\n", "rules", "duplicate rule name", id="duplicate-names"),
        pytest.param("rules:\n  - {}\n", "rules[0].name", "Field required", id="missing-name"),
    ],
)
def test_config_check_names_file_dotted_path_and_bad_value(tmp_path: Path, text: str, path: str, quoted: str) -> None:
    file = write(tmp_path, text)
    problems = check_file(file)
    assert problems, "expected problems"
    rendered = [str(p) for p in problems]
    assert any(p.startswith(f"{file}: {path}") and quoted in p for p in rendered), rendered


def test_invalid_yaml_reports_file_and_line(tmp_path: Path) -> None:
    file = write(tmp_path, "rules:\n  - name: a\n   bad: [\n")
    (problem,) = check_file(file)
    assert problem.file == str(file) and "line" in problem.message and "invalid YAML" in problem.message


def test_unknown_file_kind_is_an_error(tmp_path: Path) -> None:
    (problem,) = check_file(write(tmp_path, "routes: []\n"))
    assert "expected top-level 'rules', 'playbook', 'policy' or 'chat', got routes" in problem.message


def test_policy_and_chat_files_are_checked_by_their_own_schemas(tmp_path: Path) -> None:
    policy = write(tmp_path, "policy:\n  roles:\n    - {identity: cli:x, role: emperor}\n", "policy.yaml")
    assert any("emperor" in str(p) for p in check_file(policy)), check_file(policy)
    chat = write(tmp_path, "chat:\n  nonsense_key: 1\n", "chat.yaml")
    assert any("nonsense_key" in str(p) for p in check_file(chat)), check_file(chat)


def test_every_problem_is_reported_not_only_the_first(tmp_path: Path) -> None:
    problems = check_file(write(tmp_path, "rules:\n  - name: a\n    x: 1\n  - name: b\n    y: 2\n"))
    assert {p.path for p in problems} == {"rules[0].x", "rules[1].y"}


def test_compiling_invalid_rules_raises_config_error_with_problems() -> None:
    with pytest.raises(ConfigError) as caught:
        rules_from_text("rules:\n  - name: a\n    match: {source: [carrier-pigeon]}\n", "mine.yaml")
    assert any("mine.yaml: rules[0].match.source[0]" in p for p in caught.value.problems)


def test_playbook_steps_default_to_high_risk_and_need_unique_names(tmp_path: Path) -> None:
    good = write(tmp_path, "playbook:\n  name: p\n  steps:\n    - {name: s, tool: delete_pod}\n", "p.yaml")
    assert load_playbooks([good])["p"].steps[0].risk.value == "high"
    bad = write(
        tmp_path, "playbook:\n  name: q\n  steps:\n    - {name: s, tool: a}\n    - {name: s, tool: b}\n", "q.yaml"
    )
    assert any("duplicate step names" in str(p) for p in check_file(bad))
