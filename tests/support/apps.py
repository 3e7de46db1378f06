"""Building the gateway, the console and the dispatcher over an installation's --home, as ``partnerctl`` wires them."""

from __future__ import annotations

from pathlib import Path

import httpx

from reconciler.backends import open_stores
from reconciler.console.app import Console
from reconciler.console.viewers import parse_networks
from reconciler.gateway.app import Gateway
from reconciler.gateway.keys import KeyCache
from reconciler.gateway.upstream import HttpUpstream
from reconciler.stores import Stores
from reconciler.webhooks.dispatcher import Dispatcher
from reconciler.webhooks.sender import HttpTransport

ISSUER = "https://gateway.scp.example"


def stores(home: Path, *, state: str | None = None, secrets: str | None = None, cache_seconds: float = 0.0) -> Stores:
    return open_stores(home=home, state=state, secrets=secrets, state_cache_seconds=cache_seconds,
                       secret_cache_seconds=cache_seconds)  # fmt: skip


def gateway(
    home: Path,
    *,
    upstream: str | None = None,
    state: str | None = None,
    secrets: str | None = None,
    cache_seconds: float = 0.0,
    rate_limits: bool = True,
    loopback_keys: bool = False,
) -> Gateway:
    """The gateway as `partnerctl gateway serve` builds it (``loopback_keys``: jwksUri on loopback http allowed,
    as --dev-allow-loopback-webhooks does)."""
    opened = stores(home, state=state, secrets=secrets, cache_seconds=cache_seconds)
    return Gateway(opened, issuer=ISSUER, upstream=HttpUpstream(upstream) if upstream else None,
                   rate_limits=rate_limits, keys=KeyCache(allow_loopback=loopback_keys))  # fmt: skip



def console(home: Path, *, trusted_proxies: tuple[str, ...] = (), root_approvers: frozenset[str] = frozenset(),
            state: str | None = None, secrets: str | None = None) -> Console:
    """The console as `partnerctl console serve` builds it, over ``home``'s stores."""
    return Console(stores(home, state=state, secrets=secrets), trusted_proxies=parse_networks(trusted_proxies),
                   root_approvers=root_approvers)  # fmt: skip


def dispatcher(home: Path, *, loopback: bool = True, **options: int) -> Dispatcher:
    return Dispatcher(stores(home), HttpTransport(allow_loopback=loopback), **options)  # type: ignore[arg-type]


def token_for(gateway_url: str, credentials: dict[str, str]) -> httpx.Response:
    """The client-credentials grant with a partner's delivered credentials."""
    return httpx.post(f"{gateway_url}/oauth2/token", data={"grant_type": "client_credentials"},
                      auth=(credentials["client_id"], credentials["client_secret"]))  # fmt: skip
