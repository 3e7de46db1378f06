"""The gateway over real HTTP on loopback (DESIGN §7): tokens, handshake, scope enforcement, forwarding."""

from __future__ import annotations

import base64
import json
import threading

import httpx
import jwt
import pytest
from standardwebhooks.webhooks import Webhook

from reconciler.credentials import Credential
from reconciler.gateway import Gateway
from reconciler.stores import SecretStore, Stores
from tests.conftest import Onboarded
from tests.support import apps
from tests.support.repo import TENANT, edit
from tests.support.servers import UvicornThread

ACME = f"{TENANT}/acme-bank"
APPROVED = ["beneficiary:read:anonymous", "payment:status:read", "payment:status:update"]


def token_response(
    onboarded: Onboarded, *, basic: bool = True, secret: str | None = None, **form: str
) -> httpx.Response:
    creds = onboarded.credentials
    data = {"grant_type": "client_credentials", **form}
    auth = None
    if basic:
        auth = (creds["client_id"], secret or creds["client_secret"])
    else:
        data |= {"client_id": creds["client_id"], "client_secret": secret or creds["client_secret"]}
    return httpx.post(f"{onboarded.gateway.url}/oauth2/token", data=data, auth=auth)


def token(onboarded: Onboarded, **form: str) -> str:
    response = token_response(onboarded, **form)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def get(onboarded: Onboarded, path: str, bearer: str | None, **headers: str) -> httpx.Response:
    if bearer is not None:
        headers["Authorization"] = f"Bearer {bearer}"
    return httpx.get(f"{onboarded.gateway.url}{path}", headers=headers)


@pytest.mark.parametrize("basic", [True, False], ids=["http-basic", "form-body"])
def test_client_credentials_grant_issues_an_rfc9068_token(onboarded: Onboarded, basic: bool) -> None:
    response = token_response(onboarded, basic=basic)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 300
    assert body["scope"].split() == APPROVED
    access = body["access_token"]
    assert jwt.get_unverified_header(access)["typ"] == "at+jwt"
    jwks = httpx.get(f"{onboarded.gateway.url}/.well-known/jwks.json").json()
    key = jwt.PyJWK(jwks["keys"][0])
    claims = jwt.decode(access, key.key, algorithms=["ES256"], audience="scp-platform-api",
                        options={"verify_exp": False, "verify_iat": False})  # fmt: skip
    assert {"iss", "sub", "aud", "exp", "iat", "jti", "client_id", "scope"} <= set(claims)
    assert claims["iss"] == "https://gateway.scp.example"
    assert claims["sub"] == claims["client_id"] == f"{TENANT}.acme-bank"
    assert claims["exp"] - claims["iat"] == 300


def test_scope_narrowing_and_invalid_scope(onboarded: Onboarded) -> None:
    narrowed = token_response(onboarded, scope="payment:status:read")
    assert narrowed.json()["scope"] == "payment:status:read"
    refused = token_response(onboarded, scope="payment:status:read beneficiary:read:personal")
    assert (refused.status_code, refused.json()["error"]) == (400, "invalid_scope")


@pytest.mark.parametrize(
    ("change", "status", "error"),
    [
        ({"secret": "scp_cs_wrong"}, 401, "invalid_client"),
        ({"grant_type": "password"}, 400, "unsupported_grant_type"),
        ({"grant_type": ""}, 400, "invalid_request"),
    ],
    ids=["wrong-secret", "bad-grant-type", "missing-grant-type"],
)
def test_token_errors_follow_rfc6749(onboarded: Onboarded, change: dict[str, str], status: int, error: str) -> None:
    secret = change.pop("secret", None)
    response = token_response(onboarded, secret=secret, **change)
    assert (response.status_code, response.json()["error"]) == (status, error)
    assert response.headers["cache-control"] == "no-store"
    if error == "invalid_client":
        assert response.headers["www-authenticate"].startswith("Basic")
        assert "scp_cs_wrong" not in response.text


def test_unknown_client_is_invalid_client(onboarded: Onboarded) -> None:
    response = httpx.post(f"{onboarded.gateway.url}/oauth2/token", data={"grant_type": "client_credentials"},
                          auth=("nobody.ghost", "scp_cs_" + "x" * 43))  # fmt: skip
    assert (response.status_code, response.json()["error"]) == (401, "invalid_client")


