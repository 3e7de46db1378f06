"""Where and how to reach Vault: ``--secrets vault+https://HOST:PORT?…`` parsed into a :class:`VaultConfig`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from reconciler.errors import UsageError
from reconciler.manifests.urls import is_loopback_host

__all__ = ["VaultConfig", "parse_url"]


@dataclass(frozen=True)
class VaultConfig:
    """Where and how to reach Vault; parsed from ``--secrets vault+https://HOST:PORT?…``."""

    address: str
    mount: str = "secret"
    prefix: str = "scp-partners"
    transit: str = "transit"
    key: str = "scp-partners"
    auth: str = "token"  # token | kubernetes | approle
    role: str | None = None  # the Kubernetes auth role
    auth_mount: str | None = None  # default: the auth method's name
    wrap_ttl: str = "24h"
    timeout: float = 10.0
    namespace: str | None = None
    cacert: str | None = None


_QUERY_KEYS = ("mount", "prefix", "transit", "key", "auth", "role", "auth_mount", "wrap_ttl", "timeout")
_URL_HELP = "use vault+https://HOST:PORT?mount=secret&prefix=scp-partners&transit=transit&key=scp-partners"


def parse_url(url: str, environ: Mapping[str, str] = os.environ) -> VaultConfig:
    parts = urlsplit(url)
    if parts.scheme == "vault":
        if parts.netloc:
            raise UsageError(f"--secrets {url}: vault:// takes its address from VAULT_ADDR; {_URL_HELP}")
        address = environ.get("VAULT_ADDR", "")
        if not address:
            raise UsageError(f"--secrets {url}: set VAULT_ADDR (e.g. https://vault.internal:8200), or {_URL_HELP}")
    elif parts.scheme in ("vault+https", "vault+http") and parts.hostname:
        address = f"{parts.scheme.removeprefix('vault+')}://{parts.netloc}"
    else:
        raise UsageError(f"--secrets {url}: {_URL_HELP}")
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - set(_QUERY_KEYS))
    if unknown:
        raise UsageError(f"--secrets {url}: unknown setting {unknown[0]!r}; known: {', '.join(_QUERY_KEYS)}")
    values = {name: given[-1] for name, given in query.items()}
    if any(not value for name, value in values.items() if name != "role"):
        raise UsageError(f"--secrets {url}: an empty setting; leave it out to use the default")
    address_parts = urlsplit(address)
    if address_parts.scheme == "http" and not is_loopback_host(address_parts.hostname or ""):
        raise UsageError(
            f"Vault at {address}: plain http is refused for anything but a loopback address, since tokens and "
            "secrets would cross the network in clear; use https (vault+https://)"
        )
    if address_parts.scheme not in ("http", "https"):
        raise UsageError(f"VAULT_ADDR {address}: expected http(s)://HOST:PORT")
    auth = values.pop("auth", "token")
    if auth not in ("token", "kubernetes", "approle"):
        raise UsageError(f"--secrets {url}: auth={auth} is not one of token, kubernetes, approle")
    if auth == "kubernetes" and not values.get("role"):
        raise UsageError(
            f"--secrets {url}: auth=kubernetes needs role=ROLE (the Vault role bound to the service account)"
        )
    try:
        timeout = float(values.pop("timeout", "10"))
    except ValueError as error:
        raise UsageError(f"--secrets {url}: timeout must be a number of seconds") from error
    namespace = environ.get("VAULT_NAMESPACE") or None
    if namespace is not None and not (namespace.isascii() and namespace.isprintable()):
        raise UsageError("VAULT_NAMESPACE is not a Vault namespace (printable ASCII)")
    return VaultConfig(
        address=address.rstrip("/"),
        auth=auth,
        timeout=timeout,
        namespace=namespace,
        cacert=environ.get("VAULT_CACERT") or None,
        **values,
    )

