"""Logging in to Vault: a token (renewed before it expires), AppRole, and a Kubernetes service account.

The Kubernetes case runs Vault's real Kubernetes auth method; only the TokenReview call it makes to
the Kubernetes API is answered by a local server, with the API's documented response shape.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from reconciler.backends.vault import VaultSecretStore, parse_url
from reconciler.credentials import new_client_secret
from tests.support.engine import Installation
from tests.support.servers import HttpRecorder
from tests.support.vault import VaultSpace

NOW = datetime(2026, 11, 28, 12, tzinfo=UTC)
ACME, ACME_ID = "ministry-social-affairs/acme-bank", "ministry-social-affairs.acme-bank"
SERVICE_ACCOUNT = "system:serviceaccount:scp-partners:partnerctl"


def works(store: VaultSecretStore) -> bool:
    secret = new_client_secret()
    store.issue_credential(ACME, ACME_ID, secret, now=NOW, reason="new-partner")
    return store.verify(ACME_ID, secret) is not None


def test_approle_login(vault: VaultSpace, monkeypatch: pytest.MonkeyPatch) -> None:
    root = vault.server.client()
    root.auth.approle.create_or_update_approle("partnerctl", token_policies=["partnerctl"], token_ttl="1h")
    monkeypatch.setenv("VAULT_ROLE_ID", root.auth.approle.read_role_id("partnerctl")["data"]["role_id"])
    monkeypatch.setenv("VAULT_SECRET_ID", root.auth.approle.generate_secret_id("partnerctl")["data"]["secret_id"])
    monkeypatch.delenv("VAULT_TOKEN")

    store = VaultSecretStore(parse_url(vault.url + "&auth=approle"))
    assert works(store)
    store.close()


def some_ca() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubernetes")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture
def token_review() -> Iterator[HttpRecorder]:
    """The Kubernetes API's TokenReview endpoint, answering that the token is the partnerctl service account."""
    review = {
        "kind": "TokenReview",
        "apiVersion": "authentication.k8s.io/v1",
        "status": {
            "authenticated": True,
            "user": {
                "username": SERVICE_ACCOUNT,
                "uid": "7d1c2f0e-0000-4000-8000-000000000001",
                "groups": ["system:serviceaccounts", "system:serviceaccounts:scp-partners"],
            },
        },
    }
    server = HttpRecorder(status=201, answer=review)
    server.start()
    yield server
    server.stop()


def test_kubernetes_service_account_login(
    vault: VaultSpace, token_review: HttpRecorder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not vault.server.ours:
        pytest.skip("a Vault in a container cannot reach this test's TokenReview server on loopback")
    root = vault.server.client()
    if "kubernetes/" not in root.sys.list_auth_methods()["data"]:
        root.sys.enable_auth_method("kubernetes")
    api = f"http://127.0.0.1:{token_review._server.server_address[1]}"
    # Vault wants a CA certificate even though this API is plain http on loopback: any will do.
    root.write("auth/kubernetes/config", kubernetes_host=api, disable_local_ca_jwt=True, kubernetes_ca_cert=some_ca())
    root.write("auth/kubernetes/role/partnerctl", bound_service_account_names="partnerctl",
               bound_service_account_namespaces="scp-partners", token_policies="partnerctl",
               token_ttl="1h")  # fmt: skip
    claims = {
        "iss": "kubernetes/serviceaccount",
        "sub": SERVICE_ACCOUNT,
        "kubernetes.io/serviceaccount/namespace": "scp-partners",
        "kubernetes.io/serviceaccount/service-account.name": "partnerctl",
        "kubernetes.io/serviceaccount/service-account.uid": "7d1c2f0e-0000-4000-8000-000000000001",
    }
    account_token = jwt.encode(claims, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256")
    (tmp_path / "token").write_text(account_token)
    monkeypatch.setenv("VAULT_K8S_TOKEN_PATH", str(tmp_path / "token"))
    monkeypatch.delenv("VAULT_TOKEN")

    store = VaultSecretStore(parse_url(vault.url + "&auth=kubernetes&role=partnerctl"))
    assert works(store)
    store.close()
    reviews = [json.loads(request.body) for request in token_review.requests]
    assert reviews and reviews[0]["spec"]["token"] == account_token, "Vault asked the Kubernetes API about our token"
    assert token_review.requests[0].path == "/apis/authentication.k8s.io/v1/tokenreviews"


def test_a_short_lived_token_is_renewed_before_it_expires(vault: VaultSpace, monkeypatch: pytest.MonkeyPatch) -> None:
    short = vault.server.client().auth.token.create(policies=["partnerctl"], ttl="3s", renewable=True)
    monkeypatch.setenv("VAULT_TOKEN", short["auth"]["client_token"])
    store = VaultSecretStore(parse_url(vault.url))
    for _ in range(2):  # renewed at 2 s, then 4 s; 4.4 s in all, well past the token's first 3 s
        time.sleep(2.2)
        assert store.live_credentials() == {}
    assert works(store)
    store.close()


def test_a_bad_token_is_a_clear_error(
    installation: Installation, vault: VaultSpace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VAULT_TOKEN", "s.not-a-token")
    result = installation.run("--secrets", vault.url, "status")
    assert result.exit_code == 1
    assert "permission denied" in result.stderr and "Traceback" not in result.stderr
    assert "s.not-a-token" not in result.stderr + result.stdout
