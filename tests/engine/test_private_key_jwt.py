"""Partners with private_key_jwt in plan, apply, status and delivery (DESIGN §6): nothing secret is issued."""

from __future__ import annotations

import json
import sqlite3
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.backends import open_stores
from reconciler.engine.executor import Executor
from reconciler.engine.journal import Journal
from reconciler.engine.plan import LiveState, make_plan
from reconciler.engine.status import note_key_seen, status_json
from reconciler.manifests.models import IntegrationPartner
from reconciler.stores.records import PartnerRecord
from reconciler.vocabulary import Phase
from tests.support.assertions import SECRET_AUTH, make_key, with_keys
from tests.support.desired import START, Version, desired_of
from tests.support.engine import Installation
from tests.support.repo import PARTNER, POLICY, TENANT, edit

ACME = f"{TENANT}/acme-bank"
CLIENT = f"{TENANT}.acme-bank"
KEY_2026 = make_key("ES256", kid="acme-2026")
KEY_2027 = make_key("EdDSA", kid="acme-2027")
LATER = "2027-01-15T09:30:00Z"


WITH_URI = edit(PARTNER, SECRET_AUTH, SECRET_AUTH + "    clientAuthentication: private_key_jwt\n"
                "    jwksUri: https://keys.acme-bank.example/scp/jwks.json\n")  # fmt: skip


def actions(installation: Installation) -> list[tuple[str, str]]:
    return [(action, reason) for _, action, reason in installation.actions()]


def test_a_private_key_jwt_partner_is_onboarded_without_a_client_secret(installation: Installation) -> None:
    installation.repo.write_partner(with_keys(KEY_2026))
    installation.repo.commit("Onboard ACME Bank with private_key_jwt")
    assert actions(installation) == [("register-partner", "new-partner"), ("register-webhook", "webhook-added")]
    installation.apply()
    assert installation.actions() == []

    assert installation.secrets().credentials(ACME) == []
    assert "credential.issued" not in installation.events(ACME)
    status = installation.status()[ACME]
    # Keys are its credentials: it waits for its handshake, not for a secret.
    assert (status["phase"], status["health"]) == ("AWAITING_HANDSHAKE", "UNKNOWN")
    assert status["credential"] == {
        "clientId": CLIENT, "issuedAt": None, "rotatesAt": None, "method": "private_key_jwt",
        "keyIds": ["acme-2026"], "keysFirstSeen": {"acme-2026": "2026-11-28T12:00:00+00:00"},
    }  # fmt: skip
    issued = next(c for c in status["conditions"] if c["type"] == "CredentialsIssued")
    assert (issued["status"], issued["reason"]) == ("True", "PrivateKeyJwt")
    assert "acme-2026" in issued["message"]


def test_delivery_hands_over_the_client_id_token_endpoint_and_webhook_secrets_only(
    installation: Installation,
) -> None:
    installation.onboard(text=with_keys(KEY_2026))
    delivered = installation.deliver(ACME)
    assert set(delivered) == {"partner", "client_id", "client_authentication", "token_endpoint", "webhook_secrets"}
    assert (delivered["client_id"], delivered["client_authentication"]) == (CLIENT, "private_key_jwt")
    assert delivered["token_endpoint"].endswith("/oauth2/token")
    assert delivered["webhook_secrets"]["payment-events"].startswith("whsec_")

    text = installation.run("credentials", "deliver", ACME)
    assert text.exit_code == 1
    assert "private_key_jwt" in text.stderr and CLIENT in text.stderr and "/oauth2/token" in text.stderr
    assert installation.events(ACME)[-2:] == ["credential.delivered", "credential.delivery_refused"]


def test_the_pickup_in_text_says_there_is_no_client_secret(installation: Installation) -> None:
    installation.onboard(text=with_keys(KEY_2026))
    shown = installation.run("credentials", "deliver", ACME)
    assert shown.exit_code == 0, shown
    assert "client_secret" not in shown.stdout and "private_key_jwt" in shown.stdout
    assert "whsec_" in shown.stdout


def test_no_rotation_is_ever_due_and_a_forced_one_is_refused(
    installation: Installation, monkeypatch: pytest.MonkeyPatch
) -> None:
    installation.onboard(text=with_keys(KEY_2026))
    monkeypatch.setenv("PARTNERCTL_NOW", "2027-06-16T12:00:00Z")  # 200 days: twice rotationDays
    assert "rotate-credential" not in [action for action, _ in actions(installation)]
    refused = installation.run("credentials", "rotate", ACME)
    assert refused.exit_code == 1 and "private_key_jwt" in refused.stderr
    assert installation.secrets().credentials(ACME) == []


