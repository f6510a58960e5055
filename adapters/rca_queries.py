"""Answers to the RCA evidence plan's typed queries, asked of the Kubernetes MCP server.

The evidence plan (``core.rca.evidence``) is sans-I/O: it yields read-only queries and
is sent their results. This module is the one place that turns those queries into calls
of the MCP server's *read* tools (``get_object``, ``list_objects``, ``object_events``,
``pod_logs``), through a read-only :class:`adapters.mcp_client.KubeMcpClient`: the
server is started with ``--read-only`` (mutating tools are not even registered) and the
client refuses any non-read tool before sending. So the RCA path reaches the cluster
exactly the way the LLM's tools do, with the same namespace policy and the same
server-side redaction, and holds no write verb at all.

Every failure becomes ``Unavailable(reason)`` instead of an exception: a pod that is
already gone ("not found: ..."), a 403 from RBAC ("forbidden by RBAC: ..."), a kind no
tool serves, a refused namespace, an MCP server that died or did not answer in time.
The plan records the reason as evidence ("logs unavailable: forbidden") and goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

from adapters.kube_reads import CLUSTER_KINDS, EVENT_KINDS, MAX_TAIL_LINES, OBJECT_KINDS
from adapters.mcp_client import McpUnavailable, ToolFailed, ToolRefused
from core.errors import AiopsError, TemporaryError
from core.rca import (
    Endpoints,
    GetNode,
    GetObject,
    ListEvents,
    ListObjects,
    PodLogs,
    Query,
    Result,
    RolloutHistory,
    Unavailable,
)

log = logging.getLogger(__name__)

# The tools this module calls; every one is a read tool of core/tools.py.
RCA_TOOLS = ("get_object", "list_objects", "object_events", "pod_logs")


class ReadTools(Protocol):
    """What the answerer needs of an MCP client: ``await call(tool, params) -> dict``."""

    async def call(self, tool: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]: ...


def _owned_by(obj: Mapping[str, Any], kind: str, name: str) -> bool:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(isinstance(ref, Mapping) and ref.get("kind") == kind and ref.get("name") == name for ref in refs)


def _scoped(kind: str, namespace: str | None) -> dict[str, Any]:
    return {} if kind in CLUSTER_KINDS or not namespace else {"namespace": namespace}


def _field(result: Mapping[str, Any], key: str, tool: str) -> Any:
    if key not in result:
        raise ToolFailed(tool, f"the answer has no {key!r} field")
    return result[key]


async def _get(tools: ReadTools, kind: str, namespace: str | None, name: str) -> Result:
    if kind not in OBJECT_KINDS:
        return Unavailable(f"unsupported kind {kind!r} (the read tools serve {', '.join(OBJECT_KINDS)})")
    result = await tools.call("get_object", {"kind": kind, "name": name, **_scoped(kind, namespace)})
    obj = _field(result, "object", "get_object")
    return obj if isinstance(obj, Mapping) else Unavailable("get_object answered something that is not an object")


async def _list(tools: ReadTools, kind: str, namespace: str | None, selector: str | None) -> list[Any]:
    params: dict[str, Any] = {"kind": kind, **_scoped(kind, namespace)}
    if selector:
        params["label_selector"] = selector
    found = _field(await tools.call("list_objects", params), "items", "list_objects")
    return list(found) if isinstance(found, list) else []


async def _ask(tools: ReadTools, query: Query) -> Result:
    match query:
        case GetObject(kind=kind, namespace=namespace, name=name):
            return await _get(tools, kind, namespace, name)
        case GetNode(name=name):
            return await _get(tools, "Node", None, name)
        case Endpoints(namespace=namespace, service=service):
            return await _get(tools, "Endpoints", namespace, service)
        case ListEvents(namespace=namespace, kind=kind, name=name):
            params: dict[str, Any] = {"name": name}
            if kind in EVENT_KINDS:
                params["kind"] = kind
            if namespace:
                params["namespace"] = namespace
            events = _field(await tools.call("object_events", params), "events", "object_events")
            return list(events) if isinstance(events, list) else []
        case PodLogs(namespace=namespace, pod=pod, container=container, previous=previous, tail_lines=tail):
            params = {
                "namespace": namespace,
                "name": pod,
                "container": container,
                "previous": previous,
                "tail_lines": max(1, min(int(tail), MAX_TAIL_LINES)),
            }
            text = _field(await tools.call("pod_logs", params), "log", "pod_logs")
            return text if isinstance(text, str) else Unavailable("pod_logs answered no log text")
        case ListObjects(kind=kind, namespace=namespace, label_selector=selector):
            if kind not in OBJECT_KINDS:
                return Unavailable(f"unsupported kind {kind!r} (the read tools serve {', '.join(OBJECT_KINDS)})")
            return {"items": await _list(tools, kind, namespace, selector)}
        case RolloutHistory(namespace=namespace, deployment=deployment):
            replica_sets = await _list(tools, "ReplicaSet", namespace, None)
            return [rs for rs in replica_sets if isinstance(rs, Mapping) and _owned_by(rs, "Deployment", deployment)]
    return Unavailable(f"unsupported query {type(query).__name__}")  # pragma: no cover - exhaustive above


async def answer(tools: ReadTools, query: Query) -> Result:
    """The cluster's answer to one evidence query, via the MCP read tools; never raises."""
    try:
        return await _ask(tools, query)
    except ToolFailed as e:  # the server's words: "not found: ...", "forbidden by RBAC: ...", "refused: ..."
        return Unavailable(e.message[:300])
    except ToolRefused as e:
        return Unavailable(f"refused by the read-only client: {e}")
    except McpUnavailable as e:
        return Unavailable(f"MCP server unavailable: {e}")
    except (TemporaryError, TimeoutError) as e:
        return Unavailable(f"temporarily unavailable: {e}")
    except AiopsError as e:
        return Unavailable(f"{type(e).__name__}: {e}")
    except Exception as e:  # a broken session or an odd payload must not end the analysis
        log.warning("RCA query %r failed unexpectedly: %s: %s", query, type(e).__name__, e)
        return Unavailable(f"query failed: {type(e).__name__}: {e}"[:300])


class McpAnswerer:
    """An answerer bound to one read-only client: ``await McpAnswerer(tools)(query) -> Result``."""

    def __init__(self, tools: ReadTools) -> None:
        self.tools = tools

    async def __call__(self, query: Query) -> Result:
        return await answer(self.tools, query)


__all__ = ["RCA_TOOLS", "McpAnswerer", "ReadTools", "answer"]
