"""Rotating a webhook's signing secret (DESIGN §8): delivered once, both signatures during the tenant's
overlap so a receiver holding either secret verifies, then only the new one and the old one destroyed."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from reconciler import clock
from reconciler.backends.vault import VaultSecretStore, parse_url
from tests.conftest import Onboarded
from tests.support.engine import Installation
from tests.support.leaks import assert_nowhere
from tests.support.repo import TENANT, edit
from tests.support.servers import HttpRecorder, Recorded
from tests.support.vault import VaultSpace
from tests.webhooks.test_dispatcher import ACME, EVENT, at, deliveries, dispatch, publish

HOOK = "payment-events"
OVERLAP_UNTIL = "2026-12-05T12:00:00+00:00"  # PARTNERCTL_NOW of the tests + the tenant's overlapDays (7)


def verifies(secret: str, request: Recorded) -> bool:
    """What a receiver holding only ``secret`` makes of a request (an independent Standard Webhooks library)."""
    try:
        Webhook(secret).verify(request.body, request.headers)
    except WebhookVerificationError:
        return False
    return True


def pings(receiver: HttpRecorder) -> list[Recorded]:
    return [request for request in receiver.requests if b'"type":"ping"' in request.body]


def rotate(installation: Installation, *args: str) -> dict[str, str]:
    result = installation.run("--output", "json", "webhooks", "rotate-secret", ACME, HOOK, *args)
    assert result.exit_code == 0, result
    return dict(result.json())


def unwrapped_secret(installation: Installation) -> str:
    """The webhook secret of a Vault-mode delivery, unwrapped as the Tech Lead would."""
    delivered: dict[str, Any] = dict(installation.pick_up_wrapped(ACME))
    return str(delivered["webhook_secrets"][HOOK])


def previous_secrets(installation: Installation) -> int:
    [(count,)] = installation.sql("secrets/secrets.db", "SELECT count(*) FROM previous_webhook_secrets")
    return int(count)


def test_either_secret_verifies_during_the_overlap_and_only_the_new_one_after(
    onboarded: Onboarded, monkeypatch: pytest.MonkeyPatch
) -> None:
    installation, receiver = onboarded.installation, onboarded.receiver
    old = onboarded.credentials["webhook_secrets"][HOOK]
    assert rotate(installation) == {"partner": ACME, "webhook": HOOK, "overlapUntil": OVERLAP_UNTIL}
    new = installation.deliver(ACME)["webhook_secrets"][HOOK]
    assert new != old

    at(monkeypatch, "2026-11-28T12:10:00Z")  # the connectivity check is due again: apply pings
    publish(onboarded)
    assert dispatch(onboarded) == 1
    installation.apply()
    during = [*deliveries(onboarded), *pings(receiver)[1:]]  # the first ping was the registration's
    assert len(during) == 2
    assert all(verifies(old, request) and verifies(new, request) for request in during)

    at(monkeypatch, "2026-12-05T12:00:01Z")  # the overlap is over, and no housekeeping has run yet
    assert previous_secrets(installation) == 1
    publish(onboarded)
    assert dispatch(onboarded) == 1
    installation.apply()
    after = [deliveries(onboarded)[-1], pings(receiver)[-1]]
    assert after[1] not in during
    assert all(verifies(new, request) and not verifies(old, request) for request in after)
    assert previous_secrets(installation) == 0, "housekeeping destroyed the old secret"


def test_the_new_secret_is_delivered_once_and_shown_nowhere_else(
    onboarded: Onboarded, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    installation = onboarded.installation
    old = onboarded.credentials["webhook_secrets"][HOOK]
    text = installation.run("webhooks", "rotate-secret", ACME, HOOK)
    assert text.exit_code == 0, text
    assert f"Until {OVERLAP_UNTIL}" in text.stdout
    assert f"Deliver the new secret with: partnerctl credentials deliver {ACME}" in text.stdout
    delivered = installation.deliver(ACME)
    assert delivered.get("client_secret") is None, "the client secret was not rotated"
    secrets = [old, delivered["webhook_secrets"][HOOK]]
    refused = installation.run("credentials", "deliver", ACME)
    assert refused.exit_code == 1 and "nothing to pick up" in refused.stderr
    shown = installation.run("--output", "json", "webhooks", "rotate-secret", ACME, HOOK)  # in the overlap: a third
    secrets.append(installation.deliver(ACME)["webhook_secrets"][HOOK])
    assert len(set(secrets)) == 3

    rotations = [entry for entry in installation.audit() if entry["event"] == "webhook.secret_rotated"]
    assert [entry["details"] for entry in rotations] == [{"webhook": HOOK, "overlapUntil": OVERLAP_UNTIL}] * 2
    publish(onboarded)
    dispatch(onboarded)
    outputs = [text, shown, refused]
    for command in (("--output", "json", "apply"), ("dispatch", "--once"), ("status",), ("--output", "json", "status"),
                    ("status", ACME), ("audit", "log"), ("--output", "json", "audit", "log"),
                    ("webhooks", "deliveries", ACME)):  # fmt: skip
        outputs.append(installation.run(*command))
    haystacks = {f"output {index}": (result.stdout + result.stderr).encode() for index, result in enumerate(outputs)}
    haystacks["logs"] = caplog.text.encode()
    haystacks.update({str(path): path.read_bytes() for path in installation.home.rglob("*") if path.is_file()})
    assert_nowhere(secrets, haystacks)


def test_bad_requests_are_refused_with_a_clear_message(onboarded: Onboarded) -> None:
    installation = onboarded.installation
    for args, words, code in (
        ((f"{TENANT}/ghost", HOOK), "not a known partner", 1),
        ((ACME, "ghost-feed"), f"has no webhook 'ghost-feed' (it has: {HOOK})", 1),
        (("not-a-key", HOOK), "is not TENANT/PARTNER", 2),
    ):
        result = installation.run("webhooks", "rotate-secret", *args)
        assert result.exit_code == code and words in result.stderr, (args, result)
        assert "Traceback" not in result.stderr

    installation.sql("secrets/secrets.db", "DELETE FROM webhook_secrets")  # lost behind partnerctl's back
    result = installation.run("webhooks", "rotate-secret", ACME, HOOK)
    assert result.exit_code == 1 and "run partnerctl apply first" in result.stderr, result

    repo = installation.repo
    path = repo.root / f"partners/{TENANT}/acme-bank.yaml"
    repo.write_partner(edit(path.read_text(), "suspended: false", "suspended: true"))
    repo.commit("Suspend ACME")
    installation.apply()
    result = installation.run("webhooks", "rotate-secret", ACME, HOOK)
    assert result.exit_code == 1 and "SUSPENDED" in result.stderr and "Traceback" not in result.stderr, result
    assert "webhook.secret_rotated" not in installation.events(ACME)


def test_in_vault_mode_the_new_secret_is_wrapped_and_the_old_one_destroyed_after_the_overlap(
    vault_installation: Installation, vault: VaultSpace, receiver: tuple[HttpRecorder, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    recorder, hooks = receiver
    installation = vault_installation
    installation.onboard(hooks=hooks)
    old = unwrapped_secret(installation)
    assert rotate(installation)["overlapUntil"] == OVERLAP_UNTIL
    new = unwrapped_secret(installation)
    assert new != old
    [entry] = [entry for entry in installation.audit() if entry["event"] == "webhook.secret_rotated"]
    assert entry["details"] == {"webhook": HOOK, "overlapUntil": OVERLAP_UNTIL}

    at(monkeypatch, "2026-11-28T12:10:00Z")
    published = installation.run("events", "publish", "--type", "payment.status.changed", "--data", json.dumps(EVENT))
    assert published.exit_code == 0, published
    assert installation.run("dispatch", "--once").exit_code == 0
    installation.apply()
    during = [request for request in recorder.requests if b'"type":"ping"' not in request.body] + pings(recorder)[1:]
    assert len(during) == 2
    assert all(verifies(old, request) and verifies(new, request) for request in during)

    at(monkeypatch, "2026-12-05T12:00:01Z")
    assert HOOK in vault.record(ACME)[0]["previous_webhooks"]
    installation.apply()
    assert verifies(new, pings(recorder)[-1]) and not verifies(old, pings(recorder)[-1])
    assert vault.record(ACME)[0]["previous_webhooks"] == {}, "housekeeping destroyed the old secret"
    store = VaultSecretStore(parse_url(vault.url))
    assert store.webhook_signing_secrets(ACME, HOOK, now=clock.now()) == [new]
    store.close()
