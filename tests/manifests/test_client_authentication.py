"""private_key_jwt in manifests (DESIGN §3): shapes are SCHEMA, keys and URLs and tenant rules are SEC-01."""

from __future__ import annotations

import json
from typing import Any

import pytest

from reconciler.manifests.loader import load_document
from reconciler.manifests.models import IntegrationPartner, TenantPolicy, client_authentication_of
from tests.conftest import PROJECT_ROOT
from tests.support.checks import assert_only, assert_violation, validate
from tests.support.corpus import load
from tests.support.jwks import b64url, b64url_int, ec_jwk, ec_key, ed25519_jwk, rsa_jwk, x25519_jwk
from tests.support.repo import PARTNER, POLICY, TENANT, PartnerRepo, edit, line_of

PARTNER_FILE = f"partners/{TENANT}/acme-bank.yaml"
POLICY_FILE = f"policies/{TENANT}.yaml"
AUTH = "  auth:\n    method: oauth2-client-credentials\n"
KEY_INDENT = " " * 10


def jwks_yaml(*keys: dict[str, Any]) -> str:
    """``keys`` as the block YAML a person writes: one member a line, values quoted."""
    lines = ["    jwks:", "      keys:"]
    for key in keys:
        for position, (member, value) in enumerate(key.items()):
            lead = "        - " if position == 0 else KEY_INDENT
            lines.append(f"{lead}{member}: {json.dumps(value)}")
    return "\n".join(lines) + "\n"


def pkjwt_partner(*keys: dict[str, Any], jwks_uri: str | None = None) -> str:
    auth = AUTH + "    clientAuthentication: private_key_jwt\n"
    auth += f"    jwksUri: {json.dumps(jwks_uri)}\n" if jwks_uri is not None else jwks_yaml(*keys)
    return edit(PARTNER, AUTH, auth)


def member_line(text: str, member: str, occurrence: int = 1) -> int:
    """The line of a JWK member written by :func:`jwks_yaml` (first members sit on the ``- `` line)."""
    seen = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith((f"{KEY_INDENT}{member}: ", f"        - {member}: ")):
            seen += 1
            if seen == occurrence:
                return number
    raise AssertionError(f"no JWK member {member!r}")


KEYS_PATH = "spec.auth.jwks.keys"


# --- valid ----------------------------------------------------------------------------------------


def test_private_key_jwt_with_inline_keys_of_every_accepted_type_is_valid(repo: PartnerRepo) -> None:
    p384 = {**ec_jwk("P-384", kid="ec-384"), "alg": "ES384"}
    keys = [
        {**ec_jwk(), "alg": "ES256", "use": "sig", "key_ops": ["verify"]},
        p384,
        {**rsa_jwk(), "alg": "PS256"},
        {**rsa_jwk(3072, kid="rsa-3072"), "alg": "RS256"},
        {**ed25519_jwk(), "alg": "EdDSA"},
    ]
    repo.write_partner(pkjwt_partner(*keys))
    assert validate(repo) == {"valid": True, "files": 3, "violations": []}


def test_private_key_jwt_with_a_public_jwks_uri_is_valid(repo: PartnerRepo) -> None:
    repo.write_partner(pkjwt_partner(jwks_uri="https://keys.acme-bank.example/scp/jwks.json"))
    assert validate(repo)["valid"] is True


# --- SCHEMA: the shape of auth --------------------------------------------------------------------


def test_private_key_jwt_without_keys_is_a_schema_error_at_auth(repo: PartnerRepo) -> None:
    text = edit(PARTNER, AUTH, AUTH + "    clientAuthentication: private_key_jwt\n")
    repo.write_partner(text)
    assert_only(validate(repo), file=PARTNER_FILE, code="SCHEMA", line=line_of(text, "auth:"), path="spec.auth")


def test_both_jwks_and_jwks_uri_is_a_schema_error(repo: PartnerRepo) -> None:
    text = pkjwt_partner(ec_jwk())
    text = edit(text, "    jwks:\n", '    jwksUri: "https://keys.acme-bank.example/jwks.json"\n    jwks:\n')
    repo.write_partner(text)
    assert_only(validate(repo), file=PARTNER_FILE, code="SCHEMA", line=line_of(text, "auth:"), path="spec.auth")


