"""Partners' keys for private_key_jwt: a jwksUri served by a real server, fetched with the SSRF rules, cached."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from reconciler.gateway.assertions import KeysUnavailable, UnknownKey, authenticate
from reconciler.gateway.keys import DEFAULT_TTL, MAX_TTL, MIN_INTERVAL, KeyCache, cache_lifetime
from tests.support.assertions import AUDIENCES, CLIENT, NOW, ReplayMemory, claims, jwks_of, make_key
from tests.support.servers import HttpRecorder


@dataclass
class Clock:
    """Monotonic seconds that the test moves."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class KeyServer:
    """A partner's key server (plain http on loopback, as the dev flag allows) and a cache in front of it."""

    recorder: HttpRecorder
    url: str
    cache: KeyCache
    clock: Clock

    @property
    def auth(self) -> dict[str, Any]:
        return {"method": "oauth2-client-credentials", "clientAuthentication": "private_key_jwt", "jwksUri": self.url}

    @property
    def fetches(self) -> int:
        return len(self.recorder.requests)

    def serve(self, jwks: dict[str, Any], **headers: str) -> None:
        self.recorder.answer, self.recorder.status = jwks, 200
        self.recorder.headers = {name.replace("_", "-"): value for name, value in headers.items()}


@pytest.fixture
def keys() -> Iterator[KeyServer]:
    recorder = HttpRecorder()
    base = recorder.start()
    clock = Clock()
    cache = KeyCache(allow_loopback=True, clock=clock, timeout=2.0)
    yield KeyServer(recorder, f"{base}/scp/jwks.json", cache, clock)
    cache.close()
    recorder.stop()


def authenticated(keys: KeyServer, assertion: str) -> Any:
    return authenticate(assertion, client_id=CLIENT, auth=keys.auth, keys=keys.cache, audiences=AUDIENCES, now=NOW,
                        seen_before=ReplayMemory())  # fmt: skip


def test_a_manifest_jwks_is_used_as_written_without_the_network() -> None:
    key = make_key("ES256")
    auth = {"method": "oauth2-client-credentials", "clientAuthentication": "private_key_jwt", "jwks": jwks_of(key)}
    cache = KeyCache()
    assert cache.keys_for(auth) == jwks_of(key)
    with pytest.raises(KeysUnavailable):
        cache.keys_for({"method": "oauth2-client-credentials"})  # a client_secret partner has no keys


def test_a_jwks_uri_is_fetched_once_and_cached_for_its_max_age(keys: KeyServer) -> None:
    key = make_key("RS256")
    keys.serve(jwks_of(key), cache_control="public, max-age=600")
    assert keys.cache.keys_for(keys.auth)["keys"] == [key.jwk]
    assert authenticated(keys, key.sign(claims())).key_id == key.kid
    keys.clock.now += 599
    keys.cache.keys_for(keys.auth)
    assert keys.fetches == 1
    keys.clock.now += 2
    keys.cache.keys_for(keys.auth)
    assert keys.fetches == 2
    request = keys.recorder.requests[0]
    assert (request.method, request.path) == ("GET", "/scp/jwks.json")
    assert "application/jwk-set+json" in request.headers["accept"]


def test_rotated_keys_are_picked_up_on_an_unknown_kid_at_most_once_a_minute(keys: KeyServer) -> None:
    old, new, newer = make_key("ES256", kid="2026"), make_key("EdDSA", kid="2027"), make_key("ES384", kid="2028")
    keys.serve(jwks_of(old), cache_control="max-age=86400")
    assert authenticated(keys, old.sign(claims())).key_id == "2026"
    keys.clock.now += MIN_INTERVAL  # the partner publishes its new key, then signs with it
    keys.serve(jwks_of(old, new), cache_control="max-age=86400")
    assert authenticated(keys, new.sign(claims())).key_id == "2027"
    assert keys.fetches == 2

    keys.serve(jwks_of(new, newer), cache_control="max-age=86400")
    keys.clock.now += MIN_INTERVAL - 1  # too soon to fetch again: unknown kids cost no fetch
    for _ in range(3):
        with pytest.raises(UnknownKey):
            authenticated(keys, newer.sign(claims()))
    assert keys.fetches == 2
    keys.clock.now += 1
    assert authenticated(keys, newer.sign(claims())).key_id == "2028"
    assert keys.fetches == 3
    with pytest.raises(UnknownKey):  # the old key is gone from the set: refused
        authenticated(keys, old.sign(claims()))


