"""The gateway's standard OAuth2 endpoints, driven by an independent client (authlib) where one exists:
metadata (RFC 8414), client credentials with client_secret_basic and client_secret_post (RFC 6749
§2.3.1), revocation (RFC 7009) and introspection (RFC 7662)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from authlib.integrations.httpx_client import OAuth2Client

from tests.conftest import Onboarded
from tests.support.repo import TENANT, edit

ACME = f"{TENANT}/acme-bank"
CATALOG_SCOPES = ["beneficiary:read:anonymous", "beneficiary:read:personal", "payment:status:read",
                  "payment:status:update", "grievance:case:read"]  # fmt: skip
APPROVED = ["beneficiary:read:anonymous", "payment:status:read", "payment:status:update"]


def client(onboarded: Onboarded, method: str = "client_secret_basic", credentials: dict[str, Any] | None = None,
           ) -> OAuth2Client:  # fmt: skip
    creds = credentials or onboarded.credentials
    return OAuth2Client(client_id=creds["client_id"], client_secret=creds["client_secret"],
                        token_endpoint_auth_method=method, revocation_endpoint_auth_method=method)  # fmt: skip


def endpoint(onboarded: Onboarded, path: str) -> str:
    return f"{onboarded.gateway.url}{path}"


def fetch(oauth: OAuth2Client, onboarded: Onboarded, **form: str) -> str:
    token = oauth.fetch_token(endpoint(onboarded, "/oauth2/token"), grant_type="client_credentials", **form)
    return str(token["access_token"])


def ping(onboarded: Onboarded, token: str) -> int:
    return httpx.get(endpoint(onboarded, "/v1/ping"), headers={"Authorization": f"Bearer {token}"}).status_code


def introspect(oauth: OAuth2Client, onboarded: Onboarded, token: str) -> dict[str, Any]:
    response = oauth.introspect_token(endpoint(onboarded, "/oauth2/introspect"), token=token,
                                      token_type_hint="access_token")  # fmt: skip
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    return dict(response.json())


def platform_introspect(onboarded: Onboarded, bearer: str, token: str) -> httpx.Response:
    return httpx.post(endpoint(onboarded, "/oauth2/introspect"), data={"token": token},
                      headers={"Authorization": f"Bearer {bearer}"})  # fmt: skip


@pytest.fixture
def introspection_token(onboarded: Onboarded) -> str:
    """The platform services' introspection token, as ``partnerctl gateway introspection-token`` prints it."""
    result = onboarded.installation.run("gateway", "introspection-token")
    assert result.exit_code == 0, result
    return result.stdout.strip()


@pytest.fixture
def oauth(onboarded: Onboarded) -> Iterator[OAuth2Client]:
    with client(onboarded) as opened:
        yield opened


# --- RFC 8414 metadata ---------------------------------------------------------------------------------------


def test_metadata_names_every_endpoint_and_what_the_token_endpoint_accepts(onboarded: Onboarded) -> None:
    response = httpx.get(endpoint(onboarded, "/.well-known/oauth-authorization-server"))
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    issuer = "https://gateway.scp.example"
    assert response.json() == {
        "issuer": issuer,
        "token_endpoint": f"{issuer}/oauth2/token",
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "revocation_endpoint": f"{issuer}/oauth2/revoke",
        "introspection_endpoint": f"{issuer}/oauth2/introspect",
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS256", "PS256", "ES256", "ES384", "EdDSA"],
        "scopes_supported": CATALOG_SCOPES,
    }


# --- client credentials with authlib --------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_authlib_gets_a_token_with_either_secret_method(onboarded: Onboarded, method: str) -> None:
    with client(onboarded, method) as oauth:
        token = oauth.fetch_token(endpoint(onboarded, "/oauth2/token"), grant_type="client_credentials",
                                  scope="payment:status:read")  # fmt: skip
        assert token["token_type"] == "Bearer" and token["scope"] == "payment:status:read"
        answer = oauth.get(endpoint(onboarded, "/v1/ping"))  # authlib sends the token it holds
        assert answer.status_code == 200 and answer.json()["scopes"] == ["payment:status:read"]