def test_ping_is_the_handshake_and_activates_the_partner(onboarded: Onboarded) -> None:
    installation = onboarded.installation
    assert installation.status()[ACME]["phase"] == "AWAITING_HANDSHAKE"
    response = get(onboarded, "/v1/ping", token(onboarded))
    assert response.status_code == 200 and response.json()["partner"] == ACME
    status = installation.status()[ACME]
    assert (status["phase"], status["health"]) == ("ACTIVE", "HEALTHY")
    assert status["lastSuccessfulSync"] is not None
    assert "handshake.verified" in installation.events(ACME)
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions["HandshakeVerified"] == conditions["Ready"] == "True"


def test_the_webhook_ping_verifies_with_the_standard_webhooks_library(onboarded: Onboarded) -> None:
    [ping] = [request for request in onboarded.receiver.requests if request.path == "/scp"]
    secret = onboarded.credentials["webhook_secrets"]["payment-events"]
    payload = Webhook(secret).verify(ping.body, ping.headers)
    assert payload["type"] == "ping" and payload["data"] == {"partner": ACME, "webhook": "payment-events"}
    with pytest.raises(Exception):  # noqa: B017 - the library raises its own verification error
        Webhook(secret).verify(ping.body + b" ", ping.headers)


def test_expired_and_tampered_tokens_are_invalid(onboarded: Onboarded, monkeypatch: pytest.MonkeyPatch) -> None:
    access = token(onboarded)
    header, claims, signature = access.split(".")
    forged_claims = json.loads(base64.urlsafe_b64decode(claims + "=="))
    forged_claims["scope"] += " beneficiary:read:personal"
    forged = ".".join([header, base64.urlsafe_b64encode(json.dumps(forged_claims).encode()).decode().rstrip("="),
                       signature])  # fmt: skip
    for bad in (forged, access[:-4] + "AAAA", "not.a.token"):
        response = get(onboarded, "/v1/ping", bad)
        assert response.status_code == 401
        assert 'error="invalid_token"' in response.headers["www-authenticate"]
    monkeypatch.setenv("PARTNERCTL_NOW", "2026-11-28T12:05:01Z")  # tokens live 300 s
    assert get(onboarded, "/v1/ping", access).status_code == 401
    assert get(onboarded, "/v1/ping", None).status_code == 401


def test_out_of_scope_route_is_refused_and_audited(onboarded: Onboarded) -> None:
    response = get(onboarded, "/v1/beneficiaries/42", token(onboarded))
    assert response.status_code == 403
    assert response.headers["www-authenticate"].startswith('Bearer realm="scp", error="insufficient_scope"')
    denied = [e for e in onboarded.installation.audit() if e["event"] == "access.denied"]
    assert denied[-1]["details"]["code"] == "PRIV-01"
    assert denied[-1]["details"]["requiredScope"] == "beneficiary:read:personal"
    assert onboarded.upstream.requests == []


def test_narrowed_token_cannot_use_other_scopes(onboarded: Onboarded) -> None:
    narrowed = token(onboarded, scope="payment:status:read")
    assert get(onboarded, "/v1/beneficiaries/stats", narrowed).status_code == 403


def test_routes_outside_the_catalog_are_not_found(onboarded: Onboarded) -> None:
    assert get(onboarded, "/v1/admin/users", token(onboarded)).status_code == 404
    assert onboarded.upstream.requests == []


def test_allowed_requests_are_forwarded_with_identity_and_without_the_token(onboarded: Onboarded) -> None:
    access = token(onboarded)
    response = get(onboarded, "/v1/beneficiaries/stats?region=north", access, **{"X-Partner": "forged"})
    assert response.status_code == 200 and response.json()["from"] == "upstream"
    [forwarded] = onboarded.upstream.requests
    assert forwarded.path == "/v1/beneficiaries/stats?region=north"
    assert "authorization" not in forwarded.headers
    assert forwarded.headers["x-partner"] == ACME
    assert forwarded.headers["x-partner-scopes"] == " ".join(sorted(APPROVED))
    response = httpx.post(f"{onboarded.gateway.url}/v1/payments/p-77/status", json={"state": "paid"},
                          headers={"Authorization": f"Bearer {access}"})  # fmt: skip
    assert response.status_code == 200
    assert json.loads(onboarded.upstream.requests[-1].body) == {"state": "paid"}


def test_auth_request_endpoint_answers_an_existing_gateway(onboarded: Onboarded) -> None:
    access = token(onboarded)
    allowed = get(
        onboarded, "/authz", access, **{"X-Original-Method": "GET", "X-Original-URI": "/v1/payments/9/status"}
    )
    assert allowed.status_code == 200 and allowed.headers["x-partner"] == ACME
    denied = get(onboarded, "/authz", access, **{"X-Original-Method": "GET", "X-Original-URI": "/v1/beneficiaries/9"})
    assert denied.status_code == 403
    assert get(onboarded, "/authz", None, **{"X-Original-URI": "/v1/payments/9/status"}).status_code == 401


