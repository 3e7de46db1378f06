"""Sending signed webhook requests safely over HTTP (httpx), with SSRF checks at send time.

Requests are signed as :mod:`reconciler.webhooks.messages` says. Before each request the host is resolved and
every address checked (no private, loopback, link-local or metadata address unless the dev loopback
flag allows loopback); the connection then goes to the checked address, with the original host
for TLS and the Host header, so a DNS answer cannot change between check and use. Redirects are
never followed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import ssl
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from reconciler.engine.executor import PingTarget
from reconciler.manifests.urls import literal_address, webhook_url_problems
from reconciler.webhooks.destinations import resolve_checked
from reconciler.webhooks.messages import Delivery, sign

__all__ = ["Delivery", "HttpPinger", "HttpTransport", "Request", "prepare", "resolve_checked", "send", "sign"]

USER_AGENT = "partnerctl-webhooks/1"
PING_TIMEOUT = 5.0
PING_CONCURRENCY = 16


@dataclass(frozen=True)
class Request:
    """A signed request, ready to go to an address that was checked just now."""

    url: str  # with the checked address in place of the host name
    host: str  # for TLS (SNI, certificate check) and the Host header
    headers: dict[str, str]
    body: bytes


def prepare(
    url: str, event_type: str, data: dict[str, Any], *, secrets: Sequence[str], message_id: str, allow_loopback: bool
) -> Request | Delivery:
    """Check the destination (SSRF) and sign with each of ``secrets`` (two during a rotation's overlap); a
    :class:`Delivery` refusal when it may not be sent."""
    problems = webhook_url_problems(url, allow_loopback=allow_loopback)
    if problems:
        return Delivery(False, error=f"refused: URL {problems[0]}")
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        address = resolve_checked(host, parts.port or (443 if parts.scheme == "https" else 80),
                                  allow_loopback=allow_loopback)  # fmt: skip
    except OSError as error:
        return Delivery(False, error=f"refused: {error}")
    # The real clock, not PARTNERCTL_NOW: receivers check webhook-timestamp against theirs (replay window).
    sent = datetime.now(UTC)
    body = json.dumps({"type": event_type, "timestamp": sent.isoformat(), "data": data}, separators=(",", ":")).encode()
    timestamp = int(sent.timestamp())
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secrets, message_id, timestamp, body),
        "host": parts.netloc.rsplit("@", 1)[-1],
    }
    netloc = f"[{address}]" if ":" in address else address
    if parts.port:
        netloc += f":{parts.port}"
    return Request(urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, "")), host, headers, body)


def outcome(response: httpx.Response) -> Delivery:
    if 200 <= response.status_code < 300:
        return Delivery(True, response.status_code)
    return Delivery(
        False, response.status_code, f"answered {response.status_code}", response.headers.get("retry-after")
    )


def send(
    url: str,
    event_type: str,
    data: dict[str, Any],
    *,
    secrets: Sequence[str],
    message_id: str | None = None,
    allow_loopback: bool = False,
    timeout: float = 15.0,
    client: httpx.Client | None = None,
) -> Delivery:
    """POST one signed event to ``url``; 2xx is success, anything else (redirects included) is not."""
    request = prepare(url, event_type, data, secrets=secrets, message_id=message_id or f"msg_{uuid.uuid4().hex}",
                      allow_loopback=allow_loopback)  # fmt: skip
    if isinstance(request, Delivery):
        return request
    owned = client is None
    client = client or httpx.Client(timeout=timeout, follow_redirects=False)
    try:
        response = client.post(request.url, content=request.body, headers=request.headers,
                               extensions={"sni_hostname": request.host})  # fmt: skip
    except httpx.TimeoutException:
        return Delivery(False, error="timed out")
    except httpx.HTTPError as error:
        return Delivery(False, error=f"{type(error).__name__}: connection failed")
    finally:
        if owned:
            client.close()
    return outcome(response)


class HttpPinger:
    """The connectivity checks' signed pings, sent in parallel (the engine's ``Pinger``)."""

    def __init__(self, *, allow_loopback: bool = False, timeout: float = PING_TIMEOUT) -> None:
        self.allow_loopback, self.timeout = allow_loopback, timeout

    def ping(self, targets: Sequence[PingTarget]) -> list[Delivery]:
        with httpx.Client(timeout=self.timeout, follow_redirects=False) as client:

            def one(target: PingTarget) -> Delivery:
                data = {"partner": target.partner, "webhook": target.webhook}
                return send(target.url, "ping", data, secrets=target.secrets, allow_loopback=self.allow_loopback,
                            client=client)  # fmt: skip

            with ThreadPoolExecutor(max_workers=PING_CONCURRENCY) as pool:
                return list(pool.map(one, targets))


class HttpTransport:
    """The dispatcher's transport: a pooled asynchronous client per pass (``async with transport.session()``)."""

    def __init__(self, *, allow_loopback: bool = False) -> None:
        self.allow_loopback = allow_loopback

    @functools.cached_property
    def tls(self) -> ssl.SSLContext:
        """Built once: loading the CA bundle took half of a busy dispatcher's time when done for each pass."""
        return httpx.create_ssl_context()

    def session(self, *, concurrency: int, timeout: float) -> AsyncSession:
        return AsyncSession(concurrency=concurrency, timeout=timeout, allow_loopback=self.allow_loopback,
                            tls=self.tls)  # fmt: skip


class AsyncSession:
    def __init__(self, *, concurrency: int, timeout: float, allow_loopback: bool, tls: ssl.SSLContext) -> None:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        self._client = httpx.AsyncClient(timeout=timeout, follow_redirects=False, limits=limits, verify=tls)
        self._allow_loopback = allow_loopback

    async def __aenter__(self) -> AsyncSession:
        await self._client.__aenter__()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self._client.__aexit__(kind, value, traceback)

    async def deliver(
        self, url: str, event_type: str, data: dict[str, Any], *, secrets: Sequence[str], message_id: str
    ) -> Delivery:
        """Check the destination, sign and send; never raises for the endpoint's failures."""
        prepared = functools.partial(prepare, url, event_type, data, secrets=secrets, message_id=message_id,
                                     allow_loopback=self._allow_loopback)  # fmt: skip
        # Names are resolved (and checked) off the event loop; literal addresses need no lookup.
        literal = literal_address(urlsplit(url).hostname or "") is not None
        request = prepared() if literal else await asyncio.to_thread(prepared)
        if isinstance(request, Delivery):
            return request
        started = time.perf_counter()
        try:
            response = await self._client.post(request.url, content=request.body, headers=request.headers,
                                               extensions={"sni_hostname": request.host})  # fmt: skip
        except httpx.TimeoutException:
            return Delivery(False, error="timed out", latency_ms=_since(started))
        except httpx.HTTPError as error:
            return Delivery(False, error=f"{type(error).__name__}: connection failed", latency_ms=_since(started))
        return dataclasses.replace(outcome(response), latency_ms=_since(started))


def _since(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)