# --- RFC 7009 revocation --------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_a_revoked_token_stops_working_and_is_audited(onboarded: Onboarded, method: str) -> None:
    with client(onboarded, method) as oauth:
        access, other = fetch(oauth, onboarded), fetch(oauth, onboarded)
        assert ping(onboarded, access) == 200
        response = oauth.revoke_token(endpoint(onboarded, "/oauth2/revoke"), token=access,
                                      token_type_hint="access_token")  # fmt: skip
        assert response.status_code == 200
        assert ping(onboarded, access) == 401
        assert introspect(oauth, onboarded, access) == {"active": False}
        assert ping(onboarded, other) == 200, "only the token named"
        assert oauth.revoke_token(endpoint(onboarded, "/oauth2/revoke"), token=access).status_code == 200
    revoked = [entry for entry in onboarded.installation.audit() if entry["event"] == "token.revoked"]
    assert len(revoked) == 1, "revoking it again changes nothing"
    assert revoked[0]["partner"] == ACME and revoked[0]["actor"] == "gateway"
    assert set(revoked[0]["details"]) == {"clientId", "jti"}
    assert revoked[0]["details"]["clientId"] == onboarded.credentials["client_id"]
    assert access not in (onboarded.installation.home / "audit.jsonl").read_text()


def test_unknown_expired_and_foreign_tokens_answer_200_and_nothing_is_revoked(
    onboarded: Onboarded, beta: dict[str, Any], oauth: OAuth2Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    with client(onboarded, credentials=beta) as other:
        theirs = fetch(other, onboarded)
    mine = fetch(oauth, onboarded)
    revoke = endpoint(onboarded, "/oauth2/revoke")
    for token in (theirs, "not-a-token", mine[:-4] + "AAAA"):
        assert oauth.revoke_token(revoke, token=token).status_code == 200
    assert ping(onboarded, theirs) == 200, "another partner's token is not revoked"
    monkeypatch.setenv("PARTNERCTL_NOW", "2026-11-28T12:05:01Z")  # tokens live 300 s
    assert oauth.revoke_token(revoke, token=mine).status_code == 200
    assert "token.revoked" not in onboarded.installation.events()


def test_revocation_needs_client_authentication_and_a_token(onboarded: Onboarded, oauth: OAuth2Client) -> None:
    access = fetch(oauth, onboarded)
    revoke = endpoint(onboarded, "/oauth2/revoke")
    anonymous = httpx.post(revoke, data={"token": access})
    assert (anonymous.status_code, anonymous.json()["error"]) == (401, "invalid_client")
    wrong = httpx.post(revoke, data={"token": access}, auth=(onboarded.credentials["client_id"], "scp_cs_wrong"))
    assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_client")
    assert wrong.headers["www-authenticate"].startswith("Basic")
    missing = httpx.post(revoke, data={}, auth=(onboarded.credentials["client_id"],
                                                onboarded.credentials["client_secret"]))  # fmt: skip
    assert (missing.status_code, missing.json()["error"]) == (400, "invalid_request")
    assert httpx.get(revoke).status_code == 405
    assert ping(onboarded, access) == 200


# --- RFC 7662 introspection -----------------------------------------------------------------------------------


def test_a_partner_introspects_its_own_token_with_the_current_scopes(
    onboarded: Onboarded, oauth: OAuth2Client
) -> None:
    access = fetch(oauth, onboarded)
    answer = introspect(oauth, onboarded, access)
    assert set(answer) == {"active", "client_id", "sub", "scope", "exp", "iat", "iss", "token_type"}
    assert answer["active"] is True and answer["token_type"] == "Bearer"
    assert answer["client_id"] == answer["sub"] == onboarded.credentials["client_id"]
    assert answer["scope"].split() == APPROVED
    assert answer["exp"] - answer["iat"] == 300 and answer["iss"] == "https://gateway.scp.example"
    repo = onboarded.installation.repo
    text = (repo.root / f"partners/{TENANT}/acme-bank.yaml").read_text()
    repo.write_partner(edit(text, "    - beneficiary:read:anonymous\n", ""))
    repo.commit("Narrow")
    onboarded.installation.apply()
    assert introspect(oauth, onboarded, access)["scope"].split() == APPROVED[1:], "the effective scopes, now"


def test_the_platform_introspects_any_token_with_its_introspection_token(
    onboarded: Onboarded, beta: dict[str, Any], oauth: OAuth2Client, introspection_token: str
) -> None:
    assert introspection_token.startswith("scp_it_")
    with client(onboarded, credentials=beta) as other:
        theirs = fetch(other, onboarded)
    answer = platform_introspect(onboarded, introspection_token, theirs)
    assert answer.status_code == 200 and answer.json()["active"] is True
    assert answer.json()["client_id"] == beta["client_id"]
    assert introspect(oauth, onboarded, theirs) == {"active": False}, "a partner learns nothing of another's token"
    refused = platform_introspect(onboarded, "scp_it_" + "x" * 43, theirs)
    assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
    stored = onboarded.installation.secrets()
    assert introspection_token.encode() not in b"".join(
        stored.sealed(name) or b"" for name in ("gateway-introspection-token-key", "gateway-introspection-token-hash")
    ), "kept as a keyed hash only"
    result = onboarded.installation.run("gateway", "introspection-token")
    assert result.exit_code == 0
    assert platform_introspect(onboarded, introspection_token, theirs).status_code == 401, "replaced: the old stops"
    assert platform_introspect(onboarded, result.stdout.strip(), theirs).json()["active"] is True


def test_inactive_tokens_say_nothing_but_that(
    onboarded: Onboarded, oauth: OAuth2Client, introspection_token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    access = fetch(oauth, onboarded)
    header, claims, signature = access.split(".")
    tampered = ".".join([header, claims[:-2] + ("A" if claims[-2] != "A" else "B") + claims[-1], signature])
    for token in (tampered, "not.a.token", ""):
        assert platform_introspect(onboarded, introspection_token, token).json() in (
            {"active": False}, {"error": "invalid_request", "error_description": "token is required"})  # fmt: skip
    monkeypatch.setenv("PARTNERCTL_NOW", "2026-11-28T12:05:01Z")
    assert platform_introspect(onboarded, introspection_token, access).json() == {"active": False}, "expired"


def test_tokens_of_a_suspended_partner_or_a_rotated_out_secret_are_inactive(
    onboarded: Onboarded, oauth: OAuth2Client, introspection_token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = fetch(oauth, onboarded)
    assert onboarded.installation.run("credentials", "rotate", ACME).exit_code == 0
    assert platform_introspect(onboarded, introspection_token, old).json()["active"] is True, "in its overlap"
    monkeypatch.setenv("PARTNERCTL_NOW", "2026-12-06T12:00:00Z")  # overlap over
    onboarded.installation.apply()
    monkeypatch.setenv("PARTNERCTL_NOW", "2026-11-28T12:01:00Z")  # the token itself is not expired
    assert platform_introspect(onboarded, introspection_token, old).json() == {"active": False}
    fresh = onboarded.installation.deliver(ACME)
    with client(onboarded, credentials=fresh) as rotated:
        current = fetch(rotated, onboarded)
    repo = onboarded.installation.repo
    text = (repo.root / f"partners/{TENANT}/acme-bank.yaml").read_text()
    repo.write_partner(edit(text, "suspended: false", "suspended: true"))
    repo.commit("Suspend")
    onboarded.installation.apply()
    assert platform_introspect(onboarded, introspection_token, current).json() == {"active": False}
