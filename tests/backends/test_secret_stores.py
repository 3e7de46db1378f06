"""The secret store's behaviour, the same for every backend: the embedded store and a real Vault (OpenBao)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from reconciler.backends.sqlite.secrets import LocalSecretStore
from reconciler.backends.vault import VaultSecretStore, parse_url, unwrap_delivery
from reconciler.backends.vault.migrate import migrate
from reconciler.credentials import new_client_secret, new_webhook_secret
from reconciler.errors import InvalidState, WriteConflict
from reconciler.stores.secrets import SecretStore
from tests.support.vault import VaultSpace

NOW = datetime(2026, 11, 28, 12, tzinfo=UTC)
ACME, BETA = "ministry-social-affairs/acme-bank", "ministry-social-affairs/beta-ngo"
ACME_ID = "ministry-social-affairs.acme-bank"


@pytest.fixture(params=["local", "vault"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SecretStore]:
    if request.param == "local":
        opened: SecretStore = LocalSecretStore(tmp_path / "secrets")
    else:
        space: VaultSpace = request.getfixturevalue("vault")
        opened = VaultSecretStore(parse_url(space.url))
    yield opened
    opened.close()


def pick_up(store: SecretStore, partner: str) -> dict[str, Any] | None:
    """What the Tech Lead ends up holding: the plaintext pickup, or what the wrap token unwraps to."""
    pickup = store.take_pickup(partner, now=NOW, token_endpoint="https://gateway.example/oauth2/token")
    if pickup is None:
        return None
    if pickup.wrap_token is None:
        return {"client_id": pickup.client_id, "client_secret": pickup.client_secret,
                "webhook_secrets": pickup.webhook_secrets}  # fmt: skip
    assert isinstance(store, VaultSecretStore)
    assert pickup.client_secret is None and not pickup.webhook_secrets and pickup.wrap_ttl == 24 * 3600
    return unwrap_delivery(store.config, pickup.wrap_token)


def events(store: SecretStore, after: int = 0) -> list[tuple[str, str]]:
    return [(event.partner, event.event) for event in store.events_after(after)]


def test_an_issued_secret_verifies_and_nothing_else_does(store: SecretStore) -> None:
    secret = new_client_secret()
    credential = store.issue_credential(ACME, ACME_ID, secret, now=NOW, reason="new-partner")

    assert store.verify(ACME_ID, secret) == credential
    assert store.verify(ACME_ID, new_client_secret()) is None
    assert store.verify("ministry-social-affairs.beta-ngo", secret) is None
    assert store.live_credentials() == {ACME: [credential]}
    assert (credential.generation, credential.state, credential.issued_at) == (1, "active", NOW)
    assert events(store) == [(ACME, "credential.issued")]


def test_a_second_active_credential_is_refused(store: SecretStore) -> None:
    store.issue_credential(ACME, ACME_ID, new_client_secret(), now=NOW, reason="new-partner")
    with pytest.raises(Exception, match="already has an active credential"):
        store.issue_credential(ACME, ACME_ID, new_client_secret(), now=NOW, reason="new-partner")
    assert len(store.credentials(ACME)) == 1


def test_rotation_keeps_the_old_secret_valid_until_the_overlap_ends(store: SecretStore) -> None:
    old, new, newest = new_client_secret(), new_client_secret(), new_client_secret()
    first = store.issue_credential(ACME, ACME_ID, old, now=NOW, reason="new-partner")
    second = store.rotate_credential(ACME, new, now=NOW, overlap_until=NOW + timedelta(days=7))

    assert store.verify(ACME_ID, old) is not None and store.verify(ACME_ID, new) == second
    states = [(c.generation, c.state, c.revoke_after) for c in store.credentials(ACME)]
    assert states == [(1, "previous", NOW + timedelta(days=7)), (2, "active", None)]

    store.rotate_credential(ACME, newest, now=NOW, overlap_until=NOW + timedelta(days=7))
    assert store.verify(ACME_ID, old) is None, "at most two generations are ever live"
    assert [c.state for c in store.credentials(ACME)] == ["revoked", "previous", "active"]
    assert first.credential_id in {e.details.get("credentialId") for e in store.events_after(0)}


def test_a_revoked_secret_stops_verifying_and_leaves_the_pickup(store: SecretStore) -> None:
    secret = new_client_secret()
    credential = store.issue_credential(ACME, ACME_ID, secret, now=NOW, reason="new-partner")
    store.put_webhook_secret(ACME, "payment-events", new_webhook_secret(), now=NOW)
    store.revoke_credential(credential.credential_id, now=NOW, reason="suspended")

    assert store.verify(ACME_ID, secret) is None
    assert store.live_credentials() == {}
    delivered = pick_up(store, ACME)
    assert delivered is not None and delivered.get("client_secret") is None
    assert list(delivered["webhook_secrets"]) == ["payment-events"]


def test_webhook_secrets_are_kept_readable_for_the_dispatcher(store: SecretStore) -> None:
    secret = new_webhook_secret()
    store.put_webhook_secret(ACME, "payment-events", secret, now=NOW)
    store.put_webhook_secret(ACME, "audit-feed", new_webhook_secret(), now=NOW)

    assert store.webhook_secret(ACME, "payment-events") == secret
    assert store.webhook_secret_names() == {ACME: {"payment-events", "audit-feed"}}
    store.remove_webhook_secret(ACME, "audit-feed")
    assert store.webhook_secret_names() == {ACME: {"payment-events"}}
    assert store.webhook_secret(ACME, "audit-feed") is None


def test_a_rotated_webhook_secret_signs_beside_the_old_one_until_the_overlap_ends(store: SecretStore) -> None:
    old, new = new_webhook_secret(), new_webhook_secret()
    store.put_webhook_secret(ACME, "payment-events", old, now=NOW)
    assert pick_up(store, ACME) is not None
    until = NOW + timedelta(days=7)
    store.rotate_webhook_secret(ACME, "payment-events", new, now=NOW, overlap_until=until)

    assert store.webhook_signing_secrets(ACME, "payment-events", now=NOW) == [new, old]
    assert store.webhook_signing_secrets(ACME, "payment-events", now=until - timedelta(seconds=1)) == [new, old]
    assert store.webhook_signing_secrets(ACME, "payment-events", now=until) == [new], "expired, though still kept"
    assert store.webhook_secret(ACME, "payment-events") == new
    assert store.webhook_secret_names() == {ACME: {"payment-events"}}
    assert store.expire_webhook_secrets(NOW) == 0
    assert store.expire_webhook_secrets(until) == 1
    assert store.webhook_signing_secrets(ACME, "payment-events", now=NOW) == [new], "destroyed"
    assert store.expire_webhook_secrets(until) == 0


def test_a_rotated_webhook_secret_is_picked_up_once_and_audited_without_it(store: SecretStore) -> None:
    old, new = new_webhook_secret(), new_webhook_secret()
    store.put_webhook_secret(ACME, "payment-events", old, now=NOW)
    assert pick_up(store, ACME) is not None
    cursor = store.events_after(0)[-1].id
    store.rotate_webhook_secret(ACME, "payment-events", new, now=NOW, overlap_until=NOW + timedelta(days=7))

    [rotated] = store.events_after(cursor)
    assert (rotated.partner, rotated.event) == (ACME, "webhook.secret_rotated")
    assert rotated.details == {"webhook": "payment-events", "overlapUntil": (NOW + timedelta(days=7)).isoformat()}
    assert store.pending_pickups() == {ACME}
    delivered = pick_up(store, ACME)
    assert delivered is not None and delivered["webhook_secrets"] == {"payment-events": new}
    assert pick_up(store, ACME) is None


def test_a_second_rotation_in_the_overlap_destroys_the_oldest_secret(store: SecretStore) -> None:
    first, second, third = new_webhook_secret(), new_webhook_secret(), new_webhook_secret()
    store.put_webhook_secret(ACME, "payment-events", first, now=NOW)
    store.put_webhook_secret(ACME, "audit-feed", new_webhook_secret(), now=NOW)
    store.rotate_webhook_secret(ACME, "payment-events", second, now=NOW, overlap_until=NOW + timedelta(days=7))
    later = NOW + timedelta(days=1)
    store.rotate_webhook_secret(ACME, "payment-events", third, now=later, overlap_until=later + timedelta(days=7))

    assert store.webhook_signing_secrets(ACME, "payment-events", now=later) == [third, second]
    assert store.webhook_signing_secrets(ACME, "payment-events", now=NOW + timedelta(days=7)) == [third, second]
    assert len(store.webhook_signing_secrets(ACME, "audit-feed", now=later)) == 1, "other webhooks keep theirs"
    assert store.expire_webhook_secrets(later + timedelta(days=7)) == 1
    store.rotate_webhook_secret(ACME, "audit-feed", new_webhook_secret(), now=NOW, overlap_until=later)
    store.remove_webhook_secret(ACME, "audit-feed")
    assert store.webhook_signing_secrets(ACME, "audit-feed", now=NOW) == []
    assert store.expire_webhook_secrets(later) == 0, "removing a webhook destroyed its previous secret too"


def test_a_webhook_without_a_secret_has_nothing_to_rotate_or_sign_with(store: SecretStore) -> None:
    with pytest.raises(InvalidState, match="no signing secret to rotate"):
        store.rotate_webhook_secret(ACME, "payment-events", new_webhook_secret(), now=NOW, overlap_until=NOW)
    assert store.webhook_signing_secrets(ACME, "payment-events", now=NOW) == []
    assert store.webhook_secret_names() == {} and store.events_after(0) == []


def test_a_pickup_is_delivered_once_and_a_second_attempt_is_an_event(store: SecretStore) -> None:
    secret, hook = new_client_secret(), new_webhook_secret()
    store.issue_credential(ACME, ACME_ID, secret, now=NOW, reason="new-partner")
    store.put_webhook_secret(ACME, "payment-events", hook, now=NOW)
    assert store.pending_pickups() == {ACME}

    delivered = pick_up(store, ACME)
    assert delivered is not None
    assert (delivered["client_id"], delivered["client_secret"]) == (ACME_ID, secret)
    assert delivered["webhook_secrets"] == {"payment-events": hook}
    assert store.pending_pickups() == set()
    assert pick_up(store, ACME) is None
    assert events(store)[-2:] == [(ACME, "credential.delivered"), (ACME, "credential.delivery_refused")]
    refusal = store.events_after(0)[-1]
    assert refusal.details["code"] == "SEC-01"


def test_installation_secrets_first_writer_wins(store: SecretStore) -> None:
    assert store.sealed("gateway-key") is None
    store.put_sealed("gateway-key", b"\x00first")
    store.put_sealed("gateway-key", b"second")
    assert store.sealed("gateway-key") == b"\x00first"
    store.replace_sealed("gateway-key", b"third")
    assert store.sealed("gateway-key") == b"third"


def test_events_are_numbered_and_read_after_a_cursor(store: SecretStore) -> None:
    store.issue_credential(ACME, ACME_ID, new_client_secret(), now=NOW, reason="new-partner")
    store.issue_credential(BETA, "ministry-social-affairs.beta-ngo", new_client_secret(), now=NOW, reason="x")
    first, second = store.events_after(0)
    assert first.id < second.id
    assert [(e.partner, e.event) for e in store.events_after(first.id)] == [(BETA, "credential.issued")]
    assert store.events_after(second.id) == []


# --- Vault only: two writers, hand edits ---------------------------------------------------------------


@pytest.fixture
def vault_store(vault: VaultSpace) -> Iterator[VaultSecretStore]:
    opened = VaultSecretStore(parse_url(vault.url))
    yield opened
    opened.close()


def test_a_second_writer_in_between_gets_nothing_overwritten(vault: VaultSpace, vault_store: VaultSecretStore) -> None:
    """Two reconcilers on one Vault: the one whose read went stale loses its check-and-set and writes nothing."""
    other = VaultSecretStore(parse_url(vault.url))
    other_secret = new_client_secret()
    kv = vault_store.vault.hvac.secrets.kv.v2
    write = kv.create_or_update_secret

    def write_after_the_other_writer(path: str, secret: dict[str, Any], **options: Any) -> Any:
        if path.endswith("/credentials") and not other.credentials(ACME):
            other.issue_credential(ACME, ACME_ID, other_secret, now=NOW, reason="new-partner")
        return write(path, secret, **options)

    kv.create_or_update_secret = write_after_the_other_writer  # the vendor client, to time a real race
    with pytest.raises(WriteConflict, match="another writer changed the record first"):
        vault_store.issue_credential(ACME, ACME_ID, new_client_secret(), now=NOW, reason="new-partner")

    assert [c.generation for c in vault_store.credentials(ACME)] == [1]
    assert vault_store.verify(ACME_ID, other_secret) is not None, "the first writer's credential stands"
    assert events(vault_store) == [(ACME, "credential.issued")], "the loser's event never counts"
    other.close()


def test_an_event_whose_change_never_landed_is_not_reported(vault: VaultSpace, vault_store: VaultSecretStore) -> None:
    kv = vault_store.vault.hvac.secrets.kv.v2
    write = kv.create_or_update_secret

    def crash_before_the_record(path: str, secret: dict[str, Any], **options: Any) -> Any:
        if path.endswith("/credentials"):
            raise KeyboardInterrupt  # the process dies between the outbox intent and the record
        return write(path, secret, **options)

    kv.create_or_update_secret = crash_before_the_record
    with pytest.raises(KeyboardInterrupt):
        vault_store.issue_credential(ACME, ACME_ID, new_client_secret(), now=NOW, reason="new-partner")
    kv.create_or_update_secret = write

    restarted = VaultSecretStore(parse_url(vault.url))
    assert restarted.events_after(0) == [] and restarted.live_credentials() == {}
    restarted.issue_credential(ACME, ACME_ID, new_client_secret(), now=NOW, reason="new-partner")
    assert events(restarted) == [(ACME, "credential.issued")]
    restarted.close()


def test_a_hand_edited_record_verifies_nothing(vault: VaultSpace, vault_store: VaultSecretStore) -> None:
    secret = new_client_secret()
    vault_store.issue_credential(ACME, ACME_ID, secret, now=NOW, reason="new-partner")
    record, _ = vault.record(ACME)
    record["generations"][0]["state"] = "active"  # unchanged value, but written by hand: the seal must still match
    vault.write(ACME, record)
    assert vault_store.verify(ACME_ID, secret) is not None, "rewriting identical content is not an alteration"

    record["generations"].append({**record["generations"][0], "id": f"{ACME_ID}#2", "generation": 2})
    vault.write(ACME, record)
    assert vault_store.verify(ACME_ID, secret) is None
    assert vault_store.live_credentials() == {}


def test_a_rotation_in_its_overlap_moves_into_vault_with_both_secrets(
    vault: VaultSpace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = LocalSecretStore(tmp_path / "secrets")
    old, new, ended = new_webhook_secret(), new_webhook_secret(), new_webhook_secret()
    local.put_webhook_secret(ACME, "payment-events", old, now=NOW)
    local.rotate_webhook_secret(ACME, "payment-events", new, now=NOW, overlap_until=NOW + timedelta(days=7))
    local.put_webhook_secret(ACME, "audit-feed", ended, now=NOW - timedelta(days=9))
    local.rotate_webhook_secret(ACME, "audit-feed", new_webhook_secret(), now=NOW - timedelta(days=8),
                                overlap_until=NOW - timedelta(days=1))  # fmt: skip

    monkeypatch.setenv("VAULT_TOKEN", vault.server.token("partnerctl", "partnerctl-migrate"))
    target = VaultSecretStore(parse_url(vault.url))
    migrate(local, target)  # at PARTNERCTL_NOW, which is NOW
    assert target.webhook_signing_secrets(ACME, "payment-events", now=NOW) == [new, old]
    earlier = NOW - timedelta(days=2)
    assert ended not in target.webhook_signing_secrets(ACME, "audit-feed", now=earlier), "an ended overlap stays behind"
    assert target.expire_webhook_secrets(NOW + timedelta(days=7)) == 1
    assert target.webhook_signing_secrets(ACME, "payment-events", now=NOW) == [new]
    target.close()
    local.close()