def test_a_failing_key_server_leaves_the_keys_fetched_before_in_use(keys: KeyServer) -> None:
    key = make_key("ES256")
    keys.serve(jwks_of(key), cache_control="max-age=60")
    keys.cache.keys_for(keys.auth)
    keys.recorder.status = 503
    keys.clock.now += 61
    assert authenticated(keys, key.sign(claims())).key_id == key.kid
    assert keys.fetches == 2
    keys.clock.now += 30
    authenticated(keys, key.sign(claims()))
    assert keys.fetches == 2, "a failed fetch is not retried for a minute"
    keys.recorder.stop()  # the server is gone altogether
    keys.clock.now += 31
    assert authenticated(keys, key.sign(claims())).key_id == key.kid


def test_without_a_cached_set_a_failing_key_server_means_no_keys(keys: KeyServer) -> None:
    keys.recorder.status = 500
    with pytest.raises(KeysUnavailable, match="answered 500"):
        keys.cache.keys_for(keys.auth)
    with pytest.raises(KeysUnavailable, match="less than a minute ago"):
        keys.cache.keys_for(keys.auth)
    assert keys.fetches == 1
    keys.serve(jwks_of(make_key("ES256")))
    keys.clock.now += MIN_INTERVAL
    assert keys.cache.keys_for(keys.auth)["keys"]


@pytest.mark.parametrize(
    ("status", "headers", "answer", "problem"),
    [
        (302, {"location": "http://169.254.169.254/latest/meta-data/"}, {"keys": []}, "answered 302"),
        (200, {}, {"keys": "none"}, "not a JWK Set"),
        (200, {}, {"keys": [{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA", "d": "SECRETSECRET"}]}, "private"),
        (200, {}, {"keys": [{"kty": "oct", "k": "SECRETSECRET"}]}, "private"),
        (200, {}, {"keys": [{"kty": "EC", "padding": "x" * 70000}]}, "larger than"),
    ],
)
def test_answers_that_are_not_a_public_key_set_are_refused(
    keys: KeyServer, status: int, headers: dict[str, str], answer: dict[str, Any], problem: str
) -> None:
    keys.recorder.status, keys.recorder.headers, keys.recorder.answer = status, headers, answer
    with pytest.raises(KeysUnavailable, match=problem) as caught:
        keys.cache.keys_for(keys.auth)
    assert "SECRETSECRET" not in str(caught.value)
    assert keys.fetches == 1  # a redirect is never followed


@pytest.mark.parametrize(
    "url",
    [
        "https://10.1.2.3/jwks.json",
        "https://169.254.169.254/latest/meta-data/",
        "https://metadata.google.internal/jwks.json",
        "https://[::1]/jwks.json",
        "https://keys.acme-bank.internal/jwks.json",
        "http://keys.acme-bank.example/jwks.json",  # not https
        "https://user:pass@keys.acme-bank.example/jwks.json",
    ],
)
def test_a_jwks_uri_on_a_private_address_or_without_https_is_refused(url: str) -> None:
    auth = {"method": "oauth2-client-credentials", "clientAuthentication": "private_key_jwt", "jwksUri": url}
    with pytest.raises(KeysUnavailable, match="refused"):
        KeyCache().keys_for(auth)


def test_loopback_is_refused_without_the_development_switch(keys: KeyServer) -> None:
    keys.serve(jwks_of(make_key("ES256")))
    with pytest.raises(KeysUnavailable, match="refused"):
        KeyCache().keys_for(keys.auth)
    assert keys.fetches == 0


def test_a_public_name_resolving_to_a_private_address_is_refused_before_connecting(
    keys: KeyServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: the name passes the offline check; what it resolves to right before connecting does not."""
    real = socket.getaddrinfo

    def resolver(host: str, *args: Any, **kwargs: Any) -> Any:
        if host == "keys.acme-bank.example":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", 443))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    auth = {**keys.auth, "jwksUri": "https://keys.acme-bank.example/jwks.json"}
    with pytest.raises(KeysUnavailable, match="resolves to a private"):
        KeyCache().keys_for(auth)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, DEFAULT_TTL),
        ("public", DEFAULT_TTL),
        ("max-age=600", 600),
        ("public, max-age=600, must-revalidate", 600),
        ('max-age="900"', 900),
        ("max-age=31536000", MAX_TTL),  # a year: at most a day
        ("max-age=5", MIN_INTERVAL),
        ("no-store", MIN_INTERVAL),
        ("no-cache, max-age=600", MIN_INTERVAL),
        ("max-age=soon", DEFAULT_TTL),
    ],
)
def test_cache_control_sets_how_long_a_set_stays_fresh(header: str | None, seconds: float) -> None:
    assert cache_lifetime(header) == seconds
