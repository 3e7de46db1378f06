"""Publishing events and delivering them to partner webhooks (DESIGN §8): mapping, clearance filtering,
signatures, retries, Retry-After, 410, redirects, SSRF, LOG-01, held deliveries and restarts."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from reconciler.stores.records import DeliveryRow
from tests.conftest import Onboarded
from tests.support import apps
from tests.support.repo import TENANT, edit
from tests.support.servers import Recorded, free_port

ACME = f"{TENANT}/acme-bank"
EVENT = {"payment_id": "p-1", "status": "paid", "amount": 1200, "beneficiary_name": "Ana Banda"}


def publish(onboarded: Onboarded, data: object = EVENT, event_type: str = "payment.status.changed") -> int:
    result = onboarded.installation.run("--output", "json", "events", "publish", "--type", event_type,
                                        "--data", json.dumps(data))  # fmt: skip
    assert result.exit_code == 0, result
    return int(result.json()["deliveries"])


def dispatch(onboarded: Onboarded, *, loopback: bool = True) -> int:
    dispatcher = apps.dispatcher(onboarded.installation.home, loopback=loopback)
    try:
        return asyncio.run(dispatcher.run_once())
    finally:
        dispatcher.stores.close()


def deliveries(onboarded: Onboarded) -> list[Recorded]:
    return [request for request in onboarded.receiver.requests if b'"type":"payment.status.changed"' in request.body]


def delivery_rows(onboarded: Onboarded) -> list[DeliveryRow]:
    with apps.stores(onboarded.installation.home) as stores:
        return stores.journal.deliveries()


def outbox(onboarded: Onboarded) -> list[tuple[str, int, int | None]]:
    return [(row.status, row.attempts, row.last_status) for row in delivery_rows(onboarded)]


def at(monkeypatch: pytest.MonkeyPatch, moment: str) -> None:
    monkeypatch.setenv("PARTNERCTL_NOW", moment)


def fail_five_times(onboarded: Onboarded, monkeypatch: pytest.MonkeyPatch) -> None:
    """Five attempts of the queued delivery, each past the previous retry with the largest jitter (+10 %)."""
    for moment in ("12:00:00", "12:00:10", "12:06:00", "12:40:00", "14:55:00"):
        at(monkeypatch, f"2026-11-28T{moment}Z")
        dispatch(onboarded)


@pytest.mark.parametrize(
    ("event_type", "data", "words"),
    [
        ("payment.lost", EVENT, "unknown event type"),
        ("payment.status.changed", {"payment_id": "p-1"}, "missing catalogued field"),
        ("payment.status.changed", {**EVENT, "iban": "X"}, "does not classify"),
        ("payment.status.changed", ["not", "an", "object"], "JSON object"),
    ],
    ids=["unknown-type", "missing-fields", "uncatalogued-field", "not-an-object"],
)
def test_bad_events_are_refused(onboarded: Onboarded, event_type: str, data: object, words: str) -> None:
    result = onboarded.installation.run("events", "publish", "--type", event_type, "--data", json.dumps(data))
    assert result.exit_code == 1
    assert words in result.stderr and "Traceback" not in result.stderr
    assert outbox(onboarded) == []


def test_delivery_is_mapped_filtered_by_clearance_and_signed(onboarded: Onboarded) -> None:
    assert publish(onboarded) == 1
    assert dispatch(onboarded) == 1
    [delivery] = deliveries(onboarded)
    secret = onboarded.credentials["webhook_secrets"]["payment-events"]
    payload = Webhook(secret).verify(delivery.body, delivery.headers)
    # payment-v1 renames two fields; beneficiary_name is personal, above this bank's clearance.
    assert payload["data"] == {"paymentReference": "p-1", "state": "paid", "amount": 1200}
    assert b"Ana Banda" not in delivery.body
    assert outbox(onboarded) == [("delivered", 1, 200)]
    assert dispatch(onboarded) == 0  # nothing twice


def test_fields_above_clearance_are_dropped_without_a_mapping_too(onboarded: Onboarded) -> None:
    repo = onboarded.installation.repo
    path = repo.root / f"partners/{TENANT}/acme-bank.yaml"
    repo.write_partner(edit(path.read_text(), "      mapping: payment-v1\n", ""))
    repo.commit("No mapping")
    onboarded.installation.apply()
    publish(onboarded)
    dispatch(onboarded)
    [delivery] = deliveries(onboarded)
    assert json.loads(delivery.body)["data"] == {"payment_id": "p-1", "status": "paid", "amount": 1200}


def test_retries_follow_the_schedule_with_the_same_webhook_id(
    onboarded: Onboarded, monkeypatch: pytest.MonkeyPatch
) -> None:
    onboarded.receiver.status = 500
    publish(onboarded)
    dispatch(onboarded)
    assert outbox(onboarded) == [("pending", 1, 500)]
    assert dispatch(onboarded) == 0  # not due before ~5 s
    at(monkeypatch, "2026-11-28T12:00:06Z")
    assert dispatch(onboarded) == 1
    onboarded.receiver.status = 200
    at(monkeypatch, "2026-11-28T12:06:00Z")
    dispatch(onboarded)
    assert outbox(onboarded) == [("delivered", 3, 200)]
    assert len({request.headers["webhook-id"] for request in deliveries(onboarded)}) == 1
    assert len(deliveries(onboarded)) == 3


def test_retry_after_is_honoured(onboarded: Onboarded, monkeypatch: pytest.MonkeyPatch) -> None:
    onboarded.receiver.status, onboarded.receiver.headers = 429, {"Retry-After": "120"}
    publish(onboarded)
    dispatch(onboarded)
    at(monkeypatch, "2026-11-28T12:01:00Z")  # the schedule's 5 s are long past, Retry-After is not
    assert dispatch(onboarded) == 0
    at(monkeypatch, "2026-11-28T12:02:05Z")
    assert dispatch(onboarded) == 1


def test_410_deactivates_and_holds_until_a_ping_succeeds(onboarded: Onboarded) -> None:
    onboarded.receiver.status = 410
    publish(onboarded)
    dispatch(onboarded)
    status = onboarded.installation.status()[ACME]
    assert status["webhooks"][0]["state"] == "deactivated"
    assert outbox(onboarded) == [("held", 1, 410)]
    publish(onboarded)  # new events for a deactivated webhook are held too, not dropped
    assert [row[0] for row in outbox(onboarded)] == ["held", "held"]
    assert "webhook.deactivated" in onboarded.installation.events(ACME)

    onboarded.receiver.status = 200
    onboarded.installation.apply()  # the connectivity check pings, the webhook recovers
    assert onboarded.installation.status()[ACME]["webhooks"][0]["state"] == "active"
    assert dispatch(onboarded) == 2
    assert [row[0] for row in outbox(onboarded)] == ["delivered", "delivered"]


def test_redirects_are_failures_and_not_followed(onboarded: Onboarded) -> None:
    onboarded.receiver.status, onboarded.receiver.headers = 302, {"Location": "http://169.254.169.254/"}
    publish(onboarded)
    dispatch(onboarded)
    assert outbox(onboarded) == [("pending", 1, 302)]
    assert len(deliveries(onboarded)) == 1


def test_destinations_are_checked_again_at_send_time(onboarded: Onboarded) -> None:
    publish(onboarded)
    dispatch(onboarded, loopback=False)  # a dispatcher without the dev flag refuses loopback
    rows = delivery_rows(onboarded)
    assert rows[0].status == "pending" and "refused" in (rows[0].last_error or "")
    assert deliveries(onboarded) == []


def test_log01_from_failed_deliveries(onboarded: Onboarded, monkeypatch: pytest.MonkeyPatch) -> None:
    onboarded.receiver.status = 503
    publish(onboarded)
    fail_five_times(onboarded, monkeypatch)
    hook = onboarded.installation.status()[ACME]["webhooks"][0]
    assert (hook["state"], hook["consecutiveFailures"]) == ("deactivated", 5)
    assert outbox(onboarded)[0][0] == "held"
    events = [e for e in onboarded.installation.audit() if e["event"] in ("webhook.failing", "webhook.deactivated")]
    assert [e["details"]["code"] for e in events] == ["LOG-01", "LOG-01"]


def test_a_restart_continues_the_retry_schedule(onboarded: Onboarded, monkeypatch: pytest.MonkeyPatch) -> None:
    onboarded.receiver.status = 500
    publish(onboarded)
    dispatch(onboarded)
    onboarded.receiver.status = 200
    at(monkeypatch, "2026-11-28T12:00:06Z")
    result = onboarded.installation.run("dispatch", "--once")  # a new worker process picks it up
    assert result.exit_code == 0, result
    assert outbox(onboarded) == [("delivered", 2, 200)]
    ids = [request.headers["webhook-id"] for request in deliveries(onboarded)]
    assert len(ids) == 2 and ids[0] == ids[1]


def test_platform_services_publish_through_the_gateway(onboarded: Onboarded) -> None:
    token = onboarded.installation.run("events", "token").stdout.strip()
    assert token.startswith("scp_pt_")
    url = f"{onboarded.gateway.url}/internal/events"
    body = {"type": "payment.status.changed", "data": EVENT}
    assert httpx.post(url, json=body).status_code == 401
    credentials = (onboarded.credentials["client_id"], onboarded.credentials["client_secret"])
    grant = {"grant_type": "client_credentials"}
    partner_token = httpx.post(f"{onboarded.gateway.url}/oauth2/token", data=grant, auth=credentials).json()
    as_partner = {"Authorization": f"Bearer {partner_token['access_token']}"}
    assert httpx.post(url, json=body, headers=as_partner).status_code == 401  # a partner cannot publish
    accepted = httpx.post(url, json=body, headers={"Authorization": f"Bearer {token}"})
    assert accepted.status_code == 202 and accepted.json()["deliveries"] == 1
    refused = httpx.post(url, json={"type": "payment.lost", "data": {}}, headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 400 and "unknown event type" in refused.json()["error_description"]


def test_a_host_name_resolving_to_a_private_address_is_refused_at_send_time(
    onboarded: Onboarded, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: the name looked public when validated; at send time it resolves to 10.0.0.7."""
    repo = onboarded.installation.repo
    path = repo.root / f"partners/{TENANT}/acme-bank.yaml"
    text = path.read_text()
    hook_url = next(line.split("url: ")[1].strip().strip('"') for line in text.splitlines() if "url: " in line)
    repo.write_partner(text.replace(hook_url, "https://hooks.acme-bank.example/scp"))
    repo.commit("Public webhook host")
    onboarded.installation.apply()
    real = socket.getaddrinfo

    def rebinding(host: str, *args: object, **kwargs: object) -> list[tuple[object, ...]]:
        if host == "hooks.acme-bank.example":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", 443))]
        return real(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    publish(onboarded)
    dispatch(onboarded, loopback=False)
    [row] = delivery_rows(onboarded)
    assert row.status == "pending" and "private" in (row.last_error or "")


def test_on_failure_flag_keeps_delivering(onboarded: Onboarded, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = onboarded.installation.repo
    policy = repo.root / f"policies/{TENANT}.yaml"
    repo.write(f"policies/{TENANT}.yaml", edit(policy.read_text(), "onFailure: deactivate", "onFailure: flag"))
    repo.commit("Flag, do not deactivate")
    onboarded.installation.apply()
    onboarded.receiver.status = 500
    publish(onboarded)
    fail_five_times(onboarded, monkeypatch)
    hook = onboarded.installation.status()[ACME]["webhooks"][0]
    assert (hook["state"], hook["consecutiveFailures"]) == ("flagged", 5)
    assert "webhook.flagged" in onboarded.installation.events(ACME)
    publish(onboarded)
    assert [row[0] for row in outbox(onboarded)] == ["pending", "pending"]  # flagged, not held


def test_the_dispatch_worker_delivers_reports_and_stops_cleanly_on_sigterm(onboarded: Onboarded) -> None:
    publish(onboarded)
    port = free_port()
    command = [str(Path(sys.executable).parent / "partnerctl"), "--home", str(onboarded.installation.home),
               "--dev-allow-loopback-webhooks", "dispatch", "--interval", "1", "--metrics-port", str(port)]  # fmt: skip
    worker = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while not deliveries(onboarded) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(deliveries(onboarded)) == 1
        probe = f"http://127.0.0.1:{port}"
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{probe}/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        assert httpx.get(f"{probe}/healthz").status_code == 200
        assert 'partnerctl_webhook_deliveries_total{result="delivered"} 1.0' in httpx.get(f"{probe}/metrics").text
    finally:
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=20)
    assert code == 0 and "received SIGTERM" in (worker.stderr.read() if worker.stderr else "")
    assert outbox(onboarded) == [("delivered", 1, 200)]


def test_every_attempt_is_in_the_delivery_log_without_the_payload(
    onboarded: Onboarded, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An amount of twelve digits: one of four could turn up by chance in a random hex id (it did, once).
    payload = {**EVENT, "amount": 987_654_321_012}
    publish(onboarded, payload)
    onboarded.receiver.status = 503
    at(monkeypatch, "2026-11-28T12:00:00Z")
    dispatch(onboarded)
    onboarded.receiver.status = 200
    at(monkeypatch, "2026-11-28T12:00:10Z")
    dispatch(onboarded)
    result = onboarded.installation.run("--output", "json", "webhooks", "deliveries", ACME)
    assert result.exit_code == 0, result
    log = result.json()["deliveries"]
    (message,) = {entry["eventId"] for entry in log}
    assert message == deliveries(onboarded)[-1].headers["webhook-id"], "the event id is the webhook-id"
    assert [(e["attempt"], e["status"], e["httpStatus"], e["error"]) for e in log] == [
        (2, "delivered", 200, None), (1, "failed", 503, "answered 503")]  # fmt: skip
    assert all(set(entry) == {"webhook", "eventId", "type", "time", "attempt", "status", "httpStatus", "error",
                              "latencyMs"} for entry in log)  # fmt: skip
    assert all(entry["type"] == "payment.status.changed" and entry["latencyMs"] >= 0 for entry in log)
    for value in payload.values():
        assert str(value) not in result.stdout, "nothing of the payload"
    failed = onboarded.installation.run("--output", "json", "webhooks", "deliveries", ACME, "--status", "failed",
                                        "--since", "2026-11-28T11:00:00Z")  # fmt: skip
    assert [e["attempt"] for e in failed.json()["deliveries"]] == [1]
    text = onboarded.installation.run("webhooks", "deliveries", ACME, "--webhook", "payment-events")
    assert text.exit_code == 0 and "delivered" in text.stdout and message in text.stdout
    unknown = onboarded.installation.run("webhooks", "deliveries", ACME, "--webhook", "nope")
    assert unknown.exit_code != 0 and "Traceback" not in unknown.stderr
