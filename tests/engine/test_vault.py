"""Onboarding with credentials in Vault (a real OpenBao server): wrapped delivery, gateway, drift, leaks."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.backends.sqlite.secrets import LocalSecretStore
from reconciler.backends.vault import VaultSecretStore, parse_url
from reconciler.gateway.tokens import TokenAuthority
from tests.support import apps
from tests.support.engine import Installation
from tests.support.gitrepo import GitPartnerRepo
from tests.support.leaks import assert_nowhere
from tests.support.repo import TENANT
from tests.support.servers import HttpRecorder, UvicornThread
from tests.support.vault import VaultSpace

ACME, BETA = f"{TENANT}/acme-bank", f"{TENANT}/beta-ngo"


@pytest.fixture
def hooks(receiver: tuple[HttpRecorder, str]) -> str:
    """The base URL of a partner's webhook receiver on loopback."""
    return receiver[1]


def test_credentials_issued_into_vault_are_delivered_wrapped_and_work_at_the_gateway(
    vault_installation: Installation, vault: VaultSpace, hooks: str
) -> None:
    vault_installation.onboard(hooks=hooks)
    assert vault_installation.status(ACME)[ACME]["credential"]["clientId"] == "ministry-social-affairs.acme-bank"
    assert vault_installation.plan()["actions"] == []

    delivered = vault_installation.pick_up_wrapped(ACME)
    assert delivered["client_secret"].startswith("scp_cs_")
    assert set(delivered["webhook_secrets"]) == {"payment-events"}

    app = apps.gateway(vault_installation.home, secrets=vault.url, cache_seconds=5)
    server = UvicornThread(app)
    try:
        answer = apps.token_for(server.url, delivered)
        assert answer.status_code == 200, answer.text
        wrong = apps.token_for(server.url, {**delivered, "client_secret": delivered["client_secret"][:-2] + "xx"})
        assert wrong.status_code == 401
    finally:
        server.stop()
        app.stores.close()


def test_a_sealed_vault_gets_partners_a_503_with_retry_after(
    vault_installation: Installation, vault: VaultSpace, hooks: str
) -> None:
    if not vault.server.ours:
        pytest.skip("sealing needs the unseal key of a server we started")
    vault_installation.onboard(hooks=hooks)
    delivered = vault_installation.pick_up_wrapped(ACME)
    app = apps.gateway(vault_installation.home, secrets=vault.url, cache_seconds=5)
    server = UvicornThread(app)
    try:
        vault.server.seal()
        try:
            answer = apps.token_for(server.url, delivered)
        finally:
            vault.server.unseal()
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"] == "temporarily_unavailable" and int(answer.headers["retry-after"]) > 0
        assert delivered["client_secret"] not in answer.text
        assert apps.token_for(server.url, delivered).status_code == 200  # unsealed: back at once
    finally:
        server.stop()
        app.stores.close()


def test_a_wrap_token_unwraps_once_and_a_second_unwrap_is_audited(vault_installation: Installation, hooks: str) -> None:
    vault_installation.onboard(hooks=hooks)
    wrapped = vault_installation.deliver(ACME)
    assert vault_installation.unwrap(wrapped["wrap_token"]).exit_code == 0

    again = vault_installation.unwrap(wrapped["wrap_token"])
    assert again.exit_code == 1
    assert "already unwrapped" in again.stderr and f"credentials rotate {ACME}" in again.stderr
    assert vault_installation.run("credentials", "deliver", ACME).exit_code == 1
    vault_installation.apply()  # the next run copies the refusals into the audit log
    refusals = [e for e in vault_installation.audit() if e["event"] == "credential.delivery_refused"]
    assert {e["details"]["reason"] for e in refusals} == {"nothing to pick up",
                                                          "wrapped pickup already unwrapped or expired"}  # fmt: skip
    assert all(e["details"]["code"] == "SEC-01" for e in refusals)


