"""A corpus of manifests: the valid examples, systematic mutations of them and hand-picked cases."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from reconciler.manifests.loader import load_document
from tests.support.jwks import ec_jwk, ed25519_jwk, rsa_jwk

# Values of every JSON type, and strings that probe patterns, lengths and formats.
PROBES: list[Any] = [
    None,
    True,
    0,
    7,
    -1,
    90.0,
    1.5,
    "",
    "x",
    "A b",
    "a" * 501,
    "2026-02-30",
    "2026-10-01",
    "eu-west",
    "partners.scp.dev/v1",
    "tech-lead",
    "ngo",
    "GET",
    "personal",
    "abc\n",
    [],
    ["x"],
    {},
    {"k": "v"},
]


def load(path: Path) -> Any:
    return load_document(path.read_bytes()).data


def mutations(document: Any) -> Iterator[tuple[str, Any]]:
    """(description, mutated copy): each leaf replaced by each probe, each key removed, a key added."""
    for path, _ in nodes(document):
        for probe in PROBES:
            yield f"{_label(path)} = {probe!r:.30}", replace(document, path, probe)
        if path and isinstance(path[-1], str):
            yield f"del {_label(path)}", _delete(document, path)
    for path, node in nodes(document):
        if isinstance(node, dict):
            yield f"{_label(path)} + unknown key", replace(document, (*path, "surprise"), "x")
        if isinstance(node, list) and node:
            yield f"{_label(path)} + copy of first", replace(document, (*path, len(node)), copy.deepcopy(node[0]))
            yield f"{_label(path)} emptied", replace(document, path, [])


def nodes(document: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    yield path, document
    if isinstance(document, dict):
        for key, value in document.items():
            yield from nodes(value, (*path, key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            yield from nodes(value, (*path, index))


def _label(path: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in path) or "<root>"


def replace(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    result = copy.deepcopy(document)
    if not path:
        return value
    parent = result
    for part in path[:-1]:
        parent = parent[part]
    if isinstance(parent, list) and path[-1] == len(parent):
        parent.append(value)
    else:
        parent[path[-1]] = value
    return result


def _delete(document: Any, path: tuple[Any, ...]) -> Any:
    result = copy.deepcopy(document)
    parent = result
    for part in path[:-1]:
        parent = parent[part]
    del parent[path[-1]]
    return result


def auth_cases() -> list[tuple[str, dict[str, Any], bool]]:
    """(description, spec.auth, whether the schema accepts it): the client authentication shapes of DESIGN §3.

    Weak keys, unknown algorithms and unsafe URLs are accepted here: they are policy (SEC-01), not shape."""
    method = {"method": "oauth2-client-credentials"}
    pkjwt = {**method, "clientAuthentication": "private_key_jwt"}
    ec, rsa, okp = ec_jwk(), rsa_jwk(), ed25519_jwk()
    uri = "https://keys.acme-bank.example/scp/jwks.json"
    cases: list[tuple[str, dict[str, Any], bool]] = [
        ("method only", method, True),
        ("client_secret written", {**method, "clientAuthentication": "client_secret"}, True),
        ("unknown method", {**method, "clientAuthentication": "tls_client_auth"}, False),
        ("jwks EC", {**pkjwt, "jwks": {"keys": [ec]}}, True),
        ("jwks RSA", {**pkjwt, "jwks": {"keys": [rsa]}}, True),
        ("jwks OKP", {**pkjwt, "jwks": {"keys": [okp]}}, True),
        ("jwks of three", {**pkjwt, "jwks": {"keys": [ec, rsa, okp]}}, True),
        ("jwksUri", {**pkjwt, "jwksUri": uri}, True),
        ("jwksUri http (SEC-01, not SCHEMA)", {**pkjwt, "jwksUri": "http://10.0.0.1/jwks"}, True),
        ("private_key_jwt without keys", pkjwt, False),
        ("both jwks and jwksUri", {**pkjwt, "jwks": {"keys": [ec]}, "jwksUri": uri}, False),
        ("jwks without private_key_jwt", {**method, "jwks": {"keys": [ec]}}, False),
        ("jwksUri with client_secret", {**method, "clientAuthentication": "client_secret", "jwksUri": uri}, False),
        ("empty jwksUri", {**pkjwt, "jwksUri": ""}, False),
        ("empty key set", {**pkjwt, "jwks": {"keys": []}}, False),
        ("21 keys", {**pkjwt, "jwks": {"keys": [ec] * 21}}, False),
        ("jwks not an object", {**pkjwt, "jwks": [ec]}, False),
        ("jwks with extra member", {**pkjwt, "jwks": {"keys": [ec], "x": 1}}, False),
    ]
    key_cases: list[tuple[str, dict[str, Any], bool]] = [
        ("EC with alg, use, key_ops", {**ec, "alg": "ES256", "use": "sig", "key_ops": ["verify"]}, True),
        ("alg HS256 (SEC-01, not SCHEMA)", {**ec, "alg": "HS256"}, True),
        ("alg with a space", {**ec, "alg": "ES 256"}, False),
        ("no kid (SEC-01, not SCHEMA)", {k: v for k, v in ec.items() if k != "kid"}, True),
        ("kid with a space", {**ec, "kid": "a b"}, False),
        ("kid empty", {**ec, "kid": ""}, False),
        ("kid of 129", {**ec, "kid": "k" * 129}, False),
        ("use enc", {**ec, "use": "enc"}, False),
        ("key_ops sign", {**ec, "key_ops": ["sign"]}, False),
        ("key_ops empty", {**ec, "key_ops": []}, False),
        ("key_ops twice", {**ec, "key_ops": ["verify", "verify"]}, False),
        ("private d", {**ec, "d": "AAAA"}, False),
        ("RSA private p", {**rsa, "p": "AAAA"}, False),
        ("oct k", {"kty": "oct", "k": "AAAA", "kid": "s"}, False),
        ("oct without k (SEC-01, not SCHEMA)", {"kty": "oct", "kid": "s"}, True),
        ("unknown member x5c", {**rsa, "x5c": ["MIIB"]}, False),
        ("no kty", {k: v for k, v in ec.items() if k != "kty"}, False),
        ("kty lower-case (SEC-01, not SCHEMA)", {**ec, "kty": "ec"}, True),
        ("RSA without e", {k: v for k, v in rsa.items() if k != "e"}, False),
        ("RSA with crv", {**rsa, "crv": "P-256"}, False),
        ("EC without y", {k: v for k, v in ec.items() if k != "y"}, False),
        ("EC with n", {**ec, "n": rsa["n"]}, False),
        ("OKP with y", {**okp, "y": ec["y"]}, False),
        ("OKP without crv", {k: v for k, v in okp.items() if k != "crv"}, False),
        ("EC P-521 (SEC-01, not SCHEMA)", {**ec, "crv": "P-521"}, True),
        ("x padded", {**ec, "x": ec["x"] + "="}, False),
        ("x in standard base64", {**ec, "x": "ab+/" + ec["x"][4:]}, False),
        ("x of one character", {**ec, "x": "A"}, False),
        ("x of five characters", {**ec, "x": "AAAAA"}, False),
        ("x of two characters", {**ec, "x": "AA"}, True),
        ("x too long", {**ec, "x": "A" * 4100}, False),
        ("x a number", {**ec, "x": 7}, False),
        ("x null", {**ec, "x": None}, False),
    ]
    cases.extend((f"key: {name}", {**pkjwt, "jwks": {"keys": [key]}}, valid) for name, key, valid in key_cases)
    return cases


def tenant_policy_cases() -> list[tuple[str, dict[str, Any], bool]]:
    """(description, extra spec sections, whether the schema accepts them) for a TenantPolicy."""
    both = ["client_secret", "private_key_jwt"]
    return [
        ("defaults written", {"clientAuthentication": both, "gateway": {"requestsPerMinute": 600, "burst": 100}}, True),
        ("private_key_jwt only", {"clientAuthentication": ["private_key_jwt"]}, True),
        ("no method", {"clientAuthentication": []}, False),
        ("a method twice", {"clientAuthentication": ["client_secret", "client_secret"]}, False),
        ("unknown method", {"clientAuthentication": ["tls_client_auth"]}, False),
        ("a string, not a list", {"clientAuthentication": "client_secret"}, False),
        ("gateway empty", {"gateway": {}}, True),
        ("gateway lowest", {"gateway": {"requestsPerMinute": 1, "burst": 1}}, True),
        ("gateway highest", {"gateway": {"requestsPerMinute": 100_000, "burst": 10_000}}, True),
        ("gateway integral float", {"gateway": {"requestsPerMinute": 600.0}}, True),
        ("rate zero", {"gateway": {"requestsPerMinute": 0}}, False),
        ("rate too high", {"gateway": {"requestsPerMinute": 100_001}}, False),
        ("burst zero", {"gateway": {"burst": 0}}, False),
        ("burst too high", {"gateway": {"burst": 10_001}}, False),
        ("rate a string", {"gateway": {"requestsPerMinute": "600"}}, False),
        ("rate a boolean", {"gateway": {"requestsPerMinute": True}}, False),
        ("rate fractional", {"gateway": {"requestsPerMinute": 1.5}}, False),
        ("gateway unknown key", {"gateway": {"perMinute": 5}}, False),
    ]
