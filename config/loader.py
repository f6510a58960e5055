"""Read YAML, validate it against the strict schemas, compile it into core objects.

Errors are collected, never thrown one at a time: ``aiops config check`` must show an
operator every problem in a file in one go, each as ``file: rules[3].match.severity:
message (got 'urgent')``. Compilation happens once, at load; the hot path only sees
core's frozen ``RuleSet``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from config.schema import PlaybookFile, PlaybookSpec, RulesFile, RuleSpec
from core.errors import ConfigError
from core.matchers import parse_matcher
from core.rules import Inhibit, Match, Rule, RuleSet

MAX_FILE_BYTES = 2 * 1024 * 1024
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Problem:
    file: str
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}: {self.path}" if self.path else self.file
        return f"{where}: {self.message}"


def dotted(loc: Sequence[str | int]) -> str:
    """``('rules', 3, 'match', 'severity', 0)`` -> ``rules[3].match.severity[0]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def validation_problems(file: str, error: ValidationError) -> list[Problem]:
    problems = []
    for item in error.errors():
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] not in ("missing",) and "input" in item:
            message += f" (got {_short(item['input'])})"
        problems.append(Problem(file, dotted(item["loc"]), message))
    return problems


def read_yaml(path: Path) -> Any:
    """Parse one YAML document; ConfigError names the file and the line of a syntax error."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ConfigError(f"{path}: file is {size} bytes, over the {MAX_FILE_BYTES} byte limit")
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror or e}") from e
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text: {e}") from e
    return parse_yaml_text(text, str(path))


def parse_yaml_text(text: str, name: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError(f"{name}:{where}: invalid YAML: {problem}") from e


def _validate(model: type[M], data: Any, name: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as e:
        problems = validation_problems(name, e)
        raise ConfigError(f"{name}: {len(problems)} problem(s)", tuple(str(p) for p in problems)) from e


def compile_rule(spec: RuleSpec) -> Rule:
    match = Match(
        sources=frozenset(s.value for s in spec.match.source),
        reasons=frozenset(spec.match.reason),
        severities=frozenset(spec.match.severity),
        namespaces=tuple(spec.match.namespaces),
        matchers=tuple(parse_matcher(m) for m in spec.match.matchers),
    )
    inhibit = tuple(
        Inhibit(target=tuple(parse_matcher(m) for m in clause.target), equal=tuple(clause.equal))
        for clause in spec.inhibit
    )
    return Rule(
        name=spec.name,
        description=spec.description,
        match=match,
        set_severity=spec.set_severity,
        raise_severity=spec.raise_severity,
        playbook=spec.playbook,
        notify=tuple(spec.notify),
        continue_=spec.continue_,
        drop=spec.drop,
        group_by=tuple(spec.group_by),
        group_wait=spec.group_wait,
        cooldown=spec.cooldown,
        inhibit=inhibit,
    )


def rules_from_data(data: Any, name: str = "<rules>") -> RuleSet:
    spec = _validate(RulesFile, data, name)
    return RuleSet(rules=tuple(compile_rule(r) for r in spec.rules))


def rules_from_text(text: str, name: str = "<rules>") -> RuleSet:
    return rules_from_data(parse_yaml_text(text, name), name)


def load_rules(path: str | Path | None = None) -> RuleSet:
    """Load a rules file; ``None`` loads the shipped default ``config/rules.yaml``."""
    target = Path(path) if path else default_rules_path()
    return rules_from_data(read_yaml(target), str(target))


def load_playbook(path: str | Path) -> PlaybookSpec:
    target = Path(path)
    return _validate(PlaybookFile, read_yaml(target), str(target)).playbook


def load_playbooks(paths: Iterable[str | Path]) -> dict[str, PlaybookSpec]:
    """Load playbook files (or directories of ``*.yaml``) into a name -> spec map."""
    found: dict[str, PlaybookSpec] = {}
    problems: list[str] = []
    for entry in paths:
        entry_path = Path(entry)
        files = sorted(entry_path.glob("*.yaml")) if entry_path.is_dir() else [entry_path]
        for file in files:
            try:
                playbook = load_playbook(file)
            except ConfigError as e:
                problems.extend(e.problems or (str(e),))
                continue
            if playbook.name in found:
                problems.append(f"{file}: playbook.name: duplicate playbook name {playbook.name!r}")
            found[playbook.name] = playbook
    if problems:
        raise ConfigError("invalid playbooks", tuple(problems))
    return found


def default_rules_path() -> Path:
    return Path(str(resources.files("config").joinpath("rules.yaml")))


def default_playbooks_dir() -> Path:
    return Path(str(resources.files("config").joinpath("playbooks")))


def check_yaml_file(path: str | Path, problems: Callable[[Any, str], list[Problem]]) -> list[Problem]:
    """Read one YAML file and hand it to ``problems``; a read or syntax error is a problem too."""
    target = Path(path)
    try:
        data = read_yaml(target)
    except ConfigError as e:
        return [Problem(str(target), "", str(e).removeprefix(f"{target}: ").removeprefix(f"{target}:"))]
    return problems(data, str(target))


_KINDS = "'rules', 'playbook', 'policy' or 'chat'"


def _any_kind_problems(data: Any, name: str) -> list[Problem]:
    if not isinstance(data, dict):
        return [Problem(name, "", f"expected a mapping with {_KINDS}, got {_short(data)}")]
    model: type[BaseModel]
    if "rules" in data:
        model = RulesFile
    elif "playbook" in data:
        model = PlaybookFile
    elif "policy" in data:
        from config.policy import policy_problems

        return policy_problems(data, name)
    elif "chat" in data:
        from config.chat import chat_problems

        return chat_problems(data, name)
    else:
        keys = ", ".join(map(str, data)) or "nothing"
        return [Problem(name, "", f"unknown file kind: expected top-level {_KINDS}, got {keys}")]
    try:
        model.model_validate(data)
    except ValidationError as e:
        return validation_problems(name, e)
    return []


def check_file(path: str | Path) -> list[Problem]:
    """Validate one file of any kind (chosen by its top-level key); return every problem."""
    return check_yaml_file(path, _any_kind_problems)
