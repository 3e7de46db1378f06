"""Whether an outbound URL (a webhook, a ``jwksUri``) is an acceptable destination (SEC-01, SSRF), offline.

Validation only looks at the URL as written: literal addresses in every spelling (``127.1``,
``0x7f000001``, ``[::ffff:127.0.0.1]``), names that never resolve publicly (``localhost``,
``*.internal``) and cloud metadata endpoints. Names are resolved by the webhook dispatcher at send
time, where the same address rules apply to what the name resolves to (:func:`address_problem`).
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import parse_qsl, urlsplit

# Names that only ever resolve inside a host or a private network.
_PRIVATE_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
_PRIVATE_SUFFIXES = (".localhost", ".local", ".internal", ".home.arpa", ".lan", ".intranet")
_METADATA_NAMES = frozenset({"metadata", "metadata.google.internal", "metadata.goog", "instance-data"})
_METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(address)
    for address in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254", "168.63.129.16")
)
_LEGACY_IPV4 = re.compile(r"^(0x[0-9a-f]+|[0-9]+)(\.(0x[0-9a-f]+|[0-9]+)){0,3}$")
_CREDENTIAL_PARAMS = re.compile(
    r"(pass(word|wd)?|secret|token|api[-_]?key|apikey|access[-_]?key|auth|sig(nature)?|credential|session)",
    re.IGNORECASE,
)


def webhook_url_problems(url: str, *, allow_loopback: bool = False) -> list[str]:
    """Everything wrong with ``url`` as a webhook destination; empty when it is acceptable."""
    return _outbound_url_problems(
        url,
        allow_loopback=allow_loopback,
        noun="webhook",
        https_rule="webhooks must use https",
        unsigned="the platform signs each delivery instead",
    )


def jwks_uri_problems(url: str, *, allow_loopback: bool = False) -> list[str]:
    """Everything wrong with ``url`` as a partner's ``jwksUri``: the webhook rules, as DESIGN §3 asks.

    The gateway fetches it, so it is an outbound destination like a webhook (https, public host, no
    credentials). ``allow_loopback`` is the same development switch as for webhooks
    (``--dev-allow-loopback-webhooks``): http on a loopback host, never a private address."""
    return _outbound_url_problems(
        url,
        allow_loopback=allow_loopback,
        noun="jwksUri",
        https_rule="a jwksUri must use https",
        unsigned="a JWK Set is public and fetched without them",
    )


def _outbound_url_problems(url: str, *, allow_loopback: bool, noun: str, https_rule: str, unsigned: str) -> list[str]:
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        return ["is not a valid URL; write it as https://host/path"]
    problems: list[str] = []
    if parts.username is not None or parts.password is not None:
        problems.append(f"carries credentials (user:password@); {unsigned}")
    for name, _ in parse_qsl(parts.query, keep_blank_values=True):
        if _CREDENTIAL_PARAMS.search(name):
            problems.append(f"carries a credential in its query ({name}=…); {unsigned}")
    if not host:
        problems.append("has no host; write it as https://host/path")
        return problems
    host_problem = host_problem_of(host)
    loopback_ok = allow_loopback and host_problem is not None and is_loopback_host(host)
    if parts.scheme != "https" and not (loopback_ok and parts.scheme == "http"):
        problems.append(f"uses {parts.scheme or 'no scheme'}; {https_rule}")
    if host_problem is not None and not loopback_ok:
        problems.append(f"points at {host_problem}; {noun} hosts must be public")
    return problems


def host_problem_of(host: str) -> str | None:
    """Why ``host`` (a name or literal address) is not a public destination, or None if it may be."""
    name = host.strip().rstrip(".").lower()
    if name in _METADATA_NAMES:
        return f"a cloud metadata service ({name})"
    if name in _PRIVATE_NAMES or name.endswith(_PRIVATE_SUFFIXES):
        return f"a private host name ({name})"
    address = literal_address(name)
    if address is None:
        return None
    return address_problem(address)


def literal_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP address ``host`` spells, in any form a resolver would accept; None for a name."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    if _LEGACY_IPV4.match(host):
        value = _inet_aton(host)
        return None if value is None else ipaddress.IPv4Address(value)
    return None


def _inet_aton(host: str) -> int | None:
    """The address inet_aton(3) reads in ``host`` (as resolvers do): 127.1, 0x7f.0.0.1, 0177.0.0.1, 2130706433.

    One to four parts, each decimal, octal (leading 0) or hexadecimal (0x); the last part fills the
    bytes the others leave. Written out rather than asking the C library, so that checking a URL needs
    no network module."""
    parts = host.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    numbers = []
    for part in parts:
        if part[:2].lower() == "0x":
            digits, base = part[2:], 16
        elif len(part) > 1 and part.startswith("0"):
            digits, base = part[1:], 8
        else:
            digits, base = part, 10
        try:
            numbers.append(int(digits, base) if digits else 0)
        except ValueError:
            return None
    *leading, last = numbers
    if any(number > 0xFF for number in leading) or last >= 1 << (8 * (4 - len(leading))):
        return None
    value = last
    for index, number in enumerate(leading):
        value |= number << (8 * (3 - index))
    return value


def address_problem(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why an address must not be connected to, or None if it is a public unicast address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address in _METADATA_ADDRESSES:
        return f"a cloud metadata address ({address})"
    if address.is_loopback:
        return f"a loopback address ({address})"
    if address.is_link_local:
        return f"a link-local address ({address})"
    if address.is_unspecified:
        return f"an unspecified address ({address})"
    if address.is_multicast:
        return f"a multicast address ({address})"
    if address.is_private or not address.is_global:
        return f"a private or reserved address ({address})"
    return None


def is_loopback_host(host: str) -> bool:
    """``localhost`` (and names under it) or a loopback address, in any of the forms an address takes."""
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    address = literal_address(name)
    return address is not None and address.is_loopback
