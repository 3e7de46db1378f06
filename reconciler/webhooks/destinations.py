"""Where an outbound request may connect (SSRF at connect time): a host's resolved addresses, every one checked.

Shared by every fetch or send to a URL a manifest names: webhook deliveries and pings
(:mod:`reconciler.webhooks.sender`) and the gateway's ``jwksUri`` fetches (``reconciler.gateway.keys``).
The URL itself is checked offline by :mod:`reconciler.manifests.urls`; this is the check of what a
name resolves to right before connecting, so a DNS answer cannot point a public name at a private
address.
"""

from __future__ import annotations

import ipaddress
import socket

from reconciler.manifests.urls import address_problem, literal_address

__all__ = ["resolve_checked"]


def resolve_checked(host: str, port: int, *, allow_loopback: bool) -> str:
    """An address of ``host`` that may be connected to; OSError naming why when there is none."""
    literal = literal_address(host)
    if literal is not None:
        candidates = [literal]
    else:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
        candidates = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    for address in candidates:
        problem = address_problem(address)
        if problem is not None and not (allow_loopback and address.is_loopback):
            # One bad answer taints the name: a resolver could hand out the other one next time.
            raise OSError(f"{host} resolves to {problem}")
    if not candidates:
        raise OSError(f"{host} does not resolve")
    return str(candidates[0])
