"""Service detectors: a selector that matches no ready pod.

A Service with a selector but no ready endpoint address drops every connection; it is
the symptom users see first, while the cause is usually a pod finding. Services
without a selector (endpoints managed by hand) and ExternalName Services have no
endpoints to check and yield nothing.

The Service alone cannot tell: pass its endpoints as a core/v1 ``Endpoints`` object,
one ``EndpointSlice``, a list of EndpointSlices, or an ``EndpointSliceList``. ``None``
means "not known" and yields nothing; an Endpoints object with no subsets means
"no endpoints". EndpointSlice endpoints with ``conditions.ready`` unset count as
ready, as the API documents.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from core.detectors.findings import DetailValue, Finding
from core.detectors.objects import items, mapping, name_of, namespace_of, sub, text
from core.models import Reason, Severity


def count_addresses(endpoints: Any) -> tuple[int, int]:
    """(ready, not ready) addresses in an Endpoints object or EndpointSlice(s)."""
    slices: tuple[Mapping[str, Any], ...]
    if isinstance(endpoints, Sequence) and not isinstance(endpoints, str | bytes):
        slices = items(endpoints)
    elif isinstance(endpoints, Mapping) and "items" in endpoints:
        slices = items(endpoints.get("items"))
    else:
        slices = (mapping(endpoints),)
    ready = not_ready = 0
    for piece in slices:
        for subset in items(piece.get("subsets")):
            ready += len(items(subset.get("addresses")))
            not_ready += len(items(subset.get("notReadyAddresses")))
        for endpoint in items(piece.get("endpoints")):
            if sub(endpoint, "conditions").get("ready") is False:
                not_ready += 1
            else:
                ready += 1
    return ready, not_ready


def detect_service(service: Mapping[str, Any], endpoints: Any = None) -> list[Finding]:
    """ServiceNoEndpoints (warning) for a selector Service with zero ready addresses."""
    name = name_of(service)
    spec = sub(service, "spec")
    if name is None or endpoints is None or not sub(spec, "selector"):
        return []
    if text(spec.get("type")) == "ExternalName":
        return []
    ready, not_ready = count_addresses(endpoints)
    if ready > 0:
        return []
    selector = ",".join(f"{key}={value}" for key, value in sorted(sub(spec, "selector").items(), key=str))
    message = f"no ready endpoints for selector {selector}"
    if not_ready:
        message += f" ({not_ready} not ready)"
    details: dict[str, DetailValue] = {"selector": selector, "not_ready_addresses": not_ready}
    return [
        Finding(
            kind="Service",
            namespace=namespace_of(service),
            name=name,
            reason=Reason.SERVICE_NO_ENDPOINTS,
            severity=Severity.WARNING,
            message=message,
            details=details,
        )
    ]