def test_suspension_stops_tokens_at_once(onboarded: Onboarded) -> None:
    access = token(onboarded)
    repo = onboarded.installation.repo
    text = (repo.root / f"partners/{TENANT}/acme-bank.yaml").read_text()
    repo.write_partner(edit(text, "suspended: false", "suspended: true"))
    repo.commit("Suspend")
    onboarded.installation.apply()
    assert get(onboarded, "/v1/ping", access).status_code == 401
    assert token_response(onboarded).status_code == 401


def test_an_approved_narrowing_applies_to_outstanding_tokens(onboarded: Onboarded) -> None:
    access = token(onboarded)
    repo = onboarded.installation.repo
    text = (repo.root / f"partners/{TENANT}/acme-bank.yaml").read_text()
    repo.write_partner(edit(text, "    - beneficiary:read:anonymous\n", ""))
    repo.commit("Narrow")
    onboarded.installation.apply()
    assert get(onboarded, "/v1/beneficiaries/stats", access).status_code == 403


def test_rotation_keeps_old_tokens_during_overlap_only(onboarded: Onboarded, monkeypatch: pytest.MonkeyPatch) -> None:
    old = token(onboarded)
    assert onboarded.installation.run("credentials", "rotate", ACME).exit_code == 0
    fresh = onboarded.installation.deliver(ACME)
    onboarded.credentials = fresh | {"client_secret": fresh["client_secret"]}
    assert get(onboarded, "/v1/ping", old).status_code == 200  # overlapDays: still valid
    assert get(onboarded, "/v1/ping", token(onboarded)).status_code == 200
    monkeypatch.setenv("PARTNERCTL_NOW", "2026-12-06T12:00:00Z")  # overlap over
    onboarded.installation.apply()
    monkeypatch.setenv("PARTNERCTL_NOW", "2026-11-28T12:01:00Z")  # the old token itself is not expired
    assert get(onboarded, "/v1/ping", old).status_code == 401


def test_the_gateway_writes_no_secret_to_the_audit_log(onboarded: Onboarded) -> None:
    assert get(onboarded, "/v1/ping", token(onboarded)).status_code == 200
    secret = onboarded.credentials["client_secret"]
    assert secret not in (onboarded.installation.home / "audit.jsonl").read_text()


def test_oversized_bodies_are_refused(onboarded: Onboarded) -> None:
    response = httpx.post(f"{onboarded.gateway.url}/oauth2/token", content=b"grant_type=" + b"x" * (1024 * 1024 + 1),
                          headers={"content-type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert response.status_code == 413


class HeldSecretStore:
    """The installation's secret store, except that verifying a secret waits until the test lets it go:
    a Vault that has become slow."""

    def __init__(self, store: SecretStore) -> None:
        self._store = store
        self.entered, self.release = threading.Event(), threading.Event()

    def verify(self, client_id: str, secret: str) -> Credential | None:
        self.entered.set()
        self.release.wait(30)
        return self._store.verify(client_id, secret)

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)


def test_a_slow_store_call_does_not_hold_up_other_requests(onboarded: Onboarded) -> None:
    stores = apps.stores(onboarded.installation.home)
    held = HeldSecretStore(stores.secrets)
    app = Gateway(Stores(stores.partners, stores.journal, held), issuer=apps.ISSUER)  # type: ignore[arg-type]
    server = UvicornThread(app)
    access = token(onboarded)  # from the fixture's gateway: the same installation
    slow: list[httpx.Response] = []
    creds = onboarded.credentials
    waiting = threading.Thread(target=lambda: slow.append(httpx.post(
        f"{server.url}/oauth2/token", data={"grant_type": "client_credentials"},
        auth=(creds["client_id"], creds["client_secret"]), timeout=60)))  # fmt: skip
    try:
        waiting.start()
        assert held.entered.wait(10), "the token request never reached the secret store"
        # While that verification hangs, the gateway still answers everyone else.
        assert httpx.get(f"{server.url}/.well-known/jwks.json", timeout=5).status_code == 200
        assert httpx.get(f"{server.url}/v1/ping", headers={"Authorization": f"Bearer {access}"},
                         timeout=5).status_code == 200  # fmt: skip
        assert waiting.is_alive() and not slow
        held.release.set()
        waiting.join(30)
        assert slow[0].status_code == 200
    finally:
        held.release.set()
        server.stop()
        app.close()
        stores.close()
