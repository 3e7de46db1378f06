"""What the gateway asks of the platform API it forwards allowed requests to (``--upstream``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["Upstream", "UpstreamAnswer", "UpstreamUnavailable"]


class UpstreamUnavailable(Exception):
    """The platform API could not be reached or did not answer."""


@dataclass(frozen=True)
class UpstreamAnswer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


class Upstream(Protocol):
    async def forward(
        self, method: str, path: str, query: str, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> UpstreamAnswer:
        """The upstream's answer; :class:`UpstreamUnavailable` when there is none."""
