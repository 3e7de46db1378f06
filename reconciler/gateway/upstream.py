"""Forwarding allowed requests to the platform API (``--upstream``) over HTTP, with httpx."""

from __future__ import annotations

import httpx

from reconciler.gateway.forwarding import UpstreamAnswer, UpstreamUnavailable

__all__ = ["HttpUpstream"]


class HttpUpstream:
    """A pooled client to one upstream base URL; redirects are passed back, never followed."""

    def __init__(self, base_url: str, *, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.AsyncClient(timeout=timeout, follow_redirects=False)

    async def forward(
        self, method: str, path: str, query: str, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> UpstreamAnswer:
        url = self.base_url + path + (f"?{query}" if query else "")
        try:
            response = await self._client.request(method, url, headers=headers, content=body)
        except httpx.HTTPError as error:
            raise UpstreamUnavailable(type(error).__name__) from error
        return UpstreamAnswer(response.status_code, list(response.headers.items()), response.content)

    async def close(self) -> None:
        await self._client.aclose()
