"""Signed webhook requests: Standard Webhooks signatures, SSRF checks at send time, no redirects, LOG-01."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from reconciler.credentials import new_webhook_secret
from reconciler.webhooks import sender as webhooks
from tests.conftest import Onboarded
from tests.support.repo import TENANT
from tests.support.servers import HttpRecorder

ACME = f"{TENANT}/acme-bank"


def test_our_signature_is_the_standard_webhooks_signature() -> None:
    secret = new_webhook_secret()
    moment = datetime(2026, 11, 28, 12, tzinfo=UTC)
    body = b'{"type":"ping"}'
    assert webhooks.sign([secret], "msg_1", int(moment.timestamp()), body) == Webhook(secret).sign(
        "msg_1", moment, body.decode()
    )


def test_two_secrets_give_two_signatures_and_either_secret_verifies() -> None:
    new, old = new_webhook_secret(), new_webhook_secret()
    moment = datetime.now(UTC)
    body = b'{"type":"ping"}'
    signature = webhooks.sign([new, old], "msg_1", int(moment.timestamp()), body)
    assert signature == " ".join(Webhook(secret).sign("msg_1", moment, body.decode()) for secret in (new, old))
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(int(moment.timestamp())), "webhook-signature": signature}
    for secret in (new, old):
        Webhook(secret).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_webhook_secret()).verify(body, headers)


def test_redirects_are_not_followed(receiver: tuple[HttpRecorder, str]) -> None:
    recorder, url = receiver
    recorder.status = 302
    delivery = webhooks.send(f"{url}/hook", "ping", {}, secrets=[new_webhook_secret()], allow_loopback=True)
    assert not delivery.ok and delivery.status == 302
    assert len(recorder.requests) == 1


def test_loopback_is_refused_at_send_time_without_the_dev_flag(receiver: tuple[HttpRecorder, str]) -> None:
    recorder, url = receiver
    delivery = webhooks.send(f"{url}/hook", "ping", {}, secrets=[new_webhook_secret()])
    assert not delivery.ok and "refused" in (delivery.error or "")
    assert recorder.requests == []


def test_a_name_resolving_to_a_private_address_is_refused() -> None:
    with pytest.raises(OSError, match="loopback"):
        webhooks.resolve_checked("localhost", 443, allow_loopback=False)
    assert webhooks.resolve_checked("localhost", 443, allow_loopback=True) in ("127.0.0.1", "::1")


def test_log01_failing_then_deactivated_then_recovered(onboarded: Onboarded) -> None:
    installation = onboarded.installation
    onboarded.receiver.status = 503
    installation.apply()
    hook = installation.status()[ACME]["webhooks"][0]
    assert (hook["state"], hook["consecutiveFailures"]) == ("failing", 1)
    for _ in range(4):  # the tenant allows 5 consecutive failures, then deactivates
        installation.apply()
    hook = installation.status()[ACME]["webhooks"][0]
    assert (hook["state"], hook["consecutiveFailures"]) == ("deactivated", 5)
    events = [e for e in installation.audit() if e["event"].startswith("webhook.") and e["partner"] == ACME]
    assert [e["event"] for e in events][-2:] == ["webhook.failing", "webhook.deactivated"]
    assert events[-1]["details"]["code"] == "LOG-01"
    onboarded.receiver.status = 204
    installation.apply()
    hook = installation.status()[ACME]["webhooks"][0]
    assert (hook["state"], hook["consecutiveFailures"]) == ("active", 0)
    assert installation.events(ACME)[-1] == "webhook.recovered"
