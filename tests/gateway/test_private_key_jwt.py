"""private_key_jwt at the token endpoint (RFC 7523, DESIGN §7), with independent clients: authlib's
``PrivateKeyJWT`` client authentication, and assertions signed by joserfc and PyJWT; keys inline in the
manifest or served at a ``jwksUri``."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread
from typing import Any

import httpx
import pytest
from authlib.integrations.httpx_client import OAuth2Client
from authlib.oauth2.rfc7523 import PrivateKeyJWT

from reconciler.gateway.app import Gateway
from reconciler.gateway.keys import KeyCache
from tests.support import apps
from tests.support.assertions import PartnerKey, make_key, with_jwks_uri, with_keys
from tests.support.engine import Installation
from tests.support.gitrepo import GitPartnerRepo
from tests.support.repo import PARTNER, TENANT
from tests.support.servers import UvicornThread

ACME = f"{TENANT}/acme-bank"
CLIENT = f"{TENANT}.acme-bank"
TOKEN_ENDPOINT = f"{apps.ISSUER}/oauth2/token"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"  # RFC 7523 §2.2


@dataclass
class Running:
    installation: Installation
    app: Gateway
    server: UvicornThread

    @property
    def token_url(self) -> str:
        return f"{self.server.url}/oauth2/token"


@pytest.fixture
def real_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Clients sign with the wall clock (authlib has no other): the gateway reads it too."""
    monkeypatch.delenv("PARTNERCTL_NOW")


def onboard(repo: GitPartnerRepo, home: Any, manifest: str) -> Installation:
    installation = Installation(repo, home, extra=("--dev-allow-loopback-webhooks",))
    repo.write_partner(manifest)
    repo.commit("Onboard ACME Bank with private_key_jwt")
    installation.apply()
    return installation


@pytest.fixture
def running(real_clock: None, git_repo: GitPartnerRepo, tmp_path: Any) -> Iterator[tuple[Running, PartnerKey]]:
    key = make_key("ES256", kid="acme-2026")
    installation = onboard(git_repo, tmp_path / "home", with_keys(key))
    app = apps.gateway(installation.home)
    server = UvicornThread(app)
    yield Running(installation, app, server), key
    server.stop()
    app.close()
    app.stores.close()


def claims(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": CLIENT, "sub": CLIENT, "aud": TOKEN_ENDPOINT, "iat": now, "exp": now + 120,
            "jti": uuid.uuid4().hex, **extra}  # fmt: skip


def token_with(url: str, assertion: str, **form: str) -> httpx.Response:
    return httpx.post(url, data={"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
                                 "client_assertion": assertion, **form})  # fmt: skip


def test_authlibs_private_key_jwt_client_gets_a_token_and_calls_the_api(running: tuple[Running, PartnerKey]) -> None:
    gateway, key = running
    # As authlib documents it: the private key as the client's "secret", the method registered by name.
    client = OAuth2Client(CLIENT, key.jose, token_endpoint_auth_method="private_key_jwt")
    client.register_client_auth_method(PrivateKeyJWT(TOKEN_ENDPOINT, claims={"exp": int(time.time()) + 240},
                                                     alg="ES256"))  # fmt: skip
    token = client.fetch_token(gateway.token_url, grant_type="client_credentials")
    assert token["token_type"] == "Bearer" and "payment:status:update" in token["scope"].split()
    ping = httpx.get(f"{gateway.server.url}/v1/ping", headers={"authorization": f"Bearer {token['access_token']}"})
    assert ping.status_code == 200, ping.text
    status = gateway.installation.status(ACME)[ACME]
    conditions = {condition["type"]: condition["status"] for condition in status["conditions"]}
    assert conditions["HandshakeVerified"] == "True" and conditions["CredentialsIssued"] == "True"
    assert status["credential"]["keyIds"] == ["acme-2026"]


@pytest.mark.parametrize("signer", ["joserfc", "pyjwt"])
def test_an_assertion_works_once_and_a_replay_is_refused(running: tuple[Running, PartnerKey], signer: str) -> None:
    gateway, key = running
    assertion = key.sign(claims(), signer=signer)
    assert token_with(gateway.token_url, assertion).status_code == 200
    replayed = token_with(gateway.token_url, assertion)
    assert replayed.status_code == 401 and replayed.json()["error"] == "invalid_client"