def test_keys_without_private_key_jwt_are_a_schema_error(repo: PartnerRepo) -> None:
    text = edit(PARTNER, AUTH, AUTH + jwks_yaml(ec_jwk()))
    repo.write_partner(text)
    report = validate(repo)
    assert_only(report, file=PARTNER_FILE, code="SCHEMA", line=line_of(text, "auth:"), path="spec.auth")
    assert "only for clientAuthentication: private_key_jwt" in report["violations"][0]["message"]


def test_a_member_that_is_not_base64url_is_a_schema_error_at_its_line(repo: PartnerRepo) -> None:
    text = pkjwt_partner({**ec_jwk(), "y": ec_jwk()["y"] + "="})
    repo.write_partner(text)
    assert_only(validate(repo), file=PARTNER_FILE, code="SCHEMA", line=member_line(text, "y"), path=f"{KEYS_PATH}[0].y")


# --- SEC-01: private keys in git ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "members"),
    [
        (ec_jwk(private=True), ["d"]),
        (rsa_jwk(private=True), ["d", "p", "q"]),
        ({"kty": "oct", "kid": "shared", "k": b64url(b"a shared HMAC secret, 32 bytes!!")}, ["k"]),
    ],
    ids=["ec-d", "rsa-d-p-q", "oct-k"],
)
def test_a_private_key_member_is_sec01_at_its_line_never_echoed_and_not_also_schema(
    repo: PartnerRepo, key: dict[str, Any], members: list[str]
) -> None:
    text = pkjwt_partner(key)
    repo.write_partner(text)
    report = validate(repo)
    assert sorted((v["code"], v["line"], v["path"]) for v in report["violations"]) == sorted(
        ("SEC-01", member_line(text, member), f"{KEYS_PATH}[0].{member}") for member in members
    )
    for member in members:
        assert key[member] not in json.dumps(report)
    assert all("private key member" in v["message"] for v in report["violations"])


def test_a_private_member_is_reported_even_when_the_rest_of_the_file_is_broken(repo: PartnerRepo) -> None:
    text = edit(pkjwt_partner(ec_jwk(private=True)), "type: bank}", "type: casino}")
    repo.write_partner(text)
    report = validate(repo)
    assert_violation(report, file=PARTNER_FILE, code="SEC-01", line=member_line(text, "d"), path=f"{KEYS_PATH}[0].d")
    assert_violation(report, file=PARTNER_FILE, code="SCHEMA", line=line_of(text, "casino"))
    assert len(report["violations"]) == 2


# --- SEC-01: weak, unknown or broken keys ---------------------------------------------------------


def _off_curve() -> dict[str, Any]:
    numbers = ec_key().public_key().public_numbers()
    return {**ec_jwk(), "y": b64url_int(numbers.y ^ 1, 32)}


@pytest.mark.parametrize(
    ("key", "member", "words"),
    [
        (rsa_jwk(1024), "n", "1024 bits is too weak"),
        ({**rsa_jwk(), "e": b64url_int(65536)}, "e", "do not make an RSA public key"),
        (ec_jwk("P-521"), "crv", "P-521"),
        (x25519_jwk(), "crv", "X25519"),
        ({"kty": "oct", "kid": "s"}, "kty", "'oct' is not accepted"),
        ({**ec_jwk(), "kty": "ec"}, "kty", "'ec' is not accepted"),
        ({**ec_jwk(), "alg": "HS256"}, "alg", "'HS256' is not accepted"),
        ({**ec_jwk(), "alg": "none"}, "alg", "'none' is not accepted"),
        ({**ec_jwk(), "alg": "ES384"}, "alg", "needs an EC P-384 key"),
        ({**rsa_jwk(), "alg": "ES256"}, "alg", "needs an EC P-256 key"),
        ({**ec_jwk(), "x": b64url(bytes(31))}, "x", "must be 32 bytes"),
        (_off_curve(), "x", "not a point on P-256"),
        ({**ed25519_jwk(), "x": b64url(bytes(31))}, "x", "must be 32 bytes for Ed25519"),
    ],
    ids=[
        "rsa-1024",
        "rsa-even-exponent",
        "ec-p521",
        "okp-x25519",
        "oct",
        "kty-lower-case",
        "alg-hs256",
        "alg-none",
        "alg-for-another-curve",
        "alg-for-another-type",
        "ec-short-x",
        "ec-off-curve",
        "ed25519-short",
    ],
)
def test_unacceptable_keys_are_sec01_at_the_member_at_fault(
    repo: PartnerRepo, key: dict[str, Any], member: str, words: str
) -> None:
    text = pkjwt_partner(key)
    repo.write_partner(text)
    report = validate(repo)
    assert_only(
        report, file=PARTNER_FILE, code="SEC-01", line=member_line(text, member), path=f"{KEYS_PATH}[0].{member}"
    )
    assert words in report["violations"][0]["message"]


