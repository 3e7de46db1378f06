"""Partners' public keys for private_key_jwt: the manifest's ``jwks``, or its ``jwksUri`` fetched (httpx) and cached.

A ``jwksUri`` is fetched with the webhook SSRF rules: the URL as written must pass
:func:`~reconciler.manifests.urls.jwks_uri_problems` (https, a public host, no credentials), its host
is resolved and every address checked right before connecting
(:func:`~reconciler.webhooks.destinations.resolve_checked`: no private, loopback, link-local or
metadata address), the connection goes to the checked address (the name kept for TLS and Host), and
redirects are never followed. The answer must be a JWK Set of public keys, at most 64 KB.

Caching, per URL and per gateway process:
- a set is fresh for its ``Cache-Control: max-age`` (at least a minute, at most 24 h; an hour when the
  answer gives none; ``no-store``/``no-cache`` count as a minute);
- an unknown ``kid`` fetches again (``refresh=True``), at most once a minute per URL;
- a failed fetch keeps the set last fetched in use, and is not tried again for a minute, so a
  partner's broken key server never holds up the token endpoint for long. With nothing cached, the
  keys are unavailable (the token endpoint answers ``invalid_client``).

Fetching blocks (at most ``timeout`` seconds): the gateway calls :meth:`KeyCache.keys_for` in its
thread pool, like its store calls. Concurrent callers for one URL wait for one fetch instead of each
making their own; a caller with a set in hand does not wait for a routine refetch.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from reconciler.gateway.assertions import PRIVATE_MEMBERS, KeysUnavailable
from reconciler.manifests.urls import jwks_uri_problems
from reconciler.webhooks.destinations import resolve_checked

__all__ = ["DEFAULT_TTL", "MAX_TTL", "MIN_INTERVAL", "KeyCache", "cache_lifetime"]

log = logging.getLogger("partnerctl")

DEFAULT_TTL = 3600.0  # no Cache-Control max-age
MAX_TTL = 86400.0  # DESIGN §7: at most 24 h
MIN_INTERVAL = 60.0  # between two fetches of one URL: the shortest freshness, the refetch and retry limit
MAX_BYTES = 65536
MAX_KEYS = 100
USER_AGENT = "partnerctl-gateway/1"
ACCEPT = "application/jwk-set+json, application/json;q=0.9"


@dataclass
class _Entry:
    """One URL's cached set and when it was last tried."""

    jwks: dict[str, Any] | None = None
    fresh_until: float = 0.0
    last_attempt: float | None = None
    error: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class KeyCache:
    """The gateway's :class:`~reconciler.gateway.assertions.KeySource`: inline ``jwks`` as written, a ``jwksUri``
    fetched and cached as the module docstring says.

    ``allow_loopback``: the ``--dev-allow-loopback-webhooks`` switch (plain http to a loopback host, for
    local trials and tests); never a private address. ``clock``: monotonic seconds (tests move it)."""

    def __init__(
        self,
        *,
        allow_loopback: bool = False,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.allow_loopback = allow_loopback
        self._clock = clock
        self._client = httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False)
        self._entries: dict[str, _Entry] = {}
        self._entries_lock = threading.Lock()

    def keys_for(self, auth: Mapping[str, Any], *, refresh: bool = False) -> dict[str, Any]:
        """The JWK Set for a partner's applied ``spec["auth"]``; ``refresh`` after an unknown ``kid``."""
        if auth.get("clientAuthentication") != "private_key_jwt":
            raise KeysUnavailable("the client does not authenticate with private_key_jwt")
        inline = auth.get("jwks")
        if isinstance(inline, Mapping):
            return dict(inline)
        url = auth.get("jwksUri")
        if not isinstance(url, str) or not url:
            raise KeysUnavailable("the partner has neither jwks nor jwksUri")
        return self.fetch(url, refresh=refresh)

    def fetch(self, url: str, *, refresh: bool = False) -> dict[str, Any]:
        """The set at ``url``: cached while fresh, fetched again when stale or on ``refresh`` (once a minute)."""
        with self._entries_lock:
            entry = self._entries.setdefault(url, _Entry())
        cached = entry.jwks
        now = self._clock()
        if cached is not None and not refresh and now < entry.fresh_until:
            return cached
        # Someone is fetching already: a caller holding a set uses it rather than wait (unless it asked
        # for a refresh: it needs the new set); one without waits for that fetch.
        if cached is not None and not refresh:
            if not entry.lock.acquire(blocking=False):
                return cached
        else:
            entry.lock.acquire()
        try:
            return self._fetch_locked(url, entry, refresh=refresh)
        finally:
            entry.lock.release()

    def _fetch_locked(self, url: str, entry: _Entry, *, refresh: bool) -> dict[str, Any]:
        now = self._clock()
        if entry.jwks is not None and not refresh and now < entry.fresh_until:
            return entry.jwks  # fetched by the caller we waited for
        if entry.last_attempt is not None and now - entry.last_attempt < MIN_INTERVAL:
            if entry.jwks is not None:
                return entry.jwks
            raise KeysUnavailable(f"jwksUri {url} failed less than a minute ago ({entry.error})")
        entry.last_attempt = now
        try:
            jwks, ttl = self._get(url)
        except KeysUnavailable as error:
            entry.error = error.reason
            if entry.jwks is not None:
                log.warning("jwksUri %s: %s; the keys fetched before stay in use", url, error.reason)
                return entry.jwks
            log.warning("jwksUri %s: %s; no keys for this partner until it answers", url, error.reason)
            raise
        entry.jwks, entry.fresh_until, entry.error = jwks, now + ttl, None
        return jwks

    def _get(self, url: str) -> tuple[dict[str, Any], float]:
        """One GET of ``url`` with the SSRF checks: the set and how long it stays fresh."""
        problems = jwks_uri_problems(url, allow_loopback=self.allow_loopback)
        if problems:
            raise KeysUnavailable(f"refused: the URL {problems[0]}")
        parts = urlsplit(url)
        host = parts.hostname or ""
        try:
            address = resolve_checked(host, parts.port or (443 if parts.scheme == "https" else 80),
                                      allow_loopback=self.allow_loopback)  # fmt: skip
        except OSError as error:
            raise KeysUnavailable(f"refused: {error}") from error
        netloc = f"[{address}]" if ":" in address else address
        if parts.port:
            netloc += f":{parts.port}"
        target = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
        headers = {"host": parts.netloc.rsplit("@", 1)[-1], "accept": ACCEPT, "user-agent": USER_AGENT}
        try:
            with self._client.stream("GET", target, headers=headers, extensions={"sni_hostname": host}) as response:
                if response.status_code != 200:
                    raise KeysUnavailable(f"answered {response.status_code}")
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > MAX_BYTES:
                        raise KeysUnavailable(f"answer larger than {MAX_BYTES} bytes")
                cache_control = response.headers.get("cache-control")
        except httpx.TimeoutException as error:
            raise KeysUnavailable("timed out") from error
        except httpx.HTTPError as error:
            raise KeysUnavailable(f"{type(error).__name__}: connection failed") from error
        return _key_set(bytes(body)), cache_lifetime(cache_control)

    def close(self) -> None:
        self._client.close()