@pytest.mark.parametrize(
    "tamper",
    ["expired", "too-long", "wrong-audience", "other-issuer", "unknown-kid", "hs256-with-public-key", "none"],
)
def test_bad_assertions_are_invalid_client(running: tuple[Running, PartnerKey], tamper: str) -> None:
    gateway, key = running
    now = int(time.time())
    if tamper == "expired":
        assertion = key.sign(claims(iat=now - 900, exp=now - 300))
    elif tamper == "too-long":
        assertion = key.sign(claims(exp=now + 3600))
    elif tamper == "wrong-audience":
        assertion = key.sign(claims(aud="https://elsewhere.example/token"))
    elif tamper == "other-issuer":
        assertion = key.sign(claims(iss=f"{TENANT}.beta-ngo"))
    elif tamper == "unknown-kid":
        assertion = make_key("ES256", kid="not-ours").sign(claims())
    elif tamper == "hs256-with-public-key":  # the classic confusion: the public key used as an HMAC secret
        header = _b64(json.dumps({"alg": "HS256", "kid": key.kid}).encode())
        signing_input = f"{header}.{_b64(json.dumps(claims()).encode())}"
        mac = hmac.new(json.dumps(key.jwk).encode(), signing_input.encode(), hashlib.sha256).digest()
        assertion = f"{signing_input}.{_b64(mac)}"
    else:
        header = _b64(json.dumps({"alg": "none", "kid": key.kid}).encode())
        assertion = f"{header}.{_b64(json.dumps(claims()).encode())}."
    refused = token_with(gateway.token_url, assertion)
    assert refused.status_code == 401 and refused.json() == {"error": "invalid_client"}
    assert assertion not in refused.text


def test_a_private_key_jwt_partner_never_authenticates_with_a_secret(running: tuple[Running, PartnerKey]) -> None:
    gateway, _ = running
    delivered = gateway.installation.deliver(ACME)
    assert "client_secret" not in delivered and delivered["client_id"] == CLIENT
    refused = httpx.post(gateway.token_url, data={"grant_type": "client_credentials"}, auth=(CLIENT, "scp_cs_guess"))
    assert refused.status_code == 401


def test_a_secret_partner_cannot_authenticate_with_a_key(real_clock: None, git_repo: GitPartnerRepo,
                                                         tmp_path: Any) -> None:  # fmt: skip
    key = make_key("ES256", kid="acme-2026")
    installation = onboard(git_repo, tmp_path / "home", PARTNER)
    app = apps.gateway(installation.home)
    server = UvicornThread(app)
    try:
        refused = token_with(f"{server.url}/oauth2/token", key.sign(claims()))
        assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
    finally:
        server.stop()
        app.close()
        app.stores.close()


class KeyServer:
    """A partner's jwksUri on loopback: the set it serves can be replaced (key rotation)."""

    def __init__(self) -> None:
        self.jwks: dict[str, Any] = {"keys": []}
        self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                server.requests += 1
                body = json.dumps(server.jwks).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("cache-control", "max-age=3600")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/scp/jwks.json"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def test_keys_at_a_jwks_uri_are_fetched_cached_and_rotated(real_clock: None, git_repo: GitPartnerRepo,
                                                           tmp_path: Any) -> None:  # fmt: skip
    keys = KeyServer()
    old, new = make_key("ES256", kid="acme-2026"), make_key("EdDSA", kid="acme-2027")
    keys.jwks = {"keys": [old.jwk]}
    installation = onboard(git_repo, tmp_path / "home", with_jwks_uri(keys.url))
    app = apps.gateway(installation.home, loopback_keys=True)
    moment = [0.0]
    app.keys = KeyCache(allow_loopback=True, clock=lambda: moment[0])  # the cache's clock, moved by the test
    server = UvicornThread(app)
    try:
        url = f"{server.url}/oauth2/token"
        assert token_with(url, old.sign(claims())).status_code == 200
        assert token_with(url, old.sign(claims())).status_code == 200
        assert keys.requests == 1, "cached (max-age)"
        keys.jwks = {"keys": [old.jwk, new.jwk]}  # the partner publishes its next key
        assert token_with(url, new.sign(claims())).status_code == 401, "fetched again at most once a minute"
        assert keys.requests == 1
        moment[0] += 61
        assert token_with(url, new.sign(claims())).status_code == 200, "an unknown kid fetches the set again"
        assert keys.requests == 2
        status = installation.status(ACME)[ACME]["credential"]
        assert set(status["keysFirstSeen"]) == {"acme-2026", "acme-2027"}
    finally:
        server.stop()
        app.close()
        app.stores.close()
        keys.stop()


def _b64(data: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(data).decode().rstrip("=")
