"""private_key_jwt client assertions (RFC 7523 §3, DESIGN §7), signed by independent libraries: joserfc and PyJWT."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import warnings
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc.jwk import RSAKey

from reconciler.gateway.assertions import (
    AssertionRefused,
    InlineKeys,
    KeysUnavailable,
    UnknownKey,
    authenticate,
    unverified_client_id,
    verify_assertion,
)
from tests.support.assertions import (
    AUDIENCES,
    CLIENT,
    ISSUER,
    KEYS,
    KINDS,
    NOW,
    TOKEN_ENDPOINT,
    PartnerKey,
    ReplayMemory,
    T,
    b64,
    claims,
    jwks_of,
    make_key,
)


def verify(assertion: str, jwks: dict[str, Any], *, memory: ReplayMemory | None = None, client: str = CLIENT) -> Any:
    return verify_assertion(assertion, client_id=client, jwks=jwks, audiences=AUDIENCES, now=NOW,
                            seen_before=memory or ReplayMemory())  # fmt: skip


def refused(assertion: str, jwks: dict[str, Any], *, memory: ReplayMemory | None = None) -> AssertionRefused:
    with pytest.raises(AssertionRefused) as caught:
        verify(assertion, jwks, memory=memory)
    reason = str(caught.value)
    assert reason == caught.value.reason
    for part in assertion.split("."):  # a reason for the log never repeats the assertion
        assert len(part) < 8 or part not in reason
    return caught.value


# --- accepted -----------------------------------------------------------------------------------


@pytest.mark.parametrize("signer", ["joserfc", "pyjwt"])
@pytest.mark.parametrize("kind", KINDS)
def test_an_assertion_signed_with_each_allowed_algorithm_authenticates_the_client(kind: str, signer: str) -> None:
    key = KEYS[kind]
    other = KEYS["ES256" if kind != "ES256" else "EdDSA"]
    assertion = key.sign(claims(), signer=signer)
    verified = verify(assertion, jwks_of(other, key))
    assert (verified.client_id, verified.key_id, verified.algorithm) == (CLIENT, key.kid, kind)
    assert verified.expires_at == T + 120


def test_the_audience_may_be_the_issuer_or_a_list_naming_either() -> None:
    key = KEYS["ES256"]
    for audience in (ISSUER, [ISSUER], ["https://elsewhere.example", TOKEN_ENDPOINT]):
        assert verify(key.sign(claims(aud=audience)), jwks_of(key)).client_id == CLIENT


def test_clocks_may_disagree_by_a_minute() -> None:
    key = KEYS["ES256"]
    jwks = jwks_of(key)
    verify(key.sign(claims(iat=T + 50, nbf=T + 50, exp=T + 300 + 50)), jwks)  # the client's clock is ahead
    verify(key.sign(claims(iat=T - 200, exp=T - 50)), jwks)  # behind: just expired by its clock
    verify(key.sign(claims(iat=None)), jwks)  # iat and nbf are optional


def test_a_set_with_one_key_needs_no_kid_in_the_header() -> None:
    key = KEYS["EdDSA"]
    assert verify(key.sign(claims(), header={"kid": None}), jwks_of(key)).key_id is None
    error = refused(key.sign(claims(), header={"kid": None}), jwks_of(key, KEYS["ES256"]))
    assert "no kid" in error.reason


# --- refused --------------------------------------------------------------------------------------


def test_a_replayed_assertion_is_refused_until_it_expires() -> None:
    key, memory = KEYS["RS256"], ReplayMemory()
    assertion = key.sign(claims())
    verify(assertion, jwks_of(key), memory=memory)
    assert "replayed" in refused(assertion, jwks_of(key), memory=memory).reason
    # Remembered for the assertion's lifetime plus the leeway, under a fixed-length key per client and jti.
    [(replay_key, until)] = memory.remembered.items()
    assert until == T + 120 + 60 and len(replay_key) == len("jti:") + 64
    # The same jti from another client is another assertion.
    other = key.sign(claims(iss="other.partner", sub="other.partner", jti=json.loads(
        base64.urlsafe_b64decode(assertion.split(".")[1] + "==")
    )["jti"]))  # fmt: skip
    verify(other, jwks_of(key), memory=memory, client="other.partner")


def test_only_a_fully_valid_assertion_reaches_the_replay_store() -> None:
    key, memory = KEYS["ES256"], ReplayMemory()
    refused(make_key("ES256", kid=key.kid).sign(claims()), jwks_of(key), memory=memory)  # forged
    refused(key.sign(claims(aud="https://elsewhere.example")), jwks_of(key), memory=memory)
    assert memory.asked == 0


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"exp": T - 61}, "expired"),
        ({"exp": None}, "exp missing"),
        ({"exp": T + 600}, "minutes ahead"),
        ({"exp": T + 300 + 61}, "minutes ahead"),
        ({"exp": "soon"}, "not a number"),
        ({"iat": T + 120}, "iat in the future"),
        ({"nbf": T + 120}, "nbf"),
        ({"aud": "https://elsewhere.example/oauth2/token"}, "aud"),
        ({"aud": [TOKEN_ENDPOINT + "/"]}, "aud"),
        ({"aud": None}, "aud"),
        ({"iss": "ministry-social-affairs.beta-ngo"}, "iss"),
        ({"sub": "ministry-social-affairs.beta-ngo"}, "sub"),
        ({"sub": None}, "sub"),
        ({"jti": None}, "jti missing"),
        ({"jti": "x" * 257}, "jti longer"),
    ],
)
def test_claims_outside_the_rules_are_refused(changes: dict[str, Any], reason: str) -> None:
    key = KEYS["ES256"]
    assert reason in refused(key.sign(claims(**changes)), jwks_of(key)).reason


def test_alg_none_is_refused() -> None:
    key = KEYS["RS256"]
    header = b64(json.dumps({"alg": "none", "kid": key.kid}).encode())
    payload = b64(json.dumps(claims()).encode())
    assert "algorithm none not allowed" in refused(f"{header}.{payload}.", jwks_of(key)).reason
    refused(f"{header}.{payload}", jwks_of(key))  # not even a JWS


@pytest.mark.parametrize("kind", ["RS256", "ES256", "EdDSA"])
def test_hs256_signed_with_the_public_key_is_refused(kind: str) -> None:
    """The algorithm-confusion attack: the public key (anyone has it) used as an HMAC secret."""
    key = KEYS[kind]
    pem = key.private.public_key().public_bytes(serialization.Encoding.PEM,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)  # fmt: skip
    for secret in (pem, json.dumps(key.jwk).encode(), json.dumps(key.jwk, separators=(",", ":")).encode()):
        for algorithm, digest in (("HS256", hashlib.sha256), ("HS512", hashlib.sha512)):
            signing_input = (
                f"{b64(json.dumps({'alg': algorithm, 'kid': key.kid}).encode())}.{b64(json.dumps(claims()).encode())}"
            )
            signature = b64(hmac.new(secret, signing_input.encode(), digest).digest())
            assert "not allowed" in refused(f"{signing_input}.{signature}", jwks_of(key)).reason


def test_a_jwk_naming_an_hmac_algorithm_never_verifies_one() -> None:
    key = KEYS["RS256"]
    jwks = {"keys": [{**key.jwk, "alg": "HS256"}]}
    assert "does not fit" in refused(key.sign(claims()), jwks).reason


def test_an_unknown_kid_is_its_own_refusal_so_a_jwks_uri_can_be_fetched_again() -> None:
    key, stranger = KEYS["ES256"], make_key("ES256", kid="rotated-2027")
    error = refused(stranger.sign(claims()), jwks_of(key))
    assert isinstance(error, UnknownKey) and error.kid == "rotated-2027"


def test_a_signature_by_another_key_under_a_known_kid_is_refused() -> None:
    key = KEYS["RS256"]
    forged = make_key("RS256", kid=key.kid).sign(claims())
    error = refused(forged, jwks_of(key))
    assert not isinstance(error, UnknownKey) and "signature" in error.reason


@pytest.mark.parametrize(
    ("kind", "claimed"),
    [("RS256", "ES256"), ("ES256", "ES384"), ("ES384", "ES256"), ("EdDSA", "ES256"), ("ES256", "RS256")],
)
def test_the_key_pins_the_algorithm(kind: str, claimed: str) -> None:
    key = KEYS[kind]
    # The header names an algorithm of another family than the key's: refused before any signature check.
    header = b64(json.dumps({"alg": claimed, "kid": key.kid}).encode())
    assertion = f"{header}.{b64(json.dumps(claims()).encode())}.{b64(b'x' * 64)}"
    assert "does not fit" in refused(assertion, jwks_of(key)).reason


def test_a_jwk_with_an_alg_member_allows_only_that_algorithm() -> None:
    key = KEYS["PS256"]
    jwks = {"keys": [{**key.jwk, "alg": "PS256"}]}
    verify(key.sign(claims()), jwks)
    rs256 = PartnerKey(key.kid, "RS256", key.jose, key.private)
    assert "does not fit" in refused(rs256.sign(claims()), jwks).reason


@pytest.mark.parametrize(
    "change",
    [
        {"use": "enc"},
        {"key_ops": ["encrypt"]},
        {"d": "AAAA"},  # a private member: never trusted, never echoed
    ],
)
def test_keys_not_for_verifying_signatures_are_not_used(change: dict[str, Any]) -> None:
    key = KEYS["ES256"]
    error = refused(key.sign(claims()), {"keys": [{**key.jwk, **change}]})
    assert "AAAA" not in error.reason


def test_rsa_keys_shorter_than_2048_bits_are_refused() -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # both libraries warn about the short key, rightly
        weak = PartnerKey("weak", "RS256", RSAKey.import_key(private), private)
        assertion = weak.sign(claims(), signer="pyjwt")
    assert "2048" in refused(assertion, jwks_of(weak)).reason


@pytest.mark.parametrize(
    "assertion",
    ["", "not-a-jwt", "a.b.c", "e30.e30.", "x" * 9000, "eyJhbGciOiJFUzI1NiJ9.bm90IGpzb24.c2ln"],
)
def test_garbage_is_refused_without_a_traceback(assertion: str) -> None:
    refused(assertion, jwks_of(KEYS["ES256"]))
    with pytest.raises(AssertionRefused):
        unverified_client_id(assertion)


def test_critical_header_extensions_are_refused() -> None:
    key = KEYS["ES256"]
    refused(key.sign(claims(), signer="pyjwt", header={"crit": ["exp"]}), jwks_of(key))


# --- finding the client and its keys -----------------------------------------------------------------


def test_the_claimed_client_id_is_iss_when_it_equals_sub() -> None:
    key = KEYS["ES256"]
    assert unverified_client_id(key.sign(claims())) == CLIENT
    with pytest.raises(AssertionRefused):
        unverified_client_id(key.sign(claims(sub="someone.else")))


@dataclass
class CountingSource:
    """A key source whose jwksUri answers ``sets`` one after the other (a partner rotating its keys)."""

    sets: list[dict[str, Any]]
    refreshes: int = 0

    def keys_for(self, auth: Any, *, refresh: bool = False) -> dict[str, Any]:
        if refresh:
            self.refreshes += 1
        return self.sets[min(self.refreshes, len(self.sets) - 1)]


def authenticated(assertion: str, auth: dict[str, Any], keys: Any) -> Any:
    return authenticate(assertion, client_id=CLIENT, auth=auth, keys=keys, audiences=AUDIENCES, now=NOW,
                        seen_before=ReplayMemory())  # fmt: skip


def test_authenticate_fetches_a_jwks_uri_again_once_on_an_unknown_kid() -> None:
    old, new = KEYS["ES256"], make_key("ES256", kid="2027")
    auth = {"method": "oauth2-client-credentials", "clientAuthentication": "private_key_jwt",
            "jwksUri": "https://keys.acme-bank.example/jwks.json"}  # fmt: skip
    source = CountingSource([jwks_of(old), jwks_of(old, new)])
    assert authenticated(new.sign(claims()), auth, source).key_id == "2027"
    assert source.refreshes == 1
    stranger = make_key("ES256", kid="unknown")
    with pytest.raises(UnknownKey):
        authenticated(stranger.sign(claims()), auth, source)
    assert source.refreshes == 2  # once per assertion; the key source limits how often that fetches


def test_authenticate_with_inline_keys_never_refetches() -> None:
    key = KEYS["EdDSA"]
    auth = {"method": "oauth2-client-credentials", "clientAuthentication": "private_key_jwt", "jwks": jwks_of(key)}
    assert authenticated(key.sign(claims()), auth, InlineKeys()).client_id == CLIENT
    with pytest.raises(UnknownKey):
        authenticated(make_key("EdDSA").sign(claims()), auth, InlineKeys())


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        ({"method": "oauth2-client-credentials"}, AssertionRefused),  # a client_secret partner
        ({"method": "oauth2-client-credentials", "clientAuthentication": "client_secret"}, AssertionRefused),
        ({"method": "oauth2-client-credentials", "clientAuthentication": "private_key_jwt",
          "jwksUri": "https://keys.acme-bank.example/jwks.json"}, KeysUnavailable),  # InlineKeys fetch nothing
    ],
)  # fmt: skip
def test_authenticate_refuses_partners_without_private_key_jwt_keys(
    auth: dict[str, Any], expected: type[Exception]
) -> None:
    with pytest.raises(expected):
        authenticated(KEYS["ES256"].sign(claims()), auth, InlineKeys())