def cache_lifetime(cache_control: str | None) -> float:
    """Seconds a fetched set stays fresh, from its ``Cache-Control`` header."""
    if not cache_control:
        return DEFAULT_TTL
    directives = {}
    for part in cache_control.split(","):
        name, _, value = part.strip().partition("=")
        directives[name.strip().lower()] = value.strip().strip('"')
    if "no-store" in directives or "no-cache" in directives:
        return MIN_INTERVAL
    age = directives.get("max-age")
    if age is None:
        return DEFAULT_TTL
    try:
        seconds = float(int(age))
    except ValueError:
        return DEFAULT_TTL
    return min(max(seconds, MIN_INTERVAL), MAX_TTL)


def _key_set(body: bytes) -> dict[str, Any]:
    """The answer as a JWK Set of public keys; KeysUnavailable when it is not one."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise KeysUnavailable("answer is not JSON") from error
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list) or not all(isinstance(key, dict) for key in keys):
        raise KeysUnavailable("answer is not a JWK Set (an object with a keys list)")
    if len(keys) > MAX_KEYS:
        raise KeysUnavailable(f"more than {MAX_KEYS} keys")
    if any(PRIVATE_MEMBERS & set(key) for key in keys):
        # A published private key is compromised: none of the set is trusted (the value is never logged).
        raise KeysUnavailable("the set publishes private key material; refused")
    return {"keys": keys}