def test_switching_to_private_key_jwt_revokes_every_live_secret_at_once(installation: Installation) -> None:
    installation.onboard()
    first = installation.deliver(ACME)["client_secret"]
    assert installation.run("credentials", "rotate", ACME).exit_code == 0  # two live secrets: in the overlap
    second = installation.deliver(ACME)["client_secret"]

    installation.repo.write_partner(with_keys(KEY_2026))
    installation.repo.commit("ACME moves to private_key_jwt")
    plan = installation.plan()
    assert [(a["action"], a["reason"]) for a in plan["actions"]] == [
        ("update-partner", "spec-changed"),
        ("revoke-credential", "client-authentication-changed"),
        ("revoke-credential", "client-authentication-changed"),
    ]
    assert plan["actions"][0]["details"] == {
        "changed": ["auth"], "clientAuthentication": {"from": "client_secret", "to": "private_key_jwt"},
    }  # fmt: skip
    installation.apply()
    assert installation.actions() == []
    for secret in (first, second):
        assert installation.secrets().verify(CLIENT, secret) is None
    revoked = [e["details"] for e in installation.audit() if e["event"] == "credential.revoked"]
    assert [details["reason"] for details in revoked] == ["client-authentication-changed"] * 2
    status = installation.status()[ACME]
    assert status["credential"]["method"] == "private_key_jwt" and status["phase"] == "AWAITING_HANDSHAKE"


def test_switching_back_to_client_secret_issues_a_new_one_delivered_once(installation: Installation) -> None:
    installation.onboard()
    old = installation.deliver(ACME)["client_secret"]
    installation.repo.write_partner(with_keys(KEY_2026))
    installation.repo.commit("ACME moves to private_key_jwt")
    installation.apply()

    installation.repo.write_partner(PARTNER)
    installation.repo.commit("ACME goes back to a client secret")
    assert actions(installation) == [("update-partner", "spec-changed"),
                                     ("issue-credential", "client-authentication-changed")]  # fmt: skip
    installation.apply()
    delivered = installation.deliver(ACME)
    assert delivered["client_authentication"] == "client_secret"
    assert delivered["client_secret"].startswith("scp_cs_") and delivered["client_secret"] != old
    assert installation.secrets().verify(CLIENT, delivered["client_secret"]) is not None
    credential = installation.status()[ACME]["credential"]
    assert (credential["method"], credential["keyIds"]) == ("client_secret", [])
    assert credential["issuedAt"] is not None


def test_status_shows_each_key_and_when_it_was_first_seen(
    installation: Installation, monkeypatch: pytest.MonkeyPatch
) -> None:
    installation.onboard(text=with_keys(KEY_2026))
    monkeypatch.setenv("PARTNERCTL_NOW", LATER)
    installation.repo.write_partner(with_keys(KEY_2026, KEY_2027))
    installation.repo.commit("ACME publishes its 2027 key")
    assert actions(installation) == [("update-partner", "spec-changed")]
    installation.apply()
    credential = installation.status()[ACME]["credential"]
    assert credential["keyIds"] == ["acme-2026", "acme-2027"]
    assert credential["keysFirstSeen"] == {"acme-2026": "2026-11-28T12:00:00+00:00",
                                           "acme-2027": "2027-01-15T09:30:00+00:00"}  # fmt: skip

    installation.repo.write_partner(with_keys(KEY_2027))
    installation.repo.commit("ACME retires its 2026 key")
    installation.apply()
    credential = installation.status()[ACME]["credential"]
    assert credential["keysFirstSeen"] == {"acme-2027": "2027-01-15T09:30:00+00:00"}

    table = installation.run("status")
    assert table.exit_code == 0 and "jwt, 1 key(s)" in table.stdout
    detailed = installation.run("status", ACME)
    assert "private_key_jwt; keys: acme-2027 (first seen 2027-01-15T09:30:00)" in detailed.stdout


def test_a_jwks_uri_partner_shows_where_its_keys_are(installation: Installation) -> None:
    installation.onboard(text=WITH_URI)
    assert installation.secrets().credentials(ACME) == []
    credential = installation.status()[ACME]["credential"]
    assert credential["keyIds"] == [] and credential["jwksUri"] == "https://keys.acme-bank.example/scp/jwks.json"
    assert "at https://keys.acme-bank.example/scp/jwks.json" in installation.run("status", ACME).stdout


def test_suspending_and_resuming_a_private_key_jwt_partner_issues_nothing(installation: Installation) -> None:
    text = with_keys(KEY_2026)
    installation.onboard(text=text)
    installation.repo.write_partner(edit(text, "suspended: false", "suspended: true"))
    installation.repo.commit("Suspend ACME")
    assert actions(installation) == [("suspend-partner", "suspended")]
    installation.apply()
    status = installation.status()[ACME]
    assert (status["phase"], status["credential"]) == ("SUSPENDED", None)

    installation.repo.write_partner(text)
    installation.repo.commit("Resume ACME")
    assert actions(installation) == [("update-partner", "resumed")]
    installation.apply()
    assert installation.status()[ACME]["credential"]["keyIds"] == ["acme-2026"]
    assert installation.secrets().credentials(ACME) == []


