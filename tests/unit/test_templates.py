from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from core.errors import ApprovalError, ConfigError
from core.models import Incident, IncidentId, IncidentStatus, ObjectRef, Severity
from core.templates import check_target, incident_context, render_action, render_value
from core.tools import Action, ParamValue

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


def incident(namespace: str | None = "shop", **labels: str) -> Incident:
    return Incident(
        id=IncidentId("inc-1"),
        group_key="k",
        status=IncidentStatus.OPEN,
        severity=Severity.WARNING,
        title="api crashing",
        rule="crashloop",
        namespace=namespace,
        object=ObjectRef(kind="Pod", namespace=namespace, name="api-7d9-x2"),
        labels={"deployment": "api", "pod": "api-7d9-x2", "container": "app", **labels},
        opened_at=NOW,
        updated_at=NOW,
    )


CONTEXT = incident_context(incident(), rca={"container": "app", "replicas": 3, "empty": None, "nested": {"a": 1}})


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        pytest.param("{{ incident.namespace }}", "shop", id="namespace"),
        pytest.param("{{incident.object.name}}", "api-7d9-x2", id="object-name-without-spaces"),
        pytest.param("{{ rca.container }}", "app", id="rca-value"),
        pytest.param("{{ incident.labels.deployment }}", "api", id="label"),
        pytest.param("{{ rca.replicas }}", 3, id="whole-placeholder-keeps-its-type"),
        pytest.param("deploy/{{ incident.labels.deployment }}-{{ rca.replicas }}", "deploy/api-3", id="mixed-text"),
        pytest.param(1.5, 1.5, id="non-string-passes-through"),
        pytest.param("plain text", "plain text", id="no-placeholder"),
    ],
)
def test_placeholders_render_from_the_context(template: ParamValue, expected: ParamValue) -> None:
    assert render_value(template, CONTEXT) == expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        pytest.param("{{ rca.image }}", "rca has no 'image'", id="unknown-variable"),
        pytest.param("{{ nothing.here }}", "the context has no 'nothing'", id="unknown-root"),
        pytest.param("{{ rca.empty }}", "has no value", id="none-value"),
        pytest.param("{{ rca.nested }}", "not a single value", id="mapping-value"),
        pytest.param("{{ rca.container.name }}", "is a value, not a mapping", id="path-through-a-value"),
        pytest.param("{{ rca.container", "invalid template", id="unclosed-braces"),
        pytest.param("{{ rca.container | upper }}", "invalid template", id="filters-are-not-supported"),
        pytest.param("{% if x %}", "invalid template", id="jinja-blocks-are-not-supported"),
    ],
)
def test_bad_templates_are_config_errors_that_say_why(template: str, message: str) -> None:
    with pytest.raises(ConfigError, match="params.name") as caught:
        render_value(template, CONTEXT, "params.name")
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("tool", "params", "namespace", "message"),
    [
        pytest.param("delete_pod", {"namespace": "shop", "name": ""}, "shop", "rendered empty", id="empty-name"),
        pytest.param("delete_pod", {"namespace": "shop", "name": "  "}, "shop", "rendered empty", id="blank-name"),
        pytest.param("delete_pod", {"namespace": "kube-system", "name": "x"}, "shop", "differs", id="wrong-namespace"),
        pytest.param("delete_pod", {"namespace": "shop", "name": "api-*"}, "shop", "not a plain", id="wildcard"),
        pytest.param("delete_pod", {"namespace": "shop", "name": "a/b"}, "shop", "not a plain", id="path-in-name"),
        pytest.param("delete_pod", {"namespace": "", "name": "x"}, "shop", "rendered empty", id="empty-namespace"),
        pytest.param("delete_pod", {"namespace": "shop", "name": "x"}, None, "no namespace", id="incident-no-ns"),
        pytest.param("get_pod", {"namespace": "other", "name": "x"}, "shop", "differs", id="read-in-other-ns"),
    ],
)
def test_refused_targets_raise_approval_error(
    tool: str, params: dict[str, ParamValue], namespace: str | None, message: str
) -> None:
    with pytest.raises(ApprovalError, match=message):
        check_target(Action(tool=tool, params=params), namespace)


@pytest.mark.parametrize(
    ("tool", "params", "namespace"),
    [
        pytest.param("cordon_node", {"name": "node-1"}, None, id="cluster-scoped-tool-without-namespace"),
        pytest.param("delete_pod", {"namespace": "shop", "name": "api-1"}, "shop", id="same-namespace"),
        pytest.param("list_nodes", {}, None, id="read-without-target"),
    ],
)
def test_acceptable_targets_pass(tool: str, params: dict[str, ParamValue], namespace: str | None) -> None:
    check_target(Action(tool=tool, params=params), namespace)


def test_a_template_that_renders_a_wrong_namespace_target_is_refused() -> None:
    context = incident_context(incident(), rca={"namespace": "kube-system"})
    with pytest.raises(ApprovalError, match="differs from the incident's namespace 'shop'"):
        render_action("delete_pod", {"namespace": "{{ rca.namespace }}", "name": "x"}, context, "shop")


def test_a_template_that_renders_an_empty_target_is_refused() -> None:
    context = incident_context(incident(pod=""))
    with pytest.raises(ApprovalError, match="rendered empty"):
        render_action(
            "delete_pod",
            {"namespace": "{{ incident.namespace }}", "name": "{{ incident.labels.pod }}"},
            context,
            "shop",
        )


@pytest.mark.parametrize(
    ("tool", "params", "message"),
    [
        pytest.param("delete_pod", {"namespace": "shop"}, r"needs parameter\(s\) name", id="missing-required-param"),
        pytest.param("launch_missiles", {}, "unknown tool", id="unknown-tool"),
    ],
)
def test_render_action_refuses_incomplete_or_unknown_calls(tool: str, params: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        render_action(tool, params, CONTEXT, "shop")


def test_rendered_action_is_exactly_what_will_run() -> None:
    action = render_action(
        "scale_deployment",
        {
            "namespace": "{{ incident.namespace }}",
            "name": "{{ incident.labels.deployment }}",
            "replicas": "{{ rca.replicas }}",
        },
        CONTEXT,
        "shop",
    )
    assert action == Action(tool="scale_deployment", params={"namespace": "shop", "name": "api", "replicas": 3})
    assert action.describe() == "scale_deployment(name=api, namespace=shop, replicas=3)"