def test_a_key_without_kid_is_sec01_at_the_key(repo: PartnerRepo) -> None:
    text = pkjwt_partner(ec_jwk(), ec_jwk("P-384", kid=None))
    repo.write_partner(text)
    report = validate(repo)
    assert_only(report, file=PARTNER_FILE, code="SEC-01", line=member_line(text, "kty", 2), path=f"{KEYS_PATH}[1].kid")
    assert "no kid" in report["violations"][0]["message"]


def test_a_duplicate_kid_is_sec01_at_the_second_one(repo: PartnerRepo) -> None:
    text = pkjwt_partner(ec_jwk(kid="k1"), ed25519_jwk(kid="k2"), rsa_jwk(kid="k1"))
    repo.write_partner(text)
    report = validate(repo)
    assert_only(report, file=PARTNER_FILE, code="SEC-01", line=member_line(text, "kid", 3), path=f"{KEYS_PATH}[2].kid")
    assert "duplicate kid 'k1' (also keys[0])" in report["violations"][0]["message"]


# --- SEC-01: jwksUri ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "words"),
    [
        ("http://keys.acme-bank.example/jwks.json", "a jwksUri must use https"),
        ("https://user:pass@keys.acme-bank.example/jwks.json", "credentials"),
        ("https://keys.acme-bank.example/jwks.json?token=abc", "credential in its query"),
        ("https://10.0.0.7/jwks.json", "private"),
        ("https://127.0.0.1/jwks.json", "loopback"),
        ("https://localhost/jwks.json", "private host name"),
        ("https://169.254.169.254/latest/meta-data", "metadata"),
        ("https://[fe80::1]/jwks.json", "link-local"),
        ("https://0x7f.1/jwks.json", "loopback"),
        ("not a url", "has no host"),
    ],
)
def test_unsafe_jwks_uri_is_sec01_at_its_line(repo: PartnerRepo, uri: str, words: str) -> None:
    text = pkjwt_partner(jwks_uri=uri)
    repo.write_partner(text)
    report = validate(repo)
    assert {v["code"] for v in report["violations"]} == {"SEC-01"}
    assert_violation(report, file=PARTNER_FILE, code="SEC-01", line=line_of(text, "jwksUri:"), path="spec.auth.jwksUri")
    assert any(words in v["message"] for v in report["violations"]), report["violations"]


def test_loopback_http_jwks_uri_allowed_only_with_the_dev_flag(repo: PartnerRepo) -> None:
    repo.write_partner(pkjwt_partner(jwks_uri="http://127.0.0.1:9000/jwks.json"))
    assert validate(repo)["valid"] is False
    assert validate(repo, extra=("--dev-allow-loopback-webhooks",))["valid"] is True


def test_dev_flag_never_allows_a_private_jwks_uri(repo: PartnerRepo) -> None:
    repo.write_partner(pkjwt_partner(jwks_uri="http://192.168.1.5/jwks.json"))
    assert validate(repo, extra=("--dev-allow-loopback-webhooks",))["valid"] is False


# --- SEC-01: the tenant's allowed methods ---------------------------------------------------------


def test_a_method_the_tenant_does_not_allow_is_sec01_on_the_partner(repo: PartnerRepo) -> None:
    repo.write(POLICY_FILE, POLICY + "  clientAuthentication: [client_secret]\n")
    text = pkjwt_partner(ec_jwk())
    repo.write_partner(text)
    report = validate(repo)
    assert_only(
        report,
        file=PARTNER_FILE,
        code="SEC-01",
        line=line_of(text, "clientAuthentication:"),
        path="spec.auth.clientAuthentication",
    )
    assert "private_key_jwt is not allowed by tenant" in report["violations"][0]["message"]


