"""Which scope a request needs: the routes of the scope catalog, matched most specific first."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    scope: str
    pattern: re.Pattern[str]
    specificity: tuple[int, ...]  # literal segments win over {params}, position by position


class RouteTable:
    """Built from a ScopeCatalog document (as JSON); unknown routes match nothing (404, never forwarded)."""

    def __init__(self, catalog: dict[str, Any] | None) -> None:
        routes = []
        for scope in (catalog or {}).get("spec", {}).get("scopes", []):
            for route in scope.get("routes", []):
                segments = route["path"].strip("/").split("/")
                regex = "".join(
                    "/[^/]+" if segment.startswith("{") else "/" + re.escape(segment) for segment in segments
                )
                routes.append(
                    Route(
                        method=route["method"],
                        template=route["path"],
                        scope=scope["name"],
                        pattern=re.compile(regex + r"/?\Z"),
                        specificity=tuple(0 if segment.startswith("{") else 1 for segment in segments),
                    )
                )
        self.routes = sorted(routes, key=lambda route: route.specificity, reverse=True)

    def match(self, method: str, path: str) -> Route | None:
        for route in self.routes:
            if route.method == method and route.pattern.match(path):
                return route
        return None