def test_vault_holds_only_keyed_hashes_ciphertexts_and_metadata(
    vault_installation: Installation, vault: VaultSpace, hooks: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    vault_installation.onboard("acme-bank", "beta-ngo", hooks=hooks)
    outputs = [vault_installation.run("--output", "json", "plan").stdout]
    secrets = []
    for partner in (ACME, BETA):
        delivered = vault_installation.pick_up_wrapped(partner)
        secrets += [delivered["client_secret"], *delivered["webhook_secrets"].values()]
    vault_installation.run("credentials", "rotate", ACME)
    secrets.append(vault_installation.pick_up_wrapped(ACME)["client_secret"])
    monkeypatch.setenv("PARTNERCTL_NOW", "2027-03-01T00:00:00Z")
    outputs.append(vault_installation.run("--output", "json", "apply").stdout)
    for command in (("--output", "json", "status"), ("audit", "log"), ("audit", "verify")):
        result = vault_installation.run(*command)
        outputs += [result.stdout, result.stderr]

    records = vault.records()
    assert {"_outbox", f"{TENANT}/acme-bank/credentials", f"{TENANT}/beta-ngo/credentials"} <= set(records)
    haystacks = {f"vault {path}": repr(record).encode() for path, record in records.items()}
    haystacks.update({f"output {i}": text.encode() for i, text in enumerate(outputs)})
    haystacks.update({str(p): p.read_bytes() for p in vault_installation.home.rglob("*") if p.is_file()})
    assert_nowhere(secrets, haystacks)
    assert not (vault_installation.home / "secrets").exists(), "no local secret store in Vault mode"
    acme = records[f"{TENANT}/acme-bank/credentials"]
    assert all(g["hash"].startswith("vault:v1:") for g in acme["generations"])
    assert all(c.startswith("vault:v1:") for c in acme["webhooks"].values())


def test_a_credential_deleted_in_vault_by_hand_is_planned_and_reissued(
    vault_installation: Installation, vault: VaultSpace, hooks: str
) -> None:
    vault_installation.onboard(hooks=hooks)
    vault.delete(ACME)

    actions = vault_installation.actions()
    assert (ACME, "issue-credential", "drift") in actions
    vault_installation.apply()
    assert vault_installation.plan()["actions"] == []
    assert vault_installation.pick_up_wrapped(ACME)["client_secret"].startswith("scp_cs_")


def test_a_credential_altered_in_vault_by_hand_is_voided_and_reissued(
    vault_installation: Installation, vault: VaultSpace, hooks: str
) -> None:
    vault_installation.onboard(hooks=hooks)
    old = vault_installation.pick_up_wrapped(ACME)
    record, _ = vault.record(ACME)
    record["generations"][0]["issued_at"] = "2030-01-01T00:00:00+00:00"  # e.g. to dodge rotation
    vault.write(ACME, record)

    assert (ACME, "issue-credential", "drift") in vault_installation.actions()
    vault_installation.apply()
    revoked = [e for e in vault_installation.audit() if e["event"] == "credential.revoked"]
    assert [e["details"]["reason"] for e in revoked] == ["record altered outside partnerctl"]
    new = vault_installation.pick_up_wrapped(ACME)
    assert new["client_secret"] != old["client_secret"]
    assert vault_installation.plan()["actions"] == []
    assert vault_installation.run("audit", "verify").exit_code == 0


def test_vault_url_mistakes_are_clear_usage_errors(installation: Installation, tmp_path: Path) -> None:
    for url, expected in (
        ("vault+http://vault.example:8200", "plain http is refused"),
        ("vault://", "set VAULT_ADDR"),
        ("vault+https://vault.example:8200?mount=secret&colour=blue", "unknown setting 'colour'"),
        ("vault+https://vault.example:8200?auth=kubernetes", "needs role=ROLE"),
    ):
        result = installation.run("--secrets", url, "status")
        assert result.exit_code == 2, (url, result)
        assert expected in result.stderr and "Traceback" not in result.stderr


def test_missing_mounts_and_keys_name_the_command_that_creates_them(
    installation: Installation, vault: VaultSpace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VAULT_TOKEN", vault.server.root_token)  # a policy token would only see "permission denied"
    for query, expected in (
        ("transit=nowhere", "vault secrets enable -path=nowhere transit"),
        ("key=absent", "vault write -f transit/keys/absent"),
        ("mount=nowhere", "vault secrets enable -path=nowhere kv-v2"),
    ):
        space = VaultSpace(vault.server, vault.prefix, vault.token, dict([query.split("=")]))
        installation.repo.write_partner()
        installation.repo.commit()
        result = installation.run("--secrets", space.url, "apply")
        assert result.exit_code == 1, (query, result)
        assert expected in result.stderr, (query, result.stderr)


def test_an_embedded_installation_moves_into_vault_without_reissuing_anything(
    git_repo: GitPartnerRepo, tmp_path: Path, vault: VaultSpace, hooks: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = Installation(git_repo, tmp_path / "home", extra=("--dev-allow-loopback-webhooks",))
    local.onboard("acme-bank", "beta-ngo", hooks=hooks)
    acme = local.deliver(ACME)  # picked up in clear before the move; BETA's pickup is still pending
    signing_key = TokenAuthority(LocalSecretStore(local.home / "secrets"), issuer="https://gw.example").jwks()

    monkeypatch.setenv("VAULT_TOKEN", vault.server.token("partnerctl", "partnerctl-migrate"))
    result = local.run("--output", "json", "secrets", "migrate", "--to", vault.url)
    assert result.exit_code == 0, result
    report = result.json()
    assert (report["partners"], report["live_credentials"], report["pending_pickups"]) == (2, 2, 1)

    moved = Installation(git_repo, local.home, extra=("--secrets", vault.url, "--dev-allow-loopback-webhooks"))
    assert moved.plan()["actions"] == [], "nothing to re-issue or re-register"
    monkeypatch.setenv("VAULT_TOKEN", vault.token)
    store = VaultSecretStore(parse_url(vault.url))
    assert store.verify(acme["client_id"], acme["client_secret"]) is not None, "the partner's secret still works"
    assert store.webhook_secret(ACME, "payment-events") == acme["webhook_secrets"]["payment-events"]
    assert TokenAuthority(store, issuer="https://gw.example").jwks() == signing_key
    beta = moved.pick_up_wrapped(BETA)
    assert store.verify(beta["client_id"], beta["client_secret"]) is not None
    store.close()

    moved.apply()
    assert [e["event"] for e in moved.audit()].count("credential.issued") == 2
    assert moved.run("audit", "verify").exit_code == 0
    assert (local.home / "secrets.migrated" / "secrets.key").exists()
    forgot = local.run("plan")
    assert forgot.exit_code == 2 and "PARTNERCTL_SECRETS" in forgot.stderr, "a forgotten --secrets re-issues nothing"
