"""Who is looking: the viewer an authenticating proxy vouches for, and the tenants that viewer may see."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = ["LOCAL_OPERATOR", "Viewer", "parse_networks", "viewer_for"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Viewer:
    """``email`` None: the local operator of a console without a proxy (loopback only), who sees everything."""

    email: str | None
    tenants: frozenset[str]
    everything: bool = False

    def sees(self, tenant: str) -> bool:
        return self.everything or tenant in self.tenants


LOCAL_OPERATOR = Viewer(None, frozenset(), everything=True)


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """``--trusted-proxy`` values as networks; ValueError naming the bad one."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError as error:
            raise ValueError(f"--trusted-proxy {value!r} is not an address or CIDR (e.g. 127.0.0.1/32)") from error
    return tuple(networks)


def viewer_for(
    peer: str | None,
    forwarded_email: str | None,
    *,
    trusted: tuple[Network, ...],
    approvers: Mapping[str, list[dict[str, str]]],
    root_approvers: frozenset[str],
) -> Viewer | None:
    """The viewer of a request, or None (refused). Without trusted proxies: the local operator. With them, the
    ``X-Forwarded-Email`` header counts only when the connection comes from inside one of them; a header sent
    from anywhere else is ignored, as anyone can send it."""
    if not trusted:
        return LOCAL_OPERATOR
    if peer is None or not forwarded_email or not _inside(peer, trusted):
        return None
    email = forwarded_email.strip().lower()
    if email in root_approvers:
        return Viewer(email, frozenset(approvers), everything=True)
    tenants = frozenset(tenant for tenant, people in approvers.items()
                        if any(person.get("email", "").lower() == email for person in people))  # fmt: skip
    return Viewer(email, tenants)


def _inside(peer: str, trusted: tuple[Network, ...]) -> bool:
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in trusted)