# --- the planner's properties hold across method switches ----------------------------------------------


@dataclass(frozen=True)
class AuthVersion(Version):
    """A generated version (tests/support/desired.py) that may authenticate with private_key_jwt."""

    jwt: bool = False

    def manifest(self) -> IntegrationPartner:
        document = super().manifest().model_dump(mode="json", exclude_none=True)
        if self.jwt:
            document["spec"]["auth"] |= {"clientAuthentication": "private_key_jwt", "jwks": {"keys": [KEY_2026.jwk]}}
        return IntegrationPartner.model_validate(document)


steps = st.lists(
    st.tuples(st.booleans(), st.booleans(), st.sampled_from([0, 1, 91, 100]), st.booleans()),
    min_size=1, max_size=5,
)  # fmt: skip


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=steps)
def test_any_sequence_of_switches_converges_and_a_jwt_partner_never_holds_a_secret(
    steps: list[tuple[bool, bool, int, bool]],
) -> None:
    with tempfile.TemporaryDirectory(prefix="partnerctl-jwt-") as folder:
        stores = open_stores(home=Path(folder))
        try:
            now = START
            for index, (jwt, suspended, days, secret_deleted) in enumerate(steps):
                now += timedelta(days=days)
                if secret_deleted:  # by hand, behind partnerctl's back
                    with sqlite3.connect(Path(folder) / "secrets" / "secrets.db") as db:
                        db.execute("DELETE FROM credentials")
                version = AuthVersion("acme-bank", ("payment:status:read",), (("payments", "https://h.example/x"),),
                                      suspended, jwt=jwt)  # fmt: skip
                desired = desired_of([version], f"{index:040d}")
                live = LiveState(stores.partners.partners(), stores.secrets.live_credentials(),
                                 stores.secrets.webhook_secret_names())  # fmt: skip
                plan = make_plan(desired, live, now=now, check_interval=timedelta(minutes=5))
                results = Executor(stores, Journal(stores, actor="test"), now=now).run(plan, desired, live.records)
                assert all(result.ok for result in results), results
                if jwt:
                    assert not any(a.action in ("issue-credential", "rotate-credential") for a in plan.actions)

                live = LiveState(stores.partners.partners(), stores.secrets.live_credentials(),
                                 stores.secrets.webhook_secret_names())  # fmt: skip
                again = make_plan(desired, live, now=now, check_interval=timedelta(minutes=5))
                assert again.actions == [], [action.to_json() for action in again.actions]
                held = live.credentials.get(ACME, [])
                if jwt or suspended:
                    assert held == []
                else:
                    assert [credential.state for credential in held][-1] == "active"
                record = live.records[ACME]
                assert record.keys_first_seen == ({"acme-2026": record.keys_first_seen["acme-2026"]} if jwt else {})
        finally:
            stores.close()


# --- what else the executor adopts from the tenant policy with a spec --------------------------------------


def test_the_tenant_policy_gateway_limits_are_applied_with_the_spec(installation: Installation) -> None:
    """For the gateway's rate limits (DESIGN §7): the record carries the tenant's gateway section."""
    installation.repo.write(f"policies/{TENANT}.yaml", POLICY + "  gateway: {requestsPerMinute: 120, burst: 20}\n")
    installation.onboard(text=with_keys(KEY_2026))
    stores = open_stores(home=installation.home)
    try:
        record = stores.partners.partner(ACME)
    finally:
        stores.close()
    assert record is not None and (record.requests_per_minute, record.burst) == (120, 20)


def test_the_gateway_notes_keys_first_seen_at_a_jwks_uri_once() -> None:
    record = PartnerRecord(key=ACME, phase=Phase.ACTIVE, spec={"auth": {
        "method": "oauth2-client-credentials", "clientAuthentication": "private_key_jwt",
        "jwksUri": "https://keys.acme-bank.example/scp/jwks.json"}})  # fmt: skip
    assert note_key_seen(record, "2027", START)
    assert not note_key_seen(record, "2027", START + timedelta(days=1))
    assert not note_key_seen(record, None, START)  # the set's only key, used without a kid: nothing to name
    assert record.keys_first_seen == {"2027": START.isoformat()}
    assert status_json(record, None)["credential"]["keyIds"] == ["2027"]
    inline = PartnerRecord(key=ACME, phase=Phase.ACTIVE, spec=json.loads(json.dumps(
        {"auth": {"clientAuthentication": "private_key_jwt", "jwks": {"keys": [KEY_2026.jwk]}}})))  # fmt: skip
    assert not note_key_seen(inline, "acme-2026", START)  # noted when the manifest is applied
    secret = PartnerRecord(key=ACME, phase=Phase.ACTIVE, spec={"auth": {"method": "oauth2-client-credentials"}})
    assert not note_key_seen(secret, "2027", START)