def test_the_default_method_counts_when_the_tenant_allows_only_private_key_jwt(repo: PartnerRepo) -> None:
    repo.write(POLICY_FILE, POLICY + "  clientAuthentication: [private_key_jwt]\n")
    repo.write_partner()
    report = validate(repo)
    assert_only(
        report, file=PARTNER_FILE, code="SEC-01", line=line_of(PARTNER, "auth:"), path="spec.auth.clientAuthentication"
    )
    assert "client_secret (the default" in report["violations"][0]["message"]


@pytest.mark.parametrize(
    "section",
    [
        "  gateway: {requestsPerMinute: 0, burst: 10}\n",
        "  gateway: {requestsPerMinute: 600, burst: 10001}\n",
        "  clientAuthentication: []\n",
        "  clientAuthentication: [client_secret, client_secret]\n",
        "  clientAuthentication: [mtls]\n",
    ],
)
def test_bad_gateway_limits_and_method_lists_are_schema_errors(repo: PartnerRepo, section: str) -> None:
    text = POLICY + section
    repo.write(POLICY_FILE, text)
    assert_only(validate(repo, POLICY_FILE), file=POLICY_FILE, code="SCHEMA", line=line_of(text, section.strip()))


def test_tenant_policy_defaults_allow_both_methods_and_600_a_minute() -> None:
    policy = TenantPolicy.model_validate(load_document(POLICY.encode()).data)
    assert policy.spec.clientAuthentication == ["client_secret", "private_key_jwt"]
    assert (policy.spec.gateway.requestsPerMinute, policy.spec.gateway.burst) == (600, 100)
    written = load_document((POLICY + "  gateway: {requestsPerMinute: 60, burst: 5}\n").encode()).data
    assert TenantPolicy.model_validate(written).spec.gateway.model_dump() == {"requestsPerMinute": 60, "burst": 5}


# --- the applied spec (JSON) ----------------------------------------------------------------------


def _applied(text: str) -> dict[str, Any]:
    """The spec as the engine records it (reconciler.engine.desired.spec_document)."""
    partner = IntegrationPartner.model_validate(load_document(text.encode()).data)
    spec: dict[str, Any] = partner.spec.model_dump(mode="json", exclude_none=True)
    return spec


def test_a_partner_without_client_authentication_dumps_its_spec_as_before() -> None:
    spec = _applied(PARTNER)
    assert spec["auth"] == {"method": "oauth2-client-credentials"}
    assert set(spec) == {
        "organization", "legalBasis", "contacts", "auth", "scopes", "residency", "webhooks", "mappings", "suspended",
    }  # fmt: skip
    assert client_authentication_of(spec) == "client_secret"
    for path in sorted(PROJECT_ROOT.glob("partners/*/*.yaml")):
        document = load(path)
        assert _applied(path.read_text())["auth"] == document["spec"]["auth"], path


def test_a_private_key_jwt_partner_dumps_its_auth_as_written() -> None:
    keys = [{**ec_jwk(), "alg": "ES256", "use": "sig"}, rsa_jwk()]
    spec = _applied(pkjwt_partner(*keys))
    assert spec["auth"] == {
        "method": "oauth2-client-credentials",
        "clientAuthentication": "private_key_jwt",
        "jwks": {"keys": keys},
    }
    assert client_authentication_of(spec) == "private_key_jwt"
    uri = "https://keys.acme-bank.example/scp/jwks.json"
    assert _applied(pkjwt_partner(jwks_uri=uri))["auth"]["jwksUri"] == uri


def test_the_model_names_what_other_layers_read() -> None:
    partner = IntegrationPartner.model_validate(load(PROJECT_ROOT / "examples/private-key-jwt-partner.yaml"))
    auth = partner.spec.auth
    assert auth.clientAuthentication == auth.client_authentication == "private_key_jwt"
    assert auth.jwksUri is None
    assert auth.jwks is not None
    assert [key.kid for key in auth.jwks.keys] == ["nso-2026-06"]
    reference = IntegrationPartner.model_validate(load_document(PARTNER.encode()).data).spec.auth
    assert (reference.clientAuthentication, reference.client_authentication) == (None, "client_secret")
