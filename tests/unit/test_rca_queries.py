"""How the RCA evidence plan's queries become MCP read-tool calls, and every failure an Unavailable.

A fake of the read-only MCP client (it records calls and answers from a table) stands in for
the server here; tests/integration/test_rca_worker.py and test_rca_eval_mcp.py drive the
real ``aiops mcp-server --read-only`` subprocess.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from adapters.mcp_client import McpUnavailable, ToolFailed, ToolRefused
from adapters.rca_queries import RCA_TOOLS, answer
from core.errors import TemporaryError
from core.rca import (
    Endpoints,
    GetNode,
    GetObject,
    ListEvents,
    ListObjects,
    PodLogs,
    Query,
    RolloutHistory,
    Unavailable,
)
from core.tools import READ_ONLY

POD = {"metadata": {"name": "api-1", "namespace": "shop"}, "spec": {}, "status": {}}
RS_OWNED = {"metadata": {"name": "api-7d9", "ownerReferences": [{"kind": "Deployment", "name": "api"}]}}
RS_OTHER = {"metadata": {"name": "web-5c4", "ownerReferences": [{"kind": "Deployment", "name": "web"}]}}


class FakeTools:
    """Answers ``call`` from ``replies`` (a dict, or an exception to raise); records every call."""

    def __init__(self, reply: dict[str, Any] | BaseException) -> None:
        self.reply = reply
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def call(self, tool: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        self.calls.append((tool, dict(params or {})))
        if isinstance(self.reply, BaseException):
            raise self.reply
        return self.reply


@pytest.mark.parametrize(
    ("query", "reply", "call", "expected"),
    [
        pytest.param(GetObject("Pod", "shop", "api-1"), {"object": POD},
                     ("get_object", {"kind": "Pod", "namespace": "shop", "name": "api-1"}), POD, id="get-pod"),
        pytest.param(GetNode("node-1"), {"object": {"metadata": {"name": "node-1"}}},
                     ("get_object", {"kind": "Node", "name": "node-1"}), {"metadata": {"name": "node-1"}},
                     id="node-without-namespace"),
        pytest.param(Endpoints("shop", "api"), {"object": {"subsets": []}},
                     ("get_object", {"kind": "Endpoints", "namespace": "shop", "name": "api"}), {"subsets": []},
                     id="endpoints"),
        pytest.param(ListEvents(None, "Node", "node-1"), {"events": [{"reason": "NodeNotReady"}]},
                     ("object_events", {"name": "node-1", "kind": "Node"}), [{"reason": "NodeNotReady"}],
                     id="node-events-in-every-namespace"),
        pytest.param(ListEvents("shop", "Gadget", "g"), {"events": []},
                     ("object_events", {"name": "g", "namespace": "shop"}), [], id="events-of-an-uncovered-kind"),
        pytest.param(PodLogs("shop", "api-1", "app", True, 300), {"log": "boom\n"},
                     ("pod_logs", {"namespace": "shop", "name": "api-1", "container": "app", "previous": True,
                                   "tail_lines": 300}), "boom\n", id="previous-logs"),
        pytest.param(PodLogs("shop", "api-1", "app", False, 99_999), {"log": ""},
                     ("pod_logs", {"namespace": "shop", "name": "api-1", "container": "app", "previous": False,
                                   "tail_lines": 2000}), "", id="tail-bounded-to-the-tool-maximum"),
        pytest.param(ListObjects("Pod", "shop", "app=api"), {"items": [POD]},
                     ("list_objects", {"kind": "Pod", "namespace": "shop", "label_selector": "app=api"}),
                     {"items": [POD]}, id="list-with-selector"),
        pytest.param(RolloutHistory("shop", "api"), {"items": [RS_OWNED, RS_OTHER]},
                     ("list_objects", {"kind": "ReplicaSet", "namespace": "shop"}), [RS_OWNED],
                     id="rollout-history-is-the-owned-replicasets"),
    ],
)
async def test_each_query_is_one_read_tool_call(
    query: Query, reply: dict[str, Any], call: tuple[str, dict[str, Any]], expected: Any
) -> None:
    tools = FakeTools(reply)
    assert await answer(tools, query) == expected
    assert tools.calls == [call]
    assert call[0] in RCA_TOOLS and set(RCA_TOOLS) <= READ_ONLY


@pytest.mark.parametrize(
    ("error", "said"),
    [
        pytest.param(ToolFailed("get_object", 'not found: pods "api-1" not found'), "not found", id="gone-pod"),
        pytest.param(ToolFailed("get_object", "forbidden by RBAC: 403"), "forbidden by RBAC", id="rbac-403"),
        pytest.param(ToolRefused("tool 'delete_pod' mutates the cluster"), "refused by the read-only client",
                     id="refused-locally"),
        pytest.param(McpUnavailable("the MCP session is not open"), "MCP server unavailable", id="server-gone"),
        pytest.param(TemporaryError("no answer within 10s"), "temporarily unavailable", id="call-timeout"),
        pytest.param(TimeoutError(), "temporarily unavailable", id="timeout-error"),
        pytest.param(RuntimeError("session closed"), "query failed: RuntimeError", id="anything-else"),
    ],
)
async def test_every_failure_becomes_unavailable_with_its_reason(error: BaseException, said: str) -> None:
    result = await answer(FakeTools(error), GetObject("Pod", "shop", "api-1"))
    assert isinstance(result, Unavailable) and said in result.reason


@pytest.mark.parametrize(
    ("query", "reply", "said"),
    [
        pytest.param(GetObject("Secret", "shop", "db"), {"object": {}}, "unsupported kind 'Secret'", id="secret"),
        pytest.param(ListObjects("ConfigMap", "shop"), {"items": []}, "unsupported kind 'ConfigMap'", id="configmap"),
        pytest.param(GetObject("Pod", "shop", "api-1"), {"unexpected": 1}, "no 'object' field", id="odd-answer"),
        pytest.param(GetObject("Pod", "shop", "api-1"), {"object": "text"}, "not an object", id="object-not-a-dict"),
        pytest.param(PodLogs("shop", "api-1", "app"), {"log": None}, "no log text", id="log-not-text"),
    ],
)
async def test_uncovered_kinds_are_not_asked_and_odd_answers_are_unavailable(
    query: Query, reply: dict[str, Any], said: str
) -> None:
    tools = FakeTools(reply)
    result = await answer(tools, query)
    assert isinstance(result, Unavailable) and said in result.reason
    if "unsupported" in said:
        assert tools.calls == []
